/* SCM_RIGHTS and SCM_CREDENTIALS: passing descriptions between processes, truncated
   control buffers, close-on-exec, credential checks, SO_PEERCRED, in-flight cleanup. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

static int send_fds(int s, const char *data, int *fds, int n, const struct ucred *cred) {
    char cbuf[CMSG_SPACE(sizeof(int) * 260) + CMSG_SPACE(sizeof(struct ucred))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec io = {(void *)data, strlen(data)};
    struct msghdr m = {0};
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    size_t len = 0;
    if (n > 0) len += CMSG_SPACE(sizeof(int) * n);
    if (cred) len += CMSG_SPACE(sizeof *cred);
    m.msg_control = len ? cbuf : NULL;
    m.msg_controllen = len;
    struct cmsghdr *c = len ? CMSG_FIRSTHDR(&m) : NULL;
    if (n > 0) {
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
        c = CMSG_NXTHDR(&m, c);
    }
    if (cred) {
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_CREDENTIALS;
        c->cmsg_len = CMSG_LEN(sizeof *cred);
        memcpy(CMSG_DATA(c), cred, sizeof *cred);
    }
    return sendmsg(s, &m, 0);
}

struct got { ssize_t n; int flags; int nfds; int fds[300]; int have_cred; struct ucred cred; char data[64]; size_t controllen; };

static struct got recv_fds(int s, size_t room, int flags) {
    struct got g;
    memset(&g, 0, sizeof g);
    char cbuf[4096];
    struct iovec io = {g.data, sizeof g.data - 1};
    struct msghdr m = {0};
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    m.msg_control = room ? cbuf : NULL;
    m.msg_controllen = room;
    g.n = recvmsg(s, &m, flags);
    if (g.n < 0) return g;
    g.flags = m.msg_flags;
    g.controllen = m.msg_controllen;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(g.fds + g.nfds, CMSG_DATA(c), k * sizeof(int));
            g.nfds += k;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof g.cred)) {
            g.have_cred = 1;
            memcpy(&g.cred, CMSG_DATA(c), sizeof g.cred);
        }
    }
    return g;
}

static void close_all(struct got *g) { for (int i = 0; i < g->nfds; i++) close(g->fds[i]); }

static void pass_to_child(void) {
    const char *path = "/tmp/unix-fdpass-data.txt";
    int f = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    write(f, "skip: the file contents", 23);
    lseek(f, 6, SEEK_SET);                 /* the offset travels with the description */
    unlink(path);
    int p[2], sv[2];
    pipe(p);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        struct got g = recv_fds(sv[1], 4096, 0);
        char buf[64];
        ssize_t n = read(g.fds[0], buf, sizeof buf);
        for (ssize_t i = 0; i < n; i++) buf[i] = buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i];
        write(g.fds[1], buf, n);
        _exit(g.nfds == 2 ? 0 : 1);
    }
    close(sv[1]);
    int fds[2] = {f, p[1]};
    printf("send two fds -> %s\n", err(send_fds(sv[0], "fds", fds, 2, NULL)));
    close(f);
    close(p[1]);
    char buf[64];
    ssize_t n, got = 0;
    while ((n = read(p[0], buf + got, sizeof buf - got)) > 0) got += n;   /* EOF: the child had the last writer */
    printf("child wrote through the passed pipe: %.*s\n", (int)got, buf);
    int st;
    waitpid(pid, &st, 0);
    printf("child status %d\n", WEXITSTATUS(st));
    close(p[0]);
    close(sv[0]);
}

static void control_buffers(void) {
    int sv[2], p[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pipe(p);
    int three[3] = {p[0], p[1], p[0]};
    struct { const char *what; size_t room; int flags; } cases[] = {
        {"ample room", 4096, 0},
        {"room for two", CMSG_SPACE(2 * sizeof(int)), 0},
        {"room for one", CMSG_LEN(sizeof(int)), 0},
        {"header only", CMSG_LEN(0), 0},
        {"no buffer", 0, 0},
        {"MSG_CMSG_CLOEXEC", 4096, MSG_CMSG_CLOEXEC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        send_fds(sv[0], "abc", three, 3, NULL);
        struct got g = recv_fds(sv[1], cases[i].room, cases[i].flags);
        int cloexec = g.nfds ? fcntl(g.fds[0], F_GETFD) : -1;
        int valid = 0;
        for (int k = 0; k < g.nfds; k++) valid += fcntl(g.fds[k], F_GETFL) >= 0;
        printf("%-17s: n=%zd fds=%d valid=%d ctrunc=%d cloexec=%d controllen=%zu flags=%#x\n", cases[i].what,
               g.n, g.nfds, valid, !!(g.flags & MSG_CTRUNC), cloexec, g.controllen, g.flags);
        close_all(&g);
    }
    /* Stream reads stop after a message that carried descriptions. */
    send_fds(sv[0], "ab", three, 1, NULL);
    send_fds(sv[0], "cd", NULL, 0, NULL);
    send_fds(sv[0], "ef", three, 1, NULL);
    send_fds(sv[0], "gh", NULL, 0, NULL);
    for (int i = 0; i < 3; i++) {
        struct got g = recv_fds(sv[1], 4096, 0);
        printf("stream read %d: %.*s with %d fds\n", i, (int)g.n, g.data, g.nfds);
        close_all(&g);
    }
    send_fds(sv[0], "pq", three, 2, NULL);
    struct got g = recv_fds(sv[1], 4096, MSG_PEEK);
    printf("peek: %zd bytes, %d fds\n", g.n, g.nfds);
    close_all(&g);
    g = recv_fds(sv[1], 4096, 0);
    printf("then read: %zd bytes, %d fds\n", g.n, g.nfds);
    close_all(&g);
    send_fds(sv[0], "", three, 1, NULL);
    g = recv_fds(sv[1], 4096, MSG_DONTWAIT);
    printf("fds with no data on a stream are dropped: recv -> %s\n", err(g.n));

    int bad = 1000;
    printf("bad fd -> %s\n", err(send_fds(sv[0], "x", &bad, 1, NULL)));
    int many[254];
    for (int i = 0; i < 254; i++) many[i] = p[0];
    printf("253 fds -> %s\n", err(send_fds(sv[0], "x", many, 253, NULL)));
    printf("254 fds -> %s\n", err(send_fds(sv[0], "x", many, 254, NULL)));
    g = recv_fds(sv[1], 4096, 0);
    printf("received %d of 253\n", g.nfds);
    close_all(&g);
    struct msghdr m = {0};
    struct iovec io = {"x", 1};
    char cbuf[64] = {0};
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = 32;
    struct cmsghdr *c = (struct cmsghdr *)cbuf;
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = 8;
    printf("cmsg_len too small -> %s\n", err(sendmsg(sv[0], &m, 0)));
    c->cmsg_len = 40;
    printf("cmsg_len past the buffer -> %s\n", err(sendmsg(sv[0], &m, 0)));
    c->cmsg_len = 16;
    c->cmsg_type = 99;
    printf("unknown type -> %s\n", err(sendmsg(sv[0], &m, 0)));
    c->cmsg_level = 6;
    m.msg_controllen = 16;
    printf("other level is ignored -> %s\n", err(sendmsg(sv[0], &m, 0)));
    m.msg_controllen = 10;
    printf("control shorter than a header is ignored -> %s\n", err(sendmsg(sv[0], &m, 0)));
    char two[4];
    printf("both went through -> %zd\n", recv(sv[1], two, sizeof two, 0));
    m.msg_controllen = 1 << 20;
    printf("huge control -> %s\n", err(sendmsg(sv[0], &m, 0)));
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);

    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    pipe(p);
    send_fds(sv[0], "datagram", p, 2, NULL);
    char small[4];
    struct iovec sio = {small, sizeof small};
    struct msghdr dm = {0};
    char dcbuf[64];
    dm.msg_iov = &sio;
    dm.msg_iovlen = 1;
    dm.msg_control = dcbuf;
    dm.msg_controllen = sizeof dcbuf;
    ssize_t n = recvmsg(sv[1], &dm, 0);
    printf("dgram with fds, 4-byte buffer: n=%zd trunc=%d controllen=%zu\n", n, !!(dm.msg_flags & MSG_TRUNC), dm.msg_controllen);
    close(sv[0]);
    close(sv[1]);
}

static void credentials(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct ucred uc;
    socklen_t ul = sizeof uc;
    getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &uc, &ul);
    printf("socketpair SO_PEERCRED: pid is mine %d uid %d gid %d\n", uc.pid == getpid(), uc.uid, uc.gid);
    int on = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    pid_t pid = fork();
    if (pid == 0) {
        struct ucred me = {getpid(), getuid(), getgid()};
        send_fds(sv[0], "plain", NULL, 0, NULL);
        send_fds(sv[0], "claimed", NULL, 0, &me);
        struct ucred parent = {getppid(), 0, 0};
        printf("child: root may claim its parent's pid -> %s\n", err(send_fds(sv[0], "parent", NULL, 0, &parent)));
        struct ucred nobody = {0, 0, 0};
        printf("child: pid 0 -> %s\n", err(send_fds(sv[0], "x", NULL, 0, &nobody)));
        struct ucred baduid = {getpid(), -1, 0};
        printf("child: uid -1 -> %s\n", err(send_fds(sv[0], "x", NULL, 0, &baduid)));
        fflush(stdout);
        if (setgid(1000) == 0 && setuid(1000) == 0) {
            struct ucred lie = {getpid(), 0, 1000};
            printf("child as uid 1000: claim uid 0 -> %s\n", err(send_fds(sv[0], "x", NULL, 0, &lie)));
            struct ucred lie2 = {getppid(), 1000, 1000};
            printf("child as uid 1000: claim the parent's pid -> %s\n", err(send_fds(sv[0], "x", NULL, 0, &lie2)));
            send_fds(sv[0], "as-1000", NULL, 0, NULL);
        }
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    for (int i = 0; i < 3; i++) {   /* the first two merge: same sender, same credentials */
        struct got g = recv_fds(sv[1], 4096, 0);
        printf("parent got %.*s: creds %d, pid is %s, uid %d gid %d\n", (int)g.n, g.data, g.have_cred,
               g.cred.pid == pid ? "the child" : g.cred.pid == getpid() ? "mine" : "other", g.cred.uid, g.cred.gid);
    }
    struct got g = recv_fds(sv[1], 20, MSG_DONTWAIT);
    printf("no more: %s\n", err(g.n));
    close(sv[0]);
    close(sv[1]);
}

static void inflight_cleanup(void) {
    /* A pipe's write end left unread in a socket: closing the socket drops it. */
    int sv[2], p[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    pipe(p);
    send_fds(sv[0], "w", &p[1], 1, NULL);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    char c;
    printf("pipe after its in-flight writer was dropped: read -> %zd\n", read(p[0], &c, 1));
    close(p[0]);

    /* A socket sent into its own queue and then closed is unreachable. When a kernel's
       collector frees it is its own business (Linux may take longer than any wait here),
       so only the operations are exercised; the collector has unit tests of its own. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    send_fds(sv[1], "self", &sv[0], 1, NULL);    /* lands in sv[0]'s own queue */
    close(sv[0]);
    struct pollfd pf = {sv[1], POLLIN, 0};
    poll(&pf, 1, 0);
    close(sv[1]);

    /* A received socket works in the receiving process. */
    int carrier[2], inner[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, carrier);
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, inner);
    pid_t pid = fork();
    if (pid == 0) {
        close(carrier[0]);
        close(inner[0]);
        close(inner[1]);
        struct got g = recv_fds(carrier[1], 4096, 0);
        send(g.fds[0], "via passed socket", 17, 0);
        _exit(0);
    }
    close(carrier[1]);
    send_fds(carrier[0], "s", &inner[1], 1, NULL);
    close(inner[1]);
    char buf[32];
    ssize_t n = recv(inner[0], buf, sizeof buf, 0);
    printf("parent read %.*s\n", (int)n, buf);
    waitpid(pid, NULL, 0);
    printf("after the child exits -> %zd\n", recv(inner[0], buf, sizeof buf, 0));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    pass_to_child();
    control_buffers();
    credentials();
    inflight_cleanup();
    return 0;
}
