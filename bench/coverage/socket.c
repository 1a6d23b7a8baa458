/* AF_UNIX sockets (the socket family pysentry serves inside the kernel). */
#include "cov.h"
#include <sys/socket.h>
#include <sys/un.h>

int main(void) {
    setup("socket");
    int sv[2];
    R(socketpair, "AF_UNIX SOCK_STREAM", SC(socketpair, AF_UNIX, SOCK_STREAM, 0, sv));
    int inet[2];
    R(socketpair, "AF_INET refused", SC(socketpair, AF_INET, SOCK_STREAM, 0, inet));
    char buf[64];
    R(sendto, "stream", SC(sendto, sv[0], "hello", 5, 0, NULL, 0));
    R(recvfrom, "stream", SC(recvfrom, sv[1], buf, sizeof buf, 0, NULL, NULL));
    R(recvfrom, "MSG_DONTWAIT empty", SC(recvfrom, sv[1], buf, sizeof buf, MSG_DONTWAIT, NULL, NULL));
    struct iovec iov = {"msg", 3};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    R(sendmsg, "stream", SC(sendmsg, sv[1], &mh, 0));
    char in[8] = {0};
    struct iovec riov = {in, sizeof in};
    struct msghdr rmh = {.msg_iov = &riov, .msg_iovlen = 1};
    R(recvmsg, "stream", SC(recvmsg, sv[0], &rmh, 0));
    SAY(recvmsg, "data", "%.3s", in);
    /* SCM_RIGHTS: pass a pipe's write end */
    int p[2];
    pipe(p);
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct msghdr fmh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&fmh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
    R(sendmsg, "SCM_RIGHTS", SC(sendmsg, sv[0], &fmh, 0));
    char rc[CMSG_SPACE(sizeof(int))];
    struct msghdr rfm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rc, .msg_controllen = sizeof rc};
    R(recvmsg, "SCM_RIGHTS", SC(recvmsg, sv[1], &rfm, 0));
    struct cmsghdr *got = CMSG_FIRSTHDR(&rfm);
    int passed = -1;
    if (got && got->cmsg_type == SCM_RIGHTS) memcpy(&passed, CMSG_DATA(got), sizeof(int));
    SAY(recvmsg, "passed fd writes the pipe", "%s", YES(passed >= 0 && write(passed, "Z", 1) == 1 && read(p[0], buf, 1) == 1 && buf[0] == 'Z'));
    R(shutdown, "SHUT_WR", SC(shutdown, sv[0], SHUT_WR));
    R(recvfrom, "EOF after peer SHUT_WR", SC(recvfrom, sv[1], buf, sizeof buf, 0, NULL, NULL));
    R(shutdown, "bad how", SC(shutdown, sv[0], 7));
    R(shutdown, "not a socket", SC(shutdown, p[0], SHUT_RD));

    /* listening socket on a path */
    int ls = SC(socket, AF_UNIX, SOCK_STREAM, 0);
    SAY(socket, "AF_UNIX SOCK_STREAM", "%s", ls >= 0 ? "fd" : ename(errno));
    R(socket, "bad family", SC(socket, 12345, SOCK_STREAM, 0));
    R(socket, "bad type", SC(socket, AF_UNIX, 99, 0));
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%.90s/sock", scratch);
    R(bind, "path", SC(bind, ls, &addr, sizeof addr));
    int other = socket(AF_UNIX, SOCK_STREAM, 0);
    R(bind, "path in use", SC(bind, other, &addr, sizeof addr));
    R(listen, "backlog 4", SC(listen, ls, 4));
    R(listen, "not a socket", SC(listen, p[0], 4));
    int cs = SC(socket, AF_UNIX, SOCK_STREAM, 0);
    R(connect, "to the listener", SC(connect, cs, &addr, sizeof addr));
    struct sockaddr_un missing = {.sun_family = AF_UNIX, .sun_path = "/nonexistent/sock"};
    R(connect, "missing path", SC(connect, other, &missing, sizeof missing));
    int cs2 = SC(socket, AF_UNIX, SOCK_STREAM, 0);
    SC(connect, cs2, &addr, sizeof addr);
    struct sockaddr_un peer;
    socklen_t plen = sizeof peer;
    int as0 = SC(accept, ls, &peer, &plen);
    SAY(accept, "connection", "%s", as0 >= 0 ? "fd" : ename(errno));
    SAY(accept, "peer address family", "%d", peer.sun_family);
    R(accept, "not listening", SC(accept, cs2, NULL, NULL));
    int as = SC(accept4, ls, NULL, NULL, SOCK_CLOEXEC);
    SAY(accept4, "connection", "%s", as >= 0 ? "fd" : ename(errno));
    R(accept4, "bad flags", SC(accept4, ls, NULL, NULL, 0x1));
    struct sockaddr_un name;
    socklen_t len = sizeof name;
    R(getsockname, "listener", SC(getsockname, ls, &name, &len));
    SAY(getsockname, "path tail", "%s", strrchr(name.sun_path, '/') ? strrchr(name.sun_path, '/') : "none");
    len = sizeof name;
    R(getpeername, "client", SC(getpeername, cs, &name, &len));
    SAY(getpeername, "path tail", "%s", strrchr(name.sun_path, '/') ? strrchr(name.sun_path, '/') : "none");
    R(getpeername, "unconnected", SC(getpeername, ls, &name, &len));
    int v = 0;
    socklen_t vl = sizeof v;
    R(getsockopt, "SO_TYPE", SC(getsockopt, cs, SOL_SOCKET, SO_TYPE, &v, &vl));
    SAY(getsockopt, "SO_TYPE value", "%d", v);
    R(getsockopt, "SO_ERROR", SC(getsockopt, cs, SOL_SOCKET, SO_ERROR, &v, &vl));
    v = 65536;
    R(setsockopt, "SO_SNDBUF", SC(setsockopt, cs, SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
    R(setsockopt, "bad level", SC(setsockopt, cs, 12345, 1, &v, sizeof v));
    R(setsockopt, "short optlen", SC(setsockopt, cs, SOL_SOCKET, SO_SNDBUF, &v, 1));

    /* datagrams */
    int dg[2];
    R(socketpair, "AF_UNIX SOCK_DGRAM", SC(socketpair, AF_UNIX, SOCK_DGRAM, 0, dg));
    SC(sendto, dg[0], "one", 3, 0, NULL, 0);
    SC(sendto, dg[0], "three", 5, 0, NULL, 0);
    R(recvfrom, "datagram boundaries", SC(recvfrom, dg[1], buf, sizeof buf, 0, NULL, NULL));
    R(recvfrom, "truncated datagram", SC(recvfrom, dg[1], buf, 2, 0, NULL, NULL));
    /* sendmmsg / recvmmsg */
    struct iovec v1 = {"aa", 2}, v2 = {"bbb", 3};
    struct mmsghdr out[2] = {{.msg_hdr = {.msg_iov = &v1, .msg_iovlen = 1}},
                             {.msg_hdr = {.msg_iov = &v2, .msg_iovlen = 1}}};
    R(sendmmsg, "two datagrams", SC(sendmmsg, dg[0], out, 2, 0));
    SAY(sendmmsg, "lengths", "%u %u", out[0].msg_len, out[1].msg_len);
    char r1[8], r2[8];
    struct iovec w1 = {r1, sizeof r1}, w2 = {r2, sizeof r2};
    struct mmsghdr in2[2] = {{.msg_hdr = {.msg_iov = &w1, .msg_iovlen = 1}},
                             {.msg_hdr = {.msg_iov = &w2, .msg_iovlen = 1}}};
    R(recvmmsg, "two datagrams", SC(recvmmsg, dg[1], in2, 2, 0, NULL));
    SAY(recvmmsg, "lengths and data", "%u %u %.2s %.3s", in2[0].msg_len, in2[1].msg_len, r1, r2);
    R(recvmmsg, "nothing queued, MSG_DONTWAIT", SC(recvmmsg, dg[1], in2, 2, MSG_DONTWAIT, NULL));
    R(sendmmsg, "not a socket", SC(sendmmsg, p[0], out, 1, 0));
    return 0;
}
