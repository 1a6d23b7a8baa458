/* Datagram sockets with names: sender addresses (path, abstract, autobind, none),
   connected sockets, queue limits and blocking, EMSGSIZE, sendmmsg/recvmmsg. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }
static int revents(int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT, 0};
    poll(&p, 1, 0);
    return p.revents;
}
static socklen_t path_addr(struct sockaddr_un *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strcpy(a->sun_path, path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}
static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "%s-%08d", name, getpid());
    return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

static void show_from(const char *what, ssize_t n, const char *buf, struct sockaddr_un *from, socklen_t fl,
                      struct sockaddr_un *expect, socklen_t el) {
    printf("%s: %zd '%.*s' from len %d (%s)\n", what, n, (int)(n > 0 ? n : 0), buf, fl,
           fl == 0 ? "none" : (fl == el && memcmp(from, expect, fl) == 0) ? "expected" :
           (fl == 8 && from->sun_path[0] == 0) ? "autobound" : "other");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/unix-dgram-%08d", getpid());
    unlink(path);
    struct sockaddr_un srv_addr, cli_addr, from;
    socklen_t sl = path_addr(&srv_addr, path), cl, fl;
    int srv = socket(AF_UNIX, SOCK_DGRAM, 0);
    printf("bind server -> %s\n", err(bind(srv, (struct sockaddr *)&srv_addr, sl)));
    char buf[256];
    ssize_t n;

    int anon = socket(AF_UNIX, SOCK_DGRAM, 0);
    printf("unnamed sendto -> %s\n", err(sendto(anon, "anon", 4, 0, (struct sockaddr *)&srv_addr, sl)));
    fl = sizeof from;
    n = recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    show_from("server got", n, buf, &from, fl, NULL, 0);

    int named = socket(AF_UNIX, SOCK_DGRAM, 0);
    cl = abstract_addr(&cli_addr, "unix-dgram-client");
    bind(named, (struct sockaddr *)&cli_addr, cl);
    sendto(named, "named", 5, 0, (struct sockaddr *)&srv_addr, sl);
    fl = sizeof from;
    n = recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    show_from("server got", n, buf, &from, fl, &cli_addr, cl);
    printf("server replies to that address -> %s\n", err(sendto(srv, "reply", 5, 0, (struct sockaddr *)&from, fl)));
    fl = sizeof from;
    n = recvfrom(named, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    show_from("client got", n, buf, &from, fl, &srv_addr, sl);

    int cred = socket(AF_UNIX, SOCK_DGRAM, 0);
    int on = 1;
    setsockopt(cred, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    sendto(cred, "autobind", 8, 0, (struct sockaddr *)&srv_addr, sl);
    fl = sizeof from;
    n = recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    show_from("server got", n, buf, &from, fl, NULL, 0);
    sendto(srv, "back", 4, 0, (struct sockaddr *)&from, fl);
    n = recv(cred, buf, sizeof buf, 0);
    printf("autobound client got %.*s\n", (int)n, buf);

    /* connected sockets */
    printf("connect named -> %s\n", err(connect(named, (struct sockaddr *)&srv_addr, sl)));
    printf("send on connected -> %s\n", err(send(named, "conn", 4, 0)));
    struct sockaddr_un peer;
    socklen_t pl = sizeof peer;
    getpeername(named, (struct sockaddr *)&peer, &pl);
    printf("getpeername len %d matches server %d\n", pl, pl == sl && memcmp(&peer, &srv_addr, sl) == 0);
    n = recv(srv, buf, sizeof buf, 0);
    printf("server got %.*s\n", (int)n, buf);
    printf("server connects to the client -> %s\n", err(connect(srv, (struct sockaddr *)&cli_addr, cl)));
    printf("a third socket may not send to the server now -> %s\n",
           err(sendto(anon, "x", 1, 0, (struct sockaddr *)&srv_addr, sl)));
    printf("nor connect to it -> %s\n", err(connect(anon, (struct sockaddr *)&srv_addr, sl)));
    printf("the client still may -> %s\n", err(send(named, "ok", 2, 0)));
    recv(srv, buf, sizeof buf, 0);
    struct sockaddr unspec = {AF_UNSPEC};
    printf("server disconnects -> %s\n", err(connect(srv, &unspec, sizeof unspec)));
    printf("send without a destination -> %s\n", err(send(srv, "x", 1, 0)));
    printf("unconnected getpeername -> %s\n", err(getpeername(srv, (struct sockaddr *)&peer, &pl)));

    /* queue limit: a non-peer sender fills it, then waits */
    int nb = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int sent = 0;
    while (sendto(nb, "q", 1, 0, (struct sockaddr *)&srv_addr, sl) == 1) sent++;
    printf("queued %d datagrams before %s; unconnected sender poll %#x\n", sent, strerrorname_np(errno), revents(nb));
    connect(nb, (struct sockaddr *)&srv_addr, sl);
    printf("connected to the full server, poll %#x\n", revents(nb));
    int order[2][2];
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        pipe(order[k]);
        kids[k] = fork();
        if (kids[k] == 0) {
            /* Both wait for room: one in send(2), one in write(2). */
            int r = k == 0 ? send(named, "blocked", 7, 0) : write(named, "blocked", 7);
            read(order[k][0], buf, 1);
            printf("child's blocked %s finished -> %s\n", k == 0 ? "send" : "write", err(r));
            fflush(stdout);
            _exit(0);
        }
    }
    usleep(50000);
    for (int k = 0; k < 2; k++) {
        n = recv(srv, buf, sizeof buf, 0);
        printf("server read one -> %zd\n", n);
        usleep(20000);
    }
    for (int k = 0; k < 2; k++) {
        write(order[k][1], "", 1);
        waitpid(kids[k], NULL, 0);
    }
    int drained = 0;
    while (recv(srv, buf, sizeof buf, MSG_DONTWAIT) >= 0) drained++;
    printf("drained %d; the connected sender's poll is %#x again\n", drained, revents(nb));

    /* sizes and flags */
    int sz = 8192;
    setsockopt(anon, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    static char big[20000];
    printf("datagram of sndbuf-32 -> %s\n", err(sendto(anon, big, 2 * sz - 32, 0, (struct sockaddr *)&srv_addr, sl)));
    printf("one byte more -> %s\n", err(sendto(anon, big, 2 * sz - 31, 0, (struct sockaddr *)&srv_addr, sl)));
    printf("FIONREAD-sized peek -> %zd\n", recv(srv, buf, 1, MSG_PEEK | MSG_TRUNC));
    recv(srv, big, sizeof big, 0);
    struct mmsghdr mm[3];
    struct iovec iov[3];
    const char *words[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        memset(&mm[i], 0, sizeof mm[i]);
        iov[i].iov_base = (void *)words[i];
        iov[i].iov_len = strlen(words[i]);
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
        mm[i].msg_hdr.msg_name = &srv_addr;
        mm[i].msg_hdr.msg_namelen = sl;
    }
    printf("sendmmsg -> %d\n", sendmmsg(anon, mm, 3, 0));
    struct mmsghdr rm[5];
    char rb[5][16];
    struct iovec riov[5];
    for (int i = 0; i < 5; i++) {
        memset(&rm[i], 0, sizeof rm[i]);
        riov[i].iov_base = rb[i];
        riov[i].iov_len = sizeof rb[i];
        rm[i].msg_hdr.msg_iov = &riov[i];
        rm[i].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(srv, rm, 5, MSG_DONTWAIT, NULL);
    printf("recvmmsg -> %d:", got);
    for (int i = 0; i < got; i++) printf(" %.*s", rm[i].msg_len, rb[i]);
    printf("\n");

    /* errors and endings */
    int st = socket(AF_UNIX, SOCK_STREAM, 0);
    char spath[64];
    struct sockaddr_un stream_addr;
    snprintf(spath, sizeof spath, "/tmp/unix-dgram-s-%08d", getpid());
    unlink(spath);
    socklen_t stl = path_addr(&stream_addr, spath);
    bind(st, (struct sockaddr *)&stream_addr, stl);
    printf("sendto a stream socket's name -> %s\n", err(sendto(anon, "x", 1, 0, (struct sockaddr *)&stream_addr, stl)));
    struct sockaddr_un nowhere;
    socklen_t nl = path_addr(&nowhere, "/tmp/no-such-socket-here");
    printf("sendto a missing name -> %s\n", err(sendto(anon, "x", 1, 0, (struct sockaddr *)&nowhere, nl)));
    nl = path_addr(&nowhere, "/tmp");
    printf("sendto a directory -> %s\n", err(sendto(anon, "x", 1, 0, (struct sockaddr *)&nowhere, nl)));
    printf("sendto with addrlen 200 -> %s\n", err(sendto(anon, "x", 1, 0, (struct sockaddr *)&srv_addr, 200)));
    printf("sendto own name -> %s\n", err(sendto(srv, "me", 2, 0, (struct sockaddr *)&srv_addr, sl)));
    n = recv(srv, buf, sizeof buf, 0);
    printf("and read it back -> %zd\n", n);
    shutdown(srv, SHUT_RD);
    printf("after SHUT_RD: blocking recv -> %zd\n", recv(srv, buf, sizeof buf, 0));
    printf("non-blocking -> %s\n", err(recv(srv, buf, sizeof buf, MSG_DONTWAIT)));
    printf("sendto it now -> %s\n", err(sendto(anon, "x", 1, MSG_NOSIGNAL, (struct sockaddr *)&srv_addr, sl)));
    close(srv);
    printf("connected client after the server closed -> %s\n", err(send(named, "x", 1, 0)));
    printf("again -> %s\n", err(send(named, "x", 1, 0)));
    printf("sendto the stale name -> %s\n", err(sendto(anon, "x", 1, 0, (struct sockaddr *)&srv_addr, sl)));
    unlink(path);
    unlink(spath);
    return 0;
}
