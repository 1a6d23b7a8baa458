"""KVM-specific paths: faults to signals, FPU/vector state per task, vCPU threads, page
tables and copy-on-write, checked against native Linux where Linux is the oracle."""
import subprocess


from conftest import NEEDS_KVM, memory_file_bytes, compile_c, run_native, run_sandbox, sandbox_cmd

pytestmark = NEEDS_KVM


def same_on_kvm(src, *args):
    prog = compile_c(src)
    nat = run_native([prog, *args])
    box = run_sandbox([prog, *args], "--platform=kvm")
    assert box.stdout == nat.stdout, (nat.stdout, box.stdout, box.stderr[-2000:])
    assert box.returncode == nat.returncode, (nat.returncode, box.returncode, box.stderr[-2000:])
    return box


FAULTS = r'''
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
static sigjmp_buf jb;
static volatile uintptr_t want_addr;
static void h(int sig, siginfo_t *si, void *uc_) {
    ucontext_t *uc = uc_;
    uintptr_t rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    printf("sig=%d code=%d addr_is_expected=%d addr_is_rip=%d addr_zero=%d\n", sig, si->si_code,
           (uintptr_t)si->si_addr == want_addr, (uintptr_t)si->si_addr == rip, si->si_addr == 0);
    siglongjmp(jb, 1);
}
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
    for (int i = 0; i < 5; i++) sigaction(sigs[i], &sa, 0);
    char *p = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(p + 4096, 4096, PROT_NONE);                  /* a guard page */
    p[0] = 1;
    want_addr = (uintptr_t)(p + 4096 + 123);
    if (!sigsetjmp(jb, 1)) { *(volatile char *)(p + 4096 + 123) = 1; puts("no fault"); }
    mprotect(p, 4096, PROT_READ);                          /* narrower: write must fault */
    want_addr = (uintptr_t)p + 8;
    if (!sigsetjmp(jb, 1)) { *(volatile char *)(p + 8) = 2; puts("no fault"); }
    munmap(p, 3 * 4096);                                   /* gone: read must fault */
    want_addr = (uintptr_t)p + 16;
    if (!sigsetjmp(jb, 1)) { (void)*(volatile char *)(p + 16); puts("no fault"); }
    want_addr = 0;
    volatile int zero = 0;
    if (!sigsetjmp(jb, 1)) { printf("%d\n", 7 / zero); }                 /* #DE */
    if (!sigsetjmp(jb, 1)) { __asm__ volatile("ud2"); }                  /* #UD */
    if (!sigsetjmp(jb, 1)) { __asm__ volatile("hlt"); }                  /* #GP */
    if (!sigsetjmp(jb, 1)) { __asm__ volatile("int3"); puts("after int3"); }
    puts("done");
    return 0;
}
'''


def test_faults_become_the_signals_linux_sends():
    prog = compile_c(FAULTS)
    nat = run_native([prog]).stdout.decode().splitlines()
    box = run_sandbox([prog], "--platform=kvm")
    got = box.stdout.decode().splitlines()
    # The guard page is SEGV_ACCERR (a VMA is there, without access) at the exact address.
    assert nat[0].startswith("sig=11 code=2 addr_is_expected=1")
    assert got == nat, (got, box.stderr[-2000:])
    assert box.returncode == 0


def test_fp_and_vector_registers_survive_signals_and_switches():
    # Each thread keeps its own pattern in all 16 ymm registers across syscalls (which
    # stop the vCPU), signal handlers that clobber them, and the other thread's runs.
    src = r'''
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
__attribute__((target("avx"))) static void clobber(int s) {
    __asm__ volatile("vpcmpeqd %%ymm0,%%ymm0,%%ymm0; vmovdqa %%ymm0,%%ymm3;"
                     "vmovdqa %%ymm0,%%ymm7; vmovdqa %%ymm0,%%ymm15" ::: "xmm0", "xmm3", "xmm7", "xmm15");
}
/* One asm block: the registers are loaded, a syscall (getpid, or tgkill of ourselves with
 * SIGUSR1, whose handler clobbers them) traps to the sentry, and they are read back. */
__attribute__((target("avx"))) static void *run(void *arg) {
    long seed = (long)arg; long bad = 0;
    long pid = getpid(), tid = syscall(SYS_gettid);
    double in[4], o3[4], o7[4], o15[4];
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 4; i++) in[i] = seed * 1000.0 + round + i * 0.25;
        long nr = round % 20 == 0 ? SYS_tgkill : SYS_getpid;
        __asm__ volatile(
            "vmovupd %[in], %%ymm3\n vmovupd %[in], %%ymm7\n vmovupd %[in], %%ymm15\n"
            "syscall\n"
            "vmovupd %%ymm3, %[o3]\n vmovupd %%ymm7, %[o7]\n vmovupd %%ymm15, %[o15]\n"
            : [o3] "=m"(o3), [o7] "=m"(o7), [o15] "=m"(o15), "+a"(nr)
            : [in] "m"(in), "D"(pid), "S"(tid), "d"((long)SIGUSR1)
            : "rcx", "r11", "memory", "xmm3", "xmm7", "xmm15");
        bad += memcmp(in, o3, 32) != 0;
        bad += memcmp(in, o7, 32) != 0;
        bad += memcmp(in, o15, 32) != 0;
    }
    return (void *)bad;
}
int main(void) {
    signal(SIGUSR1, clobber);
    pthread_t t[2]; void *r[2];
    for (long i = 0; i < 2; i++) pthread_create(&t[i], 0, run, (void *)(i + 1));
    for (int i = 0; i < 2; i++) pthread_join(t[i], &r[i]);
    printf("bad %ld %ld\n", (long)r[0], (long)r[1]);
    return 0;
}'''
    box = same_on_kvm(src)
    assert box.stdout == b"bad 0 0\n"


def test_two_busy_threads_both_make_progress():
    src = r'''
#include <pthread.h>
#include <stdio.h>
#include <time.h>
static volatile long count[2]; static volatile int stop;
static void *spin(void *a) { long i = (long)a; while (!stop) count[i]++; return 0; }
int main(void) {
    pthread_t t[2];
    for (long i = 0; i < 2; i++) pthread_create(&t[i], 0, spin, (void *)i);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, 0);                      /* the main thread must get to run, too */
    long a = count[0], b = count[1];
    nanosleep(&ts, 0);
    printf("progress %d %d\n", count[0] > a, count[1] > b);
    stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
    return 0;
}'''
    box = same_on_kvm(src)
    assert box.stdout == b"progress 1 1\n"


def test_unmap_reaches_a_thread_running_on_another_vcpu():
    # Thread B keeps reading a page; thread A unmaps it. B must fault (the stale guest
    # translation of another vCPU is gone), not read freed memory.
    src = r'''
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
static volatile char *page; static volatile int started; static sigjmp_buf jb;
static void h(int s) { siglongjmp(jb, 1); }
static void *reader(void *a) {
    signal(SIGSEGV, h);
    if (sigsetjmp(jb, 1)) { puts("reader faulted"); return 0; }
    started = 1;
    for (;;) (void)page[0];
}
int main(void) {
    page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page[0] = 1;
    pthread_t t; pthread_create(&t, 0, reader, 0);
    while (!started) usleep(1000);
    usleep(20000);
    munmap((void *)page, 4096);
    pthread_join(t, 0);
    return 0;
}'''
    box = same_on_kvm(src)
    assert box.stdout == b"reader faulted\n"


def test_fork_of_a_64mib_heap_shares_pages_until_written():
    src = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#define SIZE (64 << 20)
static void step(const char *what) { printf("%s\n", what); fflush(stdout); getchar(); }
int main(void) {
    char *heap = malloc(SIZE);
    for (long i = 0; i < SIZE; i += 4096) heap[i] = (char)(i >> 12);
    step("touched");
    pid_t pid = fork();
    if (pid == 0) {
        long sum = 0;
        for (long i = 0; i < SIZE; i += 4096) sum += heap[i] == (char)(i >> 12);
        printf("child read %ld\n", sum); fflush(stdout);
        step("read");
        for (long i = 0; i < SIZE; i += 4096) heap[i] = 0x55;
        step("written");
        _exit(0);
    }
    int st; waitpid(pid, &st, 0);
    long ok = 0;
    for (long i = 0; i < SIZE; i += 4096) ok += heap[i] == (char)(i >> 12);
    printf("parent intact %ld\n", ok);
    return 0;
}'''
    prog = compile_c(src)
    p = subprocess.Popen(sandbox_cmd([prog], "--platform=kvm"), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"touched\n"
        before = memory_file_bytes(p.pid)
        p.stdin.write(b"\n"); p.stdin.flush()
        assert p.stdout.readline() == b"child read 16384\n"
        assert p.stdout.readline() == b"read\n"
        after_read = memory_file_bytes(p.pid)
        p.stdin.write(b"\n"); p.stdin.flush()
        assert p.stdout.readline() == b"written\n"
        after_write = memory_file_bytes(p.pid)
        p.stdin.write(b"\n"); p.stdin.flush()
        out, err = p.communicate(timeout=120)
        assert out == b"parent intact 16384\n", err[-2000:]
        # Reading after fork copies nothing; writing copies every page written.
        assert after_read - before < 4 << 20, (before, after_read)
        assert after_write - after_read >= 60 << 20, (after_read, after_write)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
