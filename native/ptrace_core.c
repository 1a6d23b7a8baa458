#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/rseq.h>
#include <sys/uio.h>
#include <sys/signalfd.h>
#include <time.h>
#include <elf.h>
#include "ptrace_core.h"

#ifndef PTRACE_SYSEMU
#define PTRACE_SYSEMU 31
#endif

/* The registers each stopped stub thread has in the host kernel, when this file knows
 * them: set by every GETREGS/SETREGS here, forgotten by every resume and every stop
 * collected. ps_resume then writes only what changed: most syscalls change rax alone,
 * and one POKEUSER costs less than a SETREGS (about 1 us of an 11 us round trip, measured
 * with the ptrace floor). Direct-mapped by tid: an entry for another tid is no entry, so
 * a collision only costs the full SETREGS. Every register write to a stub goes through
 * this file, which is what makes a valid entry the truth. */
struct known_regs { int tid; int valid; struct user_regs_struct regs; };
static struct known_regs known[256];

static void remember(int tid, const struct user_regs_struct *r) {
    struct known_regs *k = &known[tid & 255];
    k->tid = tid;
    k->valid = 1;
    k->regs = *r;
}

static void forget(int tid) {
    struct known_regs *k = &known[tid & 255];
    if (k->tid == tid) k->valid = 0;
}

static int getregs(int tid, struct user_regs_struct *r) {
    if (ptrace(PTRACE_GETREGS, tid, 0, r) < 0) return -1;
    remember(tid, r);
    return 0;
}

static int setregs(int tid, struct user_regs_struct *r) {
    forget(tid);                     /* a failed SETREGS leaves the registers unknown */
    if (ptrace(PTRACE_SETREGS, tid, 0, r) < 0) return -1;
    remember(tid, r);
    return 0;
}

/* Make the stopped thread's registers `r`, writing only rax when nothing else changed. */
static int putregs(int tid, struct user_regs_struct *r) {
    struct known_regs *k = &known[tid & 255];
    if (k->tid == tid && k->valid) {
        struct user_regs_struct same_rax = *r;
        same_rax.rax = k->regs.rax;
        if (memcmp(&same_rax, &k->regs, sizeof same_rax) == 0) {
            if (r->rax == k->regs.rax) return 0;
            if (ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rax),
                       r->rax) < 0) {
                k->valid = 0;
                return -1;
            }
            k->regs.rax = r->rax;
            return 0;
        }
    }
    return setregs(tid, r);
}

/* Every resume of a stub thread: its registers change from here on. */
static long resume(int tid, int request, long sig) {
    forget(tid);
    return ptrace(request, tid, 0, sig);
}

/* The stub code. Entered once, from the forked child, with rdi = PS_STUB_BASE. It removes
 * every mapping but its own page, stops itself, and from then on is only an injection
 * point: the tracer points rip at ps_stub_syscall with the registers of a syscall, lets it
 * run with PTRACE_CONT, and collects the result at the int3. It uses no stack. */
extern const char ps_stub_start[], ps_stub_syscall[], ps_stub_batch[], ps_stub_end[];
__asm__(
    ".pushsection .rodata\n"
    ".globl ps_stub_start\n.globl ps_stub_syscall\n.globl ps_stub_batch\n.globl ps_stub_end\n"
    "ps_stub_start:\n"
    "  mov %rdi, %r15\n"
    "  mov $11, %eax\n  xor %edi, %edi\n  mov %r15, %rsi\n  syscall\n"          /* munmap(0, base) */
    "  lea 0x1000(%r15), %rdi\n  movabs $0x7ffffffff000, %rsi\n  sub %rdi, %rsi\n"
    "  mov $11, %eax\n  syscall\n"                                               /* munmap(above) */
    "  mov $39, %eax\n  syscall\n  mov %rax, %rdi\n  mov $19, %esi\n  mov $62, %eax\n  syscall\n" /* kill(getpid(), SIGSTOP) */
    "ps_stub_syscall:\n"
    "  syscall\n  int3\n  jmp ps_stub_syscall\n"
    /* A batch: r12 points at r13 entries of PS_BATCH_ENTRY_WORDS quadwords (nr, a0..a5),
     * in the stub's read-only batch page. Stops at the int3 after the last entry, or at
     * the first that fails (rax in [-4095, -1]) with r13 = entries not done, that one
     * included. */
    "ps_stub_batch:\n"
    "1: test %r13, %r13\n  jz 2f\n"
    "  mov (%r12), %rax\n  mov 8(%r12), %rdi\n  mov 16(%r12), %rsi\n  mov 24(%r12), %rdx\n"
    "  mov 32(%r12), %r10\n  mov 40(%r12), %r8\n  mov 48(%r12), %r9\n"
    "  syscall\n"
    "  cmp $-4095, %rax\n  jae 2f\n"
    "  add $56, %r12\n  dec %r13\n  jmp 1b\n"
    "2: int3\n  jmp 2b\n"
    "ps_stub_end:\n"
    ".popsection\n");

unsigned long ps_stub_syscall_addr(void) {
    return PS_STUB_BASE + (unsigned long)(ps_stub_syscall - ps_stub_start);
}

static long raw(long nr, long a, long b, long c, long d, long e, long f) {
    return syscall(nr, a, b, c, d, e, f);
}

static void drop_capabilities(void) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (int cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    raw(SYS_capset, (long)&hdr, (long)data, 0, 0, 0, 0);
}

/* The legacy vsyscall page: the host kernel serves a call into it (gettimeofday, time,
 * getcpu) itself, without a syscall stop, so PTRACE_SYSEMU never shows it to the sentry.
 * This filter makes such a call a SIGSYS stop instead (SECCOMP_RET_TRAP; the host then
 * performs nothing), and the sentry serves it (sentry/kernel/vsyscall.py). Syscalls under
 * PTRACE_SYSEMU never reach seccomp; the stub's own injected ones are allowed. */
static int install_vsyscall_filter(void) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffU, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xfffff000U),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xff600000U, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    return (int)raw(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)&prog, 0, 0, 0);
}

int ps_stub_spawn(int memfd) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        /* Child: only async-signal-safe calls from here on. */
        if (dup2(memfd, PS_STUB_MEMFD) < 0) _exit(120);
        raw(SYS_close_range, PS_STUB_MEMFD + 1, ~0U, 0, 0, 0, 0);
        raw(SYS_close_range, 0, PS_STUB_MEMFD - 1, 0, 0, 0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent) _exit(121);
        setsid();                                   /* no terminal signals reach stubs */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;                     /* forked address-space stubs auto-reap */
        sigaction(SIGCHLD, &sa, NULL);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        /* glibc registered an rseq area in TLS; once the stub unmaps it, the kernel would
         * fault the thread on its next preemption. Unregister it first. */
        if (__rseq_size > 0)
            raw(SYS_rseq, (long)((char *)__builtin_thread_pointer() + __rseq_offset),
                __rseq_size < 32 ? 32 : __rseq_size, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG, 0, 0);
        drop_capabilities();                         /* also sets no_new_privs */
        if (install_vsyscall_filter() != 0) _exit(126);
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0) _exit(122);
        size_t len = (size_t)(ps_stub_end - ps_stub_start);
        void *p = mmap((void *)PS_STUB_BASE, PS_STUB_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p != (void *)PS_STUB_BASE) _exit(123);
        memcpy(p, ps_stub_start, len);
        if (mprotect(p, PS_STUB_SIZE, PROT_READ | PROT_EXEC) < 0) _exit(124);
        ((void (*)(unsigned long))p)(PS_STUB_BASE);
        _exit(125);
    }
    int status;
    if (waitpid(pid, &status, __WALL) < 0) return -errno;
    forget(pid);
    if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGSTOP) return -ECHILD;
    if (ps_setoptions(pid) < 0) return -errno;
    return pid;
}

int ps_setoptions(int tid) {
    long opts = PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE |
                PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK;
    return ptrace(PTRACE_SETOPTIONS, tid, 0, opts) < 0 ? -errno : 0;
}

/* Wait for `tid` to reach a stop, collecting the status; other tids' events stay queued. */
static int wait_tid(int tid, int *status) {
    for (;;) {
        if (waitpid(tid, status, __WALL) >= 0) {
            forget(tid);
            return 0;
        }
        if (errno != EINTR) return -errno;
    }
}

/* Continue stopped stub thread `tid` until the int3 that ends injected code. A kick
 * (SIGSTOP) that raced with the injection is dropped; a clone-family event attaches the
 * new thread/process (its tid in *new_tid when asked). Returns 0, or <= -100000 as
 * ps_inject (-200000 - sig: a fault inside the stub, which means the stub is broken). */
static long run_to_trap(int tid, int *new_tid) {
    if (resume(tid, PTRACE_CONT, 0) < 0) return -100000 - errno;
    int status;
    for (;;) {
        int err = wait_tid(tid, &status);
        if (err) return -100000 + err;
        if (!WIFSTOPPED(status)) return -100000 - ESRCH;   /* the stub died */
        int sig = WSTOPSIG(status);
        int event = status >> 16;
        if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK) {
            unsigned long child = 0;
            ptrace(PTRACE_GETEVENTMSG, tid, 0, &child);
            int cst;
            if (wait_tid((int)child, &cst) == 0 && new_tid) *new_tid = (int)child;
            resume(tid, PTRACE_CONT, 0);
            continue;
        }
        if (sig == SIGTRAP) return 0;
        if (sig != SIGSTOP) return -200000 - sig;
        resume(tid, PTRACE_CONT, 0);
    }
}

/* Run one host syscall in stopped thread `tid`. `scratch` receives the registers at the
 * int3 (the caller restores the task's registers afterwards). Clone-family calls with
 * PTRACE_O_TRACECLONE/FORK stop first at the event stop; the new tid is stored in *new_tid
 * and it is left in its initial SIGSTOP stop (collected here, so the caller owns it). */
long ps_inject(int tid, struct user_regs_struct *r, long nr,
               unsigned long a0, unsigned long a1, unsigned long a2,
               unsigned long a3, unsigned long a4, unsigned long a5, int *new_tid) {
    if (getregs(tid, r) < 0) return -100000 - errno;
    r->rip = ps_stub_syscall_addr();
    r->rax = nr; r->orig_rax = (unsigned long)-1;
    r->rdi = a0; r->rsi = a1; r->rdx = a2; r->r10 = a3; r->r8 = a4; r->r9 = a5;
    if (setregs(tid, r) < 0) return -100000 - errno;
    long err = run_to_trap(tid, new_tid);
    if (err) return err;
    if (getregs(tid, r) < 0) return -100000 - errno;
    return (long)r->rax;
}

/* Run `n` syscalls described in the stub's batch page (at `entries` in the stub) in
 * stopped thread `tid`, in one round trip. Returns how many succeeded (n when all did;
 * then the failing one's result is in scratch->rax), or <= -100000 as ps_inject. No
 * clone-family calls here: the new tid would not reach the caller. */
long ps_inject_batch(int tid, struct user_regs_struct *r, unsigned long entries, long n) {
    if (n <= 0) return 0;
    if (getregs(tid, r) < 0) return -100000 - errno;
    r->rip = PS_STUB_BASE + (unsigned long)(ps_stub_batch - ps_stub_start);
    r->orig_rax = (unsigned long)-1;
    r->r12 = entries;
    r->r13 = (unsigned long)n;
    if (setregs(tid, r) < 0) return -100000 - errno;
    long err = run_to_trap(tid, NULL);
    if (err) return err;
    if (getregs(tid, r) < 0) return -100000 - errno;
    if (r->r13 > (unsigned long)n) return -100000 - EIO;
    return n - (long)r->r13;
}

int ps_resume(int tid, struct user_regs_struct *regs, int sysemu, int sig) {
    if (regs && putregs(tid, regs) < 0) return -errno;
    if (resume(tid, sysemu ? PTRACE_SYSEMU : PTRACE_CONT, (long)sig) < 0) return -errno;
    return 0;
}

int ps_getregs(int tid, struct user_regs_struct *regs) {
    return getregs(tid, regs) < 0 ? -errno : 0;
}

/* ps_getregs at a syscall stop, and how the thread got there: 0 by the `syscall`
 * instruction (which leaves rcx equal to the return address), 1 another way (int 0x80 or
 * sysenter: the i386 ABI, whose registers mean something else). */
int ps_getregs_at_syscall(int tid, struct user_regs_struct *regs) {
    if (getregs(tid, regs) < 0) return -errno;
    return regs->rcx != regs->rip;
}
int ps_setregs(int tid, struct user_regs_struct *regs) {
    return setregs(tid, regs) < 0 ? -errno : 0;
}
int ps_getsiginfo(int tid, void *buf) {
    return ptrace(PTRACE_GETSIGINFO, tid, 0, buf) < 0 ? -errno : 0;
}
int ps_getfpregs(int tid, void *buf) {
    return ptrace(PTRACE_GETFPREGS, tid, 0, buf) < 0 ? -errno : 0;
}
int ps_setfpregs(int tid, void *buf) {
    return ptrace(PTRACE_SETFPREGS, tid, 0, buf) < 0 ? -errno : 0;
}
int ps_kick(int tgid, int tid) {
    return raw(SYS_tgkill, tgid, tid, SIGSTOP, 0, 0, 0) < 0 ? -errno : 0;
}
long ps_geteventmsg(int tid) {
    unsigned long msg = 0;
    if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg) < 0) return -errno;
    return (long)msg;
}

/* The whole XSAVE area of a thread (standard format), for signal frames. */
int ps_getxstate(int tid, void *buf, int len) {
    struct iovec iov = {buf, (size_t)len};
    if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) < 0) return -errno;
    return (int)iov.iov_len;
}
int ps_setxstate(int tid, void *buf, int len) {
    struct iovec iov = {buf, (size_t)len};
    return ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &iov) < 0 ? -errno : 0;
}
unsigned long long ps_xcr0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

/* Collect the next tracee event, busy-waiting up to `usec` for one (0: look once): a
 * tracee that just resumed usually traps back within microseconds, sooner than SIGCHLD ->
 * signalfd -> epoll would tell the loop. The event is consumed here, so the round trip
 * pays one waitpid (as a bare PTRACE_SYSEMU tracer does). Returns its tid (status in *status), 0 when
 * none came, or -errno (ECHILD: no children at all). */
int ps_spin_collect(int usec, int *status) {
    int r = waitpid(-1, status, WNOHANG | __WALL);
    if (r > 0) forget(r);
    if (r != 0 || usec <= 0) return r < 0 ? -errno : r;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        r = waitpid(-1, status, WNOHANG | __WALL);
        if (r > 0) forget(r);
        if (r != 0) return r < 0 ? -errno : r;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long el = (now.tv_sec - t0.tv_sec) * 1000000L + (now.tv_nsec - t0.tv_nsec) / 1000;
        if (el >= usec) return 0;
    }
}

/* A signalfd for SIGCHLD, which the caller has blocked: the loop learns of tracee stops
 * without a Python-level signal handler running for each one. */
int ps_sigchld_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}
