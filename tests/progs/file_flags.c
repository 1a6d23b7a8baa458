/* Flag and argument validation of file syscalls, compared with Linux: preadv2/pwritev2's
 * RWF_* flags, fallocate's modes (on tmpfs: /dev/shm is tmpfs both natively and in the
 * sandbox), the flags of the *at syscalls, memfd_create's name and flags. Every case
 * prints "name: result" (a count or value, or the errno's name).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_ATOMIC
#define RWF_ATOMIC 0x40
#endif
#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x80
#endif
#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x100
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x8
#define MFD_EXEC 0x10
#endif

static const char *ename(int e)
{
    static char buf[16];
    switch (e) {
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ESPIPE: return "ESPIPE";
    case EAGAIN: return "EAGAIN";
    case EFAULT: return "EFAULT";
    case ENOENT: return "ENOENT";
    case ENODEV: return "ENODEV";
    case EFBIG: return "EFBIG";
    case EISDIR: return "EISDIR";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case ENOMEM: return "ENOMEM";
    case EPIPE: return "EPIPE";
    default: snprintf(buf, sizeof buf, "errno %d", e); return buf;
    }
}

static void R(const char *name, long r)
{
    if (r < 0)
        printf("%s: %s\n", name, ename(errno));
    else
        printf("%s: %ld\n", name, r);
}

static long size_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) < 0 ? -1 : (long)st.st_size;
}

static long pos_of(int fd) { return lseek(fd, 0, SEEK_CUR); }

static void show_file(const char *name, int fd)
{
    char buf[64] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = '.';
    printf("%s: %zd \"%s\"\n", name, n, buf);
}

static void rw_flags(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/rwf", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int wo = open(path, O_WRONLY);
    int ap = open(path, O_WRONLY | O_APPEND);
    write(fd, "0123456789", 10);
    char b[4];
    struct iovec rv = {b, sizeof b}, empty = {b, 0};
    struct iovec wv = {"AB", 2};

    R("preadv2 flags 0", preadv2(fd, &rv, 1, 0, 0));
    R("preadv2 unknown flag 0x1000", preadv2(fd, &rv, 1, 0, 0x1000));
    R("preadv2 unknown flag 0x100", preadv2(fd, &rv, 1, 0, 0x100));
    R("preadv2 unknown flag, empty iovec", preadv2(fd, &empty, 1, 0, 0x1000));
    R("preadv2 unknown flag, bad fd", preadv2(99, &rv, 1, 0, 0x1000));
    R("preadv2 unknown flag, write-only fd", preadv2(wo, &rv, 1, 0, 0x1000));
    R("preadv2 unknown flag, bad iovec", preadv2(fd, (struct iovec *)8, 1, 0, 0x1000));
    R("preadv2 RWF_HIPRI", preadv2(fd, &rv, 1, 0, RWF_HIPRI));
    R("preadv2 RWF_NOWAIT", preadv2(fd, &rv, 1, 2, RWF_NOWAIT));
    R("preadv2 RWF_DSYNC", preadv2(fd, &rv, 1, 0, RWF_DSYNC));
    R("preadv2 RWF_APPEND|RWF_NOAPPEND", preadv2(fd, &rv, 1, 0, RWF_APPEND | RWF_NOAPPEND));
    R("preadv2 RWF_ATOMIC", preadv2(fd, &rv, 1, 0, RWF_ATOMIC));
    R("preadv2 RWF_DONTCACHE", preadv2(fd, &rv, 1, 0, RWF_DONTCACHE));
    R("preadv2 offset -2", preadv2(fd, &rv, 1, -2, 0));
    lseek(fd, 3, SEEK_SET);
    R("preadv2 offset -1 reads at the position", preadv2(fd, &rv, 1, -1, RWF_HIPRI));
    R("preadv2 position after", pos_of(fd));

    R("pwritev2 unknown flag", pwritev2(fd, &wv, 1, 0, 0x1000));
    R("pwritev2 RWF_ATOMIC", pwritev2(fd, &wv, 1, 0, RWF_ATOMIC));
    R("pwritev2 RWF_APPEND|RWF_NOAPPEND", pwritev2(fd, &wv, 1, 0, RWF_APPEND | RWF_NOAPPEND));
    lseek(fd, 1, SEEK_SET);
    R("pwritev2 RWF_APPEND at offset 0", pwritev2(fd, &wv, 1, 0, RWF_APPEND));
    R("pwritev2 RWF_APPEND size", size_of(fd));
    R("pwritev2 RWF_APPEND position kept", pos_of(fd));
    R("pwritev2 RWF_APPEND at the position", pwritev2(fd, &wv, 1, -1, RWF_APPEND));
    R("pwritev2 RWF_APPEND position moved to the end", pos_of(fd));
    R("pwritev2 O_APPEND fd at offset 0", pwritev2(ap, &wv, 1, 0, 0));
    R("pwritev2 O_APPEND fd RWF_NOAPPEND at offset 0", pwritev2(ap, &wv, 1, 0, RWF_NOAPPEND));
    R("pwritev2 F_GETFL still has O_APPEND", !!(fcntl(ap, F_GETFL) & O_APPEND));
    R("pwritev2 RWF_DSYNC", pwritev2(fd, &wv, 1, 4, RWF_DSYNC));
    R("pwritev2 RWF_SYNC", pwritev2(fd, &wv, 1, 6, RWF_SYNC));
    R("pwritev2 RWF_HIPRI", pwritev2(fd, &wv, 1, 8, RWF_HIPRI));
    show_file("pwritev2 file", fd);

    int p[2];
    pipe(p);
    R("preadv2 pipe at offset 0", preadv2(p[0], &rv, 1, 0, 0));
    R("preadv2 RWF_NOWAIT empty pipe", preadv2(p[0], &rv, 1, -1, RWF_NOWAIT));
    R("pwritev2 RWF_NOWAIT pipe", pwritev2(p[1], &wv, 1, -1, RWF_NOWAIT));
    R("preadv2 RWF_NOWAIT pipe with data", preadv2(p[0], &rv, 1, -1, RWF_NOWAIT));
    R("preadv2 unknown flag on pipe", preadv2(p[0], &rv, 1, -1, 0x1000));
    close(p[0]);
    R("pwritev2 RWF_NOSIGNAL to a pipe without reader", pwritev2(p[1], &wv, 1, -1, RWF_NOSIGNAL));
    close(p[1]);
    close(fd);
    close(wo);
    close(ap);
}

static void fallocate_modes(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/falloc", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int ro = open(path, O_RDONLY);
    int op = open(path, O_PATH);
    write(fd, "abcdefghijklmnop", 16);

    R("fallocate extend", fallocate(fd, 0, 0, 100));
    R("fallocate size", size_of(fd));
    R("fallocate inside the file", fallocate(fd, 0, 10, 20));
    R("fallocate KEEP_SIZE past the end", fallocate(fd, FALLOC_FL_KEEP_SIZE, 50, 4096));
    R("fallocate size after KEEP_SIZE", size_of(fd));
    R("fallocate PUNCH_HOLE alone", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 2, 4));
    R("fallocate PUNCH_HOLE|KEEP_SIZE", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2, 4));
    R("fallocate PUNCH_HOLE past the end", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 12, 1000));
    R("fallocate size after punching", size_of(fd));
    show_file("fallocate data after punching", fd);
    R("fallocate ZERO_RANGE", fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4));
    R("fallocate COLLAPSE_RANGE", fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096));
    R("fallocate COLLAPSE_RANGE|KEEP_SIZE", fallocate(fd, FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096));
    R("fallocate INSERT_RANGE", fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 4096));
    R("fallocate UNSHARE_RANGE", fallocate(fd, FALLOC_FL_UNSHARE_RANGE, 0, 4));
    R("fallocate PUNCH|ZERO", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4));
    R("fallocate NO_HIDE_STALE", fallocate(fd, 0x4, 0, 4));
    R("fallocate mode 0x100", fallocate(fd, 0x100, 0, 4));
    R("fallocate zero length", fallocate(fd, 0, 0, 0));
    R("fallocate negative length", fallocate(fd, 0, 0, -1));
    R("fallocate negative offset", fallocate(fd, 0, -1, 10));
    R("fallocate zero length, bad mode", fallocate(fd, 0x100, 0, 0));
    R("fallocate read-only fd", fallocate(ro, 0, 0, 10));
    R("fallocate read-only fd, bad mode", fallocate(ro, 0x100, 0, 10));
    R("fallocate O_PATH fd", fallocate(op, 0, 0, 10));
    R("fallocate bad fd", fallocate(99, 0, 0, 10));
    R("fallocate offset+len overflow", fallocate(fd, 0, INT64_MAX - 5, 10));
    int p[2];
    pipe(p);
    R("fallocate pipe", fallocate(p[1], 0, 0, 10));
    int null = open("/dev/null", O_WRONLY);
    R("fallocate /dev/null", fallocate(null, 0, 0, 10));
    close(null);
    close(p[0]);
    close(p[1]);
    close(fd);
    close(ro);
    close(op);
}

static void at_flags(const char *dir)
{
    char f[128], l[128], g[128];
    snprintf(f, sizeof f, "%s/f", dir);
    snprintf(l, sizeof l, "%s/l", dir);
    snprintf(g, sizeof g, "%s/g", dir);
    close(open(f, O_RDWR | O_CREAT, 0644));
    symlink("f", l);
    int fd = open(f, O_RDONLY);
    int D = open(dir, O_DIRECTORY | O_RDONLY);
    struct timespec ts[2] = {{1, 0}, {2, 0}};
    struct stat st;

    R("fchownat flag 0x1", fchownat(AT_FDCWD, f, 0, 0, 0x1));
    R("fchownat AT_REMOVEDIR", fchownat(AT_FDCWD, f, 0, 0, AT_REMOVEDIR));
    R("fchownat AT_SYMLINK_NOFOLLOW", fchownat(AT_FDCWD, l, 0, 0, AT_SYMLINK_NOFOLLOW));
    R("fchownat AT_EMPTY_PATH", fchownat(fd, "", 0, 0, AT_EMPTY_PATH));
    R("fchownat empty path without AT_EMPTY_PATH", fchownat(fd, "", 0, 0, 0));
    R("fchownat NULL path", syscall(SYS_fchownat, AT_FDCWD, NULL, 0, 0, 0));
    R("utimensat flag 0x1", utimensat(AT_FDCWD, f, ts, 0x1));
    R("utimensat AT_SYMLINK_NOFOLLOW", utimensat(AT_FDCWD, l, ts, AT_SYMLINK_NOFOLLOW));
    R("utimensat fd, NULL path", syscall(SYS_utimensat, fd, NULL, ts, 0));
    R("utimensat fd, NULL path, flags", syscall(SYS_utimensat, fd, NULL, ts, AT_SYMLINK_NOFOLLOW));
    R("utimensat AT_FDCWD, NULL path", syscall(SYS_utimensat, AT_FDCWD, NULL, ts, 0));
    R("utimensat AT_EMPTY_PATH", syscall(SYS_utimensat, fd, "", ts, AT_EMPTY_PATH));
    R("utimensat empty path", syscall(SYS_utimensat, fd, "", ts, 0));
    R("utimensat flag 0x1 and bad nsec", utimensat(AT_FDCWD, f, (struct timespec[2]){{0, -5}, {0, 0}}, 0x1));
    R("faccessat2 flag 0x1", syscall(SYS_faccessat2, AT_FDCWD, f, R_OK, 0x1));
    R("faccessat2 AT_EMPTY_PATH", syscall(SYS_faccessat2, fd, "", R_OK, AT_EMPTY_PATH));
    R("faccessat2 bad mode", syscall(SYS_faccessat2, AT_FDCWD, f, 8, 0));
    R("linkat flag 0x1", linkat(AT_FDCWD, f, AT_FDCWD, g, 0x1));
    R("linkat AT_SYMLINK_NOFOLLOW", linkat(AT_FDCWD, f, AT_FDCWD, g, AT_SYMLINK_NOFOLLOW));
    R("unlinkat flag 0x1", unlinkat(AT_FDCWD, f, 0x1));
    R("unlinkat AT_SYMLINK_NOFOLLOW", unlinkat(AT_FDCWD, f, AT_SYMLINK_NOFOLLOW));
    R("renameat2 flag 0x8", syscall(SYS_renameat2, AT_FDCWD, f, AT_FDCWD, g, 0x8));
    R("renameat2 EXCHANGE|NOREPLACE", syscall(SYS_renameat2, AT_FDCWD, f, AT_FDCWD, l, 3));
    R("renameat2 EXCHANGE|WHITEOUT", syscall(SYS_renameat2, AT_FDCWD, f, AT_FDCWD, l, 6));
    R("newfstatat flag 0x1", fstatat(AT_FDCWD, f, &st, 0x1));
    R("newfstatat AT_NO_AUTOMOUNT", fstatat(AT_FDCWD, f, &st, AT_NO_AUTOMOUNT));
    R("newfstatat AT_STATX_FORCE_SYNC", fstatat(AT_FDCWD, f, &st, 0x2000));
    R("newfstatat both sync bits", fstatat(AT_FDCWD, f, &st, 0x6000));
    R("newfstatat AT_REMOVEDIR", fstatat(AT_FDCWD, f, &st, AT_REMOVEDIR));
    char sx[256];
    R("statx flag 0x1", syscall(SYS_statx, AT_FDCWD, f, 0x1, 0x7ff, sx));
    R("statx AT_STATX_FORCE_SYNC", syscall(SYS_statx, AT_FDCWD, f, 0x2000, 0x7ff, sx));
    R("statx AT_STATX_DONT_SYNC", syscall(SYS_statx, AT_FDCWD, f, 0x4000, 0x7ff, sx));
    R("statx both sync bits", syscall(SYS_statx, AT_FDCWD, f, 0x6000, 0x7ff, sx));
    R("statx reserved mask", syscall(SYS_statx, AT_FDCWD, f, 0, 0x80000000u, sx));
    R("statx AT_EMPTY_PATH", syscall(SYS_statx, fd, "", AT_EMPTY_PATH, 0x7ff, sx));
    R("statx empty path", syscall(SYS_statx, fd, "", 0, 0x7ff, sx));
    R("fchmodat relative to a dirfd", fchmodat(D, "f", 0600, 0));
    close(fd);
    close(D);
    unlink(g);
    unlink(l);
    unlink(f);
}

static void memfd_checks(void)
{
    char name[300];
    memset(name, 'n', sizeof name);
    name[249] = 0;
    int fd = memfd_create(name, 0);
    R("memfd_create name of 249 bytes", fd >= 0 ? 0 : -1);
    close(fd);
    name[249] = 'n';
    name[250] = 0;
    R("memfd_create name of 250 bytes", memfd_create(name, 0));
    name[299] = 0;
    R("memfd_create name of 299 bytes", memfd_create(name, 0));
    R("memfd_create NULL name", memfd_create(NULL, 0));
    R("memfd_create unknown flag", memfd_create("x", 0x100));
    R("memfd_create unknown flag, long name", memfd_create(name, 0x100));
    R("memfd_create EXEC|NOEXEC_SEAL", memfd_create("x", MFD_EXEC | MFD_NOEXEC_SEAL));
    R("memfd_create huge-page size bits without MFD_HUGETLB", memfd_create("x", 21 << 26));
    struct stat st;
    fd = memfd_create("x", MFD_NOEXEC_SEAL);
    fstat(fd, &st);
    R("memfd_create MFD_NOEXEC_SEAL mode", fd < 0 ? -1 : (long)(st.st_mode & 07777));
    close(fd);
    fd = memfd_create("x", MFD_EXEC);
    fstat(fd, &st);
    R("memfd_create MFD_EXEC mode", fd < 0 ? -1 : (long)(st.st_mode & 07777));
    close(fd);
    fd = memfd_create("x", 0);
    fstat(fd, &st);
    R("memfd_create default mode", fd < 0 ? -1 : (long)(st.st_mode & 07777));
    close(fd);
}

int main(void)
{
    char dir[] = "/dev/shm/file_flags-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    rw_flags(dir);
    fallocate_modes(dir);
    at_flags(dir);
    memfd_checks();
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 2;
}
