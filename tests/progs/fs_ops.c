/* File syscalls a shell, coreutils and CPython use; prints only what is portable
 * between two tmpfs mounts (no inode or device numbers, no times but explicit ones). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <dirent.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/select.h>
#include <sys/time.h>
#include <stdint.h>

#define E(expr) do { errno = 0; long _r = (long)(expr); printf("%-44s -> %ld %s\n", #expr, _r, _r < 0 ? strerrorname_np(errno) : ""); } while (0)

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

int main(void) {
    char dir[] = "/dev/shm/pysentry-fs-XXXXXX";
    mkdtemp(dir);
    chdir(dir);
    umask(022);
    E(open("f", O_CREAT | O_EXCL | O_RDWR, 0644));
    E(open("f", O_CREAT | O_EXCL | O_RDWR, 0644));
    E(write(3, "hello world\n", 12));
    E(lseek(3, 0, SEEK_CUR));
    E(pwrite(3, "HELLO", 5, 0));
    char buf[64] = {0};
    E(pread(3, buf, sizeof buf, 0)); printf("  buf=%s", buf);
    struct iovec iov[2] = {{buf, 3}, {buf + 10, 4}};
    E(lseek(3, 0, SEEK_SET));
    E(readv(3, iov, 2)); printf("  %.3s|%.4s\n", buf, buf + 10);
    E(lseek(3, 100, SEEK_END));
    E(write(3, "x", 1));
    E(lseek(3, 0, SEEK_DATA));
    E(lseek(3, -1, SEEK_SET));
    struct stat st;
    E(fstat(3, &st)); printf("  size %ld mode %o nlink %ld\n", (long)st.st_size, st.st_mode, (long)st.st_nlink);
    E(ftruncate(3, 5));
    E(fstat(3, &st)); printf("  size %ld\n", (long)st.st_size);
    E(open("f", O_WRONLY | O_APPEND));
    E(write(4, "++", 2));
    E(pread(3, buf, sizeof buf, 0)); printf("  %.7s\n", buf);
    E(fcntl(4, F_GETFL) & (O_APPEND | O_ACCMODE));
    E(fcntl(4, F_SETFL, O_NONBLOCK));
    E(fcntl(4, F_GETFL) & (O_APPEND | O_NONBLOCK | O_ACCMODE));
    E(fcntl(4, F_GETFD));
    E(fcntl(4, F_SETFD, FD_CLOEXEC));
    E(fcntl(4, F_GETFD));
    E(dup(3));
    E(dup2(3, 10));
    E(dup3(3, 10, 0));
    E(dup3(3, 11, O_CLOEXEC));
    E(fcntl(11, F_GETFD));
    E(fcntl(3, F_DUPFD, 20));
    E(close(20)); E(close(20));
    E(mkdir("d", 0755)); E(mkdir("d", 0755)); E(mkdir("nope/d", 0755));
    E(rmdir("f")); E(unlink("d")); E(open("d", O_WRONLY));
    E(symlink("f", "l")); E(symlink("f", "l"));
    E(readlink("l", buf, sizeof buf)); printf("  -> %.*s\n", 1, buf);
    E(readlink("f", buf, sizeof buf));
    E(lstat("l", &st)); printf("  islnk %d\n", S_ISLNK(st.st_mode));
    E(stat("l", &st)); printf("  isreg %d size %ld\n", S_ISREG(st.st_mode), (long)st.st_size);
    E(link("f", "hard")); E(stat("f", &st)); printf("  nlink %ld\n", (long)st.st_nlink);
    E(rename("hard", "d/moved")); E(rmdir("d")); E(access("d/moved", R_OK | W_OK));
    E(renameat2(AT_FDCWD, "f", AT_FDCWD, "d/moved", RENAME_NOREPLACE));
    E(renameat2(AT_FDCWD, "l", AT_FDCWD, "d/l2", RENAME_NOREPLACE));
    E(chmod("f", 0600)); E(stat("f", &st)); printf("  mode %o\n", st.st_mode & 0777);
    E(truncate("f", 3)); E(stat("f", &st)); printf("  size %ld\n", (long)st.st_size);
    struct timespec ts[2] = {{1000000000, 5}, {1500000000, 7}};
    E(utimensat(AT_FDCWD, "f", ts, 0)); E(stat("f", &st));
    printf("  atime %ld.%ld mtime %ld.%ld\n", st.st_atim.tv_sec, st.st_atim.tv_nsec, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct statx sx;
    E(statx(AT_FDCWD, "f", 0, STATX_SIZE | STATX_MODE, &sx)); printf("  statx size %lld mode %o\n", (long long)sx.stx_size, sx.stx_mode & 0777);
    E(chdir("d")); E(getcwd(buf, sizeof buf) != NULL); printf("  cwd ends %s\n", strrchr(buf, '/'));
    E(chdir("..")); E(chdir("f"));
    for (int i = 0; i < 5; i++) { char n[8]; sprintf(n, "e%d", i); close(open(n, O_CREAT | O_WRONLY, 0600)); }
    DIR *dp = opendir("."); struct dirent *de; char *names[64]; int n = 0;
    while ((de = readdir(dp))) names[n++] = strdup(de->d_name);
    closedir(dp); qsort(names, n, sizeof *names, cmp);
    printf("  dir:"); for (int i = 0; i < n; i++) printf(" %s", names[i]); printf("\n");
    int p[2]; E(pipe2(p, O_CLOEXEC));
    struct pollfd pf[2] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}};
    E(poll(pf, 2, 0)); printf("  revents %x %x\n", pf[0].revents, pf[1].revents);
    E(write(p[1], "z", 1));
    E(poll(pf, 2, 0)); printf("  revents %x %x\n", pf[0].revents, pf[1].revents);
    fd_set r; FD_ZERO(&r); FD_SET(p[0], &r); struct timeval tv = {0, 0};
    E(select(p[0] + 1, &r, NULL, NULL, &tv));
    E(close(p[1])); E(read(p[0], buf, 10)); E(read(p[0], buf, 10));
    E(read(999, buf, 1)); E(write(3, (void *)8, 1));
    E(unlinkat(AT_FDCWD, "d", AT_REMOVEDIR));
    return 0;
}
