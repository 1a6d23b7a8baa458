/* read()/write()/ftruncate() of a file against its MAP_SHARED mappings, in one process.
 * argv[1]: a directory to create the scratch file in. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096

static int count_char(const char *p, size_t n, char c)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) k += p[i] == c;
    return k;
}

int main(int argc, char **argv)
{
    char path[512];
    snprintf(path, sizeof path, "%s/mm-coherence-%d", argc > 1 ? argv[1] : "/dev/shm", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror("open"); return 1; }
    if (write(fd, "0123456789", 10) != 10) { perror("write"); return 1; }

    /* A mapping wider than the file: the tail of the last page reads zero. */
    char *p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    printf("map: %.10s tail zero: %d\n", p, count_char(p + 10, PG - 10, 0));

    /* write() shows through the existing mapping, including where it extends the file. */
    pwrite(fd, "abc", 3, 2);
    pwrite(fd, "second page", 11, PG + 5);
    printf("after pwrite: %.10s | %.11s | gap zero: %d\n", p, p + PG + 5,
           count_char(p + 10, PG + 5 - 10, 0));

    /* Stores through the mapping show in read(), at once (no msync needed). */
    memcpy(p + 4, "STORED", 6);
    char buf[32] = {0};
    pread(fd, buf, 10, 0);
    printf("pread: %s\n", buf);
    lseek(fd, PG + 5, SEEK_SET);
    p[PG + 5] = 'S';
    memset(buf, 0, sizeof buf);
    read(fd, buf, 11);
    printf("read: %s size: %ld\n", buf, (long)lseek(fd, 0, SEEK_END));

    /* A second descriptor of the same file (opened by name) sees the stores too. */
    int fd2 = open(path, O_RDONLY);
    memset(buf, 0, sizeof buf);
    pread(fd2, buf, 10, 0);
    printf("other fd: %s\n", buf);

    /* msync succeeds on the mapping, and is EINVAL with contradictory flags. */
    printf("msync: %d\n", msync(p, 2 * PG, MS_SYNC));
    int rc = msync(p, PG, MS_SYNC | MS_ASYNC);
    printf("msync both: %d %s\n", rc, strerror(errno));

    /* Truncation zeroes what it cuts; growing again does not bring it back. */
    memset(p, 'A', 2 * PG);
    ftruncate(fd, 100);
    ftruncate(fd, 2 * PG);
    printf("after shrink+grow: A=%d zero=%d\n", count_char(p, 2 * PG, 'A'), count_char(p, 2 * PG, 0));

    /* MAP_PRIVATE made now sees the shared stores; its own stores stay private. */
    char *priv = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("private sees: %c%c\n", priv[0], priv[99]);
    priv[0] = 'P';
    pread(fd, buf, 1, 0);
    printf("file after private store: %c\n", buf[0]);

    /* A read-only descriptor: no writable shared mapping, now or by mprotect. */
    errno = 0;
    char *r = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
    printf("rw map of ro fd: %s\n", r == MAP_FAILED ? strerror(errno) : "mapped");
    r = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd2, 0);
    printf("ro map sees: %c\n", r[0]);
    rc = mprotect(r, PG, PROT_READ | PROT_WRITE);
    printf("mprotect write: %d %s\n", rc, strerror(errno));
    r = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd2, 0);
    printf("private rw map of ro fd: %s\n", r == MAP_FAILED ? "failed" : "mapped");

    /* mremap keeps a shared mapping shared, moved or grown. */
    char *m = mremap(p, 2 * PG, 4 * PG, MREMAP_MAYMOVE);
    if (m == MAP_FAILED) { perror("mremap"); return 1; }
    ftruncate(fd, 4 * PG);
    pwrite(fd, "after mremap", 12, 3 * PG);
    m[1] = 'M';
    pread(fd, buf, 3, 0);
    printf("mremap: %.12s %.3s\n", m + 3 * PG, buf);

    /* A read-only private mapping shows the file's pages, later write()s included; made
     * writable, its stores stay private; MADV_DONTNEED brings the file's bytes back. */
    char *text = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 0);
    pwrite(fd, "late", 4, 8);
    printf("private ro sees write: %.4s\n", text + 8);
    rc = mprotect(text, PG, PROT_READ | PROT_WRITE);
    text[8] = 'L';
    pread(fd, buf, 4, 8);
    printf("mprotect %d, private store: %.4s, file: %.4s\n", rc, text + 8, buf);
    rc = madvise(text, PG, MADV_DONTNEED);
    printf("dontneed %d: %.4s\n", rc, text + 8);
    munmap(text, PG);

    /* Unmapping everything, then mapping again: the data is still the file's. */
    munmap(m, 4 * PG);
    munmap(priv, PG);
    pwrite(fd, "z", 1, 2);
    char *again = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
    printf("mapped again: %.4s\n", again);
    unlink(path);
    return 0;
}
