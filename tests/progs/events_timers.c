/* POSIX timers and interval timers: signals, overruns, ids, errors. Deterministic output. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000L

static volatile int alarms;
static void on_alarm(int sig) { alarms++; }

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * MS};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

static struct itimerspec spec(long value_ns, long interval_ns) {
    struct itimerspec s = {{interval_ns / 1000000000L, interval_ns % 1000000000L},
                           {value_ns / 1000000000L, value_ns % 1000000000L}};
    return s;
}

int main(void) {
    /* timer_create with a sigevent; the signal is read with sigwaitinfo. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN;
    sev.sigev_value.sival_int = 77;
    timer_t a, b, c;
    printf("create a: %d\n", timer_create(CLOCK_MONOTONIC, &sev, &a));
    sev.sigev_signo = SIGUSR1;
    sev.sigev_value.sival_int = 88;
    printf("create b: %d\n", timer_create(CLOCK_REALTIME, &sev, &b));
    printf("ids: %ld %ld\n", (long)(intptr_t)a, (long)(intptr_t)b);

    struct itimerspec s = spec(10 * MS, 0), cur;
    timer_settime(a, 0, &s, NULL);
    timer_gettime(a, &cur);
    printf("armed: %d\n", cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 10 * MS);
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    printf("sig=%d code=%d value=%d timerid_matches=%d overrun=%d\n", sig - SIGRTMIN, si.si_code,
           si.si_value.sival_int, si.si_timerid == (int)(intptr_t)a, si.si_overrun);
    timer_gettime(a, &cur);
    printf("after: %ld %ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);

    /* A periodic timer whose signal stays pending folds expirations into one signal. */
    s = spec(5 * MS, 5 * MS);
    timer_settime(b, 0, &s, NULL);
    nap(60);
    sig = sigwaitinfo(&set, &si);
    printf("periodic: sig=%d value=%d overrun>=5: %d\n", sig, si.si_value.sival_int,
           si.si_overrun >= 5);
    printf("getoverrun matches: %d\n", timer_getoverrun(b) == si.si_overrun);
    s = spec(0, 0);
    struct itimerspec old;
    timer_settime(b, 0, &s, &old);
    printf("old interval=%ld\n", old.it_interval.tv_nsec);
    s = spec(0, 5 * MS);
    timer_settime(b, 0, &s, NULL);
    timer_gettime(b, &cur);
    printf("disarmed with interval: %ld %ld\n", cur.it_interval.tv_nsec, cur.it_value.tv_nsec);
    sigset_t pend;
    nap(10);
    sigpending(&pend);
    /* a one-shot absolute timer already in the past fires at once */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    s = spec(0, 0);
    s.it_value = now;
    timer_settime(a, TIMER_ABSTIME, &s, NULL);
    sig = sigwaitinfo(&set, &si);
    printf("absolute past: sig=%d value=%d\n", sig - SIGRTMIN, si.si_value.sival_int);

    printf("delete a: %d\n", timer_delete(a));
    errno = 0;
    int r = timer_delete(a);
    printf("delete again: %d %s\n", r, strerror(errno));
    errno = 0;
    r = timer_gettime(a, &cur);
    printf("gettime deleted: %d %s\n", r, strerror(errno));
    printf("create c (SIGALRM default): %d\n", timer_create(CLOCK_MONOTONIC, NULL, &c));
    printf("c id after b: %d\n", (int)(intptr_t)c > (int)(intptr_t)b);

    /* SIGEV_NONE: runs, never signals. */
    timer_t n;
    sev.sigev_notify = SIGEV_NONE;
    timer_create(CLOCK_MONOTONIC, &sev, &n);
    s = spec(1 * MS, 0);
    timer_settime(n, 0, &s, NULL);
    nap(5);
    timer_gettime(n, &cur);
    sigpending(&pend);
    printf("SIGEV_NONE: expired=%d pending=%d\n", cur.it_value.tv_nsec == 0,
           sigismember(&pend, SIGUSR1));

    /* Errors. */
    errno = 0;
    r = timer_create(12345, NULL, &n);
    printf("bad clock: %d %s\n", r, strerror(errno));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = 0;
    errno = 0;
    r = timer_create(CLOCK_MONOTONIC, &sev, &n);
    printf("bad signo: %d %s\n", r, strerror(errno));
    sev.sigev_notify = 99;
    errno = 0;
    r = timer_create(CLOCK_MONOTONIC, &sev, &n);
    printf("bad notify: %d %s\n", r, strerror(errno));
    s = spec(MS, 0);
    s.it_value.tv_nsec = -1;
    errno = 0;
    r = timer_settime(c, 0, &s, NULL);
    printf("bad spec: %d %s\n", r, strerror(errno));
    errno = 0;
    r = syscall(SYS_timer_settime, (long)(intptr_t)c, 0, NULL, NULL);
    printf("null spec: %d %s\n", r, strerror(errno));

    /* setitimer(ITIMER_REAL) with a SIGALRM handler; getitimer; alarm interplay. */
    signal(SIGALRM, on_alarm);
    struct itimerval iv = {{0, 10000}, {0, 10000}}, ov;
    printf("setitimer: %d\n", setitimer(ITIMER_REAL, &iv, NULL));
    while (alarms < 3)
        pause();
    printf("alarms>=3: %d\n", alarms >= 3);
    getitimer(ITIMER_REAL, &ov);
    printf("getitimer interval=%ld value<=10ms: %d\n", ov.it_interval.tv_usec,
           ov.it_value.tv_sec == 0 && ov.it_value.tv_usec <= 10000);
    memset(&iv, 0, sizeof iv);
    setitimer(ITIMER_REAL, &iv, &ov);
    printf("old interval=%ld\n", ov.it_interval.tv_usec);
    getitimer(ITIMER_REAL, &ov);
    printf("disarmed: %ld %ld %ld %ld\n", (long)ov.it_interval.tv_sec, ov.it_interval.tv_usec,
           (long)ov.it_value.tv_sec, ov.it_value.tv_usec);
    iv.it_value.tv_sec = 100;
    iv.it_interval.tv_sec = 0;
    setitimer(ITIMER_REAL, &iv, NULL);
    printf("alarm sees itimer: %u\n", alarm(0));
    alarm(50);
    getitimer(ITIMER_REAL, &ov);
    printf("itimer sees alarm: %ld\n", (long)ov.it_value.tv_sec + (ov.it_value.tv_usec > 0));
    memset(&iv, 0, sizeof iv);
    setitimer(ITIMER_REAL, &iv, &ov);
    printf("setitimer cancels alarm: old=%ld now=%u\n",
           (long)ov.it_value.tv_sec + (ov.it_value.tv_usec > 0), alarm(0));
    iv.it_value.tv_usec = 1000000;
    errno = 0;
    r = setitimer(ITIMER_REAL, &iv, NULL);
    printf("bad usec: %d %s\n", r, strerror(errno));
    errno = 0;
    r = getitimer(7, &ov);
    printf("bad which: %d %s\n", r, strerror(errno));
    return 0;
}
