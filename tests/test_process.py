"""Processes, threads, signals and memory: C programs run natively and in pysentry."""
import signal

from conftest import assert_same, compile_c, run_native, run_sandbox


def test_threads_futex_signals_faults_fork():
    assert_same([compile_c("threads_signals")])


def test_memory_syscalls_cow_and_faults():
    assert_same([compile_c("mm")])


def test_exec_argv_envp_and_exit_status():
    prog = compile_c(r'''
#include <stdio.h>
#include <unistd.h>
#include <sys/auxv.h>
extern char **environ;
int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++) if ((*e)[0] == 'Z') printf("env %s\n", *e);
    printf("pagesz %lu uid %lu\n", getauxval(AT_PAGESZ), getauxval(AT_UID));
    return argc;
}''')
    env = {"ZED": "1", "ZOO": "a b", "PATH": "/usr/bin:/bin"}
    assert_same([prog, "one", "two words", ""], env=env)


def test_killed_by_signal_exits_128_plus_n():
    prog = compile_c(r'''
#include <signal.h>
int main(void) { raise(SIGTERM); return 0; }''')
    assert run_native([prog]).returncode == -signal.SIGTERM
    box = run_sandbox([prog])
    assert box.returncode == 128 + signal.SIGTERM, box.stderr


def test_unsupported_syscall_is_enosys_and_reported():
    prog = compile_c(r'''
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    long r = syscall(999);
    printf("r=%ld errno=%d\n", r, errno);
    return 0;
}''')
    assert_same([prog])
    # --strace names it, and --debug reports unsupported calls.
    from conftest import run_sandbox
    box = run_sandbox([prog], "--strace")
    assert b"syscall_999(...) = -1 ENOSYS" in box.stderr, box.stderr[-2000:]


def test_bad_pointer_is_efault_not_a_crash():
    prog = compile_c(r'''
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/syscall.h>
int main(void) {
    long r = syscall(SYS_write, 1, (void *)16, 10);
    printf("write %ld %d\n", r, errno);
    r = syscall(SYS_open, (void *)-4096L, O_RDONLY);
    printf("open %ld %d\n", r, errno);
    r = syscall(SYS_close, 4242);
    printf("close %ld %d\n", r, errno);
    return 0;
}''')
    assert_same([prog])


def test_pid_is_one_and_ppid_zero():
    prog = compile_c(r'''
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
    printf("pid %d ppid %d\n", getpid(), getppid());
    fflush(stdout);
    pid_t c = fork();
    if (!c) { printf("child ppid %d\n", getppid()); return 0; }
    waitpid(c, 0, 0);
    return 0;
}''')
    box = run_sandbox([prog])
    assert box.returncode == 0, box.stderr
    assert box.stdout.splitlines() == [b"pid 1 ppid 0", b"child ppid 1"]


def test_blocked_task_does_not_block_others():
    # The parent blocks reading an empty pipe; the child keeps running and only then writes.
    prog = compile_c(r'''
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
    int p[2]; pipe(p);
    pid_t c = fork();
    if (!c) {
        volatile unsigned long x = 0;
        for (unsigned long i = 0; i < 20000000; i++) x += i;
        for (int i = 0; i < 200; i++) getppid();   /* syscalls while the parent waits */
        write(p[1], "go", 2);
        return 0;
    }
    char buf[8]; int n = read(p[0], buf, sizeof buf);
    printf("read %d %.2s\n", n, buf);
    waitpid(c, 0, 0);
    return 0;
}''')
    assert_same([prog])


def _cpu_has(flag):
    with open("/proc/cpuinfo") as f:
        return any(flag in line.split() for line in f if line.startswith("flags"))


import pytest  # noqa: E402


@pytest.mark.skipif(not _cpu_has("avx"), reason="this CPU has no AVX")
def test_avx_registers_survive_signal_handlers():
    # The handler writes ymm registers; the interrupted loop's ymm values must survive.
    assert_same([compile_c("avx_signal")])


def test_uid_gid_changes_follow_linux_and_a_drop_is_final():
    # After setreuid(1001, -1) the saved uid is 1001: root cannot be regained, and files
    # the host reserves for root (/etc/shadow) stay closed.
    assert_same([compile_c("creds")])


def test_fork_exec_loop_keeps_every_process_memory_its_own():
    """Many fork/exec/exit rounds (stubs and their threads are reused, pages the parent and
    the children store into after fork are copied ahead): each side sees only its own
    stores to the stack, globals and heap, children start from the parent's state at their
    fork, exec'd programs run, and threads in children work."""
    prog = compile_c(r'''
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static int global[2048];
static void *thread(void *p) { ((int *)p)[0] += 1000; return p; }
int main(void) {
    int *heap = malloc(64 * 1024);
    memset(heap, 0, 64 * 1024);
    for (int round = 0; round < 40; round++) {
        volatile char stack[8192];
        memset((char *)stack, round, sizeof stack);
        global[round] = round;
        heap[round * 100] = round;
        pid_t c = fork();
        if (c == 0) {
            int ok = stack[100] == (char)round && global[round] == round &&
                     heap[round * 100] == round && (round == 0 || global[round - 1] == round - 1);
            memset((char *)stack, 0x55, sizeof stack);
            global[round] = -1;
            heap[round * 100] = -1;
            if (round % 3 == 0) {
                char *argv[] = {"/bin/true", NULL}, *envp[] = {NULL};
                execve("/bin/true", argv, envp);
                _exit(100);
            }
            if (round % 3 == 1) {
                pthread_t t;
                int v = round;
                pthread_create(&t, NULL, thread, &v);
                pthread_join(t, NULL);
                ok = ok && v == round + 1000;
            }
            _exit(ok ? 7 : 9);
        }
        stack[200] = 'p';
        global[round] += 1;
        int st;
        if (waitpid(c, &st, 0) != c) return 1;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        printf("round %d child %d parent sees %d %d %d %d\n", round, code, stack[100],
               stack[200], global[round], heap[round * 100]);
    }
    return 0;
}''', static=False)
    assert_same([prog])


def test_exec_runs_the_program_as_rewritten_between_runs():
    """Program text comes from the file's page cache, kept between execs: rewriting the
    file (cp truncates and writes it; cat > as well) must show at the next exec."""
    script = ('p=/tmp/pysentry-exec-rewrite-$$; cp /bin/true $p; $p; echo $?; '
              'cp /bin/false $p; $p; echo $?; cat /bin/true > $p; $p; echo $?; '
              '$p; echo $?; rm -f $p')
    assert_same(["/bin/sh", "-c", script])


def test_vsyscall_page_is_served_by_the_sentry_as_linux_does():
    # Its entries work and agree with the syscalls; misuse is SIGSEGV with Linux's code and
    # address. On ptrace the host would serve these calls itself without the stubs' seccomp
    # filter; getcpu would then give the host's CPU, which test_vsyscall_getcpu_... shows.
    assert_same([compile_c("vsyscall")])


def test_vsyscall_getcpu_is_the_sandbox_answer_not_the_hosts():
    import os
    if len(os.sched_getaffinity(0)) < 2:
        import pytest
        pytest.skip("needs a second CPU to run the sandbox on a CPU other than 0")
    prog = compile_c(r'''
#include <stdio.h>
int main(void) {
    unsigned cpu = 99;
    ((long (*)(unsigned *, unsigned *, void *))0xffffffffff600800UL)(&cpu, 0, 0);
    printf("%u\n", cpu);
    return 0;
}''')
    # The whole sandbox pinned to a host CPU other than 0: the sandbox's getcpu says 0,
    # the host's would not.
    import subprocess
    import conftest
    cpu = sorted(os.sched_getaffinity(0))[-1]
    box = subprocess.run(["taskset", "-c", str(cpu), *conftest.sandbox_cmd([prog])],
                         capture_output=True, timeout=120)
    assert box.returncode == 0, box.stderr
    assert box.stdout == b"0\n"


def test_time_and_futex_error_paths_follow_linux_order():
    assert_same([compile_c("time_futex_errors")])


def test_madvise_mlock_and_vma_merging_follow_linux():
    # Advice validity and holes, FREE/REMOVE on the wrong memory, REMOVE on shared memory,
    # DONTFORK/WIPEONFORK as a fork's child sees them, mlock ranges, and an mprotect split
    # set back being one VMA again (maps lines, mremap of the whole).
    assert_same([compile_c("mm_advice")])


def test_execveat_of_an_fd_and_its_flags_follow_linux():
    import shutil
    import tempfile
    # A host scratch directory outside /tmp (the sandbox's /tmp is its own), as a volume.
    d = tempfile.mkdtemp(prefix="pysentry-execveat-", dir="/var/tmp")
    try:
        assert_same([compile_c("execveat"), d], "--volume", f"{d}:{d}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_int80_is_sigsegv_as_on_a_linux_without_ia32_emulation():
    # The sandbox's Linux has no i386 syscall ABI: `int $0x80` is a general-protection
    # fault (SIGSEGV, SI_KERNEL, at the instruction) and performs nothing. Without this
    # the sentry used to run the x86-64 syscall of that number with the i386 registers.
    # Native Linux here has IA32 emulation, so this is checked against that rule, not run.
    prog = compile_c(r'''
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <ucontext.h>
#include <unistd.h>
extern char int80_at[];
static void on_signal(int s, siginfo_t *si, void *uc) {
    ucontext_t *u = uc;
    printf("signal %d code %d addr %p at the int %d\n", s, si->si_code, si->si_addr,
           (char *)u->uc_mcontext.gregs[REG_RIP] == int80_at);
    fflush(stdout);
    _exit(0);
}
int main(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGILL, &sa, 0);
    static const char msg[] = "i386 write ran\n";
    /* i386 write(1, msg, 15): eax=4, ebx=1, ecx=msg, edx=15 */
    __asm__ volatile("mov $4, %%eax\n mov $1, %%ebx\n mov %0, %%rcx\n mov $15, %%edx\n"
                     ".globl int80_at\nint80_at: int $0x80"
                     :: "r"(msg) : "rax", "rbx", "rcx", "rdx", "memory");
    puts("returned");
    return 0;
}''')
    box = run_sandbox([prog])
    assert box.returncode == 0, box.stderr
    assert box.stdout == b"signal 11 code 128 addr (nil) at the int 1\n"
