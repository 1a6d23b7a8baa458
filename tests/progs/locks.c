/* fcntl record locks, OFD locks and flock between processes. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/wait.h>

static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

int main(void) {
    char path[] = "/dev/shm/pysentry-locks-XXXXXX";
    int fd = mkstemp(path);
    write(fd, "0123456789", 10);
    int p2c[2], c2p[2]; pipe(p2c); pipe(c2p);
    printf("parent wrlck 0-4: %d\n", setlk(fd, F_SETLK, F_WRLCK, 0, 5));
    printf("parent rdlck 7-: %d\n", setlk(fd, F_SETLK, F_RDLCK, 7, 0));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        int cfd = open(path, O_RDWR);
        printf("child wrlck 2-3: %s\n", strerror(setlk(cfd, F_SETLK, F_WRLCK, 2, 2)));
        printf("child rdlck 8-9: %d\n", setlk(cfd, F_SETLK, F_RDLCK, 8, 2));
        printf("child wrlck 8-9: %s\n", strerror(setlk(cfd, F_SETLK, F_WRLCK, 8, 2)));
        printf("child wrlck 5-6: %d\n", setlk(cfd, F_SETLK, F_WRLCK, 5, 2));
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        fcntl(cfd, F_GETLK, &q);
        printf("getlk type %d start %ld len %ld pid_is_parent %d\n", q.l_type, (long)q.l_start,
               (long)q.l_len, q.l_pid == getppid());
        fflush(stdout);
        write(c2p[1], "x", 1);
        /* Blocks until the parent closes its fd (which drops all its POSIX locks). */
        printf("child waits: %d\n", setlk(cfd, F_SETLKW, F_WRLCK, 0, 5));
        int ofd = open(path, O_RDWR);
        struct flock o = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        printf("ofd lock 0 (held by own posix lock owner? no: OFD is separate): %s\n",
               strerror(fcntl(ofd, F_OFD_SETLK, &o) == 0 ? 0 : errno));
        printf("flock ex nb: %s\n", strerror(flock(cfd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno));
        fflush(stdout);
        write(c2p[1], "y", 1);
        char b; read(p2c[0], &b, 1);
        return 0;
    }
    char b; read(c2p[0], &b, 1);
    int fd2 = open(path, O_RDONLY);
    close(fd2);      /* closing ANY fd of the file drops this process's locks */
    read(c2p[0], &b, 1);
    int pfd = open(path, O_RDWR);
    printf("parent flock ex nb: %s\n", strerror(flock(pfd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno));
    printf("parent flock sh nb: %s\n", strerror(flock(pfd, LOCK_SH | LOCK_NB) == 0 ? 0 : errno));
    write(p2c[1], "z", 1);
    waitpid(c, 0, 0);
    printf("after child exit flock ex nb: %s\n", strerror(flock(pfd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno));
    unlink(path);
    return 0;
}
