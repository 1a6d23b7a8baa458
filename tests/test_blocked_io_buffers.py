"""A syscall that waits must copy to/from the buffer as it is mapped when the copy happens.

A thread blocks in read/write/send with a buffer that another thread then unmaps; the
memory is reused by a new mapping filled with a secret. Linux faults (EFAULT, or the count
done so far) and never touches the new mapping; the sentry must do the same, not copy
through views it resolved before the wait (they would alias memory the run now belongs
to: another mapping, another process, a file's cached pages)."""
from conftest import assert_same, compile_c

SRC = r"""
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#define SZ (16 * 4096)
static int fds[2];
static char *buf;
static long result; static int err;
static int mode;     /* 0 read from pipe, 1 write to a full pipe, 2 send on a full socket */

static void *blocker(void *x) {
    errno = 0;
    if (mode == 0) result = read(fds[0], buf, SZ);
    else if (mode == 1) result = write(fds[1], buf, SZ);
    else result = send(fds[1], buf, SZ, 0);
    err = result < 0 ? errno : 0;
    return 0;
}

static char *fresh_secret(void) {
    char *p = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 'S', SZ);
    return p;
}

static void run(int m) {
    mode = m;
    if (m == 2) socketpair(AF_UNIX, SOCK_STREAM, 0, fds); else pipe(fds);
    if (m) {       /* fill the pipe/socket so the writer blocks */
        char junk[4096]; memset(junk, 'j', sizeof junk);
        fcntl(fds[1], F_SETFL, O_NONBLOCK);
        while (write(fds[1], junk, sizeof junk) > 0)
            ;
        fcntl(fds[1], F_SETFL, 0);
    }
    buf = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(buf, 'B', SZ);
    pthread_t th; pthread_create(&th, 0, blocker, 0);
    usleep(200000);
    munmap(buf, SZ);
    mmap(buf, SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    char *secret = fresh_secret();
    long secrets_seen = 0, xs = 0;
    if (m == 0) {
        char msg[4096]; memset(msg, 'X', sizeof msg);
        write(fds[1], msg, sizeof msg);
        pthread_join(th, 0);
        for (int i = 0; i < SZ; i++) xs += secret[i] == 'X';
    } else {
        /* drain everything the writer manages to send */
        char in[4096];
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        for (int idle = 0; idle < 100; idle++) {
            ssize_t n = read(fds[0], in, sizeof in);
            if (n > 0) { for (int i = 0; i < n; i++) secrets_seen += in[i] == 'S'; idle = 0; }
            else usleep(2000);
        }
        pthread_join(th, 0);
    }
    printf("mode %d: result %s errno %d; new mapping overwritten %ld; secret bytes sent %ld\n",
           m, result < 0 ? "-1" : result == 0 ? "0" : "short-or-full", err, xs, secrets_seen);
    close(fds[0]); close(fds[1]);
}

int main(void) { run(0); run(1); run(2); return 0; }
"""


def test_blocked_io_does_not_copy_through_unmapped_buffers():
    assert_same([compile_c(SRC, extra=("-pthread",))])
