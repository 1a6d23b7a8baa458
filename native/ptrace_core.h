/* pysentry ptrace fast path: stub creation, syscall injection, resume/collect.
 * Everything here runs in the sentry's single tracer thread: ptrace requests are only
 * valid from the thread that is the tracer, and the event loop is that thread. */
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* Stub layout: one page of position-independent code at STUB_BASE in every stub process;
 * every other mapping of the stub is removed before it first stops, so the application's
 * address space is [0, STUB_BASE) under the sentry's control. */
#define PS_STUB_BASE 0x7fffffff0000UL
#define PS_STUB_SIZE 0x1000UL
#define PS_STUB_MEMFD 3
/* Each stub maps one page of the memory file read-only here: the sentry writes batches of
 * syscalls into it through its own mapping (the application cannot write it). */
#define PS_STUB_BATCH (PS_STUB_BASE + PS_STUB_SIZE)
#define PS_BATCH_ENTRY_WORDS 7

int ps_stub_spawn(int memfd);            /* template stub: returns pid (stopped) or -errno */
unsigned long ps_stub_syscall_addr(void);/* rip of the injection point ("syscall; int3") */
long ps_inject(int tid, struct user_regs_struct *scratch, long nr,
               unsigned long a0, unsigned long a1, unsigned long a2,
               unsigned long a3, unsigned long a4, unsigned long a5, int *new_tid);
long ps_inject_batch(int tid, struct user_regs_struct *scratch, unsigned long entries, long n);
int ps_resume(int tid, struct user_regs_struct *regs, int sysemu, int sig);
int ps_getregs(int tid, struct user_regs_struct *regs);
int ps_getregs_at_syscall(int tid, struct user_regs_struct *regs);
int ps_setregs(int tid, struct user_regs_struct *regs);
int ps_getsiginfo(int tid, void *buf128);
int ps_getfpregs(int tid, void *buf512);
int ps_setfpregs(int tid, void *buf512);
int ps_kick(int tgid, int tid);          /* make a running tid stop (SIGSTOP via tgkill) */
int ps_setoptions(int tid);
long ps_geteventmsg(int tid);
int ps_getxstate(int tid, void *buf, int len);
int ps_setxstate(int tid, void *buf, int len);
unsigned long long ps_xcr0(void);
int ps_spin_collect(int usec, int *status);
int ps_sigchld_fd(void);
