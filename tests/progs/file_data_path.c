/* Edge cases of the file data path, printed so that a sandbox run can be compared with
 * native Linux: reads spanning VMAs, short reads at EOF, partly unmapped buffers, reads
 * and writes through copy-on-write pages after fork, shared-mapping coherence. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
static unsigned sum(const unsigned char *p, size_t n) {
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}
static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7 + (i >> 12));
}
static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

int main(int argc, char **argv) {
    const char *path = argv[1];
    size_t fsize = (size_t)atol(argv[2]);
    unsigned char *data = malloc(fsize);
    fill(data, fsize, 3);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    /* write from a buffer spanning two VMAs with different protections */
    unsigned char *two = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(two, data, 4 * PG);
    mprotect(two + 2 * PG, 2 * PG, PROT_READ);
    show("write across VMAs", pwrite(fd, two + 100, 4 * PG - 200, 0));
    show("write rest", pwrite(fd, data + 4 * PG - 100, fsize - (4 * PG - 100), 4 * PG - 100));
    show("rewrite head", pwrite(fd, data, 4 * PG, 0));
    /* read into a buffer spanning two VMAs */
    mprotect(two + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE | PROT_EXEC);
    memset(two, 0, 4 * PG);
    show("read across VMAs", pread(fd, two + 1, 4 * PG - 1, 5));
    printf("sum %08x %08x\n", sum(two + 1, 4 * PG - 1), sum(data + 5, 4 * PG - 1));
    /* short read at EOF, read at and past EOF */
    unsigned char *big = malloc(3 * PG);
    show("read at tail", pread(fd, big, 3 * PG, fsize - 1000));
    printf("sum %08x %08x\n", sum(big, 1000), sum(data + fsize - 1000, 1000));
    show("read at EOF", pread(fd, big, 10, fsize));
    show("read past EOF", pread(fd, big, 10, fsize + 12345));
    /* buffer whose second half is unmapped / read-only */
    unsigned char *half = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(half + PG, PG);
    show("read into unmapped tail", pread(fd, half, 2 * PG, 0));
    show("read into fully unmapped", pread(fd, half + PG, 100, 0));
    show("read near unmapped tail", pread(fd, half + PG - 10, 100, 0));
    mprotect(half, PG, PROT_READ);
    show("read into read-only", pread(fd, half, 100, 0));
    show("write from unmapped", pwrite(fd, half + PG, 100, 0));
    show("write from unmapped tail", pwrite(fd, half, 2 * PG, 0));
    show("write at unmapped tail", pwrite(fd, half + PG - 10, 100, 0));
    /* copy-on-write after fork: the child reads into and writes from shared-COW pages */
    unsigned char *cow = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(cow, 'p', 4 * PG);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long r = pread(fd, cow + 10, 2 * PG, 7);
        printf("child read %ld sum %08x %08x\n", r, sum(cow + 10, 2 * PG), sum(data + 7, 2 * PG));
        memset(cow + 3 * PG, 'c', PG);
        r = pwrite(fd, cow + 3 * PG - 50, 100, 1);
        printf("child wrote %ld\n", r);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    unsigned char expect[4 * PG];
    memset(expect, 'p', sizeof expect);
    printf("parent untouched: %d\n", memcmp(cow, expect, 4 * PG) == 0);
    unsigned char back[100];
    pread(fd, back, 100, 1);
    printf("child's write: %.50s|%.50s\n", back, back + 50);
    /* parent writes from a page still shared with nobody, then reads into it */
    show("parent read into cow", pread(fd, cow, 4 * PG, 0));
    printf("sum %08x\n", sum(cow, 4 * PG));
    /* a MAP_SHARED mapping sees write(), and read() sees stores through it */
    unsigned char *sh = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sh == MAP_FAILED) { perror("mmap"); return 1; }
    pwrite(fd, "written", 7, 100);
    printf("mapping sees write: %.7s\n", sh + 100);
    memcpy(sh + PG + 5, "stored", 6);
    char got[7] = {0};
    pread(fd, got, 6, PG + 5);
    printf("read sees store: %s\n", got);
    /* read() into the shared mapping of the same file */
    show("read into own mapping", pread(fd, sh, PG, PG));
    printf("sum %08x\n", sum(sh, 16));
    /* readv/writev with many iovecs and a zero-length one */
    struct iovec iov[5];
    unsigned char bufs[5][1000];
    for (int i = 0; i < 5; i++) { iov[i].iov_base = bufs[i]; iov[i].iov_len = i == 2 ? 0 : 1000; }
    show("preadv", preadv(fd, iov, 5, 3 * PG));
    printf("sum %08x %08x\n", sum(bufs[0], 1000), sum(bufs[4], 1000));
    /* a vector whose later buffers are unmapped: a short transfer, as far as memory goes */
    unsigned char *gap = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gap + PG, PG);
    struct iovec bad[3] = {{gap, 100}, {gap + PG - 50, 100}, {gap + 2 * PG, 100}};
    show("preadv into hole", preadv(fd, bad, 3, 0));
    show("pwritev from hole", pwritev(fd, bad, 3, 50));
    struct iovec first_bad[2] = {{gap + PG, 100}, {gap, 100}};
    show("preadv first unmapped", preadv(fd, first_bad, 2, 0));
    struct iovec neg[2] = {{gap + PG, 100}, {gap, (size_t)-1}};
    show("preadv bad length", preadv(fd, neg, 2, 0));
    show("lseek end", lseek(fd, 0, SEEK_END));
    show("read at pos end", read(fd, big, 100));
    show("lseek set", lseek(fd, fsize - 10, SEEK_SET));
    show("read short", read(fd, big, 100));
    show("lseek cur", lseek(fd, 0, SEEK_CUR));
    struct stat sb; fstat(fd, &sb);
    printf("size %ld\n", (long)sb.st_size);
    close(fd);
    unlink(path);
    return 0;
}
