/* Clocks, sleeps, POSIX timers and timerfd. Only orderings and bounds are printed. */
#include "cov.h"
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/timerfd.h>
#include <time.h>

static volatile int fired;
static void on_alarm(int sig) { (void)sig; fired++; }

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
    setup("time");
    struct timespec a, b;
    R(clock_gettime, "MONOTONIC", SC(clock_gettime, CLOCK_MONOTONIC, &a));
    R(clock_gettime, "REALTIME", SC(clock_gettime, CLOCK_REALTIME, &b));
    SAY(clock_gettime, "realtime after 2020", "%s", YES(b.tv_sec > 1577836800));
    R(clock_gettime, "BOOTTIME", SC(clock_gettime, CLOCK_BOOTTIME, &b));
    R(clock_gettime, "PROCESS_CPUTIME_ID", SC(clock_gettime, CLOCK_PROCESS_CPUTIME_ID, &b));
    R(clock_gettime, "THREAD_CPUTIME_ID", SC(clock_gettime, CLOCK_THREAD_CPUTIME_ID, &b));
    R(clock_gettime, "MONOTONIC_COARSE", SC(clock_gettime, CLOCK_MONOTONIC_COARSE, &b));
    R(clock_gettime, "bad clock", SC(clock_gettime, 99, &b));
    R(clock_gettime, "bad pointer", SC(clock_gettime, CLOCK_MONOTONIC, (void *)8));
    R(clock_getres, "MONOTONIC", SC(clock_getres, CLOCK_MONOTONIC, &b));
    SAY(clock_getres, "MONOTONIC resolution", "%ld.%09ld", (long)b.tv_sec, b.tv_nsec);
    R(clock_getres, "NULL result", SC(clock_getres, CLOCK_REALTIME, NULL));
    R(clock_getres, "bad clock", SC(clock_getres, 99, &b));
    struct timeval tv;
    R(gettimeofday, "call", SC(gettimeofday, &tv, NULL));
    SAY(gettimeofday, "after 2020, usec in range", "%s", YES(tv.tv_sec > 1577836800 && tv.tv_usec < 1000000));
    time_t t1 = 0;
    long t0 = SC(time, &t1);
    SAY(time, "result equals stored", "%s", YES(t0 == t1 && t0 > 1577836800));
    SAY(time, "NULL pointer", "%s", YES(SC(time, NULL) > 1577836800));

    /* Setting the clock: error paths only (the native run must not move the host clock). */
    struct timeval badtv = {0, 2000000};
    R(settimeofday, "bad usec", SC(settimeofday, &badtv, NULL));
    R(clock_settime, "MONOTONIC", SC(clock_settime, CLOCK_MONOTONIC, &a));
    R(clock_settime, "bad clock", SC(clock_settime, 99, &a));
    struct timespec badset = {0, 2000000000};
    R(clock_settime, "bad nsec", SC(clock_settime, CLOCK_REALTIME, &badset));
    struct timex tx = {.modes = 0};
    SAY(adjtimex, "query succeeds", "%s", YES(SC(adjtimex, &tx) >= 0));
    R(adjtimex, "bad pointer", SC(adjtimex, (void *)8));

    struct timespec d = {0, 20000000}, rem;
    SC(clock_gettime, CLOCK_MONOTONIC, &a);
    R(nanosleep, "20ms", SC(nanosleep, &d, &rem));
    SC(clock_gettime, CLOCK_MONOTONIC, &b);
    SAY(nanosleep, "slept at least 20ms", "%s", YES(ns(b) - ns(a) >= 20000000));
    struct timespec bad = {0, 1000000000};
    R(nanosleep, "bad nsec", SC(nanosleep, &bad, NULL));
    struct timespec neg = {-1, 0};
    R(nanosleep, "negative", SC(nanosleep, &neg, NULL));

    sigaction(SIGALRM, &(struct sigaction){.sa_handler = on_alarm}, NULL);   /* no SA_RESTART */
    struct itimerval it = {{0, 0}, {0, 30000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec longer = {5, 0};
    R(nanosleep, "interrupted by a signal", SC(nanosleep, &longer, &rem));
    SAY(nanosleep, "remaining under 5s", "%s", YES(rem.tv_sec < 5 && (rem.tv_sec > 0 || rem.tv_nsec > 0)));
    SC(clock_gettime, CLOCK_MONOTONIC, &a);
    R(clock_nanosleep, "relative 20ms", SC(clock_nanosleep, CLOCK_MONOTONIC, 0, &d, NULL));
    SC(clock_gettime, CLOCK_MONOTONIC, &b);
    SAY(clock_nanosleep, "relative slept enough", "%s", YES(ns(b) - ns(a) >= 20000000));
    struct timespec abs = b;
    abs.tv_nsec += 20000000;
    if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
    R(clock_nanosleep, "TIMER_ABSTIME", SC(clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL));
    SC(clock_gettime, CLOCK_MONOTONIC, &a);
    SAY(clock_nanosleep, "absolute deadline passed", "%s", YES(ns(a) >= ns(abs)));
    R(clock_nanosleep, "absolute in the past", SC(clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &(struct timespec){0, 0}, NULL));
    R(clock_nanosleep, "bad clock (returns errno)", SC(clock_nanosleep, 99, 0, &d, NULL));
    R(clock_nanosleep, "THREAD_CPUTIME_ID", SC(clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &d, NULL));

    /* POSIX timers */
    timer_t tid;
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM};
    R(timer_create, "MONOTONIC SIGEV_SIGNAL", SC(timer_create, CLOCK_MONOTONIC, &sev, &tid));
    R(timer_create, "bad clock", SC(timer_create, 99, &sev, &tid));
    struct sigevent badsev = {.sigev_notify = 99};
    timer_t t2;
    R(timer_create, "bad notify", SC(timer_create, CLOCK_MONOTONIC, &badsev, &t2));
    struct itimerspec its = {{0, 0}, {0, 30000000}}, cur;
    R(timer_settime, "30ms one-shot", SC(timer_settime, tid, 0, &its, NULL));
    R(timer_gettime, "armed", SC(timer_gettime, tid, &cur));
    SAY(timer_gettime, "remaining within 30ms", "%s", YES(ns(cur.it_value) > 0 && ns(cur.it_value) <= 30000000));
    fired = 0;
    while (!fired) pause();
    SAY(timer_settime, "fired", "%d", fired);
    R(timer_getoverrun, "none", SC(timer_getoverrun, tid));
    R(timer_gettime, "disarmed after firing", SC(timer_gettime, tid, &cur));
    SAY(timer_gettime, "value", "%lld", ns(cur.it_value));
    struct itimerspec badits = {{0, 0}, {0, 2000000000}};
    R(timer_settime, "bad nsec", SC(timer_settime, tid, 0, &badits, NULL));
    R(timer_settime, "bad timer id", SC(timer_settime, (long)12345, 0, &its, NULL));
    R(timer_delete, "existing", SC(timer_delete, tid));
    R(timer_delete, "again", SC(timer_delete, tid));
    R(timer_getoverrun, "deleted", SC(timer_getoverrun, tid));

    /* timerfd */
    int tfd = OK(timerfd_create, "MONOTONIC", SC(timerfd_create, CLOCK_MONOTONIC, 0));
    R(timerfd_create, "bad clock", SC(timerfd_create, 99, 0));
    R(timerfd_create, "bad flags", SC(timerfd_create, CLOCK_MONOTONIC, 0x1));
    struct itimerspec tits = {{0, 10000000}, {0, 10000000}};
    R(timerfd_settime, "periodic 10ms", SC(timerfd_settime, tfd, 0, &tits, NULL));
    R(timerfd_gettime, "armed", SC(timerfd_gettime, tfd, &cur));
    SAY(timerfd_gettime, "interval", "%lld", ns(cur.it_interval));
    uint64_t ticks = 0;
    R(read, "timerfd blocks until expiry", read(tfd, &ticks, 8));
    SAY(timerfd_settime, "ticks at least 1", "%s", YES(ticks >= 1));
    R(read, "timerfd short buffer", read(tfd, &ticks, 4));
    R(timerfd_settime, "bad flags", SC(timerfd_settime, tfd, 0x10, &tits, NULL));
    R(timerfd_settime, "not a timerfd", SC(timerfd_settime, 1, 0, &tits, NULL));
    R(timerfd_gettime, "not a timerfd", SC(timerfd_gettime, 1, &cur));
    struct itimerspec off = {{0, 0}, {0, 0}};
    R(timerfd_settime, "disarm", SC(timerfd_settime, tfd, 0, &off, NULL));
    int nb = SC(timerfd_create, CLOCK_MONOTONIC, TFD_NONBLOCK);
    R(read, "disarmed nonblocking timerfd", read(nb, &ticks, 8));
    return 0;
}
