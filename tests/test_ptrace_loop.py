"""The ptrace platform's event collection as the kernel loop drives it.

poll_events() hands over at most one stop per call and spin_for_event() looks again before
every sleep (draining the SIGCHLD signalfd only then): these programs make stops arrive
while the loop is busy with another task, while it sleeps in epoll, and from many threads
at once, and compare everything with native Linux.
"""
import signal
import textwrap

import pytest

from conftest import assert_same, compile_c


# Threads and processes making syscalls at the same time, blocking on each other through
# pipes (the loop sleeps in epoll, woken by a stop) and sleeping on timers.
BUSY = textwrap.dedent(r"""
    #include <pthread.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/wait.h>
    #include <time.h>
    #include <unistd.h>

    static long counts[4];

    static void *spin(void *arg) {
        long i = (long)arg;
        for (int k = 0; k < 3000; k++) { getppid(); counts[i]++; }
        return NULL;
    }

    int main(void) {
        pthread_t th[4];
        for (long i = 0; i < 4; i++) pthread_create(&th[i], NULL, spin, (void *)i);
        int p[2], q[2];
        if (pipe(p) || pipe(q)) return 2;
        pid_t child = fork();
        if (child == 0) {
            char c;
            for (int k = 0; k < 200; k++) {
                if (read(p[0], &c, 1) != 1) _exit(3);
                if (k % 50 == 0) { struct timespec ts = {0, 2000000}; nanosleep(&ts, 0); }
                if (write(q[1], &c, 1) != 1) _exit(4);
            }
            _exit(7);
        }
        for (int k = 0; k < 200; k++) {
            char c = (char)k, back;
            if (write(p[1], &c, 1) != 1 || read(q[0], &back, 1) != 1 || back != c) return 5;
        }
        int st;
        if (waitpid(child, &st, 0) != child) return 6;
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        printf("child %d, counts %ld %ld %ld %ld\n", WEXITSTATUS(st), counts[0], counts[1],
               counts[2], counts[3]);
        return 0;
    }
""")

# A restartable read interrupted by a handler (SA_RESTART) and one that is not
# (EINTR), with the result codes the slow path of return_to_user turns into either.
RESTART = textwrap.dedent(r"""
    #include <errno.h>
    #include <signal.h>
    #include <stdio.h>
    #include <string.h>
    #include <sys/time.h>
    #include <unistd.h>

    static volatile int hits;
    static void on_alarm(int sig) { (void)sig; hits++; }

    static void attempt(int flags) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sa.sa_flags = flags;
        sigaction(SIGALRM, &sa, 0);
        int p[2];
        pipe(p);
        struct itimerval it = {{0, 0}, {0, 20000}};
        setitimer(ITIMER_REAL, &it, 0);
        if (flags & SA_RESTART) {
            /* Restarted after the handler: a second alarm's handler writes nothing, so a
             * writer is needed: the alarm handler runs, the read restarts, and the child
             * writes after it. */
            if (fork() == 0) { usleep(200000); write(p[1], "x", 1); _exit(0); }
        }
        char c;
        ssize_t r = read(p[0], &c, 1);
        printf("flags %#x: read %zd errno %s hits %d\n", flags, r,
               r < 0 ? strerror(errno) : "-", hits);
        close(p[0]);
        close(p[1]);
    }

    int main(void) {
        attempt(0);
        attempt(SA_RESTART);
        return 0;
    }
""")


@pytest.mark.parametrize("src", [BUSY, RESTART], ids=["busy", "restart"])
def test_loop_events_match_native(src):
    assert_same([compile_c(src, extra=("-pthread",))])


def test_sigchld_mask_restored_after_shutdown():
    """The platform blocks SIGCHLD (read through a signalfd) while it lives; once the
    last one shuts down, host programs started by this process must not inherit it."""
    from pysentry.platform.ptrace.ptrace import PtracePlatform
    from pysentry.sentry.mm.memfile import MemoryFile
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert signal.SIGCHLD not in before, "precondition: the test process leaves SIGCHLD open"
    mf = MemoryFile(1 << 24)
    first, second = PtracePlatform(mf), PtracePlatform(mf)
    try:
        assert signal.SIGCHLD in signal.pthread_sigmask(signal.SIG_BLOCK, set())
        first.shutdown()
        # One platform is still alive: its signalfd still needs SIGCHLD blocked.
        assert signal.SIGCHLD in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        first.shutdown()         # a second shutdown changes nothing
        second.shutdown()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
