/* timerfd: arming, expiry counting, intervals, absolute times, errors.
   Timing-dependent values are printed only as facts that hold on any machine. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000L
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

static struct itimerspec spec(long value_ns, long interval_ns) {
    struct itimerspec s;
    s.it_value.tv_sec = value_ns / 1000000000L;
    s.it_value.tv_nsec = value_ns % 1000000000L;
    s.it_interval.tv_sec = interval_ns / 1000000000L;
    s.it_interval.tv_nsec = interval_ns % 1000000000L;
    return s;
}

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static long rd(int fd, uint64_t *ticks) {
    *ticks = 0;
    errno = 0;
    return read(fd, ticks, 8);
}

static void settime(const char *what, int fd, int flags, struct itimerspec s) {
    errno = 0;
    int r = timerfd_settime(fd, flags, &s, NULL);
    printf("%s: %d %s\n", what, r, r ? strerror(errno) : "");
}

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * MS};
    nanosleep(&ts, NULL);
}

int main(void) {
    struct itimerspec cur;
    uint64_t ticks;
    long r;
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    timerfd_gettime(fd, &cur);
    printf("unarmed: value=%lld interval=%lld\n", ns(cur.it_value), ns(cur.it_interval));

    /* One-shot: a blocking read returns exactly one expiration. */
    settime("one-shot 20ms", fd, 0, spec(20 * MS, 0));
    timerfd_gettime(fd, &cur);
    printf("armed: 0 < value <= 20ms: %d interval=%lld\n",
           ns(cur.it_value) > 0 && ns(cur.it_value) <= 20 * MS, ns(cur.it_interval));
    r = rd(fd, &ticks);
    printf("one-shot read: %ld ticks=%llu\n", r, (unsigned long long)ticks);
    timerfd_gettime(fd, &cur);
    printf("after expiry: value=%lld\n", ns(cur.it_value));

    /* Periodic: each read returns >= 1; gettime shows the interval exactly. */
    settime("periodic 10ms", fd, 0, spec(10 * MS, 10 * MS));
    for (int i = 0; i < 3; i++) {
        r = rd(fd, &ticks);
        printf("periodic read: %ld ticks>=1: %d\n", r, ticks >= 1);
    }
    timerfd_gettime(fd, &cur);
    printf("periodic gettime: 0 < value <= 10ms: %d interval=%lld\n",
           ns(cur.it_value) > 0 && ns(cur.it_value) <= 10 * MS, ns(cur.it_interval));
    nap(35);
    r = rd(fd, &ticks);
    printf("after 35ms: ticks>=3: %d\n", ticks >= 3);

    /* settime reports the old setting and discards unread expirations. */
    struct itimerspec s = spec(10 * 1000 * MS, 0), old;
    nap(15);
    timerfd_settime(fd, 0, &s, &old);
    printf("old interval=%lld old value <= 10ms: %d\n", ns(old.it_interval),
           ns(old.it_value) <= 10 * MS);
    int nb = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    settime("nonblock 1ms", nb, 0, spec(1 * MS, 0));
    nap(10);
    settime("rearm 10s", nb, 0, spec(10 * 1000 * MS, 0));
    r = rd(nb, &ticks);
    printf("expirations discarded: %ld %s\n", r, strerror(errno));

    /* Disarming keeps the interval visible. */
    settime("disarm with interval", nb, 0, spec(0, 5 * MS));
    timerfd_gettime(nb, &cur);
    printf("disarmed: value=%lld interval=%lld\n", ns(cur.it_value), ns(cur.it_interval));

    /* An absolute time 1.05 s in the past with a 100 ms interval: 11 expirations. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long past = ns(now) - 1050 * MS;
    s = spec(0, 100 * MS);
    s.it_value.tv_sec = past / 1000000000LL;
    s.it_value.tv_nsec = past % 1000000000LL;
    settime("absolute past", nb, TFD_TIMER_ABSTIME, s);
    r = rd(nb, &ticks);
    printf("missed expirations: %ld ticks=%llu\n", r, (unsigned long long)ticks);

    /* CLOCK_REALTIME absolute, CLOCK_BOOTTIME relative. */
    int rt = timerfd_create(CLOCK_REALTIME, 0);
    clock_gettime(CLOCK_REALTIME, &now);
    long long soon = ns(now) + 20 * MS;
    s = spec(0, 0);
    s.it_value.tv_sec = soon / 1000000000LL;
    s.it_value.tv_nsec = soon % 1000000000LL;
    settime("realtime absolute", rt, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, s);
    r = rd(rt, &ticks);
    printf("realtime read: %ld ticks=%llu\n", r, (unsigned long long)ticks);
    int bt = timerfd_create(CLOCK_BOOTTIME, 0);
    settime("boottime 5ms", bt, 0, spec(5 * MS, 0));
    r = rd(bt, &ticks);
    printf("boottime read: %ld ticks=%llu\n", r, (unsigned long long)ticks);

    /* poll and epoll see an expired timer. */
    settime("poll 5ms", bt, 0, spec(5 * MS, 0));
    struct pollfd pf = {.fd = bt, .events = POLLIN};
    int n = poll(&pf, 1, 0);
    printf("poll before: %d\n", n);
    n = poll(&pf, 1, -1);
    printf("poll after: %d %#x\n", n, pf.revents);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, bt, &ev);
    n = epoll_wait(ep, &out, 1, 0);
    printf("epoll expired: %d %#x %llu\n", n, out.events, (unsigned long long)out.data.u64);
    rd(bt, &ticks);
    settime("epoll 5ms", bt, 0, spec(5 * MS, 0));
    n = epoll_wait(ep, &out, 1, -1);
    printf("epoll waits: %d %#x\n", n, out.events);

    /* TFD_IOC_SET_TICKS. */
    uint64_t five = 5, zero = 0;
    errno = 0;
    n = ioctl(nb, TFD_IOC_SET_TICKS, &five);
    printf("set ticks: %d\n", n);
    r = rd(nb, &ticks);
    printf("read set ticks: %ld ticks=%llu\n", r, (unsigned long long)ticks);
    errno = 0;
    n = ioctl(nb, TFD_IOC_SET_TICKS, &zero);
    printf("set zero ticks: %d %s\n", n, strerror(errno));

    /* Errors. */
    errno = 0;
    n = timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0);
    printf("cpu clock: %d %s\n", n, strerror(errno));
    errno = 0;
    n = timerfd_create(CLOCK_MONOTONIC, 0x40);
    printf("bad create flags: %d %s\n", n, strerror(errno));
    settime("bad settime flags", nb, 4, spec(MS, 0));
    s = spec(MS, 0);
    s.it_value.tv_nsec = 1000000000L;
    settime("bad nsec", nb, 0, s);
    s = spec(MS, 0);
    s.it_interval.tv_sec = -1;
    settime("negative interval", nb, 0, s);
    int efd = eventfd(0, 0);
    settime("not a timerfd", efd, 0, spec(MS, 0));
    settime("bad fd", 999, 0, spec(MS, 0));
    errno = 0;
    n = timerfd_gettime(efd, &cur);
    printf("gettime not a timerfd: %d %s\n", n, strerror(errno));
    errno = 0;
    n = timerfd_settime(nb, 0, NULL, NULL);
    printf("settime efault: %d %s\n", n, strerror(errno));
    settime("arm", nb, 0, spec(MS, 0));
    nap(5);
    errno = 0;
    r = read(nb, &ticks, 4);
    printf("short read: %ld %s\n", r, strerror(errno));
    errno = 0;
    r = write(nb, &ticks, 8);
    printf("write: %ld %s\n", r, strerror(errno));
    printf("lseek: %ld\n", (long)lseek(nb, 0, SEEK_CUR));
    return 0;
}
