/* Bad arguments from the program: bad pointers, lengths and counts must give the
   errno Linux gives, never anything worse. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BAD ((void *)16)
static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }
#define TRY(expr) printf("%-62s -> %s\n", #expr, err((long)(expr)))

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    char buf[64];
    socklen_t len = 4;
    int v = 1;
    TRY(recv(sv[0], NULL, 10, 0));
    TRY(send(sv[1], "x", 1, 0));
    TRY(recv(sv[0], BAD, 10, 0));
    TRY(send(sv[1], BAD, 10, 0));
    TRY(sendmsg(sv[1], NULL, 0));
    TRY(recvmsg(sv[0], BAD, 0));
    struct iovec io = {buf, 4};
    struct msghdr m = {0};
    m.msg_iov = NULL;
    m.msg_iovlen = 1;
    TRY(sendmsg(sv[1], &m, 0));
    m.msg_iov = &io;
    m.msg_iovlen = 1025;
    TRY(sendmsg(sv[1], &m, 0));
    TRY(recvmsg(sv[0], &m, 0));
    m.msg_iovlen = 1;
    m.msg_name = buf;
    m.msg_namelen = -1;
    TRY(sendmsg(sv[1], &m, 0));
    m.msg_name = NULL;
    m.msg_namelen = 0;
    m.msg_control = BAD;
    m.msg_controllen = 16;
    TRY(sendmsg(sv[1], &m, 0));
    m.msg_control = NULL;
    m.msg_controllen = 0;
    struct iovec huge = {buf, (size_t)SSIZE_MAX + 1};
    m.msg_iov = &huge;
    TRY(sendmsg(sv[1], &m, 0));
    TRY(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, NULL));
    TRY(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, NULL, &len));
    TRY(setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, NULL, 4));
    TRY(getsockname(sv[0], NULL, &len));
    len = 0;
    TRY(getsockname(sv[0], NULL, &len));
    TRY(getsockname(sv[0], (struct sockaddr *)buf, NULL));
    TRY(getpeername(sv[0], (struct sockaddr *)buf, BAD));
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    TRY(connect(s, NULL, sizeof(struct sockaddr_un)));
    TRY(bind(s, BAD, sizeof(struct sockaddr_un)));
    TRY(connect(s, (struct sockaddr *)buf, 129));
    TRY(connect(s, (struct sockaddr *)buf, -1));
    TRY(bind(s, (struct sockaddr *)buf, 0));
    TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, NULL));
    TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, BAD));
    TRY(shutdown(sv[0], -1));
    TRY(sendto(sv[1], "y", 1, 0, NULL, 10));
    TRY(recvfrom(sv[0], buf, sizeof buf, 0, (struct sockaddr *)buf, NULL));
    TRY(sendmmsg(sv[1], NULL, 1, 0));
    TRY(sendmmsg(sv[1], NULL, 0, 0));
    TRY(recvmmsg(sv[0], BAD, 1, 0, NULL));
    struct timespec ts = {0, 2000000000L};
    struct mmsghdr mm = {0};
    TRY(recvmmsg(sv[0], &mm, 1, 0, &ts));
    TRY(listen(sv[0], 5));
    TRY(accept(sv[0], NULL, NULL));
    TRY(accept4(sv[0], NULL, NULL, -1));
    TRY(send(-1, "x", 1, 0));
    TRY(send(1 << 20, "x", 1, 0));
    return 0;
}
