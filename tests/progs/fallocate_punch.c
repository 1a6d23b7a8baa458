/* fallocate PUNCH_HOLE and ZERO_RANGE on a file in the directory argv[1]: what a program
 * sees afterwards (st_blocks, the bytes through read(2) and through shared and read-only
 * private mappings made before and after the punch, SEEK_DATA/SEEK_HOLE), for a file of
 * a few pages and one past a megabyte. Prints no path, so the output of a tmpfs or a
 * volume in the sandbox compares with the same filesystem type natively. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG 4096L

static long blocks(int fd)
{
    struct stat st;
    fstat(fd, &st);
    return (long)st.st_blocks;
}

static long size_of(int fd)
{
    struct stat st;
    fstat(fd, &st);
    return (long)st.st_size;
}

static void ret(const char *what, int r)
{
    printf("%s: %s\n", what, r == 0 ? "ok" : strerror(errno));
}

/* One letter per page: 'Z' all zeros, 'A' all the written pattern, 'C' holds the stores
 * made through the mapping, 'M' mixed (zeros and pattern). */
static void pages(const char *what, const unsigned char *p, long n)
{
    printf("%s: ", what);
    for (long off = 0; off < n; off += PG) {
        long end = off + PG < n ? off + PG : n;
        int zero = 0, pat = 0, cd = 0;
        for (long i = off; i < end; i++) {
            zero += p[i] == 0;
            pat += p[i] == 0xab;
            cd += p[i] == 0xcd;
        }
        putchar(cd ? 'C' : zero == end - off ? 'Z' : pat == end - off ? 'A' : 'M');
    }
    putchar('\n');
}

static void extents(int fd)
{
    long pos = 0, end = size_of(fd);
    printf("data:");
    while (pos < end) {
        off_t a = lseek(fd, pos, SEEK_DATA);
        if (a < 0)
            break;
        off_t b = lseek(fd, a, SEEK_HOLE);
        printf(" [%ld,%ld)", (long)a / PG, (long)(b + PG - 1) / PG);
        pos = b;
    }
    printf("\n");
}

/* What read(2), fstat and SEEK_DATA show; no mapping is touched (reading a hole through
 * a shared mapping of a tmpfs file allocates its page, which would move st_blocks). */
static void check(const char *tag, int fd, long n)
{
    unsigned char *buf = malloc(n);
    printf("%s: blocks %ld size %ld\n", tag, blocks(fd), size_of(fd));
    extents(fd);
    long got = pread(fd, buf, n, 0);
    printf("  read %ld\n", got);
    pages("  read  ", buf, n);
    free(buf);
}

/* The mappings made before the punches, and a new one, against read(2). */
static void views(int fd, long n, const unsigned char *shared, const unsigned char *private)
{
    unsigned char *buf = malloc(n);
    pread(fd, buf, n, 0);
    printf("  shared view %s read\n", memcmp(shared, buf, n) ? "differs from" : "matches");
    printf("  private view %s read\n", memcmp(private, buf, n) ? "differs from" : "matches");
    unsigned char *fresh = mmap(0, n, PROT_READ, MAP_SHARED, fd, 0);
    printf("  new view %s read\n", memcmp(fresh, buf, n) ? "differs from" : "matches");
    munmap(fresh, n);
    free(buf);
}

static void one(const char *dir, long n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/punch-%ld", dir, n);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) {
        perror("open");
        exit(1);
    }
    unlink(path);
    printf("== %ld bytes\n", n);
    unsigned char *pat = malloc(n);
    memset(pat, 0xab, n);
    if (pwrite(fd, pat, n, 0) != n) {
        perror("pwrite");
        exit(1);
    }
    unsigned char *shared = mmap(0, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const unsigned char *private = mmap(0, n, PROT_READ, MAP_PRIVATE, fd, 0);
    if (shared == MAP_FAILED || private == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    /* Stores through the mapping, inside and outside the hole to come. */
    shared[3 * PG + 7] = 0xcd;
    shared[PG + 50] = 0xcd;
    shared[8 * PG + 1] = 0xcd;
    check("written", fd, n);

    /* Partial first page, whole pages 2..5, partial page 6. */
    ret("punch [1.02p, 6.05p)", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                           PG + 100, 5 * PG - 100 + 200));
    check("punched", fd, n);
    ret("punch the same pages again", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                                2 * PG, 4 * PG));
    printf("  blocks %ld\n", blocks(fd));
    ret("punch inside one page", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                           8 * PG + 10, 100));
    check("inside one page", fd, n);
    ret("punch reaching past the end", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                                 n - PG - 3, 4 * PG));
    check("end punched", fd, n);
    ret("zero range, keep size", fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                                           7 * PG + 5, 2 * PG));
    ret("zero range, growing", fallocate(fd, FALLOC_FL_ZERO_RANGE, (n / PG - 2) * PG,
                                         3 * PG + PG / 2));
    check("zeroed", fd, n);
    views(fd, n, shared, private);

    /* Past the end, so that the last page goes too: the views above read the holes,
     * which gave them pages again natively (a tmpfs hole read through a shared mapping
     * is allocated) but not in the sandbox, whose mappings are not the file's pages. */
    ret("punch all", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                               size_of(fd) + PG));
    check("all punched", fd, n);
    views(fd, n, shared, private);
    /* Stores after the punch land in the file again. */
    shared[2 * PG] = 0xcd;
    msync(shared, n, MS_SYNC);
    unsigned char *buf = malloc(n);
    pread(fd, buf, n, 0);
    pages("stored again", buf, n);
    munmap(shared, n);
    munmap((void *)private, n);
    close(fd);
    free(buf);
    free(pat);
}

/* A large sparse file with one page of data: punching all of it frees that page and
 * allocates nothing (the hole must not be made of written zeros). */
static void sparse(const char *dir)
{
    char path[4096];
    long n = 256L << 20;
    snprintf(path, sizeof path, "%s/punch-sparse", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    unlink(path);
    if (fd < 0 || ftruncate(fd, n)) {
        perror("sparse");
        exit(1);
    }
    unsigned char page[PG];
    memset(page, 0xab, PG);
    pwrite(fd, page, PG, n / 2);
    printf("== sparse, %ld MiB: blocks %ld\n", n >> 20, blocks(fd));
    ret("punch all", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, n));
    printf("  blocks %ld size %ld\n", blocks(fd), size_of(fd));
    pread(fd, page, PG, n / 2);
    pages("  the page that held data", page, PG);
    extents(fd);
    close(fd);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    one(argv[1], 10 * PG);
    one(argv[1], 300 * PG + 100);
    sparse(argv[1]);
    return 0;
}
