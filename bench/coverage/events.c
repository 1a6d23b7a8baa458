/* Readiness and event fds: pipes, poll/select, epoll, eventfd. */
#include "cov.h"
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>

int main(void) {
    setup("events");
    int p[2];
    R(pipe, "create", SC(pipe, p));
    R(pipe, "bad pointer", SC(pipe, (void *)8));
    int q[2];
    R(pipe2, "O_NONBLOCK|O_CLOEXEC", SC(pipe2, q, O_NONBLOCK | O_CLOEXEC));
    R(fcntl, "pipe2 O_NONBLOCK", !!(fcntl(q[0], F_GETFL) & O_NONBLOCK));
    R(pipe2, "bad flags", SC(pipe2, q, 0x1));
    char buf[128];
    R(read, "empty nonblocking pipe", read(q[0], buf, 1));
    R(write, "pipe", write(p[1], "ping", 4));
    R(read, "pipe", read(p[0], buf, sizeof buf));
    close(q[0]);
    signal(SIGPIPE, SIG_IGN);
    R(write, "pipe without readers", write(q[1], "x", 1));

    /* poll / ppoll */
    struct pollfd fds[2] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}};
    R(poll, "one writable", SC(poll, fds, 2, 0));
    SAY(poll, "revents", "%#x %#x", fds[0].revents, fds[1].revents);
    write(p[1], "x", 1);
    R(poll, "both ready", SC(poll, fds, 2, 0));
    SAY(poll, "revents after write", "%#x %#x", fds[0].revents, fds[1].revents);
    struct pollfd badfd = {999, POLLIN, 0};
    R(poll, "bad fd is POLLNVAL", SC(poll, &badfd, 1, 0));
    SAY(poll, "POLLNVAL", "%#x", badfd.revents);
    R(poll, "timeout 10ms", SC(poll, &fds[1], 0, 10));
    R(poll, "too many fds", SC(poll, fds, 1 << 30, 0));
    read(p[0], buf, 1);
    struct timespec ts = {0, 10000000};
    R(ppoll, "timeout", SC(ppoll, fds, 1, &ts, NULL, 8));
    SAY(ppoll, "timeout left", "%ld.%09ld", (long)ts.tv_sec, ts.tv_nsec);
    struct timespec badts = {0, 2000000000};
    R(ppoll, "bad timeout", SC(ppoll, fds, 1, &badts, NULL, 8));

    /* select / pselect6 */
    fd_set rd, wr;
    FD_ZERO(&rd); FD_ZERO(&wr);
    FD_SET(p[0], &rd); FD_SET(p[1], &wr);
    struct timeval tv = {0, 0};
    R(select, "writable only", SC(select, p[1] + 1, &rd, &wr, NULL, &tv));
    SAY(select, "sets", "rd %d wr %d", FD_ISSET(p[0], &rd), FD_ISSET(p[1], &wr));
    FD_ZERO(&rd);
    FD_SET(60, &rd);
    R(select, "bad fd", SC(select, 61, &rd, NULL, NULL, &tv));
    R(select, "negative nfds", SC(select, -1, NULL, NULL, NULL, &tv));
    tv.tv_usec = 10000;
    R(select, "timeout", SC(select, 0, NULL, NULL, NULL, &tv));
    SAY(select, "timeval updated", "%ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    write(p[1], "y", 1);
    struct timespec pts = {1, 0};
    R(pselect6, "readable", SC(pselect6, p[0] + 1, &rd, NULL, NULL, &pts, NULL));
    read(p[0], buf, 1);
    pts.tv_sec = 0;
    pts.tv_nsec = 5000000;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    R(pselect6, "timeout", SC(pselect6, p[0] + 1, &rd, NULL, NULL, &pts, NULL));

    /* epoll */
    int ep = OK(epoll_create, "size 1", SC(epoll_create, 1));
    R(epoll_create, "size 0", SC(epoll_create, 0));
    int ep1 = OK(epoll_create1, "EPOLL_CLOEXEC", SC(epoll_create1, EPOLL_CLOEXEC));
    R(epoll_create1, "bad flags", SC(epoll_create1, 1));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42}, out[4];
    R(epoll_ctl, "ADD", SC(epoll_ctl, ep, EPOLL_CTL_ADD, p[0], &ev));
    R(epoll_ctl, "ADD twice", SC(epoll_ctl, ep, EPOLL_CTL_ADD, p[0], &ev));
    R(epoll_ctl, "MOD missing", SC(epoll_ctl, ep, EPOLL_CTL_MOD, p[1], &ev));
    R(epoll_ctl, "DEL missing", SC(epoll_ctl, ep, EPOLL_CTL_DEL, p[1], &ev));
    R(epoll_ctl, "add itself", SC(epoll_ctl, ep, EPOLL_CTL_ADD, ep, &ev));
    R(epoll_ctl, "regular file", SC(epoll_ctl, ep, EPOLL_CTL_ADD, (put("f", "x"), open("f", O_RDONLY)), &ev));
    R(epoll_ctl, "bad op", SC(epoll_ctl, ep, 9, p[0], &ev));
    R(epoll_ctl, "not an epoll fd", SC(epoll_ctl, p[0], EPOLL_CTL_ADD, p[1], &ev));
    R(epoll_wait, "nothing ready", SC(epoll_wait, ep, out, 4, 0));
    write(p[1], "z", 1);
    R(epoll_wait, "one ready", SC(epoll_wait, ep, out, 4, 0));
    SAY(epoll_wait, "event", "%#x data %llu", out[0].events, (unsigned long long)out[0].data.u64);
    R(epoll_wait, "bad maxevents", SC(epoll_wait, ep, out, 0, 0));
    R(epoll_wait, "timeout 10ms", SC(epoll_wait, ep1, out, 4, 10));
    unsigned long mask = 0;
    R(epoll_pwait, "one ready", SC(epoll_pwait, ep, out, 4, 0, &mask, 8));
    R(epoll_pwait, "bad sigsetsize", SC(epoll_pwait, ep, out, 4, 0, &mask, 3));
    struct timespec ets = {0, 1000000};
    R(epoll_pwait2, "one ready", SC(epoll_pwait2, ep, out, 4, &ets, NULL, 8));
    R(epoll_pwait2, "timeout on empty", SC(epoll_pwait2, ep1, out, 4, &ets, NULL, 8));
    ev.events = EPOLLIN | EPOLLET;
    R(epoll_ctl, "MOD edge-triggered", SC(epoll_ctl, ep, EPOLL_CTL_MOD, p[0], &ev));
    R(epoll_wait, "edge reported once", SC(epoll_wait, ep, out, 4, 0));
    R(epoll_wait, "then quiet", SC(epoll_wait, ep, out, 4, 0));
    R(epoll_ctl, "DEL", SC(epoll_ctl, ep, EPOLL_CTL_DEL, p[0], NULL));
    R(epoll_wait, "after DEL", SC(epoll_wait, ep, out, 4, 0));

    /* eventfd */
    int efd = OK(eventfd, "initial 3", SC(eventfd, 3));
    uint64_t v = 0;
    R(read, "eventfd counter", read(efd, &v, 8));
    SAY(eventfd, "value", "%llu", (unsigned long long)v);
    int efd2 = OK(eventfd2, "SEMAPHORE|NONBLOCK", SC(eventfd2, 2, EFD_SEMAPHORE | EFD_NONBLOCK));
    read(efd2, &v, 8);
    SAY(eventfd2, "semaphore read", "%llu", (unsigned long long)v);
    read(efd2, &v, 8);
    R(eventfd2, "drained read", read(efd2, &v, 8));
    v = 5;
    R(eventfd2, "write 5", write(efd2, &v, 8));
    v = ~0ULL;
    R(eventfd2, "write max is EINVAL", write(efd2, &v, 8));
    R(eventfd2, "short write", write(efd2, &v, 4));
    R(eventfd2, "bad flags", SC(eventfd2, 0, 0x2));
    struct pollfd epf = {efd2, POLLIN | POLLOUT, 0};
    R(poll, "eventfd readiness", SC(poll, &epf, 1, 0));
    SAY(poll, "eventfd revents", "%#x", epf.revents);
    return 0;
}
