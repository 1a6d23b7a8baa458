/* The I/O benchmark program: one static binary run unchanged by every runtime.
 *
 *   iobench MODE ARGS...
 *
 * Each mode times its own work with CLOCK_MONOTONIC (start-up of the runtime is excluded)
 * and prints exactly one line
 *
 *   RESULT mode=M ops=N ns=T bytes=B fs=F
 *
 * or "ERROR what: why" and exit status 1. Work is verified so that a runtime that returns
 * wrong data, short counts or nothing at all is reported as broken, never as fast: every
 * 4 KiB block of a data file starts with a tag derived from its index, and readers check
 * the tag of every block they read.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define TAG_MUL 0x9E3779B97F4A7C15ull
#define TAG_SALT 0x5EEDBE4C4ull

static uint64_t block_tag(uint64_t index) { return (index * TAG_MUL) ^ TAG_SALT; }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
    printf("ERROR %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static void fail(const char *what, const char *why) {
    printf("ERROR %s: %s\n", what, why);
    fflush(stdout);
    exit(1);
}

static const char *fs_name(const char *path) {
    struct statfs sf;
    if (statfs(path, &sf) != 0) return "unknown";
    switch ((unsigned long)sf.f_type) {
    case 0x01021994: return "tmpfs";
    case 0xEF53: return "ext4";
    case 0x794c7630: return "overlay";
    case 0x01021997: return "9p";
    case 0x9fa0: return "proc";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    default: return "other";
    }
}

static void result(const char *mode, long long ops, int64_t ns, long long bytes, const char *fs) {
    printf("RESULT mode=%s ops=%lld ns=%lld bytes=%lld fs=%s\n", mode, ops, (long long)ns,
           bytes, fs);
    fflush(stdout);
}

static long long arg_ll(const char *s) {
    char *end;
    long long v = strtoll(s, &end, 0);
    if (*s == 0 || *end != 0 || v < 0) fail("argument", s);
    return v;
}

static void *xaligned(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, BLOCK, n) != 0) fail("memory", "posix_memalign");
    memset(p, 0xA5, n);
    return p;
}

/* Stamp the tags of the blocks of buf, which holds file blocks [first, first+n/BLOCK). */
static void stamp(char *buf, size_t n, uint64_t first) {
    for (size_t off = 0; off < n; off += BLOCK) {
        uint64_t t = block_tag(first + off / BLOCK);
        memcpy(buf + off, &t, sizeof t);
    }
}

static void check(const char *buf, size_t n, uint64_t first) {
    for (size_t off = 0; off < n; off += BLOCK) {
        uint64_t t;
        memcpy(&t, buf + off, sizeof t);
        if (t != block_tag(first + off / BLOCK)) fail("verify", "a block read back wrong data");
    }
}

static void mkdir_p(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) die("mkdir");
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) die("mkdir");
}

static void parent_dir(const char *path, char *out, size_t n) {
    snprintf(out, n, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash && slash != out) *slash = 0;
}

/* Write `size` bytes of tagged blocks to path in `bs` chunks; returns elapsed ns. */
static int64_t write_file(const char *path, long long size, long long bs) {
    char dir[4096];
    parent_dir(path, dir, sizeof dir);
    mkdir_p(dir);
    char *buf = xaligned(bs);
    int64_t t0 = now_ns();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("open for write");
    for (long long off = 0; off < size; off += bs) {
        long long n = size - off < bs ? size - off : bs;
        stamp(buf, n, off / BLOCK);
        long long done = 0;
        while (done < n) {
            ssize_t w = write(fd, buf + done, n - done);
            if (w <= 0) die("write");
            done += w;
        }
    }
    if (close(fd) != 0) die("close after write");
    int64_t t1 = now_ns();
    free(buf);
    struct stat st;
    if (stat(path, &st) != 0) die("stat after write");
    if (st.st_size != size) fail("verify", "file size after write differs");
    return t1 - t0;
}

static int64_t read_file(const char *path, long long size, long long bs) {
    char *buf = xaligned(bs);
    int64_t t0 = now_ns();
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open for read");
    long long total = 0;
    for (;;) {
        long long got = 0;
        while (got < bs) {           /* fill whole blocks so tags stay aligned */
            ssize_t r = read(fd, buf + got, bs - got);
            if (r < 0) die("read");
            if (r == 0) break;
            got += r;
        }
        if (got == 0) break;
        check(buf, got, total / BLOCK);
        total += got;
        if (got < bs) break;
    }
    close(fd);
    int64_t t1 = now_ns();
    free(buf);
    if (total != size) fail("verify", "read a different number of bytes than the file holds");
    return t1 - t0;
}

static int mode_seqwrite(char **a) {      /* PATH SIZE BS */
    long long size = arg_ll(a[1]), bs = arg_ll(a[2]);
    if (bs < BLOCK || bs % BLOCK) fail("argument", "BS must be a multiple of 4096");
    int64_t ns = write_file(a[0], size, bs);
    char dir[4096];
    parent_dir(a[0], dir, sizeof dir);
    const char *fs = fs_name(dir);
    read_file(a[0], size, 1 << 20);        /* untimed: what was written is what is there */
    unlink(a[0]);
    result("seqwrite", (size + bs - 1) / bs, ns, size, fs);
    return 0;
}

static void ensure_file(const char *path, long long size) {
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size == size) return;
    write_file(path, size, 1 << 20);
}

static int mode_seqread(char **a) {       /* PATH SIZE BS */
    long long size = arg_ll(a[1]), bs = arg_ll(a[2]);
    if (bs < BLOCK || bs % BLOCK) fail("argument", "BS must be a multiple of 4096");
    ensure_file(a[0], size);
    /* One untimed pass so every runtime reads from its warm cache, as native does. */
    read_file(a[0], size, 1 << 20);
    int64_t ns = read_file(a[0], size, bs);
    char dir[4096];
    parent_dir(a[0], dir, sizeof dir);
    result("seqread", (size + bs - 1) / bs, ns, size, fs_name(dir));
    return 0;
}

static int mode_randread(char **a) {      /* PATH SIZE COUNT */
    long long size = arg_ll(a[1]), count = arg_ll(a[2]);
    long long nblocks = size / BLOCK;
    if (nblocks < 1) fail("argument", "file smaller than one block");
    ensure_file(a[0], size);
    read_file(a[0], size, 1 << 20);
    char *buf = xaligned(BLOCK);
    int fd = open(a[0], O_RDONLY);
    if (fd < 0) die("open for read");
    uint64_t x = 88172645463325252ull;    /* xorshift: the same offsets in every runtime */
    int64_t t0 = now_ns();
    for (long long i = 0; i < count; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint64_t blk = x % (uint64_t)nblocks;
        if (pread(fd, buf, BLOCK, (off_t)blk * BLOCK) != BLOCK) die("pread");
        check(buf, BLOCK, blk);
    }
    int64_t ns = now_ns() - t0;
    close(fd);
    char dir[4096];
    parent_dir(a[0], dir, sizeof dir);
    result("randread", count, ns, count * BLOCK, fs_name(dir));
    return 0;
}

/* Run `op` in batches until `ms` milliseconds have passed; the clock is read once per
 * batch so that clock reads (syscalls in some runtimes) do not dominate. */
#define TIMED_LOOP(MODE, MS, FS, BODY)                                            \
    do {                                                                          \
        long long ops_ = 0, batch_ = 1;                                           \
        int64_t t0_ = now_ns(), limit_ = (int64_t)(MS) * 1000000, el_ = 0;        \
        while (el_ < limit_) {                                                    \
            int64_t before_ = el_;                                                \
            for (long long i_ = 0; i_ < batch_; i_++) { BODY; }                   \
            ops_ += batch_;                                                       \
            el_ = now_ns() - t0_;                                                 \
            /* grow while a batch stays under 1/32 of the budget: bounded overshoot */ \
            if ((el_ - before_) * 32 < limit_ && batch_ < 65536) batch_ *= 2;     \
        }                                                                         \
        result(MODE, ops_, el_, 0, FS);                                           \
    } while (0)

static int mode_getppid(char **a) {       /* MS */
    long long ms = arg_ll(a[0]);
    pid_t first = getppid();
    TIMED_LOOP("getppid", ms, "-", if (syscall(SYS_getppid) != first) fail("verify", "getppid changed"));
    return 0;
}

static void make_tree(const char *dir, int entries) {
    mkdir_p(dir);
    for (int i = 0; i < entries; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/entry-%03d", dir, i);
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) die("create entry");
        close(fd);
    }
}

static int mode_openclose(char **a) {     /* DIR MS */
    make_tree(a[0], 1);
    char p[4096];
    snprintf(p, sizeof p, "%s/entry-000", a[0]);
    TIMED_LOOP("openclose", arg_ll(a[1]), fs_name(a[0]), {
        int fd = open(p, O_RDONLY);
        if (fd < 0) die("open");
        if (close(fd) != 0) die("close");
    });
    return 0;
}

static int mode_stat(char **a) {          /* DIR MS */
    make_tree(a[0], 1);
    char p[4096];
    snprintf(p, sizeof p, "%s/entry-000", a[0]);
    struct stat st;
    TIMED_LOOP("stat", arg_ll(a[1]), fs_name(a[0]), {
        if (stat(p, &st) != 0) die("stat");
        if (!S_ISREG(st.st_mode)) fail("verify", "stat: not a regular file");
    });
    return 0;
}

/* One getdents64 pass over a directory of 64 entries (plus . and ..), per op. */
static int mode_getdents(char **a) {      /* DIR MS */
    enum { ENTRIES = 64 };
    make_tree(a[0], ENTRIES);
    int fd = open(a[0], O_RDONLY | O_DIRECTORY);
    if (fd < 0) die("open dir");
    static char buf[32768];
    TIMED_LOOP("getdents", arg_ll(a[1]), fs_name(a[0]), {
        if (lseek(fd, 0, SEEK_SET) != 0) die("lseek dir");
        int seen = 0;
        for (;;) {
            long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
            if (n < 0) die("getdents64");
            if (n == 0) break;
            for (long off = 0; off < n;) {
                unsigned short reclen;
                memcpy(&reclen, buf + off + 16, sizeof reclen);
                if (reclen == 0) fail("verify", "getdents64: zero record length");
                seen++;
                off += reclen;
            }
        }
        if (seen != ENTRIES + 2) fail("verify", "getdents64: wrong number of entries");
    });
    close(fd);
    return 0;
}

static int mode_pipe(char **a) {          /* SIZE */
    long long size = arg_ll(a[0]);
    enum { CHUNK = 65536 };
    int p[2];
    if (pipe(p) != 0) die("pipe");
    static char buf[CHUNK];
    int64_t t0 = now_ns();
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        close(p[0]);
        memset(buf, 0x5A, sizeof buf);
        for (long long left = size; left > 0;) {
            ssize_t w = write(p[1], buf, left < CHUNK ? left : CHUNK);
            if (w <= 0) _exit(2);
            left -= w;
        }
        _exit(0);
    }
    close(p[1]);
    long long total = 0;
    for (;;) {
        ssize_t r = read(p[0], buf, CHUNK);
        if (r < 0) die("read pipe");
        if (r == 0) break;
        if (buf[0] != 0x5A || buf[r - 1] != 0x5A) fail("verify", "pipe data corrupted");
        total += r;
    }
    int status;
    if (waitpid(child, &status, 0) != child) die("waitpid");
    int64_t ns = now_ns() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("verify", "pipe writer failed");
    if (total != size) fail("verify", "pipe delivered a different byte count");
    result("pipe", size / CHUNK, ns, size, "-");
    return 0;
}

static int mode_forkexec(char **a) {      /* MS PROGRAM */
    const char *prog = a[1];
    char *const argv[] = {(char *)prog, NULL};
    char *const envp[] = {NULL};
    TIMED_LOOP("forkexec", arg_ll(a[0]), "-", {
        pid_t c = fork();
        if (c < 0) die("fork");
        if (c == 0) {
            execve(prog, argv, envp);
            _exit(127);
        }
        int status;
        if (waitpid(c, &status, 0) != c) die("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("verify", "child did not exit 0");
    });
    return 0;
}

/* One op: map 1 MiB of fresh anonymous memory, write one byte into each of its 256 pages,
 * unmap it. Fresh pages must read as zero and keep what was written, so a runtime that
 * maps the wrong frame or skips the unmap's effect is caught. */
static int mode_mmaploop(char **a) {      /* MS */
    enum { SIZE = 1 << 20, PAGE = 4096 };
    unsigned char tag = 0;
    TIMED_LOOP("mmaploop", arg_ll(a[0]), "-", {
        unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) die("mmap");
        tag++;
        for (size_t off = 0; off < SIZE; off += PAGE) p[off] = (unsigned char)(tag + (off >> 12));
        for (size_t off = 0; off < SIZE; off += PAGE) {
            if (p[off] != (unsigned char)(tag + (off >> 12)))
                fail("verify", "mmaploop: a page lost what was written");
            if (p[off + PAGE - 1] != 0) fail("verify", "mmaploop: a fresh page is not zero");
        }
        if (munmap(p, SIZE) != 0) die("munmap");
    });
    return 0;
}

/* x -> x*MUL + ADD (mod 2^64), N times: one multiply-add per step in a dependency chain, so
 * neither the compiler nor the CPU can shorten it. */
#define LCG_MUL 6364136223846793005ull
#define LCG_ADD 1442695040888963407ull

/* The same N steps composed by repeated squaring of the affine map (O(log N)): checks that
 * the loop really ran to the end. */
static uint64_t lcg_jump(uint64_t x, unsigned long long n) {
    uint64_t mul = LCG_MUL, add = LCG_ADD;            /* the map for 2^k steps */
    while (n) {
        if (n & 1) x = x * mul + add;
        add = add * mul + add;
        mul = mul * mul;
        n >>= 1;
    }
    return x;
}

static int mode_cpuloop(char **a) {       /* STEPS */
    unsigned long long steps = (unsigned long long)arg_ll(a[0]);
    if (steps == 0) fail("argument", "cpuloop needs at least one step");
    volatile uint64_t seed = 12345;               /* unknown to the compiler */
    uint64_t x = seed;
    int64_t t0 = now_ns();
    for (unsigned long long i = 0; i < steps; i++) {
        x = x * LCG_MUL + LCG_ADD;
        __asm__ volatile("" : "+r"(x));           /* keep it a loop, not a closed form */
    }
    int64_t ns = now_ns() - t0;
    if (x != lcg_jump(seed, steps)) fail("verify", "cpuloop: wrong result");
    result("cpuloop", (long long)steps, ns, 0, "-");
    return 0;
}

/* Availability check: a few syscalls with known answers. */
static int mode_probe(char **a) {
    (void)a;
    char buf[16];
    int p[2];
    if (pipe(p) != 0) die("pipe");
    if (write(p[1], "probe", 5) != 5 || read(p[0], buf, sizeof buf) != 5) fail("probe", "pipe");
    if (memcmp(buf, "probe", 5) != 0) fail("probe", "pipe data");
    if (getppid() < 0 || getpid() <= 0) fail("probe", "getpid/getppid");
    printf("PROBE ok\n");
    return 0;
}

struct mode { const char *name; int nargs; int (*fn)(char **); };
static const struct mode MODES[] = {
    {"probe", 0, mode_probe},       {"getppid", 1, mode_getppid},
    {"seqwrite", 3, mode_seqwrite}, {"seqread", 3, mode_seqread},
    {"randread", 3, mode_randread}, {"openclose", 2, mode_openclose},
    {"stat", 2, mode_stat},         {"getdents", 2, mode_getdents},
    {"pipe", 1, mode_pipe},         {"forkexec", 2, mode_forkexec},
    {"mmaploop", 1, mode_mmaploop}, {"cpuloop", 1, mode_cpuloop},
};

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; argc >= 2 && i < sizeof MODES / sizeof MODES[0]; i++) {
        if (strcmp(argv[1], MODES[i].name) == 0) {
            if (argc - 2 != MODES[i].nargs) fail("usage", "wrong number of arguments");
            return MODES[i].fn(argv + 2);
        }
    }
    fail("usage", "iobench MODE ARGS (see bench/iobench.c)");
}
