"""Syscall sites rewritten into direct exits on KVM (docs/kvm.md, "Rewritten syscall sites";
platform/kvm/rewrite.py): a `mov $N,%eax; syscall` that trapped becomes a ring-3 load from
the syscall window. What the program observes must stay Linux's, except reading its own
code, which shows the rewritten bytes (a documented divergence, as in gVisor's systrap).
Each test also checks, from the platform's statistics, that the path it is about was taken."""
import os
import re


from conftest import NEEDS_KVM, compile_c, run_native, run_sandbox

pytestmark = NEEDS_KVM

STATS = re.compile(rb"KVM platform statistics: (\{.*\})")
REWRITE_ON = {**os.environ, "PYSENTRY_KVM_REWRITE": "1"}

# Sites of our own whose bytes we know: `mov $N,%eax` immediately followed by `syscall`,
# 16-byte aligned so that no site straddles a page. site_getpid(0) runs the site as
# written; site_getpid(1, nr) sets eax to nr itself and jumps straight to the site's
# `syscall` (byte +5), as code that shares a syscall instruction may do. site_read is the
# read(2) site the restart test interrupts.
SITES = r'''
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
long site_getpid(long jump, long nr);
long site_read(long fd, void *buf, long n);
extern const unsigned char site_getpid_mov[], site_read_mov[];
__asm__(
    ".text\n"
    ".balign 16\n"
    "site_getpid:\n"
    "  test %rdi, %rdi\n"
    "  jnz 1f\n"
    "site_getpid_mov:\n"
    "  mov $39, %eax\n"
    "site_getpid_syscall:\n"
    "  syscall\n"
    "  ret\n"
    "1: mov %rsi, %rax\n"
    "  jmp site_getpid_syscall\n"
    ".balign 16\n"
    "site_read:\n"
    "site_read_mov:\n"
    "  mov $0, %eax\n"
    "  syscall\n"
    "  ret\n");
static void show_code(const char *what, const unsigned char *p) {
    fprintf(stderr, "%s:", what);
    for (int i = 0; i < 7; i++) fprintf(stderr, " %02x", p[i]);
    fprintf(stderr, "\n");
}
'''


def kvm_stats(stderr: bytes) -> dict:
    m = STATS.search(stderr)
    assert m, stderr[-2000:]
    return eval(m.group(1), {})      # a dict of ints printed by KvmPlatform.shutdown


def run_both(src, args=(), env=REWRITE_ON):
    """Run natively and on KVM with rewriting on; stdout and status must match. Returns the
    sandbox's stderr and the platform's statistics."""
    prog = compile_c(src)
    nat = run_native([prog, *args])
    box = run_sandbox([prog, *args], "--platform=kvm", "--debug", env=env)
    assert box.stdout == nat.stdout, (nat.stdout, box.stdout, box.stderr[-3000:])
    assert box.returncode == nat.returncode, (nat.returncode, box.returncode, box.stderr[-3000:])
    return nat.stderr, box.stderr, kvm_stats(box.stderr)


HOT_LOOP = SITES + r'''
#include <fcntl.h>
int main(void) {
    int p[2];
    pipe(p);
    long sum = 0, ok = 0;
    char c;
    for (int i = 0; i < 3000; i++) {
        ok += site_getpid(0, 0) == getpid();        /* answered in C: learnt by probes */
        write(p[1], "ab", 2);                       /* served by the kernel */
        sum += site_read(p[0], &c, 1) + c;
        sum += site_read(p[0], &c, 1) + c;
    }
    printf("ok %ld sum %ld\n", ok, sum);
    return 0;
}
'''


def test_hot_loop_same_as_native_and_goes_through_the_window():
    _, _, st = run_both(HOT_LOOP)
    assert st["sites_rewritten"] >= 2, st          # site_getpid and site_read at least
    # Most of the 12000 syscalls take the window once their sites are rewritten.
    assert st["window_syscalls"] > 9000, st


def test_rewriting_off_takes_no_window():
    _, _, st = run_both(HOT_LOOP, env={**os.environ, "PYSENTRY_KVM_REWRITE": "0"})
    assert st["sites_rewritten"] == 0 and st["window_syscalls"] == 0, st


JUMP = SITES + r'''
int main(void) {
    for (int i = 0; i < 1000; i++)
        site_getpid(0, 0);
    printf("gettid %d\n", site_getpid(1, SYS_gettid) == gettid());
    printf("getppid %d\n", site_getpid(1, SYS_getppid) == getppid());
    printf("getpid %d\n", site_getpid(1, SYS_getpid) == getpid());
    printf("bad number %ld\n", site_getpid(1, 100000));
    return 0;
}
'''


def test_jump_to_the_syscall_of_a_rewritten_site_performs_it():
    _, _, st = run_both(JUMP)
    assert st["sites_rewritten"] >= 1, st
    assert st["site_int3_syscalls"] == 4, st       # the four jumps, each through the int3


RESTART = SITES + r'''
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
static volatile int handled;
static void on_alarm(int sig) { (void)sig; handled++; }
int main(void) {
    int p[2];
    char buf[8];
    pipe(p);
    for (int i = 0; i < 50; i++) {                  /* make the site hot: rewritten */
        write(p[1], "x", 1);
        site_read(p[0], buf, 1);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    pid_t child = fork();
    if (child == 0) {
        usleep(400000);                             /* after the alarm interrupted the read */
        write(p[1], "late", 4);
        _exit(0);
    }
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    long n = site_read(p[0], buf, sizeof buf);      /* blocks; the alarm restarts it */
    printf("read %ld %.4s handled %d\n", n, buf, handled);
    waitpid(child, NULL, 0);
    return 0;
}
'''


def test_restarted_syscall_at_a_rewritten_site_restarts():
    _, _, st = run_both(RESTART)
    assert st["sites_rewritten"] >= 1, st
    assert st["site_int3_syscalls"] >= 1, st       # the restart landed on the int3 at +5


OWN_TEXT = SITES + r'''
int main(void) {
    unsigned char before[7], after[7];
    memcpy(before, site_getpid_mov, 7);
    for (int i = 0; i < 1000; i++)
        site_getpid(0, 0);
    memcpy(after, site_getpid_mov, 7);
    show_code("before", before);
    show_code("after", after);
    printf("pid ok %d\n", site_getpid(0, 0) == getpid());
    return 0;
}
'''


def test_program_reading_its_own_text_sees_the_rewritten_site():
    nat_err, box_err, st = run_both(OWN_TEXT)
    assert b"before: b8 27 00 00 00 0f 05" in nat_err and b"after: b8 27 00 00 00 0f 05" in nat_err
    # The documented divergence: the copy the program runs is the one it reads.
    assert b"before: b8 27 00 00 00 0f 05" in box_err, box_err[-2000:]
    assert b"after: 8b 0c 25 9c 00 cc ff" in box_err, box_err[-2000:]   # window + 4*39
    assert st["sites_rewritten"] >= 1, st


FORK = SITES + r'''
#include <sys/wait.h>
int main(void) {
    int p[2];
    char c;
    pipe(p);
    for (int i = 0; i < 1000; i++)
        site_getpid(0, 0);
    for (int i = 0; i < 10; i++) {
        write(p[1], "y", 1);
        site_read(p[0], &c, 1);
    }
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        long ok = 0;
        for (int i = 0; i < 500; i++) {
            ok += site_getpid(0, 0) == getpid();
            write(p[1], "z", 1);
            ok += site_read(p[0], &c, 1) == 1 && c == 'z';
        }
        ok += site_getpid(1, SYS_getppid) == parent;
        printf("child ok %ld\n", ok);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("parent ok %d child status %d\n", site_getpid(0, 0) == parent, status);
    return 0;
}
'''


def test_fork_child_runs_the_rewritten_sites():
    _, _, st = run_both(FORK)
    assert st["sites_rewritten"] >= 2, st
    assert st["window_syscalls"] >= 1000, st       # the child's calls too
    assert st["site_int3_syscalls"] >= 1, st


# A file holding `mov $39,%eax; syscall; ret` mapped executable twice: MAP_SHARED (never
# patched: the bytes would reach the file) and MAP_PRIVATE (patched in the private copy;
# the file keeps its bytes).
SHARED_EXEC = r'''
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static const unsigned char code[] = {0xb8, 0x27, 0, 0, 0, 0x0f, 0x05, 0xc3};
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0700);
    char page[4096] = {0};
    memcpy(page, code, sizeof code);
    write(fd, page, sizeof page);
    unsigned char *shared = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    unsigned char *private = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    long (*fs)(void) = (long (*)(void))shared, (*fp)(void) = (long (*)(void))private;
    long ok = 0;
    for (int i = 0; i < 1000; i++)
        ok += (fs() == getpid()) + (fp() == getpid());
    printf("ok %ld shared unchanged %d\n", ok, memcmp(shared, code, sizeof code) == 0);
    fprintf(stderr, "private:");
    for (int i = 0; i < 7; i++) fprintf(stderr, " %02x", private[i]);
    fprintf(stderr, "\n");
    munmap(shared, 4096);
    munmap(private, 4096);
    close(fd);
    return 0;
}
'''


def test_shared_executable_mapping_is_never_modified():
    host_dir = "/var/tmp/pysentry-test-build"        # visible to the sandbox (not /tmp)
    os.makedirs(host_dir, exist_ok=True)
    path = os.path.join(host_dir, f"shared-exec-{os.getpid()}.bin")
    try:
        nat_err, box_err, st = run_both(SHARED_EXEC, args=(path,))
        with open(path, "rb") as f:
            assert f.read(8) == bytes([0xb8, 0x27, 0, 0, 0, 0x0f, 0x05, 0xc3])
        assert b"private: b8 27 00 00 00 0f 05" in nat_err
        # The MAP_PRIVATE copy was rewritten (so rewriting was on and the site hot) ...
        assert b"private: 8b 0c 25 9c 00 cc ff" in box_err, box_err[-2000:]
        assert st["sites_rewritten"] >= 1, st
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_site_bytes_round_trip():
    from pysentry.platform.kvm import rewrite
    for nr in (0, 1, 39, 110, 461, rewrite.WINDOW_NR - 1):
        code = rewrite.rewritten(nr)
        assert len(code) == len(rewrite.original(nr)) == rewrite.SITE_LEN
        assert code[5] == 0xCC                      # the old `syscall` is an int3
        assert rewrite.nr_of_rewritten(code) == nr
    assert rewrite.nr_of_rewritten(rewrite.original(39)) is None
    assert rewrite.nr_of_rewritten(b"\x8b\x0c\x25\x01\x00\xcc\xff") is None   # misaligned


# The window is user-readable in every address space; any access to it that is not a
# rewritten site's load is what Linux makes of a user access to a kernel address.
WINDOW_ACCESS = r'''
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static sigjmp_buf env;
static int signo_only;       /* instructions KVM cannot emulate: see docs/kvm.md */
static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    if (signo_only)
        printf("sig %d\n", sig);
    else
        printf("sig %d code %d addr %#lx\n", sig, si->si_code, (unsigned long)si->si_addr);
    siglongjmp(env, 1);
}
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    volatile unsigned long *p8 = (unsigned long *)0xffffffffffcc009cUL;   /* getpid's slot */
    volatile unsigned int *p4 = (unsigned int *)0xffffffffffcc009cUL;
    if (!sigsetjmp(env, 1)) printf("8-byte load %lx\n", *p8);
    if (!sigsetjmp(env, 1)) {
        unsigned v;
        __asm__ volatile("mov (%1), %0" : "=r"(v) : "r"(p4));
        printf("4-byte load through a register %x\n", v);
    }
    if (!sigsetjmp(env, 1)) { *p4 = 1; printf("store done\n"); }
    if (!sigsetjmp(env, 1)) printf("byte %x\n", *(volatile unsigned char *)0xffffffffffc00000UL);
    if (!sigsetjmp(env, 1)) ((void (*)(void))0xffffffffffcc0000UL)();
    /* Accesses KVM splits into several MMIO pieces (16 bytes, rep movs). */
    if (!sigsetjmp(env, 1)) {
        __asm__ volatile("movdqu 0xffffffffffcc0000, %%xmm0" ::: "xmm0");
        printf("16-byte load done\n");
    }
    if (!sigsetjmp(env, 1)) {
        char b[64];
        __asm__ volatile("lea %0, %%rdi; mov $0xffffffffffcc0000, %%rsi; mov $32, %%ecx; rep movsb"
                         : "=m"(b) :: "rdi", "rsi", "rcx", "memory");
        printf("rep movsb done\n");
    }
    /* Instructions KVM's emulator cannot do here: a fault all the same. */
    signo_only = 1;
    if (!sigsetjmp(env, 1)) {
        __asm__ volatile("fxrstor 0xffffffffffcc0000" ::: "memory");
        printf("fxrstor done\n");
    }
    if (!sigsetjmp(env, 1)) {
        __asm__ volatile("fldt 0xffffffffffcc0000");
        printf("fldt done\n");
    }
    signo_only = 0;
    printf("pid ok %d\n", getpid() > 0);
    return 0;
}
'''


def test_other_accesses_to_the_window_are_sigsegv_as_on_linux():
    run_both(WINDOW_ACCESS)


def test_no_rewriting_under_strace():
    prog = compile_c(HOT_LOOP)
    box = run_sandbox([prog], "--platform=kvm", "--debug", "--strace", env=REWRITE_ON)
    assert box.returncode == 0, box.stderr[-2000:]
    st = kvm_stats(box.stderr)
    assert st["sites_rewritten"] == 0 and st["window_syscalls"] == 0, st
    assert box.stderr.count(b"getpid(") >= 3000, box.stderr[-2000:]
