/* bind/listen/accept/connect on a path in /tmp and in the abstract namespace: names,
   peer credentials, backlog, blocking accept and connect across processes, errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }
static int revents(int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
    poll(&p, 1, 0);
    return p.revents;
}

static struct sockaddr_un addr;
static socklen_t addrlen;
static char label[16];

/* Our own name, with the pid-dependent part hidden. */
static void show_name(const char *what, struct sockaddr_un *a, socklen_t len) {
    int same = len == addrlen && memcmp(a, &addr, len - (label[0] == 'p')) == 0;
    printf("  %s: len %d (%s)\n", what, len, len <= 2 ? "unnamed" : same ? "our name" : "other");
}

static void server_and_client(void) {
    int L = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("  listen unbound -> %s\n", err(listen(L, 5)));
    printf("  bind -> %s\n", err(bind(L, (struct sockaddr *)&addr, addrlen)));
    printf("  bind again -> %s\n", err(bind(L, (struct sockaddr *)&addr, addrlen)));
    int other = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("  bind taken name -> %s\n", err(bind(other, (struct sockaddr *)&addr, addrlen)));
    struct sockaddr_un got;
    socklen_t gl = sizeof got;
    getsockname(L, (struct sockaddr *)&got, &gl);
    show_name("getsockname", &got, gl);
    gl = sizeof got;
    printf("  getpeername of listener -> %s\n", err(getpeername(L, (struct sockaddr *)&got, &gl)));
    printf("  connect to bound non-listener -> %s\n", err(connect(other, (struct sockaddr *)&addr, addrlen)));
    int r = listen(L, 5);
    printf("  listen -> %s, poll %#x\n", err(r), revents(L));
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    printf("  dgram connect to stream name -> %s\n", err(connect(d, (struct sockaddr *)&addr, addrlen)));
    printf("  listen on dgram -> %s\n", err(listen(d, 1)));
    printf("  accept on dgram -> %s\n", err(accept(d, NULL, NULL)));
    fcntl(L, F_SETFL, O_NONBLOCK);
    printf("  accept with nobody -> %s\n", err(accept(L, NULL, NULL)));
    fcntl(L, F_SETFL, 0);

    pid_t child = fork();
    if (child == 0) {
        usleep(20000);              /* let the parent block in accept */
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&addr, addrlen) < 0) _exit(2);
        struct ucred uc;
        socklen_t ul = sizeof uc;
        getsockopt(c, SOL_SOCKET, SO_PEERCRED, &uc, &ul);
        char buf[64];
        send(c, "hello from child", 16, 0);
        ssize_t n = recv(c, buf, sizeof buf, 0);
        printf("  child got %.*s; peer pid is my parent: %d\n", (int)n, buf, uc.pid == getppid());
        printf("  connect again -> %s\n", err(connect(c, (struct sockaddr *)&addr, addrlen)));
        fflush(stdout);
        _exit(0);
    }
    struct sockaddr_un peer;
    socklen_t pl = sizeof peer;
    int s = accept4(L, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC | SOCK_NONBLOCK);
    printf("  accepted: peer address len %d, flags nonblock %d cloexec %d\n", pl,
           !!(fcntl(s, F_GETFL) & O_NONBLOCK), fcntl(s, F_GETFD));
    gl = sizeof got;
    getsockname(s, (struct sockaddr *)&got, &gl);
    show_name("accepted getsockname", &got, gl);
    struct ucred uc;
    socklen_t ul = sizeof uc;
    getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &ul);
    printf("  server: peer pid is the child: %d, uid %d gid %d len %d\n", uc.pid == child, uc.uid, uc.gid, ul);
    char buf[64];
    struct pollfd p = {s, POLLIN, 0};
    poll(&p, 1, -1);
    ssize_t n = recv(s, buf, sizeof buf, 0);
    printf("  server got %.*s\n", (int)n, buf);
    fflush(stdout);
    send(s, "welcome", 7, 0);
    waitpid(child, NULL, 0);
    poll(&p, 1, -1);
    n = recv(s, buf, sizeof buf, 0);
    printf("  after the child exits: recv -> %zd, poll %#x\n", n, revents(s));
    printf("  sendto with an address on a connected stream -> %s\n",
           err(sendto(s, "x", 1, MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen)));
    printf("  sendto on an unconnected stream -> %s\n",
           err(sendto(other, "x", 1, MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen)));
    printf("  accept4 bad flags -> %s\n", err(accept4(L, NULL, NULL, 1)));
    close(s);

    /* Backlog 1 holds two pending connections; a third waits. */
    listen(L, 1);
    int c1 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int c3 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    printf("  backlog 1: connect %s", err(connect(c1, (struct sockaddr *)&addr, addrlen)));
    printf(" %s", err(connect(c2, (struct sockaddr *)&addr, addrlen)));
    printf(" %s", err(connect(c3, (struct sockaddr *)&addr, addrlen)));
    printf(", listener poll %#x\n", revents(L));
    send(c1, "queued", 6, 0);
    int order[2];
    pipe(order);
    child = fork();
    if (child == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        int r = connect(c, (struct sockaddr *)&addr, addrlen);   /* waits for room */
        read(order[0], buf, 1);                                  /* print after the parent */
        printf("  blocked connect finished -> %s\n", err(r));
        fflush(stdout);
        _exit(0);
    }
    usleep(50000);
    s = accept(L, NULL, NULL);
    n = recv(s, buf, sizeof buf, 0);
    printf("  first pending connection carried %.*s\n", (int)n, buf);
    fflush(stdout);
    write(order[1], "", 1);
    waitpid(child, NULL, 0);
    close(order[0]);
    close(order[1]);
    close(s);
    close(L);            /* the still-pending connections are reset */
    printf("  pending client after listener close: poll %#x\n", revents(c2));
    n = recv(c2, buf, sizeof buf, 0);
    printf("  recv -> %s\n", err(n));
    printf("  then -> %zd\n", recv(c2, buf, sizeof buf, 0));
    printf("  connect after close -> %s\n", err(connect(c3, (struct sockaddr *)&addr, addrlen)));
    close(c1); close(c2); close(c3); close(other); close(d);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(022);
    char path[64];
    snprintf(path, sizeof path, "/tmp/unix-listen-%08d.sock", getpid());
    unlink(path);
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, path);
    addrlen = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
    strcpy(label, "path");
    printf("path name:\n");
    server_and_client();
    struct stat st;
    if (lstat(path, &st) == 0)
        printf("  the name stays in /tmp: socket %d mode %o\n", S_ISSOCK(st.st_mode), st.st_mode & 0777);
    int fd = open(path, O_RDONLY);
    printf("  open(2) of it -> %s\n", err(fd));
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("  connect to the stale name -> %s\n", err(connect(c, (struct sockaddr *)&addr, addrlen)));
    unlink(path);
    printf("  after unlink -> %s\n", err(connect(c, (struct sockaddr *)&addr, addrlen)));
    struct sockaddr_un bad = addr;
    strcpy(bad.sun_path, "/tmp/no-such-dir-here/x.sock");
    printf("  bind in a missing directory -> %s\n", err(bind(c, (struct sockaddr *)&bad, sizeof bad)));
    bad.sun_family = AF_INET;
    printf("  bind with the wrong family -> %s\n", err(bind(c, (struct sockaddr *)&bad, sizeof bad)));
    printf("  connect with the wrong family -> %s\n", err(connect(c, (struct sockaddr *)&bad, sizeof bad)));
    printf("  connect with a short address -> %s\n", err(connect(c, (struct sockaddr *)&addr, 2)));
    close(c);

    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    int len = snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "unix-listen-%08d", getpid());
    addrlen = offsetof(struct sockaddr_un, sun_path) + 1 + len;
    strcpy(label, "abstract");
    printf("abstract name:\n");
    server_and_client();
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("  connect after the listener closed -> %s\n", err(connect(c, (struct sockaddr *)&addr, addrlen)));
    int sp = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    int sd = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("  a seqpacket socket may take the same abstract name -> %s\n", err(bind(sp, (struct sockaddr *)&addr, addrlen)));
    printf("  a stream socket may take it again once free -> %s\n", err(bind(sd, (struct sockaddr *)&addr, addrlen)));
    printf("  but not twice -> %s\n", err(bind(c, (struct sockaddr *)&addr, addrlen)));
    return 0;
}
