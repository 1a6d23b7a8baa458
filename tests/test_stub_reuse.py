"""Pooled ptrace stubs carry nothing of their previous process into the next one."""
import subprocess
import sys

from conftest import assert_same, compile_c

CPU_SRC = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double cpu(clockid_t c) {
    struct timespec t; clock_gettime(c, &t); return t.tv_sec + t.tv_nsec / 1e9;
}
int main(void) {
    for (int round = 0; round < 3; round++) {
        pid_t burner = fork();
        if (burner == 0) { while (cpu(CLOCK_THREAD_CPUTIME_ID) < 0.3) ; _exit(0); }
        waitpid(burner, 0, 0);
        pid_t fresh = fork();      /* likely served by the burner's pooled stub and thread */
        if (fresh == 0) {
            printf("fresh process: cpu under 0.1 s: %d %d\n",
                   cpu(CLOCK_PROCESS_CPUTIME_ID) < 0.1, cpu(CLOCK_THREAD_CPUTIME_ID) < 0.1);
            fflush(stdout);
            _exit(0);
        }
        waitpid(fresh, 0, 0);
    }
    return 0;
}
"""


def test_a_reused_stub_thread_starts_with_no_cpu_time():
    assert_same([compile_c(CPU_SRC)])


BATCH_SRC = r"""
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
/* Sandbox only: the ptrace stub's batch page (0x7fffffff1000) lies above the sandbox's
   user space and is readable; after a previous process's batches it must hold nothing. */
int main(int argc, char **argv) {
    if (argc > 1) {
        const unsigned long *b = (const unsigned long *)0x7fffffff1000UL;
        long nonzero = 0;
        for (int i = 0; i < 512; i++) nonzero += b[i] != 0;
        printf("nonzero words in the batch page: %ld\n", nonzero);
        return 0;
    }
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < 40; i++) {
            char *m = mmap((void *)(0x500000000000UL + i * 0x10000UL), 4096,
                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            m[0] = 1;
        }
        pid_t g = fork();
        if (g == 0) _exit(0);
        waitpid(g, 0, 0);
        _exit(0);
    }
    waitpid(c, 0, 0);
    c = fork();
    if (c == 0) { execl("/proc/self/exe", argv[0], "look", (char *)0); _exit(1); }
    waitpid(c, 0, 0);
    return 0;
}
"""


def test_the_batch_page_keeps_no_previous_calls():
    prog = compile_c(BATCH_SRC)
    out = subprocess.run([sys.executable, "-m", "pysentry.sentry.cli", "run", "--platform=ptrace",
                          "--", prog], capture_output=True, timeout=60)
    assert out.stdout == b"nonzero words in the batch page: 0\n", out
