/* Names and metadata: stat family, directories, links, permissions, times. */
#include "cov.h"
#include <dirent.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

static const char *kind(mode_t m) {
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : S_ISFIFO(m) ? "fifo"
         : S_ISCHR(m) ? "chr" : "other";
}

static void show(const char *sys, const char *what, long ret, struct stat *st) {
    if (ret == -1) printf("%s %s: -1 %s\n", sys, what, ename(errno));
    else printf("%s %s: %s mode %o size %lld nlink %ld\n", sys, what, kind(st->st_mode),
                st->st_mode & 07777, S_ISDIR(st->st_mode) ? 0LL : (long long)st->st_size,
                S_ISDIR(st->st_mode) ? 0L : (long)st->st_nlink);
}

/* Names in a directory, sorted, via the given getdents flavour. */
static void list(const char *sys, int nr, const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    char buf[4096], names[64][64];
    int n = 0;
    long got;
    while ((got = syscall(nr, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            unsigned short reclen;
            const char *name;
            if (nr == SYS_getdents64) {
                memcpy(&reclen, buf + off + 16, 2);
                name = buf + off + 19;
            } else {
                memcpy(&reclen, buf + off + 16, 2);
                name = buf + off + 18;
            }
            if (n < 64) snprintf(names[n++], 64, "%s", name);
            off += reclen;
        }
    }
    if (got < 0) printf("%s %s: -1 %s\n", sys, path, ename(errno));
    qsort(names, n, 64, (int (*)(const void *, const void *))strcmp);
    printf("%s %s:", sys, path);
    for (int i = 0; i < n; i++) printf(" %s", names[i]);
    printf("\n");
    close(fd);
}

int main(void) {
    setup("fsmeta");
    struct stat st;
    put("f", "hello");
    SC(umask, 022);

    /* umask */
    R(umask, "old", SC(umask, 027));
    R(umask, "new", SC(umask, 022));

    /* stat family */
    show("stat", "file", SC(stat, "f", &st), &st);
    show("stat", "missing", SC(stat, "nope", &st), &st);
    show("stat", "empty path", SC(stat, "", &st), &st);
    show("stat", "through a file", SC(stat, "f/x", &st), &st);
    show("stat", "/etc/passwd kind", SC(stat, "/etc/passwd", &st), &st) ;
    int fd = open("f", O_RDONLY);
    show("fstat", "file", SC(fstat, fd, &st), &st);
    show("fstat", "bad fd", SC(fstat, 55, &st), &st);
    R(stat, "bad buffer", SC(stat, "f", (void *)16));
    SC(symlink, "f", "lnk");
    show("lstat", "symlink", SC(lstat, "lnk", &st), &st);
    show("stat", "through symlink", SC(stat, "lnk", &st), &st);
    show("newfstatat", "AT_FDCWD", SC(newfstatat, AT_FDCWD, "f", &st, 0), &st);
    show("newfstatat", "AT_SYMLINK_NOFOLLOW", SC(newfstatat, AT_FDCWD, "lnk", &st, AT_SYMLINK_NOFOLLOW), &st);
    show("newfstatat", "AT_EMPTY_PATH", SC(newfstatat, fd, "", &st, AT_EMPTY_PATH), &st);
    show("newfstatat", "empty path without flag", SC(newfstatat, fd, "", &st, 0), &st);
    show("newfstatat", "bad flags", SC(newfstatat, AT_FDCWD, "f", &st, 0x1), &st);
    struct statx sx;
    R(statx, "file", SC(statx, AT_FDCWD, "f", 0, STATX_BASIC_STATS, &sx));
    SAY(statx, "file fields", "size %lld mode %o mask-has-size %s", (long long)sx.stx_size,
        sx.stx_mode & 07777, YES(sx.stx_mask & STATX_SIZE));
    R(statx, "symlink nofollow", SC(statx, AT_FDCWD, "lnk", AT_SYMLINK_NOFOLLOW, STATX_TYPE, &sx));
    SAY(statx, "symlink type", "%s", kind(sx.stx_mode));
    R(statx, "missing", SC(statx, AT_FDCWD, "nope", 0, STATX_BASIC_STATS, &sx));
    R(statx, "reserved mask bit", SC(statx, AT_FDCWD, "f", 0, 0x80000000u, &sx));

    /* access family */
    R(access, "F_OK", SC(access, "f", F_OK));
    R(access, "missing", SC(access, "nope", F_OK));
    R(access, "X_OK on 0644 file (root)", SC(access, "f", X_OK));
    R(access, "bad mode", SC(access, "f", 0100));
    R(faccessat, "R_OK", SC(faccessat, AT_FDCWD, "f", R_OK));
    R(faccessat2, "AT_SYMLINK_NOFOLLOW", SC(faccessat2, AT_FDCWD, "lnk", F_OK, AT_SYMLINK_NOFOLLOW));
    R(faccessat2, "AT_EACCESS", SC(faccessat2, AT_FDCWD, "f", R_OK, AT_EACCESS));
    R(faccessat2, "bad flags", SC(faccessat2, AT_FDCWD, "f", R_OK, 0x4));

    /* directories */
    R(mkdir, "new", SC(mkdir, "d", 0755));
    R(mkdir, "existing", SC(mkdir, "d", 0755));
    R(mkdir, "parent missing", SC(mkdir, "x/y", 0755));
    SC(mkdir, "d2", 0777);
    show("mkdir", "mode honours umask", SC(stat, "d2", &st), &st);
    int dfd = open("d", O_RDONLY | O_DIRECTORY);
    R(mkdirat, "dirfd relative", SC(mkdirat, dfd, "sub", 0700));
    R(mkdirat, "bad dirfd", SC(mkdirat, 77, "sub", 0700));
    R(rmdir, "empty", SC(rmdir, "d2"));
    R(rmdir, "not empty", SC(rmdir, "d"));
    R(rmdir, "a file", SC(rmdir, "f"));
    R(rmdir, "dot", SC(rmdir, "d/."));
    R(rmdir, "missing", SC(rmdir, "d2"));
    char cwd[512];
    long n = SC(getcwd, cwd, sizeof cwd);
    SAY(getcwd, "is the scratch dir", "%s", YES(n > 0 && strcmp(cwd, scratch) == 0));
    R(getcwd, "buffer too small", SC(getcwd, cwd, 2));
    R(chdir, "into d", SC(chdir, "d"));
    n = SC(getcwd, cwd, sizeof cwd);
    SAY(chdir, "cwd ends with /d", "%s", YES(n > 2 && strcmp(cwd + strlen(cwd) - 2, "/d") == 0));
    R(chdir, "a file", SC(chdir, "../f"));
    R(chdir, "missing", SC(chdir, "nope"));
    int top = open(scratch, O_RDONLY | O_DIRECTORY);
    R(fchdir, "back", SC(fchdir, top));
    R(fchdir, "file fd", SC(fchdir, fd));
    R(fchdir, "bad fd", SC(fchdir, 88));
    put("d/a", "1");
    put("d/b", "22");
    list("getdents64", SYS_getdents64, "d");
    list("getdents", SYS_getdents, "d");
    R(getdents64, "on a file", SC(getdents64, fd, cwd, sizeof cwd));
    R(getdents64, "buffer too small", SC(getdents64, dfd, cwd, 8));

    /* rename family */
    R(rename, "file", SC(rename, "d/a", "d/a2"));
    R(rename, "missing", SC(rename, "d/zz", "d/yy"));
    R(rename, "dir over file", SC(rename, "d/sub", "d/b"));
    R(rename, "file over dir", SC(rename, "d/b", "d/sub"));
    R(rename, "dir into itself", SC(rename, "d", "d/sub/x"));
    R(renameat, "dirfd", SC(renameat, dfd, "a2", dfd, "a3"));
    R(renameat2, "RENAME_NOREPLACE existing", SC(renameat2, dfd, "a3", dfd, "b", 1));
    R(renameat2, "RENAME_EXCHANGE", SC(renameat2, dfd, "a3", dfd, "b", 2));
    show("renameat2", "b after exchange", SC(stat, "d/b", &st), &st);
    R(renameat2, "bad flags", SC(renameat2, dfd, "a3", dfd, "b", 3));

    /* links */
    R(link, "hard", SC(link, "f", "hard"));
    show("link", "nlink", SC(stat, "f", &st), &st);
    R(link, "existing target", SC(link, "f", "hard"));
    R(link, "directory", SC(link, "d", "dlink"));
    R(linkat, "dirfd", SC(linkat, AT_FDCWD, "f", dfd, "hard2", 0));
    R(linkat, "bad flags", SC(linkat, AT_FDCWD, "f", dfd, "hard3", 0x1));
    R(unlink, "hard", SC(unlink, "hard"));
    R(unlink, "missing", SC(unlink, "hard"));
    R(unlink, "directory", SC(unlink, "d"));
    R(unlinkat, "file", SC(unlinkat, dfd, "hard2", 0));
    R(unlinkat, "AT_REMOVEDIR", SC(unlinkat, dfd, "sub", AT_REMOVEDIR));
    R(unlinkat, "AT_REMOVEDIR on a file", SC(unlinkat, dfd, "b", AT_REMOVEDIR));
    R(unlinkat, "bad flags", SC(unlinkat, dfd, "b", 0x1));
    R(symlink, "dangling", SC(symlink, "nowhere", "dang"));
    R(symlink, "existing", SC(symlink, "f", "lnk"));
    R(symlinkat, "dirfd", SC(symlinkat, "../f", dfd, "up"));
    char lbuf[64];
    n = SC(readlink, "lnk", lbuf, sizeof lbuf);
    R(readlink, "length", n);
    SAY(readlink, "target", "%.*s", (int)(n > 0 ? n : 0), lbuf);
    R(readlink, "truncated", SC(readlink, "dang", lbuf, 3));
    R(readlink, "not a link", SC(readlink, "f", lbuf, sizeof lbuf));
    R(readlink, "zero size", SC(readlink, "lnk", lbuf, 0));
    n = SC(readlinkat, dfd, "up", lbuf, sizeof lbuf);
    SAY(readlinkat, "target", "%.*s", (int)(n > 0 ? n : 0), lbuf);
    R(readlinkat, "missing", SC(readlinkat, dfd, "nope", lbuf, sizeof lbuf));
    R(open, "dangling symlink", SC(open, "dang", O_RDONLY));
    SC(symlink, "loop", "loop");
    R(open, "symlink loop", SC(open, "loop", O_RDONLY));
    R(open, "O_NOFOLLOW on a symlink", SC(open, "lnk", O_RDONLY | O_NOFOLLOW));

    /* permissions and owners */
    R(chmod, "0600", SC(chmod, "f", 0600));
    show("chmod", "result", SC(stat, "f", &st), &st);
    R(chmod, "missing", SC(chmod, "nope", 0600));
    R(fchmod, "04755", SC(fchmod, fd, 04755));
    show("fchmod", "result", SC(fstat, fd, &st), &st);
    R(fchmod, "bad fd", SC(fchmod, 66, 0644));
    R(fchmodat, "relative", SC(fchmodat, AT_FDCWD, "f", 0640));
    R(fchmodat, "AT_SYMLINK_NOFOLLOW", SC(fchmodat, AT_FDCWD, "f", 0640, AT_SYMLINK_NOFOLLOW));
    R(chown, "to 1234:5678", SC(chown, "f", 1234, 5678));
    SC(stat, "f", &st);
    SAY(chown, "owner", "%d:%d", (int)st.st_uid, (int)st.st_gid);
    R(chown, "-1 keeps", SC(chown, "f", -1, 42));
    SC(stat, "f", &st);
    SAY(chown, "owner after -1", "%d:%d", (int)st.st_uid, (int)st.st_gid);
    R(fchown, "to 0:0", SC(fchown, fd, 0, 0));
    R(fchown, "bad fd", SC(fchown, 66, 0, 0));
    R(lchown, "symlink itself", SC(lchown, "lnk", 7, 7));
    SC(lstat, "lnk", &st);
    SAY(lchown, "symlink owner", "%d:%d", (int)st.st_uid, (int)st.st_gid);
    SC(stat, "f", &st);
    SAY(lchown, "target owner untouched", "%d:%d", (int)st.st_uid, (int)st.st_gid);
    R(fchownat, "AT_SYMLINK_NOFOLLOW", SC(fchownat, AT_FDCWD, "lnk", 9, 9, AT_SYMLINK_NOFOLLOW));
    R(fchownat, "bad flags", SC(fchownat, AT_FDCWD, "f", 9, 9, 0x1));

    /* times */
    struct timespec ts[2] = {{1000000000, 5}, {1200000000, 7}};
    R(utimensat, "set both", SC(utimensat, AT_FDCWD, "f", ts, 0));
    SC(stat, "f", &st);
    SAY(utimensat, "times", "%ld.%ld %ld.%ld", (long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
        (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {42, 0}};
    R(utimensat, "UTIME_OMIT atime", SC(utimensat, AT_FDCWD, "f", omit, 0));
    SC(stat, "f", &st);
    SAY(utimensat, "after omit", "%ld %ld", (long)st.st_atim.tv_sec, (long)st.st_mtim.tv_sec);
    struct timespec badns[2] = {{0, 2000000000}, {0, 0}};
    R(utimensat, "bad nsec", SC(utimensat, AT_FDCWD, "f", badns, 0));
    R(utimensat, "missing", SC(utimensat, AT_FDCWD, "nope", ts, 0));
    R(utimensat, "fd with NULL path", SC(utimensat, fd, NULL, ts, 0));

    /* special files */
    R(mknod, "fifo", SC(mknod, "fifo", S_IFIFO | 0644, 0));
    show("mknod", "fifo kind", SC(lstat, "fifo", &st), &st);
    R(mknod, "existing", SC(mknod, "fifo", S_IFIFO | 0644, 0));
    R(mknod, "bad type", SC(mknod, "bad", 0170000 | 0644, 0));
    R(mknodat, "regular file", SC(mknodat, dfd, "regular", S_IFREG | 0600, 0));
    show("mknodat", "regular kind", SC(stat, "d/regular", &st), &st);
    R(mknodat, "char device /dev/null-like", SC(mknodat, dfd, "nul", S_IFCHR | 0666, makedev(1, 3)));

    /* filesystems */
    struct statfs sf;
    R(statfs, "/", SC(statfs, "/", &sf));
    R(statfs, "missing", SC(statfs, "/nope/x", &sf));
    R(fstatfs, "file fd", SC(fstatfs, fd, &sf));
    R(fstatfs, "bad fd", SC(fstatfs, 66, &sf));
    R(statfs, "/proc is procfs", SC(statfs, "/proc", &sf) == 0 && sf.f_type == 0x9fa0);

    /* chroot (in a child: the directory stays ours) */
    pid_t c = fork();
    if (c == 0) {
        R(chroot, "into d", SC(chroot, "d"));
        R(chroot, "sees its files", SC(access, "/regular", F_OK));
        R(chroot, "missing", SC(chroot, "/nope"));
        _exit(0);
    }
    SAY(chroot, "child", "%s", ended(c));
    return 0;
}
