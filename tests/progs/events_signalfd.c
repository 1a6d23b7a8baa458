/* signalfd: reading blocked signals as struct signalfd_siginfo. Deterministic output. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pid_t me;

static void show(const char *what, int fd, size_t room) {
    struct signalfd_siginfo si[4];
    memset(si, 0, sizeof si);
    errno = 0;
    long r = read(fd, si, room);
    printf("%s: read=%ld", what, r);
    if (r < 0)
        printf(" errno=%s", strerror(errno));
    for (long i = 0; i < r / (long)sizeof si[0]; i++)
        printf(" [signo=%u code=%d errno=%d pid_is_me=%d uid=%u int=%d ptr=%llu]", si[i].ssi_signo,
               si[i].ssi_code, si[i].ssi_errno, si[i].ssi_pid == (uint32_t)me, si[i].ssi_uid,
               si[i].ssi_int, (unsigned long long)si[i].ssi_ptr);
    printf("\n");
}

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *late_kill(void *arg) {
    nap(30);
    kill(me, (int)(intptr_t)arg);
    return NULL;
}

int main(void) {
    me = getpid();
    sigset_t blocked, usr1, both, pending;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGUSR2);
    sigaddset(&blocked, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigaddset(&usr1, SIGKILL);            /* silently dropped from the mask */
    both = usr1;
    sigaddset(&both, SIGUSR2);
    sigaddset(&both, SIGRTMIN);

    int fd = signalfd(-1, &usr1, SFD_NONBLOCK);
    printf("created: %d\n", fd >= 0);
    show("nothing pending", fd, sizeof(struct signalfd_siginfo));
    kill(me, SIGUSR1);
    kill(me, SIGUSR1);                    /* standard signals coalesce */
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int n = poll(&pf, 1, 0);
    printf("poll: %d %#x\n", n, pf.revents);
    show("kill", fd, 4 * sizeof(struct signalfd_siginfo));
    sigpending(&pending);
    printf("still pending: %d\n", sigismember(&pending, SIGUSR1));

    union sigval v = {.sival_int = 1234};
    sigqueue(me, SIGUSR1, v);
    show("sigqueue", fd, sizeof(struct signalfd_siginfo));

    syscall(SYS_tgkill, me, syscall(SYS_gettid), SIGUSR1);
    show("tgkill", fd, sizeof(struct signalfd_siginfo));

    kill(me, SIGUSR2);
    show("not in mask", fd, sizeof(struct signalfd_siginfo));
    n = signalfd(fd, &both, 0);
    printf("mask update returns fd: %d\n", n == fd);
    for (int i = 0; i < 3; i++)
        sigqueue(me, SIGRTMIN, (union sigval){.sival_int = i});
    show("usr2 and queued rt", fd, 4 * sizeof(struct signalfd_siginfo));
    show("rest of rt", fd, 4 * sizeof(struct signalfd_siginfo));

    /* A blocking read, and an epoll wait, woken by a signal from another thread. */
    int bfd = signalfd(-1, &usr1, SFD_CLOEXEC);
    pthread_t th;
    pthread_create(&th, NULL, late_kill, (void *)(intptr_t)SIGUSR1);
    show("blocking read", bfd, sizeof(struct signalfd_siginfo));
    pthread_join(th, NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 5}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, bfd, &ev);
    n = epoll_wait(ep, &out, 1, 0);
    printf("epoll idle: %d\n", n);
    pthread_create(&th, NULL, late_kill, (void *)(intptr_t)SIGUSR1);
    n = epoll_wait(ep, &out, 1, -1);
    printf("epoll woken: %d %#x %llu\n", n, out.events, (unsigned long long)out.data.u64);
    pthread_join(th, NULL);
    show("after epoll", bfd, sizeof(struct signalfd_siginfo));

    /* Errors. */
    errno = 0;
    n = syscall(SYS_signalfd4, -1, &usr1, 4, 0);
    printf("bad sizemask: %d %s\n", n, strerror(errno));
    errno = 0;
    n = signalfd(-1, &usr1, 0x1);
    printf("bad flags: %d %s\n", n, strerror(errno));
    int efd = eventfd(0, 0);
    errno = 0;
    n = signalfd(efd, &usr1, 0);
    printf("not a signalfd: %d %s\n", n, strerror(errno));
    errno = 0;
    n = signalfd(999, &usr1, 0);
    printf("bad fd: %d %s\n", n, strerror(errno));
    errno = 0;
    n = syscall(SYS_signalfd4, -1, NULL, 8, 0);
    printf("efault: %d %s\n", n, strerror(errno));
    show("short buffer", fd, 64);
    errno = 0;
    long r = write(fd, &n, sizeof n);
    printf("write: %ld %s\n", r, strerror(errno));
    return 0;
}
