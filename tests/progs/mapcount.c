/* vm.max_map_count: map one-page mappings until mmap fails, then check that the process
 * goes on as Linux lets it: the mappings hold their data, splits fail with ENOMEM at the
 * limit, fork works (and so do the child's copy-on-write stores), and unmapping some
 * makes room again.
 *
 * argv[1]: the limit this run should meet (the host's, or the sandbox's). argv[2]: how
 * many pages the fork child stores into. Prints only what native Linux and the sandbox
 * must agree on: errno names, and whether the count came near the limit. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096L

static const char *err_name(int e) {
    switch (e) {
    case 0: return "ok";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    default: return strerror(e);
    }
}

static int try_(int r) { return r == 0 ? 0 : errno; }

int main(int argc, char **argv) {
    long limit = strtol(argv[1], 0, 0);
    long child_stores = argc > 2 ? strtol(argv[2], 0, 0) : 64;
    /* A three-page mapping to split later, made before the limit is reached. */
    char *three = mmap(0, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (three == MAP_FAILED) { perror("three"); return 1; }
    memset(three, 7, 3 * PG);
    /* One-page mappings at every other page of a reserved area: the gaps keep them from
     * merging, and nothing else is placed in between. */
    long slots = limit + 64;
    char *base = mmap(0, 2 * slots * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) { perror("reserve"); return 1; }
    munmap(base, 2 * slots * PG);
    long n = 0;
    int err = 0;
    for (long i = 0; i < slots; i++) {
        char *p = mmap(base + 2 * i * PG, PG, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED) { err = errno; break; }
        n++;
    }
    printf("mmap until it fails: %s\n", err_name(err));
    printf("count near the limit: %s\n", n >= limit - 64 && n <= limit + 1 ? "yes" : "no");
    if (!n) return 1;

    /* Every mapping holds its own data. */
    for (long i = 0; i < n; i++)
        *(long *)(base + 2 * i * PG) = i;
    long bad = 0;
    for (long i = 0; i < n; i++)
        bad += *(long *)(base + 2 * i * PG) != i;
    printf("pages written and read back, wrong: %ld\n", bad);

    /* At the limit, whatever would add a VMA fails; nothing changes. */
    printf("mprotect splitting a VMA: %s\n", err_name(try_(mprotect(three, PG, PROT_READ))));
    printf("munmap splitting a VMA: %s\n", err_name(try_(munmap(three + PG, PG))));
    void *cur = sbrk(0);
    printf("brk growing: %s\n", brk((char *)cur + 16 * PG) == 0 ? "ok" : err_name(errno));
    void *m = mmap(0, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("one more mmap: %s\n", m == MAP_FAILED ? err_name(errno) : "ok");
    printf("three pages intact: %s\n",
           three[0] == 7 && three[PG] == 7 && three[2 * PG] == 7 ? "yes" : "no");
    three[PG] = 8;                    /* still writable: the mprotect changed nothing */

    /* fork at the limit: the child stores into its copies, the parent into its own. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { printf("fork: %s\n", err_name(errno)); return 1; }
    if (pid == 0) {
        long step = n / child_stores > 0 ? n / child_stores : 1;
        long wrong = 0;
        for (long i = 0; i < n; i += step)
            *(long *)(base + 2 * i * PG) = -i;
        for (long i = 0; i < n; i++)
            wrong += *(long *)(base + 2 * i * PG) != (i % step ? i : -i);
        _exit(wrong ? 2 : 0);
    }
    for (long i = 1; i < n; i += 97)
        *(long *)(base + 2 * i * PG) = i + 1;
    int status;
    waitpid(pid, &status, 0);
    printf("fork at the limit: child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    bad = 0;
    for (long i = 0; i < n; i++)
        bad += *(long *)(base + 2 * i * PG) != (i % 97 == 1 ? i + 1 : i);
    printf("parent pages after the child's stores, wrong: %ld\n", bad);

    /* Unmapping some makes room again. */
    for (long i = 0; i < 8; i++)
        munmap(base + 2 * i * PG, PG);
    int again = 0;
    for (long i = 0; i < 4; i++)
        again += mmap(base + 2 * i * PG, PG, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != MAP_FAILED;
    printf("mmap again after munmap: %d of 4\n", again);
    printf("mprotect splitting a VMA now: %s\n",
           err_name(try_(mprotect(three, PG, PROT_READ))));
    printf("three pages: %d %d %d\n", three[0], three[PG], three[2 * PG]);
    return 0;
}
