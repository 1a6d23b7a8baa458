"""Direct runs on KVM (docs/kvm.md, "Direct runs"): with PYSENTRY_KVM_DIRECT=1 a context
that runs alone is run by the event loop's own thread. The loop must still
keep its timers and serve its other inputs while a guest spins there, and the vCPU-thread
path (PYSENTRY_KVM_DIRECT=0, and whenever two contexts run at once) must give the same
answers."""
import pytest

from conftest import NEEDS_KVM, run_kvm_like_native

pytestmark = NEEDS_KVM

# A guest that never traps while the kernel has a timer due: the run on the loop thread is
# cut at the timer's deadline, so SIGALRM arrives (a loop stuck in KVM_RUN would never
# deliver it, and alarm() is the test's own bound).
SPIN_UNTIL_TIMER = r'''
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>
static volatile sig_atomic_t fired;
static void on_alarm(int s) { (void)s; fired++; }
int main(void) {
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 20000}, {0, 20000}};     /* every 20 ms */
    setitimer(ITIMER_REAL, &it, 0);
    while (fired < 5) ;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, 0);
    printf("five timer signals reached a spinning task\n");
    return 0;
}
'''


def test_timer_signals_reach_a_task_spinning_on_the_loop_thread():
    _, stats = run_kvm_like_native(SPIN_UNTIL_TIMER, {"PYSENTRY_KVM_DIRECT": "1"})
    assert stats["direct_runs"] > 0, stats


# Two processes that hand a token back and forth through pipes, while a third spins: the
# spinning one and the pair run at once (vCPU threads) and alone (direct) in turn; every
# hand-off must arrive and the totals match Linux.
PING_PONG = r'''
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int a[2], b[2];
    pipe(a);
    pipe(b);
    pid_t spinner = fork();
    if (spinner == 0) {
        for (volatile long i = 0; i < 30000000; i++) ;
        _exit(7);
    }
    pid_t peer = fork();
    if (peer == 0) {
        char c;
        for (int i = 0; i < 300; i++) {
            read(a[0], &c, 1);
            c++;
            write(b[1], &c, 1);
        }
        _exit(0);
    }
    char c = 0;
    long sum = 0;
    for (int i = 0; i < 300; i++) {
        write(a[1], &c, 1);
        read(b[0], &c, 1);
        sum += (unsigned char)c;
    }
    int st1, st2;
    waitpid(peer, &st1, 0);
    waitpid(spinner, &st2, 0);
    printf("sum %ld, peer %d, spinner %d\n", sum, WEXITSTATUS(st1), WEXITSTATUS(st2));
    return 0;
}
'''


@pytest.mark.parametrize("direct", ["1", "0"])
def test_pipe_ping_pong_beside_a_spinner_matches_linux(direct):
    _, stats = run_kvm_like_native(PING_PONG, {"PYSENTRY_KVM_DIRECT": direct})
    if direct == "0":
        assert stats["direct_runs"] == 0, stats
    else:
        assert stats["direct_runs"] > 0, stats
