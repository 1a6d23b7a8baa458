/* socketpair between processes: stream echo, a large blocking transfer, datagram and
   seqpacket boundaries, EOF, EPIPE/SIGPIPE, shutdown and poll states. Prints only what
   is the same on every Linux run (no pids, no fd numbers). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t sigpipes;
static void on_pipe(int sig) { (void)sig; sigpipes++; }

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }
static int revents(int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
    poll(&p, 1, 0);
    return p.revents;
}

static void stream_echo(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        char buf[64];
        ssize_t n;
        while ((n = read(sv[1], buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++) buf[i] = buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i];
            write(sv[1], buf, n);
        }
        _exit(n == 0 ? 0 : 1);
    }
    close(sv[1]);
    const char *words[] = {"hello", "unix", "sockets"};
    for (int i = 0; i < 3; i++) {
        char buf[64] = {0};
        write(sv[0], words[i], strlen(words[i]));
        size_t got = 0;
        while (got < strlen(words[i])) got += read(sv[0], buf + got, sizeof buf - got);
        printf("echo %s -> %s\n", words[i], buf);
    }
    shutdown(sv[0], SHUT_WR);
    char c;
    printf("after shutdown(WR) the child exits, read -> %zd\n", read(sv[0], &c, 1));
    int st;
    waitpid(pid, &st, 0);
    printf("child status %d\n", WEXITSTATUS(st));
    close(sv[0]);
}

static void big_transfer(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    const size_t total = 3 << 20;
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        static unsigned char buf[65536];
        unsigned long sum = 0;
        size_t got = 0;
        ssize_t n;
        while ((n = recv(sv[1], buf, sizeof buf, 0)) > 0) {
            for (ssize_t i = 0; i < n; i++) sum = sum * 31 + buf[i];
            got += n;
        }
        printf("child received %zu bytes, sum %lx\n", got, sum);
        fflush(stdout);
        _exit(0);
    }
    close(sv[1]);
    unsigned char *data = malloc(total);
    unsigned long sum = 0;
    for (size_t i = 0; i < total; i++) { data[i] = (unsigned char)(i * 7 + (i >> 12)); sum = sum * 31 + data[i]; }
    ssize_t w = send(sv[0], data, total, 0);    /* one blocking call must take it all */
    printf("parent sent %zd bytes in one call, sum %lx\n", w, sum);
    fflush(stdout);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    free(data);
}

static void datagrams(int type, const char *name) {
    int sv[2];
    socketpair(AF_UNIX, type, 0, sv);
    send(sv[0], "first", 5, 0);
    send(sv[0], "second!", 7, 0);
    send(sv[0], "", 0, 0);
    send(sv[0], "3rd", 3, 0);
    char buf[16];
    ssize_t n = recv(sv[1], buf, 3, 0);
    printf("%s: truncated recv -> %zd %.*s\n", name, n, (int)n, buf);
    n = recv(sv[1], buf, 3, MSG_PEEK | MSG_TRUNC);
    printf("%s: peek with MSG_TRUNC -> %zd\n", name, n);
    n = recv(sv[1], buf, sizeof buf, 0);
    printf("%s: next -> %zd %.*s\n", name, n, (int)n, buf);
    n = recv(sv[1], buf, sizeof buf, 0);
    printf("%s: empty datagram -> %zd\n", name, n);
    struct iovec iov[2] = {{buf, 1}, {buf + 8, 8}};
    struct msghdr m = {0};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    n = recvmsg(sv[1], &m, 0);
    printf("%s: recvmsg into two iovecs -> %zd '%c' '%.*s' flags %#x\n", name, n, buf[0], (int)n - 1, buf + 8, m.msg_flags);
    n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
    printf("%s: empty queue -> %s\n", name, err(n));
    close(sv[0]);
    n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
    printf("%s: after peer close recv -> %zd %s, poll %#x\n", name, n, err(n), revents(sv[1]));
    n = send(sv[1], "x", 1, MSG_NOSIGNAL);
    printf("%s: after peer close send -> %s\n", name, err(n));
    n = send(sv[1], "x", 1, MSG_NOSIGNAL);
    printf("%s: and again -> %s\n", name, err(n));
    close(sv[1]);
}

static void eof_and_epipe(void) {
    int sv[2];
    signal(SIGPIPE, on_pipe);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    printf("fresh pair poll %#x %#x\n", revents(sv[0]), revents(sv[1]));
    send(sv[0], "tail", 4, 0);
    close(sv[0]);
    char buf[8];
    printf("closed peer, poll %#x\n", revents(sv[1]));
    ssize_t n = recv(sv[1], buf, sizeof buf, 0);
    printf("read remaining -> %zd\n", n);
    printf("then -> %zd\n", recv(sv[1], buf, sizeof buf, 0));
    n = send(sv[1], "x", 1, 0);
    printf("send to closed peer -> %s, SIGPIPEs %d\n", err(n), (int)sigpipes);
    n = send(sv[1], "x", 1, MSG_NOSIGNAL);
    printf("with MSG_NOSIGNAL -> %s, SIGPIPEs %d\n", err(n), (int)sigpipes);
    close(sv[1]);

    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    send(sv[1], "mine", 4, 0);
    send(sv[0], "unread", 6, 0);
    close(sv[1]);        /* closing with unread data resets the peer */
    printf("reset peer poll %#x\n", revents(sv[0]));
    n = recv(sv[0], buf, sizeof buf, 0);
    printf("queued data first -> %zd\n", n);
    n = recv(sv[0], buf, sizeof buf, 0);
    printf("then -> %s\n", err(n));
    printf("then -> %zd\n", recv(sv[0], buf, sizeof buf, 0));
    printf("send -> %s\n", err(send(sv[0], "x", 1, MSG_NOSIGNAL)));
    close(sv[0]);

    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    shutdown(sv[0], SHUT_WR);
    printf("SHUT_WR: poll me %#x peer %#x\n", revents(sv[0]), revents(sv[1]));
    printf("send after SHUT_WR -> %s\n", err(send(sv[0], "x", 1, MSG_NOSIGNAL)));
    printf("peer reads -> %zd\n", recv(sv[1], buf, 8, 0));
    shutdown(sv[0], SHUT_RD);
    printf("SHUT_RDWR: poll me %#x peer %#x\n", revents(sv[0]), revents(sv[1]));
    printf("peer send -> %s\n", err(send(sv[1], "x", 1, MSG_NOSIGNAL)));
    printf("bad how -> %s\n", err(shutdown(sv[0], 7)));
    close(sv[0]);
    close(sv[1]);
    signal(SIGPIPE, SIG_DFL);
}

static void blocking_wakeups(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        char buf[32];
        ssize_t n = recv(sv[1], buf, sizeof buf, 0);    /* blocks until the parent writes */
        send(sv[1], buf, n, 0);
        n = recv(sv[1], buf, sizeof buf, 0);           /* blocks until EOF */
        _exit(n == 0 ? 7 : 1);
    }
    close(sv[1]);
    usleep(20000);
    send(sv[0], "ping", 4, 0);
    char buf[32];
    ssize_t n = recv(sv[0], buf, sizeof buf, 0);
    printf("seqpacket reply %zd %.*s\n", n, (int)n, buf);
    close(sv[0]);
    int st;
    waitpid(pid, &st, 0);
    printf("child saw EOF: %d\n", WEXITSTATUS(st));
}

static void epoll_states(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN | EPOLLRDHUP, {.fd = sv[1]}};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    struct epoll_event out[4];
    printf("epoll: idle -> %d\n", epoll_wait(ep, out, 4, 0));
    int go[2];
    pipe(go);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        usleep(20000);
        send(sv[0], "wake", 4, 0);
        read(go[0], &c, 1);                        /* the parent has seen the data */
        usleep(20000);
        shutdown(sv[0], SHUT_WR);
        _exit(0);
    }
    int n = epoll_wait(ep, out, 4, 5000);          /* woken by the child's send */
    printf("epoll: after send -> %d events %#x\n", n, n > 0 ? out[0].events : 0);
    char buf[8];
    recv(sv[1], buf, sizeof buf, 0);
    write(go[1], "", 1);
    n = epoll_wait(ep, out, 4, 5000);              /* woken by the child's shutdown */
    printf("epoll: after shutdown -> %d events %#x\n", n, n > 0 ? out[0].events : 0);
    waitpid(pid, NULL, 0);
    close(ep);
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    epoll_states();
    stream_echo();
    big_transfer();
    datagrams(SOCK_DGRAM, "dgram");
    datagrams(SOCK_SEQPACKET, "seqpacket");
    eof_and_epipe();
    blocking_wakeups();
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    close(sv[0]);
    pid_t pid = fork();
    if (pid == 0) {
        send(sv[1], "x", 1, 0);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("default SIGPIPE kills the writer: signaled %d by %d\n", WIFSIGNALED(st), WTERMSIG(st));
    return 0;
}
