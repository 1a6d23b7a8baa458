/* eventfd counter semantics; every line is deterministic. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void rd(const char *what, int fd, size_t len) {
    uint64_t buf[2] = {0, 0};
    errno = 0;
    long r = read(fd, buf, len);
    printf("%s: read=%ld errno=%s value=%llu\n", what, r, r < 0 ? strerror(errno) : "-",
           (unsigned long long)buf[0]);
}

static void wr(const char *what, int fd, uint64_t v, size_t len) {
    uint64_t buf[2] = {v, 0};
    errno = 0;
    long r = write(fd, buf, len);
    printf("%s: write=%ld errno=%s\n", what, r, r < 0 ? strerror(errno) : "-");
}

static void pollfd_show(const char *what, int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    int n = poll(&p, 1, 0);
    printf("%s: poll=%d revents=%#x\n", what, n, p.revents);
}

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int late_fd;
static void *late_writer(void *arg) {
    nap(30);
    uint64_t v = (uintptr_t)arg;
    if (write(late_fd, &v, 8) != 8) perror("late write");
    return NULL;
}
static void *late_reader(void *arg) {
    nap(30);
    uint64_t v;
    if (read(late_fd, &v, 8) != 8) perror("late read");
    return NULL;
}

int main(void) {
    int fd = eventfd(3, 0);
    rd("initial", fd, 8);
    wr("add 5", fd, 5, 8);
    wr("add 7 (16-byte buffer)", fd, 7, 16);
    rd("sum", fd, 16);
    rd("short read", fd, 4);
    wr("short write", fd, 1, 4);
    wr("all ones", fd, ~0ULL, 8);
    pollfd_show("empty", fd);
    wr("add 0", fd, 0, 8);
    pollfd_show("still empty", fd);

    struct stat st;
    fstat(fd, &st);
    printf("fstat mode=%o size=%lld\n", st.st_mode, (long long)st.st_size);
    errno = 0;
    printf("lseek=%ld\n", (long)lseek(fd, 0, SEEK_CUR));
    uint64_t v;
    errno = 0;
    long r = pread(fd, &v, 8, 0);
    printf("pread=%ld errno=%s\n", r, strerror(errno));
    printf("getfl=%o getfd=%d\n", fcntl(fd, F_GETFL), fcntl(fd, F_GETFD));
    close(fd);

    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    printf("nonblock getfl=%o getfd=%d\n", fcntl(fd, F_GETFL), fcntl(fd, F_GETFD));
    rd("nonblock empty", fd, 8);
    wr("fill to max", fd, 0xfffffffffffffffeULL, 8);
    pollfd_show("full", fd);
    wr("overflow", fd, 1, 8);
    rd("drain max", fd, 8);
    close(fd);

    fd = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    for (int i = 0; i < 4; i++)
        rd("semaphore", fd, 8);
    wr("semaphore add 2", fd, 2, 8);
    rd("semaphore again", fd, 8);
    close(fd);

    errno = 0;
    int bad = eventfd(0, 0x10);
    printf("bad flags: %d %s\n", bad, strerror(errno));

    /* A blocking read waits for a writer; a blocking write waits for room. */
    late_fd = eventfd(0, 0);
    pthread_t th;
    pthread_create(&th, NULL, late_writer, (void *)42);
    rd("blocking read", late_fd, 8);
    pthread_join(th, NULL);
    wr("to max", late_fd, 0xfffffffffffffffeULL, 8);
    pthread_create(&th, NULL, late_reader, NULL);
    wr("blocking write", late_fd, 9, 8);
    pthread_join(th, NULL);
    rd("after blocking write", late_fd, 8);

    /* The counter is shared with a forked child. */
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t one = 11;
        _exit(write(late_fd, &one, 8) == 8 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child status=%d\n", WEXITSTATUS(status));
    rd("from child", late_fd, 8);
    return 0;
}
