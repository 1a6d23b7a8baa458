"""Adaptive direct runs on KVM (docs/kvm.md, "Direct runs"), the default: a context that runs
alone is run on the event loop's thread when its vCPU thread has fallen asleep (the kernel
took longer than the thread's busy-wait), and goes back to its thread once the kernel answers
quickly again. Whichever path each run takes, the program must see what it sees on Linux,
also when threads and processes appear and leave while one context runs on the loop
thread."""
import os

import pytest

from conftest import NEEDS_KVM, kvm_stats, run_kvm_like_native, run_native, run_sandbox

pytestmark = NEEDS_KVM

# Sleeps longer than any busy-wait (the vCPU thread gives up after 100 µs of its own clock,
# so after each sleep it is asleep and the next run goes on the loop thread), then a run of
# quick syscalls the kernel serves (umask), then threads that hand a counter around with
# futex-based mutexes and condition variables while the main thread keeps sleeping: a
# context prepared for a direct run, threads on their vCPU threads, and joins in between.
SLEEPS_THEN_THREADS = r'''
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn, count;
enum { THREADS = 3, ROUNDS = 200 };
static void *worker(void *arg) {
    int me = (int)(long)arg;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_mutex_lock(&mu);
        while (turn != me) pthread_cond_wait(&cv, &mu);
        count++;
        turn = (turn + 1) % THREADS;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}
int main(void) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    long masks = 0;
    umask(022);
    for (int i = 0; i < 5; i++) {
        nanosleep(&pause, NULL);
        for (int j = 0; j < 400; j++) masks += umask(022);
    }
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 3; i++) nanosleep(&pause, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    nanosleep(&pause, NULL);
    printf("masks %ld count %d\n", masks, count);
    return 0;
}
'''


def test_sleeps_quick_syscalls_and_threads_match_linux():
    _, stats = run_kvm_like_native(SLEEPS_THEN_THREADS)
    assert stats["direct_runs"] > 0, stats


def test_direct_runs_can_be_turned_off():
    _, stats = run_kvm_like_native(SLEEPS_THEN_THREADS, {"PYSENTRY_KVM_DIRECT": "0"})
    assert stats["direct_runs"] == 0 and stats["thread_probes"] == 0, stats


# A parent that forks children which exec and exit while it waits, and children that run
# beside it: one of them at a time may run on the loop thread, the others on vCPU threads,
# and the exit of each must wake its waiter (a stop seen by a loop thread that is inside
# another context's run).
FORK_EXEC_WAIT = r'''
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1) return atoi(argv[1]);
    int total = 0;
    for (int i = 0; i < 6; i++) {
        pid_t a = fork();
        if (a == 0) {
            char n[8];
            snprintf(n, sizeof n, "%d", i);
            execl(argv[0], argv[0], n, (char *)NULL);
            _exit(99);
        }
        pid_t b = fork();
        if (b == 0) {
            for (volatile long k = 0; k < 2000000; k++) ;
            _exit(i + 10);
        }
        int st;
        waitpid(a, &st, 0);
        total += WEXITSTATUS(st);
        waitpid(b, &st, 0);
        total += WEXITSTATUS(st);
    }
    printf("total %d\n", total);
    return 0;
}
'''


@pytest.mark.parametrize("direct", ["auto", "1"])
def test_fork_exec_wait_beside_a_spinner_matches_linux(direct):
    env = {} if direct == "auto" else {"PYSENTRY_KVM_DIRECT": direct}
    _, stats = run_kvm_like_native(FORK_EXEC_WAIT, env)
    assert stats["direct_runs"] > 0, stats


# CPython's test_main_thread_after_fork, repeated: the parent polls waitpid(WNOHANG) between
# growing sleeps while its forked child runs, so the two contexts take turns on the loop
# thread and on their vCPU threads. This host (PVM) then now and then reports a page fault
# at the stub's iretq for an entry of such a vCPU; the platform enters again (docs/kvm.md,
# "Direct runs"), where it used to end the child with SIGKILL ("stopped for good").
FORK_AND_POLL = r'''
import os, sys, threading
from test import support
for i in range(40):
    pid = os.fork()
    if pid == 0:
        main = threading.main_thread()
        ok = main.ident == threading.current_thread().ident == threading.get_ident()
        os._exit(0 if ok else 3)
    support.wait_process(pid, exitcode=0)
print("40 children exited 0")
'''


@pytest.mark.skipif(not os.path.exists("/usr/lib/python3.11/test/support/__init__.py"),
                    reason="CPython's test package (libpython3.11-testsuite) is not installed")
@pytest.mark.parametrize("direct", ["auto", "1"])
def test_python_children_forked_while_the_parent_polls_exit_as_on_linux(direct):
    argv = ["/usr/bin/python3", "-c", FORK_AND_POLL]
    nat = run_native(argv)
    env = {k: v for k, v in os.environ.items() if k != "PYSENTRY_KVM_DIRECT"}
    if direct != "auto":
        env["PYSENTRY_KVM_DIRECT"] = direct
    box = run_sandbox(argv, "--platform=kvm", "--debug", env=env, cwd="/var/tmp")
    assert b"stopped for good" not in box.stderr, box.stderr[-2000:]
    assert (box.returncode, box.stdout) == (nat.returncode, nat.stdout), box.stderr[-2000:]
    assert kvm_stats(box.stderr)["direct_runs"] > 0
