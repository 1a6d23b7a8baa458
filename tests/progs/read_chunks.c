/* Reads bigger than the sentry's first read chunk (1 MiB): whole, cut short by an
 * unmapped tail, reaching past user space, iovec totals past MAX_RW_COUNT, and after a
 * fork (copy-on-write buffers). Prints what each returned and checksums of the bytes.
 *   read_chunks PATH */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1L << 20)
static const long SIZE = 3 * MiB + 5;

static uint64_t sum(const unsigned char *p, long n) {
    uint64_t h = 1469598103934665603ULL;
    for (long i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void show(const char *what, long r, const unsigned char *buf) {
    if (r < 0) printf("%s: -1 %s\n", what, strerror(errno));
    /* The first MiB at most: every buffer here has that much mapped. */
    else printf("%s: %ld %016llx\n", what, r, (unsigned long long)sum(buf, r < MiB ? r : MiB));
}

int main(int argc, char **argv) {
    const char *path = argv[1];
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0) { perror("open"); return 1; }
    unsigned char *data = malloc(SIZE);
    for (long i = 0; i < SIZE; i++) data[i] = (unsigned char)(i * 7 + i / 4096);
    if (write(fd, data, SIZE) != SIZE) { perror("write"); return 1; }

    /* At a fixed low address, so that every buffer below lies where the test wants it
     * relative to the top of user space, natively and in the sandbox alike. */
    long big = 8 * MiB;
    unsigned char *buf = mmap((void *)0x10000000UL, big, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (buf != (void *)0x10000000UL) { perror("mmap"); return 1; }
    memset(buf, 0xee, big);
    show("pread whole into 8 MiB", pread(fd, buf, big, 0), buf);
    printf("bytes after the data untouched: %d\n", buf[SIZE] == 0xee && buf[big - 1] == 0xee);
    show("pread tail", pread(fd, buf, big, SIZE - 100), buf);
    lseek(fd, 5, SEEK_SET);
    show("read from 5", read(fd, buf, big), buf);
    printf("position after: %ld\n", (long)lseek(fd, 0, SEEK_CUR));

    /* A buffer whose last 6 MiB are unmapped: the bytes before the fault arrive. */
    munmap(buf + 2 * MiB, 6 * MiB);
    show("pread into 2 MiB mapped of 8", pread(fd, buf, big, 0), buf);
    lseek(fd, 0, SEEK_SET);
    show("read into 2 MiB mapped of 8", read(fd, buf, big), buf);
    printf("position after: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    show("pread at the unmapped part", pread(fd, buf + 2 * MiB, MiB, 0), buf);

    /* Reaching past the top of user space: EFAULT before anything is read. */
    unsigned char *top = (unsigned char *)0x7ffffffff000UL - 2 * MiB;
    show("pread past user space", pread(fd, top, 4 * MiB, 0), buf);

    /* iovecs whose total is past MAX_RW_COUNT are cut to it (Linux's import_iovec). */
    struct iovec iov[3] = {{buf, MiB}, {buf, 0x7ffff000}, {buf, 0x7ffff000}};
    show("preadv total past MAX_RW_COUNT", preadv(fd, iov, 3, 0), buf);
    struct iovec high[2] = {{buf, MiB}, {top, 0x7ffff000}};
    show("preadv second buffer past user space", preadv(fd, high, 2, 0), buf);
    struct iovec bad[2] = {{buf, MiB}, {buf, (size_t)1 << 63}};
    show("preadv length with bit 63", preadv(fd, bad, 2, 0), buf);

    /* After a fork, a read into a private buffer breaks copy-on-write only in the
     * child; the parent keeps its bytes. */
    unsigned char *cow = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(cow, 0x11, 4 * MiB);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        show("child pread 4 MiB", pread(fd, cow, 4 * MiB, 0), cow);
        printf("child tail kept: %d\n", cow[4 * MiB - 1] == 0x11);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("parent untouched: %d\n", cow[0] == 0x11 && cow[SIZE - 1] == 0x11);
    close(fd);
    unlink(path);
    return 0;
}
