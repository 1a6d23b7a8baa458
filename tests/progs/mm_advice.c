/* madvise, mlock and VMA merging, as Linux does them: advice validity and holes, FREE and
 * REMOVE on the wrong kind of memory, REMOVE on shared memory, DONTFORK and WIPEONFORK
 * seen from a fork's child, mlock ranges, and a range split by mprotect and set back
 * being one VMA again (maps lines, mremap of the whole). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096L
static void show(const char *what, long r) {
    if (r < 0) printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else printf("%s: %ld\n", what, r);
}

static int maps_lines_in(char *lo, char *hi) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < (unsigned long)hi && b > (unsigned long)lo) n++;
    }
    fclose(f);
    return n;
}

static sigjmp_buf jb;
static void on_segv(int s) { (void)s; siglongjmp(jb, 1); }
static const char *probe(volatile char *p) {
    if (sigsetjmp(jb, 1)) return "SIGSEGV";
    static char outs[4][16];     /* one per argument of a printf below */
    static int next;
    char *out = outs[next++ % 4];
    snprintf(out, 16, "%d", *p);
    return out;
}

int main(void) {
    signal(SIGSEGV, on_segv);
    char *p = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 7, 8 * PG);
    show("madvise bad advice", syscall(SYS_madvise, p, PG, 12345));
    show("madvise negative advice", syscall(SYS_madvise, p, PG, -1));
    show("madvise HWPOISON", syscall(SYS_madvise, p, PG, 100) < 0 ? -1 : 0);
    show("madvise unaligned", syscall(SYS_madvise, p + 1, PG, MADV_NORMAL));
    show("madvise zero length", syscall(SYS_madvise, p, 0, MADV_NORMAL));
    show("madvise wraps", syscall(SYS_madvise, p, -2 * PG, MADV_NORMAL));
    show("mlock wraps", syscall(SYS_mlock, p, -2 * PG));
    munmap(p + 6 * PG, PG);
    show("madvise over a hole", syscall(SYS_madvise, p + 4 * PG, 4 * PG, MADV_NORMAL));
    show("madvise DONTNEED over a hole", syscall(SYS_madvise, p + 4 * PG, 4 * PG, MADV_DONTNEED));
    printf("DONTNEED before the hole zeroed: %d\n", p[4 * PG] == 0 && p[5 * PG] == 0);
    show("madvise unmapped", syscall(SYS_madvise, (void *)0x10000, PG, MADV_NORMAL));

    char *s = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(s, 9, 2 * PG);
    show("MADV_FREE on shared", syscall(SYS_madvise, s, PG, MADV_FREE));
    show("MADV_REMOVE on private", syscall(SYS_madvise, p, PG, MADV_REMOVE));
    show("MADV_WIPEONFORK on shared", syscall(SYS_madvise, s, PG, MADV_WIPEONFORK));

    /* REMOVE on shared memory frees the pages for every sharer. */
    pid_t c = fork();
    if (c == 0) {
        show("child MADV_REMOVE shared", syscall(SYS_madvise, s, PG, MADV_REMOVE));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("parent sees the removed page as zeros: %d, next page kept: %d\n", s[0] == 0, s[PG] == 9);

    /* DONTFORK and WIPEONFORK, as the child sees them. */
    char *d = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(d, 5, 3 * PG);
    show("MADV_DONTFORK middle page", syscall(SYS_madvise, d + PG, PG, MADV_DONTFORK));
    show("MADV_WIPEONFORK last page", syscall(SYS_madvise, d + 2 * PG, PG, MADV_WIPEONFORK));
    printf("maps lines over the three pages: %d\n", maps_lines_in(d, d + 3 * PG));
    fflush(stdout);
    c = fork();
    if (c == 0) {
        printf("child: first %s, DONTFORK %s, WIPEONFORK %s\n", probe(d), probe(d + PG), probe(d + 2 * PG));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("parent: first %s, DONTFORK %s, WIPEONFORK %s\n", probe(d), probe(d + PG), probe(d + 2 * PG));
    show("MADV_DOFORK", syscall(SYS_madvise, d + PG, PG, MADV_DOFORK));
    show("MADV_KEEPONFORK", syscall(SYS_madvise, d + 2 * PG, PG, MADV_KEEPONFORK));
    printf("maps lines after setting them back: %d\n", maps_lines_in(d, d + 3 * PG));
    fflush(stdout);
    c = fork();
    if (c == 0) {
        printf("child after: first %s, middle %s, last %s\n", probe(d), probe(d + PG), probe(d + 2 * PG));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);

    /* mlock family. */
    show("mlock unaligned start", syscall(SYS_mlock, p + 100, PG));
    show("mlock over a hole", syscall(SYS_mlock, p + 5 * PG, 2 * PG));
    show("mlock unmapped", syscall(SYS_mlock, (void *)0x10000, PG));
    show("munlock", syscall(SYS_munlock, p, PG));
    show("mlock2 bad flags", syscall(SYS_mlock2, p, PG, 2));
    show("mlock2 ONFAULT", syscall(SYS_mlock2, p, PG, 1));
    show("mlockall 0", syscall(SYS_mlockall, 0));
    show("mlockall ONFAULT alone", syscall(SYS_mlockall, 4));
    show("mlockall bad", syscall(SYS_mlockall, 8));
    show("munlockall", syscall(SYS_munlockall));

    /* A range split by mprotect and set back is one VMA again. */
    char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    m[0] = 42;
    mprotect(m + PG, PG, PROT_NONE);
    printf("maps lines after the split: %d\n", maps_lines_in(m, m + 4 * PG));
    mprotect(m + PG, PG, PROT_READ | PROT_WRITE);
    printf("maps lines after setting it back: %d\n", maps_lines_in(m, m + 4 * PG));
    char *q = mremap(m, 4 * PG, 8 * PG, MREMAP_MAYMOVE);
    printf("mremap of the whole: %s, data kept %d\n", q == MAP_FAILED ? strerrorname_np(errno) : "ok",
           q == MAP_FAILED ? -1 : q[0]);
    return 0;
}
