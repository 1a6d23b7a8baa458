"""cffi build script for pysentry.native._ptrace (run at install time by setup.py)."""
from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("""
struct user_regs_struct {
    unsigned long long r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx,
        rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs;
};
int ps_stub_spawn(int memfd);
unsigned long ps_stub_syscall_addr(void);
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
int ps_kick(int tgid, int tid);
int ps_setoptions(int tid);
long ps_geteventmsg(int tid);
int ps_getxstate(int tid, void *buf, int len);
int ps_setxstate(int tid, void *buf, int len);
unsigned long long ps_xcr0(void);
int ps_spin_collect(int usec, int *status);
int ps_sigchld_fd(void);
#define PS_STUB_BASE ...
#define PS_STUB_MEMFD ...
#define PS_STUB_BATCH ...
#define PS_BATCH_ENTRY_WORDS ...
""")
ffibuilder.set_source(
    "pysentry.native._ptrace",
    '#include "ptrace_core.h"',
    sources=["native/ptrace_core.c"],  # relative: setuptools rejects absolute paths
    include_dirs=["native"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
