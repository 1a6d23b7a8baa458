/* openat2(2): the open_how validation and every RESOLVE_* restriction of the path walk.
 *
 * Builds its own tree in a fresh directory under /tmp (the sandbox has its own /tmp):
 *   D/file            "top"
 *   D/etc/passwd      "in-root"        (what "/etc/passwd" means when D is the root)
 *   D/sub/inner       "inner"
 *   D/sub/rel      -> ../file          (relative, stays inside D)
 *   D/sub/rel_in   -> inner
 *   D/sub/esc      -> ../../../../../../etc/passwd   (climbs out of D)
 *   D/abs          -> /etc/passwd      (absolute)
 *   D/sub/dangle   -> ../created       (dangling, inside D: O_CREAT follows it)
 *   D/sub/dangle_out -> /tmp/openat2-nonexistent-target
 * and uses the mounts both native Linux and pysentry have: / (one mount with /etc),
 * /proc, /dev. Every case prints "name: what it opened" or "name: ERRNO".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAGIC_FD 50         /* a fixed number, so /proc/self/fd/N is the same path both ways */
#define PROC_FD 51

static const char *ename(int e)
{
    switch (e) {
    case EINVAL: return "EINVAL";
    case E2BIG: return "E2BIG";
    case EXDEV: return "EXDEV";
    case ELOOP: return "ELOOP";
    case EAGAIN: return "EAGAIN";
    case ENOENT: return "ENOENT";
    case EFAULT: return "EFAULT";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EEXIST: return "EEXIST";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    default: return "other";
    }
}

/* What an fd names: the first word of a regular file, "dir", or the file type. */
static void describe(int fd, char *out, size_t n)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(out, n, "fstat %s", ename(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(out, n, "dir");
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(out, n, S_ISLNK(st.st_mode) ? "symlink" : "special");
        return;
    }
    char buf[16] = {0};
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r < 0) {
        snprintf(out, n, "file");       /* O_PATH or write-only */
        return;
    }
    buf[strcspn(buf, ":\n")] = 0;
    snprintf(out, n, "\"%s\"", buf);
}

static long o2(int dirfd, const char *path, void *how, size_t size)
{
    return syscall(SYS_openat2, dirfd, path, how, size);
}

static void show(const char *name, long fd)
{
    if (fd < 0) {
        printf("%s: %s\n", name, ename(errno));
        return;
    }
    char what[64];
    describe((int)fd, what, sizeof what);
    printf("%s: %s\n", name, what);
    close((int)fd);
}

static void try(const char *name, int dirfd, const char *path, unsigned long long flags,
                unsigned long long mode, unsigned long long resolve)
{
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    show(name, o2(dirfd, path, &how, sizeof how));
}

static void put(int dirfd, const char *path, const char *text)
{
    int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0) {
        perror(path);
        exit(2);
    }
    close(fd);
}

int main(void)
{
    char dir[] = "/tmp/openat2-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    int D = open(dir, O_DIRECTORY | O_RDONLY);
    mkdirat(D, "sub", 0755);
    mkdirat(D, "etc", 0755);
    put(D, "file", "top");
    put(D, "etc/passwd", "in-root");
    put(D, "sub/inner", "inner");
    symlinkat("../file", D, "sub/rel");
    symlinkat("inner", D, "sub/rel_in");
    symlinkat("../../../../../../etc/passwd", D, "sub/esc");
    symlinkat("/etc/passwd", D, "abs");
    symlinkat("../created", D, "sub/dangle");
    symlinkat("/tmp/openat2-nonexistent-target", D, "sub/dangle_out");
    int SUB = openat(D, "sub", O_DIRECTORY | O_RDONLY);
    int ROOT = open("/", O_DIRECTORY | O_RDONLY);
    int PROC = open("/proc", O_DIRECTORY | O_RDONLY);
    int DEV = open("/dev", O_DIRECTORY | O_RDONLY);
    dup2(openat(D, "file", O_RDONLY), MAGIC_FD);                 /* a file on /tmp's mount */
    dup2(open("/proc/self/status", O_RDONLY), PROC_FD);         /* a file on /proc's mount */
    char magic[64], procmagic[64];
    snprintf(magic, sizeof magic, "/proc/self/fd/%d", MAGIC_FD);
    snprintf(procmagic, sizeof procmagic, "self/fd/%d", PROC_FD);
    const unsigned long long RO = O_RDONLY;

    /* ---- open_how validation ---- */
    struct {
        struct open_how how;
        unsigned long long extra[8];
    } big = {{.flags = O_RDONLY}};
    show("size 0", o2(D, "file", &big, 0));
    show("size 23", o2(D, "file", &big, 23));
    show("size 24", o2(D, "file", &big, 24));
    show("size 88 zero tail", o2(D, "file", &big, sizeof big));
    big.extra[7] = 1;
    show("size 88 non-zero tail", o2(D, "file", &big, sizeof big));
    big.extra[7] = 0;
    show("size 4097", o2(D, "file", &big, 4097));
    show("NULL how", o2(D, "file", NULL, 24));
    show("NULL path", o2(D, NULL, &big, 24));
    try("empty path", D, "", RO, 0, 0);
    try("flags bit 40", D, "file", RO | (1ULL << 40), 0, 0);
    try("flags bit 31", D, "file", RO | (1ULL << 31), 0, 0);
    try("flags O_CLOEXEC", D, "file", RO | O_CLOEXEC, 0, 0);
    try("resolve bit 6", D, "file", RO, 0, 0x40);
    try("resolve bit 40", D, "file", RO, 0, 1ULL << 40);
    try("mode without O_CREAT", D, "file", RO, 0644, 0);
    try("O_CREAT mode 0644", D, "made", O_RDWR | O_CREAT, 0644, 0);
    try("O_CREAT mode with S_IFREG", D, "made2", O_RDWR | O_CREAT, 0100644, 0);
    try("O_CREAT mode 07777", D, "made3", O_RDWR | O_CREAT, 07777, 0);
    try("O_DIRECTORY|O_CREAT", D, "made4", O_RDWR | O_CREAT | O_DIRECTORY, 0644, 0);
    show("openat O_DIRECTORY|O_CREAT", openat(D, "made5", O_RDWR | O_CREAT | O_DIRECTORY, 0644));
    show("openat O_DIRECTORY|O_CREAT made nothing", openat(D, "made5", O_RDONLY));
    try("O_TMPFILE read-only", D, ".", O_TMPFILE | O_RDONLY, 0600, 0);
    try("O_TMPFILE rdwr with mode", D, ".", O_TMPFILE | O_RDWR, 0600, 0);
    try("O_PATH|O_RDWR", D, "file", O_PATH | O_RDWR, 0, 0);
    try("O_PATH|O_CLOEXEC|O_NOFOLLOW", D, "abs", O_PATH | O_CLOEXEC | O_NOFOLLOW, 0, 0);
    try("O_PATH|O_DIRECTORY", D, "sub", O_PATH | O_DIRECTORY, 0, 0);
    try("O_PATH|O_LARGEFILE", D, "file", O_PATH | 0100000, 0, 0);
    try("BENEATH|IN_ROOT", D, "file", RO, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT);
    try("CACHED with O_CREAT", D, "file", O_RDWR | O_CREAT, 0644, RESOLVE_CACHED);
    try("CACHED with O_TRUNC", D, "file", O_RDWR | O_TRUNC, 0, RESOLVE_CACHED);
    try("CACHED plain", D, "file", RO, 0, RESOLVE_CACHED);

    /* ---- RESOLVE_BENEATH ---- */
    const unsigned long long B = RESOLVE_BENEATH;
    try("BENEATH file", D, "file", RO, 0, B);
    try("BENEATH sub/inner", D, "sub/inner", RO, 0, B);
    try("BENEATH dot", D, ".", RO, 0, B);
    try("BENEATH sub/../file", D, "sub/../file", RO, 0, B);
    try("BENEATH relative link inside", D, "sub/rel", RO, 0, B);
    try("BENEATH relative link in sub", D, "sub/rel_in", RO, 0, B);
    try("BENEATH link escaping", D, "sub/esc", RO, 0, B);
    try("BENEATH absolute link", D, "abs", RO, 0, B);
    try("BENEATH absolute link O_NOFOLLOW|O_PATH", D, "abs", O_PATH | O_NOFOLLOW, 0, B);
    try("BENEATH absolute path", D, "/etc/passwd", RO, 0, B);
    try("BENEATH dotdot", D, "..", RO, 0, B);
    try("BENEATH ../x", D, "../x", RO, 0, B);
    try("BENEATH sub/../../x", D, "sub/../../x", RO, 0, B);
    try("BENEATH from sub: rel", SUB, "rel", RO, 0, B);
    try("BENEATH from sub: rel_in", SUB, "rel_in", RO, 0, B);
    try("BENEATH missing inside", D, "nope", RO, 0, B);
    try("BENEATH AT_FDCWD", AT_FDCWD, "..", RO, 0, B);
    try("BENEATH magic link", PROC, procmagic, RO, 0, B);
    try("BENEATH O_CREAT through dangling link", D, "sub/dangle", O_RDWR | O_CREAT, 0644, B);
    try("BENEATH O_CREAT through absolute link", D, "sub/dangle_out", O_RDWR | O_CREAT, 0644, B);
    try("BENEATH O_CREAT ../x", D, "../x", O_RDWR | O_CREAT, 0644, B);
    try("BENEATH O_CREAT new", D, "sub/new", O_RDWR | O_CREAT | O_EXCL, 0644, B);
    try("BENEATH O_TMPFILE", D, "sub", O_TMPFILE | O_RDWR, 0600, B);
    try("BENEATH O_TMPFILE ..", D, "..", O_TMPFILE | O_RDWR, 0600, B);

    /* ---- RESOLVE_IN_ROOT ---- */
    const unsigned long long I = RESOLVE_IN_ROOT;
    try("IN_ROOT absolute path", D, "/etc/passwd", RO, 0, I);
    try("IN_ROOT absolute link", D, "abs", RO, 0, I);
    try("IN_ROOT link escaping", D, "sub/esc", RO, 0, I);
    try("IN_ROOT dotdot clamps", D, "../../etc/passwd", RO, 0, I);
    try("IN_ROOT root itself", D, "/", RO, 0, I);
    try("IN_ROOT from sub: rel", SUB, "rel", RO, 0, I);
    try("IN_ROOT from sub: /inner", SUB, "/inner", RO, 0, I);
    try("IN_ROOT magic link", PROC, procmagic, RO, 0, I);
    try("IN_ROOT O_CREAT through absolute link", D, "sub/dangle_out", O_RDWR | O_CREAT, 0644, I);
    try("IN_ROOT created in root", D, "tmp/openat2-nonexistent-target", RO, 0, I);

    /* ---- RESOLVE_NO_SYMLINKS / NO_MAGICLINKS ---- */
    const unsigned long long S = RESOLVE_NO_SYMLINKS, M = RESOLVE_NO_MAGICLINKS;
    try("NO_SYMLINKS plain", D, "sub/inner", RO, 0, S);
    try("NO_SYMLINKS relative link", D, "sub/rel", RO, 0, S);
    try("NO_SYMLINKS link in the middle", D, "sub/rel/x", RO, 0, S);
    try("NO_SYMLINKS link with O_NOFOLLOW|O_PATH", D, "sub/rel", O_PATH | O_NOFOLLOW, 0, S);
    try("NO_SYMLINKS link with O_NOFOLLOW", D, "sub/rel", RO | O_NOFOLLOW, 0, S);
    try("NO_SYMLINKS magic link", AT_FDCWD, magic, RO, 0, S);
    try("NO_SYMLINKS /proc/self", AT_FDCWD, "/proc/self/status", RO, 0, S);
    try("NO_SYMLINKS O_CREAT through link", D, "sub/dangle", O_RDWR | O_CREAT, 0644, S);
    try("NO_MAGICLINKS relative link", D, "sub/rel", RO, 0, M);
    try("NO_MAGICLINKS /proc/self", AT_FDCWD, "/proc/self/status", RO, 0, M);
    try("NO_MAGICLINKS magic link", AT_FDCWD, magic, RO, 0, M);
    try("NO_MAGICLINKS magic link O_PATH|O_NOFOLLOW", AT_FDCWD, magic, O_PATH | O_NOFOLLOW, 0, M);
    try("magic link plain", AT_FDCWD, magic, RO, 0, 0);
    try("/dev/fd link plain", AT_FDCWD, "/dev/fd/50", RO, 0, 0);

    /* ---- RESOLVE_NO_XDEV ---- */
    const unsigned long long X = RESOLVE_NO_XDEV;
    try("NO_XDEV same mount", ROOT, "etc/passwd", RO, 0, X);
    try("NO_XDEV absolute path argument", AT_FDCWD, "/", RO, 0, X);
    try("NO_XDEV into /proc", ROOT, "proc/self/status", RO, 0, X);
    try("NO_XDEV into /proc last component", ROOT, "proc", O_PATH, 0, X);
    try("NO_XDEV into /dev", ROOT, "dev/null", RO, 0, X);
    try("NO_XDEV inside /proc", PROC, "self/status", RO, 0, X);
    try("NO_XDEV dot of /proc", PROC, ".", RO, 0, X);
    try("NO_XDEV dotdot out of /proc", PROC, "../etc/passwd", RO, 0, X);
    try("NO_XDEV dotdot of /proc", PROC, "..", RO, 0, X);
    try("NO_XDEV absolute link to another mount", DEV, "fd", O_PATH, 0, X);
    try("NO_XDEV absolute link not followed", DEV, "fd", O_PATH | O_NOFOLLOW, 0, X);
    try("NO_XDEV magic link across mounts", PROC, "thread-self/fd/50", RO, 0, X);
    try("NO_XDEV magic link same mount", PROC, procmagic, RO, 0, X);
    try("NO_XDEV dotdot at root", ROOT, "../etc/passwd", RO, 0, X);
    try("NO_XDEV|BENEATH inside /proc", PROC, "self/status", RO, 0, X | B);
    try("NO_XDEV|IN_ROOT /proc/self from /proc", PROC, "/self/status", RO, 0, X | I);

    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 2;
}
