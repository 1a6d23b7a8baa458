/* Memory: mmap and friends, brk. */
#include "cov.h"
#include <setjmp.h>
#include <sys/mman.h>

static sigjmp_buf jb;
static void on_segv(int sig) { siglongjmp(jb, sig); }

/* Touch one byte: "ok" or the signal it raised. */
static const char *probe(volatile char *p, int write) {
    struct sigaction sa = {.sa_handler = on_segv}, old1, old2;
    sigaction(SIGSEGV, &sa, &old1);
    sigaction(SIGBUS, &sa, &old2);
    const char *res = "ok";
    int sig = sigsetjmp(jb, 1);
    if (sig == 0) {
        if (write) *p = 1; else (void)*p;
    } else {
        res = sig == SIGSEGV ? "SIGSEGV" : "SIGBUS";
    }
    sigaction(SIGSEGV, &old1, NULL);
    sigaction(SIGBUS, &old2, NULL);
    return res;
}

int main(void) {
    setup("mm");
    long pg = 4096;
    char *p = (char *)SC(mmap, 0, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    SAY(mmap, "anonymous", "%s", p == MAP_FAILED ? ename(errno) : "ok");
    SAY(mmap, "zero filled", "%s", YES(p[0] == 0 && p[4 * pg - 1] == 0));
    SAY(mmap, "len 0", "%s", (long)SC(mmap, 0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == -1 ? ename(errno) : "ok");
    SAY(mmap, "no MAP_PRIVATE/SHARED", "%s", (long)SC(mmap, 0, pg, PROT_READ, MAP_ANONYMOUS, -1, 0) == -1 ? ename(errno) : "ok");
    SAY(mmap, "unaligned fixed", "%s", (long)SC(mmap, p + 1, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == -1 ? ename(errno) : "ok");
    SAY(mmap, "bad fd", "%s", (long)SC(mmap, 0, pg, PROT_READ, MAP_PRIVATE, 99, 0) == -1 ? ename(errno) : "ok");
    SAY(mmap, "MAP_FIXED_NOREPLACE over a mapping", "%s", (long)SC(mmap, p, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == -1 ? ename(errno) : "ok");
    put("file", "file-contents-here");
    int fd = open("file", O_RDWR);
    char *f = (char *)SC(mmap, 0, pg, PROT_READ, MAP_PRIVATE, fd, 0);
    SAY(mmap, "private file data", "%.13s", f == MAP_FAILED ? "failed" : f);
    SAY(mmap, "past EOF in page is zero", "%s", YES(f != MAP_FAILED && f[100] == 0));
    char *s = (char *)SC(mmap, 0, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s != MAP_FAILED) {
        memcpy(s, "FILE", 4);
        char buf[8] = {0};
        pread(fd, buf, 4, 0);
        SAY(mmap, "shared write reaches the file", "%.4s", buf);
    } else SAY(mmap, "shared file", "%s", ename(errno));
    int ro = open("file", O_RDONLY);
    SAY(mmap, "shared writable on O_RDONLY fd", "%s", (long)SC(mmap, 0, pg, PROT_WRITE, MAP_SHARED, ro, 0) == -1 ? ename(errno) : "ok");
    char *sh = (char *)SC(mmap, 0, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sh[0] = 'p';
    pid_t c = fork();
    if (c == 0) { sh[0] = 'c'; p[0] = 'c'; _exit(0); }
    waitpid(c, NULL, 0);
    SAY(mmap, "MAP_SHARED seen across fork", "%c", sh[0]);
    SAY(mmap, "MAP_PRIVATE not seen across fork", "%d", p[0]);

    R(mprotect, "read-only", SC(mprotect, p, pg, PROT_READ));
    SAY(mprotect, "write to read-only", "%s", probe(p, 1));
    SAY(mprotect, "read of read-only", "%s", probe(p, 0));
    R(mprotect, "none", SC(mprotect, p + pg, pg, PROT_NONE));
    SAY(mprotect, "read of PROT_NONE", "%s", probe(p + pg, 0));
    R(mprotect, "unaligned", SC(mprotect, p + 1, pg, PROT_READ));
    R(mprotect, "unmapped", SC(mprotect, (void *)0x10000, pg, PROT_READ));
    R(mprotect, "bad prot", SC(mprotect, p, pg, 0x100));
    R(mprotect, "back to rw", SC(mprotect, p, 2 * pg, PROT_READ | PROT_WRITE));
    SAY(mprotect, "write again", "%s", probe(p, 1));

    R(madvise, "DONTNEED", (p[2 * pg] = 7, SC(madvise, p + 2 * pg, pg, MADV_DONTNEED)));
    SAY(madvise, "DONTNEED zeroes private anon", "%d", p[2 * pg]);
    R(madvise, "bad advice", SC(madvise, p, pg, 12345));
    R(madvise, "unaligned", SC(madvise, p + 1, pg, MADV_NORMAL));
    R(madvise, "unmapped", SC(madvise, (void *)0x10000, pg, MADV_NORMAL));
    unsigned char vec[4];
    R(mincore, "4 pages", SC(mincore, p, 4 * pg, vec));
    R(mincore, "unmapped", SC(mincore, (void *)0x10000, pg, vec));
    R(mincore, "unaligned", SC(mincore, p + 1, pg, vec));
    R(msync, "MS_SYNC shared", SC(msync, s, pg, MS_SYNC));
    R(msync, "both flags", SC(msync, s, pg, MS_SYNC | MS_ASYNC));
    R(msync, "unaligned", SC(msync, (char *)s + 1, pg, MS_SYNC));
    R(msync, "unmapped", SC(msync, (void *)0x10000, pg, MS_SYNC));
    R(mlock, "one page", SC(mlock, p, pg));
    R(munlock, "one page", SC(munlock, p, pg));
    R(mlock, "unmapped", SC(mlock, (void *)0x10000, pg));
    R(mlock2, "MLOCK_ONFAULT", SC(mlock2, p, pg, 1));
    R(mlock2, "bad flags", SC(mlock2, p, pg, 2));
    R(mlock2, "unmapped", SC(mlock2, (void *)0x10000, pg, 0));
    R(mlockall, "MCL_CURRENT", SC(mlockall, 1));
    R(mlockall, "ONFAULT alone", SC(mlockall, 4));
    R(munlockall, "", SC(munlockall));

    char *q = (char *)SC(mremap, p, 4 * pg, 8 * pg, MREMAP_MAYMOVE);
    SAY(mremap, "grow MAYMOVE", "%s", q == MAP_FAILED ? ename(errno) : "ok");
    if (q != MAP_FAILED) {
        SAY(mremap, "data kept", "%d", q[0]);
        SAY(mremap, "new tail is zero", "%d", q[8 * pg - 1]);
        char *r2 = (char *)SC(mremap, q, 8 * pg, 2 * pg, 0);
        SAY(mremap, "shrink in place", "%s", r2 == q ? "same address" : r2 == MAP_FAILED ? ename(errno) : "moved");
        p = q;
    }
    SAY(mremap, "bad flags", "%s", (long)SC(mremap, p, pg, pg, 0x80) == -1 ? ename(errno) : "ok");
    SAY(mremap, "unmapped", "%s", (long)SC(mremap, (void *)0x10000, pg, 2 * pg, 0) == -1 ? ename(errno) : "ok");

    R(munmap, "one page", SC(munmap, p + pg, pg));
    SAY(munmap, "access after", "%s", probe(p + pg, 0));
    R(munmap, "unaligned", SC(munmap, p + 1, pg));
    R(munmap, "zero length", SC(munmap, p, 0));
    R(munmap, "already unmapped (no error)", SC(munmap, p + pg, pg));

    long b0 = SC(brk, 0);
    SAY(brk, "query", "%s", YES(b0 > 0));
    long b1 = SC(brk, b0 + 3 * pg);
    SAY(brk, "grow", "%s", YES(b1 == b0 + 3 * pg));
    if (b1 == b0 + 3 * pg) {
        ((char *)b0)[2 * pg] = 5;
        SAY(brk, "new memory usable", "%d", ((char *)b0)[2 * pg]);
    }
    SAY(brk, "shrink", "%s", YES(SC(brk, b0) == b0));
    SAY(brk, "below start refused", "%s", YES(SC(brk, 4096) == b0));

    int mfd = SC(memfd_create, "cov", MFD_CLOEXEC);
    SAY(memfd_create, "new", "%s", mfd >= 0 ? "fd" : ename(errno));
    R(memfd_create, "grow", SC(ftruncate, mfd, pg));
    char *m1 = (char *)SC(mmap, 0, pg, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    char *m2 = (char *)SC(mmap, 0, pg, PROT_READ, MAP_SHARED, mfd, 0);
    if (m1 != MAP_FAILED && m2 != MAP_FAILED) {
        m1[10] = 'M';
        SAY(memfd_create, "two shared mappings agree", "%c", m2[10]);
    }
    R(memfd_create, "FD_CLOEXEC set", SC(fcntl, mfd, F_GETFD));
    R(memfd_create, "bad flags", SC(memfd_create, "cov", 0x100));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    FD(memfd_create, "name too long", SC(memfd_create, longname, 0));
    R(membarrier, "QUERY has GLOBAL", (SC(membarrier, 0, 0, 0) & 1));
    R(membarrier, "bad cmd", SC(membarrier, 12345, 0, 0));
    return 0;
}
