/* epoll on pipes and eventfds: level/edge/one-shot, nesting, errors, waking.
   Every line is deterministic. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int ep;

static void show(const char *what, int epfd, int maxevents, int timeout) {
    struct epoll_event evs[8];
    memset(evs, 0, sizeof evs);
    errno = 0;
    int n = epoll_wait(epfd, evs, maxevents, timeout);
    printf("%s: n=%d", what, n);
    if (n < 0)
        printf(" errno=%s", strerror(errno));
    for (int i = 0; i < n; i++)
        printf(" [%#x data=%llu]", evs[i].events, (unsigned long long)evs[i].data.u64);
    printf("\n");
}

static void ctl(const char *what, int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    errno = 0;
    int r = epoll_ctl(epfd, op, fd, &ev);
    printf("%s: %d %s\n", what, r, r ? strerror(errno) : "");
}

static void put(int fd, const char *s) {
    if (write(fd, s, strlen(s)) < 0)
        perror("write");
}

static void take(int fd, int n) {
    char buf[256];
    if (read(fd, buf, n) != n)
        perror("read");
}

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int late_fd;
static void *late_writer(void *arg) {
    nap(30);
    put(late_fd, "x");
    return NULL;
}

static pthread_t main_thread;
static void *late_signal(void *arg) {
    nap(30);
    pthread_kill(main_thread, SIGUSR1);
    return NULL;
}
static volatile int handled;
static void on_usr1(int sig) { handled++; }

int main(int argc, char **argv) {
    int p[2], q[2], r[2];
    pipe(p);
    pipe(q);
    pipe(r);
    ep = epoll_create1(0);

    /* Level-triggered: reported while data is there. */
    ctl("add p LT", ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 100);
    show("LT empty", ep, 8, 0);
    put(p[1], "ab");
    show("LT data", ep, 8, 0);
    show("LT again", ep, 8, 0);
    take(p[0], 2);
    show("LT drained", ep, 8, 0);

    /* Edge-triggered: reported once per new write. */
    ctl("add q ET", ep, EPOLL_CTL_ADD, q[0], EPOLLIN | EPOLLET, 200);
    put(q[1], "a");
    show("ET first", ep, 8, 0);
    show("ET no new data", ep, 8, 0);
    put(q[1], "b");
    show("ET second write", ep, 8, 0);
    take(q[0], 2);
    ctl("del q", ep, EPOLL_CTL_DEL, q[0], 0, 0);

    /* One-shot: disarmed after one report until MOD. */
    ctl("add r ONESHOT", ep, EPOLL_CTL_ADD, r[0], EPOLLIN | EPOLLONESHOT, 300);
    put(r[1], "a");
    show("ONESHOT first", ep, 8, 0);
    put(r[1], "b");
    show("ONESHOT disarmed", ep, 8, 0);
    ctl("mod r rearm", ep, EPOLL_CTL_MOD, r[0], EPOLLIN | EPOLLONESHOT, 301);
    show("ONESHOT rearmed", ep, 8, 0);
    take(r[0], 2);
    ctl("del r", ep, EPOLL_CTL_DEL, r[0], 0, 0);

    /* maxevents=1 round-robins over level-triggered ready files. */
    ctl("add q LT", ep, EPOLL_CTL_ADD, q[0], EPOLLIN, 200);
    ctl("add r LT", ep, EPOLL_CTL_ADD, r[0], EPOLLIN, 300);
    put(p[1], "1");
    put(q[1], "2");
    put(r[1], "3");
    for (int i = 0; i < 4; i++)
        show("round robin", ep, 1, 0);
    show("all three", ep, 8, 0);
    take(p[0], 1);
    take(q[0], 1);
    take(r[0], 1);

    /* Write ends: EPOLLOUT, then EPOLLERR once the reader is gone; HUP on the read end. */
    int w[2];
    pipe(w);
    ctl("add w[1] OUT", ep, EPOLL_CTL_ADD, w[1], EPOLLOUT, 400);
    ctl("add w[0] IN", ep, EPOLL_CTL_ADD, w[0], EPOLLIN | EPOLLRDHUP, 401);
    show("writable", ep, 8, 0);
    fcntl(w[1], F_SETFL, O_NONBLOCK);
    char big[4096];
    memset(big, 'z', sizeof big);
    while (write(w[1], big, sizeof big) > 0)
        ;
    show("full pipe", ep, 8, 0);
    int w1 = w[1];
    close(w[0]);
    show("reader closed", ep, 8, 0);
    ctl("del w[1]", ep, EPOLL_CTL_DEL, w1, 0, 0);
    close(w1);
    pipe(w);
    ctl("add w[0] again", ep, EPOLL_CTL_ADD, w[0], EPOLLIN, 402);
    put(w[1], "h");
    close(w[1]);
    show("writer closed", ep, 8, 0);
    ctl("del w[0]", ep, EPOLL_CTL_DEL, w[0], 0, 0);
    close(w[0]);

    /* An interest follows the open file, not the fd number. */
    int d = dup(p[0]);
    close(p[0]);
    put(p[1], "d");
    show("closed fd, file alive via dup", ep, 8, 0);
    errno = 0;
    int rc = epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL);
    printf("del closed fd: %d %s\n", rc, strerror(errno));
    close(d);
    show("file released", ep, 8, 0);
    int np[2];
    pipe(np);
    ctl("add reused fd number", ep, EPOLL_CTL_ADD, np[0], EPOLLIN, 500);
    close(np[0]);
    close(np[1]);

    /* eventfd in epoll, and epoll nested in epoll (and in poll). */
    int efd = eventfd(0, EFD_NONBLOCK);
    int inner = epoll_create(1);
    ctl("inner add eventfd", inner, EPOLL_CTL_ADD, efd, EPOLLIN, 600);
    int outer = epoll_create1(EPOLL_CLOEXEC);
    ctl("outer add inner", outer, EPOLL_CTL_ADD, inner, EPOLLIN, 700);
    show("outer idle", outer, 8, 0);
    struct pollfd pf = {.fd = inner, .events = POLLIN};
    rc = poll(&pf, 1, 0);
    printf("poll inner idle: %d %#x\n", rc, pf.revents);
    uint64_t one = 1;
    write(efd, &one, 8);
    show("outer sees inner", outer, 8, 0);
    rc = poll(&pf, 1, 0);
    printf("poll inner ready: %d %#x\n", rc, pf.revents);
    show("inner", inner, 8, 0);
    read(efd, &one, 8);
    show("outer after drain", outer, 8, 0);
    ctl("loop", inner, EPOLL_CTL_ADD, outer, EPOLLIN, 0);
    ctl("self", outer, EPOLL_CTL_ADD, outer, EPOLLIN, 0);

    /* Errors, in Linux's order of checks. */
    ctl("exists", inner, EPOLL_CTL_ADD, efd, EPOLLIN, 0);
    ctl("mod absent", outer, EPOLL_CTL_MOD, efd, EPOLLIN, 0);
    ctl("del absent", outer, EPOLL_CTL_DEL, efd, 0, 0);
    ctl("bad op", outer, 9, efd, EPOLLIN, 0);
    ctl("not an epoll", efd, EPOLL_CTL_ADD, inner, EPOLLIN, 0);
    ctl("bad fd", outer, EPOLL_CTL_ADD, 999, EPOLLIN, 0);
    ctl("bad epfd", 999, EPOLL_CTL_ADD, efd, EPOLLIN, 0);
    int reg = open(argv[0], O_RDONLY);
    ctl("regular file", outer, EPOLL_CTL_ADD, reg, EPOLLIN, 0);
    ctl("regular file as epfd", reg, EPOLL_CTL_ADD, efd, EPOLLIN, 0);
    close(reg);
    errno = 0;
    rc = epoll_ctl(outer, EPOLL_CTL_ADD, efd, (void *)8);
    printf("efault: %d %s\n", rc, strerror(errno));
    printf("del null: %d\n", epoll_ctl(inner, EPOLL_CTL_DEL, efd, NULL));
    ctl("exclusive add", outer, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, 800);
    ctl("exclusive mod", outer, EPOLL_CTL_MOD, efd, EPOLLIN, 801);
    ctl("exclusive oneshot", inner, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 0);
    int e2 = epoll_create1(0);
    ctl("exclusive epoll", e2, EPOLL_CTL_ADD, inner, EPOLLIN | EPOLLEXCLUSIVE, 0);
    show("maxevents 0", outer, 0, 0);
    show("not an epoll", efd, 1, 0);
    errno = 0;
    rc = epoll_create(0);
    printf("epoll_create(0): %d %s\n", rc, strerror(errno));
    errno = 0;
    rc = epoll_create1(1);
    printf("epoll_create1(bad): %d %s\n", rc, strerror(errno));
    printf("cloexec: %d %d\n", fcntl(outer, F_GETFD), fcntl(inner, F_GETFD));

    /* Blocking: woken by another thread's write; a timeout; a signal. */
    pipe(w);
    late_fd = w[1];
    ctl("add late", e2, EPOLL_CTL_ADD, w[0], EPOLLIN, 900);
    pthread_t th;
    pthread_create(&th, NULL, late_writer, NULL);
    show("woken by writer", e2, 8, -1);
    pthread_join(th, NULL);
    take(w[0], 1);
    show("timeout", e2, 8, 20);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;        /* epoll_wait is never restarted anyway */
    sigaction(SIGUSR1, &sa, NULL);
    main_thread = pthread_self();
    pthread_create(&th, NULL, late_signal, NULL);
    show("signal", e2, 8, -1);
    pthread_join(th, NULL);
    printf("handled=%d\n", handled);

    /* epoll_pwait: SIGUSR1 blocked except during the wait. */
    sigset_t block, none;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &block, NULL);
    pthread_create(&th, NULL, late_signal, NULL);
    struct epoll_event evs[2];
    errno = 0;
    int n = epoll_pwait(e2, evs, 2, -1, &none);
    printf("pwait: %d %s handled=%d\n", n, strerror(errno), handled);
    pthread_join(th, NULL);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("mask restored: %d\n", sigismember(&now, SIGUSR1));
    errno = 0;
    n = syscall(SYS_epoll_pwait, e2, evs, 2, 0, &none, 4);
    printf("pwait bad sigsetsize: %d %s\n", n, strerror(errno));
    struct timespec zero = {0, 0}, bad = {0, 1000000000};
    errno = 0;
    n = syscall(SYS_epoll_pwait2, e2, evs, 2, &zero, NULL, 8);
    printf("pwait2 zero timeout: %d\n", n);
    errno = 0;
    n = syscall(SYS_epoll_pwait2, e2, evs, 2, &bad, NULL, 8);
    printf("pwait2 bad timeout: %d %s\n", n, strerror(errno));
    put(w[1], "y");
    n = syscall(SYS_epoll_pwait2, e2, evs, 2, NULL, NULL, 8);
    printf("pwait2 ready: %d %#x %llu\n", n, evs[0].events, (unsigned long long)evs[0].data.u64);
    return 0;
}
