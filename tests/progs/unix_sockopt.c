/* Socket options, socket() argument checking, file-level behaviour of sockets
   (fstat, fcntl, lseek, ioctl), receive timeouts and MSG_WAITALL. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { (void)sig; alarms++; }

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

static void show_int(int fd, int name, const char *label) {
    int v = -12345;
    socklen_t l = sizeof v;
    int r = getsockopt(fd, SOL_SOCKET, name, &v, &l);
    if (r < 0) printf("  %-14s %s\n", label, err(r));
    else printf("  %-14s %d (len %d)\n", label, v, l);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_RAW};
    const char *names[] = {"stream", "dgram", "seqpacket", "raw"};
    for (int i = 0; i < 4; i++) {
        int s = socket(AF_UNIX, types[i], 0);
        printf("%s:\n", names[i]);
        show_int(s, SO_TYPE, "SO_TYPE");
        show_int(s, SO_DOMAIN, "SO_DOMAIN");
        show_int(s, SO_PROTOCOL, "SO_PROTOCOL");
        show_int(s, SO_ACCEPTCONN, "SO_ACCEPTCONN");
        show_int(s, SO_SNDBUF, "SO_SNDBUF");
        show_int(s, SO_RCVBUF, "SO_RCVBUF");
        show_int(s, SO_ERROR, "SO_ERROR");
        show_int(s, SO_PASSCRED, "SO_PASSCRED");
        show_int(s, SO_KEEPALIVE, "SO_KEEPALIVE");
        show_int(s, SO_RCVLOWAT, "SO_RCVLOWAT");
        close(s);
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    int v;
    socklen_t l;
    printf("setting options:\n");
    v = 4096; setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v); show_int(s, SO_SNDBUF, "SNDBUF 4096");
    v = 1; setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v); show_int(s, SO_SNDBUF, "SNDBUF 1");
    v = 100000; setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v); show_int(s, SO_RCVBUF, "RCVBUF 100000");
    v = 1; setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v); show_int(s, SO_RCVBUF, "RCVBUF 1");
    v = 5; setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, sizeof v); show_int(s, SO_REUSEADDR, "REUSEADDR 5");
    v = 1; setsockopt(s, SOL_SOCKET, SO_PASSCRED, &v, sizeof v); show_int(s, SO_PASSCRED, "PASSCRED 1");
    v = 7; setsockopt(s, SOL_SOCKET, SO_PRIORITY, &v, sizeof v); show_int(s, SO_PRIORITY, "PRIORITY 7");
    struct linger lg = {1, 30};
    printf("  SO_LINGER set -> %s\n", err(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg)));
    memset(&lg, 0, sizeof lg);
    l = sizeof lg;
    getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &l);
    printf("  SO_LINGER get %d %d len %d\n", lg.l_onoff, lg.l_linger, l);
    struct ucred uc;
    l = sizeof uc;
    getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &l);
    printf("  unconnected SO_PEERCRED %d %d %d len %d\n", uc.pid, (int)uc.uid, (int)uc.gid, l);
    short sh = 0;
    l = sizeof sh;
    printf("  2-byte SO_TYPE -> %s", err(getsockopt(s, SOL_SOCKET, SO_TYPE, &sh, &l)));
    printf(" value %d len %d\n", sh, l);
    l = -1;
    printf("  negative optlen -> %s\n", err(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &l)));
    l = sizeof v;
    printf("  unknown option -> %s\n", err(getsockopt(s, SOL_SOCKET, 9999, &v, &l)));
    printf("  level SOL_TCP -> %s\n", err(getsockopt(s, 6, 1, &v, &l)));
    printf("  set level SOL_TCP -> %s\n", err(setsockopt(s, 6, 1, &v, sizeof v)));
    printf("  set SO_TYPE -> %s\n", err(setsockopt(s, SOL_SOCKET, SO_TYPE, &v, sizeof v)));
    printf("  set with optlen 2 -> %s\n", err(setsockopt(s, SOL_SOCKET, SO_PASSCRED, &v, 2)));
    printf("  set with optlen -1 -> %s\n", err(setsockopt(s, SOL_SOCKET, SO_PASSCRED, &v, -1)));
    struct timeval tv = {1, 500000};
    printf("  SO_SNDTIMEO 1.5s -> %s", err(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv)));
    memset(&tv, 0, sizeof tv);
    l = sizeof tv;
    getsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, &l);
    printf(", reads back %ld.%06ld len %d\n", (long)tv.tv_sec, (long)tv.tv_usec, l);
    tv.tv_usec = 1000000;
    printf("  usec out of range -> %s\n", err(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)));
    printf("  short timeval -> %s\n", err(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, 8)));
    close(s);

    printf("socket() arguments:\n");
    printf("  protocol 2 -> %s\n", err(socket(AF_UNIX, SOCK_STREAM, 2)));
    printf("  protocol PF_UNIX -> %s\n", err(s = socket(AF_UNIX, SOCK_STREAM, PF_UNIX)));
    close(s);
    printf("  SOCK_RDM -> %s\n", err(socket(AF_UNIX, SOCK_RDM, 0)));
    printf("  type 15 -> %s\n", err(socket(AF_UNIX, 15, 0)));
    printf("  unknown flag -> %s\n", err(socket(AF_UNIX, SOCK_STREAM | 0x100, 0)));
    printf("  family 999 -> %s\n", err(socket(999, SOCK_STREAM, 0)));
    printf("  family -1 -> %s\n", err(socket(-1, SOCK_STREAM, 0)));
    int sv[2];
    printf("  socketpair AF_INET -> %s\n", err(socketpair(AF_INET, SOCK_STREAM, 0, sv)));
    printf("  socketpair family 999 -> %s\n", err(socketpair(999, SOCK_STREAM, 0, sv)));

    printf("as a file:\n");
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    printf("  F_GETFL %#x F_GETFD %d\n", fcntl(s, F_GETFL), fcntl(s, F_GETFD));
    struct stat st;
    fstat(s, &st);
    printf("  fstat: socket %d mode %o size %ld nlink %ld blksize %ld\n", S_ISSOCK(st.st_mode), st.st_mode & 07777,
           (long)st.st_size, (long)st.st_nlink, (long)st.st_blksize);
    printf("  lseek -> %s\n", err(lseek(s, 0, SEEK_SET)));
    char buf[64];
    printf("  pread -> %s\n", err(pread(s, buf, 1, 0)));
    int p[2];
    pipe(p);
    l = sizeof v;
    printf("  getsockopt on a pipe -> %s\n", err(getsockopt(p[0], SOL_SOCKET, SO_TYPE, &v, &l)));
    printf("  getsockname on a pipe -> %s\n", err(getsockname(p[0], (struct sockaddr *)buf, &l)));
    printf("  send on a bad fd -> %s\n", err(send(999, "x", 1, 0)));
    close(s);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    send(sv[0], "abc", 3, 0);
    send(sv[0], "de", 2, 0);
    int q = -1;
    ioctl(sv[1], FIONREAD, &q);
    printf("  FIONREAD %d", q);
    ioctl(sv[0], TIOCOUTQ, &q);
    printf(", SIOCOUTQ of the sender %d", q);
    recv(sv[1], buf, 4, 0);
    ioctl(sv[1], FIONREAD, &q);
    printf(", after reading 4: %d\n", q);
    recv(sv[1], buf, sizeof buf, 0);

    printf("waiting:\n");
    tv.tv_sec = 0;
    tv.tv_usec = 100000;
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    printf("  recv with a 0.1s timeout -> %s\n", err(recv(sv[1], buf, sizeof buf, 0)));
    tv.tv_usec = 0;
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* A signal interrupts a blocked receive: EINTR without SA_RESTART; with it the call
       restarts, unless a receive timeout is set (Linux's sock_intr_errno). */
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
    ssize_t r = recv(sv[1], buf, sizeof buf, 0);
    printf("  interrupted recv -> %s, alarms %d\n", err(r), (int)alarms);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(200000);
        send(sv[0], "late", 4, 0);
        _exit(0);
    }
    setitimer(ITIMER_REAL, &it, NULL);
    ssize_t n = recv(sv[1], buf, sizeof buf, 0);
    printf("  with SA_RESTART -> %zd %.*s, alarms %d\n", n, (int)n, buf, (int)alarms);
    waitpid(pid, NULL, 0);
    tv.tv_sec = 5;
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setitimer(ITIMER_REAL, &it, NULL);
    r = recv(sv[1], buf, sizeof buf, 0);
    printf("  with SA_RESTART and a timeout -> %s, alarms %d\n", err(r), (int)alarms);
    tv.tv_sec = 0;
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 4; i++) { usleep(10000); send(sv[0], "chunk", 5, 0); }
        _exit(0);
    }
    n = recv(sv[1], buf, 20, MSG_WAITALL);
    printf("  MSG_WAITALL for 20 bytes sent in 4 pieces -> %zd %.*s\n", n, (int)n, buf);
    waitpid(pid, NULL, 0);
    send(sv[0], "tail", 4, 0);
    shutdown(sv[0], SHUT_WR);
    n = recv(sv[1], buf, 20, MSG_WAITALL);
    printf("  MSG_WAITALL stops at end of file -> %zd\n", n);
    return 0;
}
