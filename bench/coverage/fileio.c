/* File descriptors and file I/O. */
#include "cov.h"
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

int main(void) {
    setup("fileio");
    char buf[64];
    put("data", "0123456789abcdef");

    /* open / creat / openat / openat2 / close */
    int fd = R(open, "existing O_RDONLY", SC(open, "data", O_RDONLY));
    R(close, "open fd", SC(close, fd));
    R(close, "already closed", SC(close, fd));
    R(close, "negative fd", SC(close, -1));
    FD(open, "missing", SC(open, "nope", O_RDONLY));
    FD(open, "O_CREAT|O_EXCL existing", SC(open, "data", O_CREAT | O_EXCL | O_WRONLY, 0644));
    FD(open, "O_DIRECTORY on a file", SC(open, "data", O_RDONLY | O_DIRECTORY));
    FD(open, "path through a file", SC(open, "data/x", O_RDONLY));
    FD(open, "write a directory", SC(open, ".", O_WRONLY));
    fd = R(creat, "new file", SC(creat, "created", 0600));
    R(write, "to creat fd", SC(write, fd, "xyz", 3));
    R(read, "from write-only fd", SC(read, fd, buf, 1));
    SC(close, fd);
    fd = R(openat, "AT_FDCWD relative", SC(openat, AT_FDCWD, "data", O_RDONLY));
    SC(close, fd);
    int dfd = SC(open, ".", O_RDONLY | O_DIRECTORY);
    fd = R(openat, "dirfd relative", SC(openat, dfd, "created", O_RDONLY));
    SC(close, fd);
    FD(openat, "bad dirfd", SC(openat, 999, "data", O_RDONLY));
    fd = SC(open, "data", O_RDONLY);
    FD(openat, "file as dirfd", SC(openat, fd, "x", O_RDONLY));
    SC(close, fd);
    struct open_how how = {.flags = O_RDONLY, .resolve = RESOLVE_BENEATH};
    struct open_how plain = {.flags = O_RDONLY};
    FD(openat2, "plain", SC(openat2, dfd, "data", &plain, sizeof plain));
    FD(openat2, "RESOLVE_BENEATH inside", SC(openat2, dfd, "data", &how, sizeof how));
    FD(openat2, "RESOLVE_BENEATH escaping", SC(openat2, dfd, "../x", &how, sizeof how));
    struct open_how bad = {.flags = O_RDONLY, .mode = 0644};
    FD(openat2, "mode without O_CREAT", SC(openat2, dfd, "data", &bad, sizeof bad));
    FD(openat2, "bad size", SC(openat2, dfd, "data", &plain, 3));

    /* read / write / lseek / pread64 / pwrite64 */
    fd = SC(open, "data", O_RDWR);
    R(read, "4 bytes", SC(read, fd, buf, 4));
    SAY(read, "data", "%.4s", buf);
    R(lseek, "SEEK_CUR +2", SC(lseek, fd, 2, SEEK_CUR));
    R(lseek, "SEEK_END -3", SC(lseek, fd, -3, SEEK_END));
    R(read, "to end", SC(read, fd, buf, sizeof buf));
    R(read, "at EOF", SC(read, fd, buf, sizeof buf));
    R(lseek, "SEEK_SET past end", SC(lseek, fd, 100, SEEK_SET));
    R(lseek, "negative result", SC(lseek, fd, -1000, SEEK_CUR));
    R(lseek, "bad whence", SC(lseek, fd, 0, 42));
    R(write, "past end (hole)", SC(write, fd, "H", 1));
    R(pread64, "hole bytes", SC(pread64, fd, buf, 4, 20));
    SAY(pread64, "hole content", "%d %d %d %d", buf[0], buf[1], buf[2], buf[3]);
    R(pwrite64, "at 2", SC(pwrite64, fd, "ZZ", 2, 2));
    R(lseek, "pwrite keeps offset", SC(lseek, fd, 0, SEEK_CUR));
    R(pread64, "back", SC(pread64, fd, buf, 6, 0));
    SAY(pread64, "data", "%.6s", buf);
    R(pread64, "negative offset", SC(pread64, fd, buf, 1, -1));
    R(read, "bad fd", SC(read, 77, buf, 1));
    R(write, "bad fd", SC(write, 77, buf, 1));
    R(read, "bad buffer", SC(read, fd, (void *)8, 1) == -1 ? -1 : SC(pread64, fd, (void *)8, 1, 0));
    R(write, "zero bytes", SC(write, fd, buf, 0));
    int pipefd[2];
    pipe(pipefd);
    R(lseek, "on a pipe", SC(lseek, pipefd[0], 0, SEEK_SET));
    R(pread64, "on a pipe", SC(pread64, pipefd[0], buf, 1, 0));

    /* readv / writev / preadv / pwritev / preadv2 / pwritev2 */
    char a[3], b[5];
    struct iovec iov[2] = {{a, 3}, {b, 5}};
    SC(lseek, fd, 0, SEEK_SET);
    R(readv, "3+5", SC(readv, fd, iov, 2));
    SAY(readv, "data", "%.3s|%.5s", a, b);
    struct iovec wv[2] = {{"ab", 2}, {"cd", 2}};
    R(writev, "2+2", SC(writev, fd, wv, 2));
    R(writev, "negative count", SC(writev, fd, wv, -1));
    R(preadv, "at 8", SC(preadv, fd, iov, 2, 8, 0));
    SAY(preadv, "data", "%.3s|%.5s", a, b);
    R(pwritev, "at 0", SC(pwritev, fd, wv, 2, 0, 0));
    R(preadv2, "offset -1 uses file offset", SC(preadv2, fd, iov, 1, -1, 0, 0));
    R(preadv2, "bad flags", SC(preadv2, fd, iov, 1, 0, 0, 0x1000));
    R(pwritev2, "RWF_APPEND-free write at 4", SC(pwritev2, fd, wv, 1, 4, 0, 0));
    R(pread64, "after vector writes", SC(pread64, fd, buf, 8, 0));
    SAY(pread64, "after vector writes data", "%.8s", buf);

    /* dup / dup2 / dup3 / fcntl / close_range */
    int d = R(dup, "lowest free", SC(dup, fd));
    R(dup2, "to 10", SC(dup2, fd, 10));
    R(dup2, "same fd", SC(dup2, fd, fd));
    R(dup2, "bad old", SC(dup2, 99, 11));
    R(dup3, "O_CLOEXEC", SC(dup3, fd, 12, O_CLOEXEC));
    R(fcntl, "F_GETFD after dup3", SC(fcntl, 12, F_GETFD));
    R(dup3, "same fd", SC(dup3, fd, fd, 0));
    R(dup3, "bad flags", SC(dup3, fd, 13, 0x4));
    R(fcntl, "F_GETFD plain", SC(fcntl, fd, F_GETFD));
    R(fcntl, "F_SETFD", SC(fcntl, fd, F_SETFD, FD_CLOEXEC));
    R(fcntl, "F_GETFD set", SC(fcntl, fd, F_GETFD));
    R(fcntl, "F_GETFL accmode", SC(fcntl, fd, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK));
    R(fcntl, "F_SETFL O_APPEND", SC(fcntl, fd, F_SETFL, O_APPEND));
    R(fcntl, "F_GETFL has O_APPEND", !!(SC(fcntl, fd, F_GETFL) & O_APPEND));
    R(fcntl, "F_DUPFD from 20", SC(fcntl, fd, F_DUPFD, 20));
    R(fcntl, "F_DUPFD_CLOEXEC from 20", SC(fcntl, fd, F_DUPFD_CLOEXEC, 20));
    R(fcntl, "bad cmd", SC(fcntl, fd, 9999));
    R(fcntl, "bad fd", SC(fcntl, 98, F_GETFD));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4};
    R(fcntl, "F_SETLK", SC(fcntl, fd, F_SETLK, &fl));
    fl.l_type = F_RDLCK;
    R(fcntl, "F_GETLK own lock", SC(fcntl, fd, F_GETLK, &fl));
    SAY(fcntl, "F_GETLK type", "%s", fl.l_type == F_UNLCK ? "unlocked" : "locked");
    R(close_range, "12..21", SC(close_range, 12, 21, 0));
    R(fcntl, "closed by close_range", SC(fcntl, 20, F_GETFD));
    R(close_range, "first > last", SC(close_range, 5, 4, 0));
    R(close_range, "CLOSE_RANGE_CLOEXEC", SC(close_range, 10, 10, 4));
    R(fcntl, "cloexec by close_range", SC(fcntl, 10, F_GETFD));
    SC(close, d);

    /* flock / fsync / fdatasync / sync / truncate / ftruncate / fallocate / fadvise64 */
    R(flock, "LOCK_EX", SC(flock, fd, LOCK_EX));
    R(flock, "LOCK_UN", SC(flock, fd, LOCK_UN));
    R(flock, "bad op", SC(flock, fd, 0));
    R(flock, "bad fd", SC(flock, 97, LOCK_SH));
    R(fsync, "file", SC(fsync, fd));
    R(fsync, "bad fd", SC(fsync, 97));
    R(fdatasync, "file", SC(fdatasync, fd));
    R(sync, "", (SC(sync), 0));
    R(truncate, "to 5", SC(truncate, "data", 5));
    struct stat st;
    fstat(fd, &st);
    SAY(truncate, "size", "%lld", (long long)st.st_size);
    R(truncate, "missing", SC(truncate, "nope", 1));
    R(truncate, "directory", SC(truncate, ".", 1));
    R(truncate, "negative", SC(truncate, "data", -1));
    R(ftruncate, "to 3000", SC(ftruncate, fd, 3000));
    fstat(fd, &st);
    SAY(ftruncate, "size", "%lld", (long long)st.st_size);
    int ro = SC(open, "data", O_RDONLY);
    R(ftruncate, "read-only fd", SC(ftruncate, ro, 1));
    R(ftruncate, "pipe", SC(ftruncate, pipefd[0], 1));
    R(fallocate, "extend to 8192", SC(fallocate, fd, 0, 0, 8192));
    fstat(fd, &st);
    SAY(fallocate, "size", "%lld", (long long)st.st_size);
    R(fallocate, "KEEP_SIZE", SC(fallocate, fd, 1, 0, 16384));
    fstat(fd, &st);
    SAY(fallocate, "size after KEEP_SIZE", "%lld", (long long)st.st_size);
    R(fallocate, "zero length", SC(fallocate, fd, 0, 0, 0));
    R(fallocate, "read-only fd", SC(fallocate, ro, 0, 0, 10));
    R(fadvise64, "SEQUENTIAL", SC(fadvise64, fd, 0, 0, 2));
    R(fadvise64, "bad advice", SC(fadvise64, fd, 0, 0, 99));
    R(fadvise64, "pipe", SC(fadvise64, pipefd[0], 0, 0, 2));

    /* sendfile */
    put("src", "sendfile-source");
    int src = SC(open, "src", O_RDONLY);
    int dst = SC(open, "dst", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    off_t off = 4;
    R(sendfile, "with offset", SC(sendfile, dst, src, &off, 100));
    SAY(sendfile, "offset after", "%lld", (long long)off);
    R(sendfile, "file offset untouched", SC(lseek, src, 0, SEEK_CUR));
    R(sendfile, "without offset", SC(sendfile, dst, src, NULL, 4));
    R(sendfile, "to a read-only fd", SC(sendfile, src, src, NULL, 4));
    R(sendfile, "to a pipe", SC(sendfile, pipefd[1], src, NULL, 100));
    R(sendfile, "bytes in the pipe", SC(read, pipefd[0], buf, sizeof buf));
    SAY(sendfile, "pipe data", "%.11s", buf);

    /* copy_file_range */
    int cin = SC(open, "src", O_RDONLY), cout = SC(open, "cfr", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    loff_t cfo = 9;
    R(copy_file_range, "with input offset", SC(copy_file_range, cin, &cfo, cout, NULL, 100, 0));
    SAY(copy_file_range, "input offset after", "%lld", (long long)cfo);
    R(copy_file_range, "bad flags", SC(copy_file_range, cin, NULL, cout, NULL, 4, 1));
    R(copy_file_range, "to a read-only fd", SC(copy_file_range, cin, NULL, cin, NULL, 4, 0));
    int cback = open("cfr", O_RDONLY);
    R(copy_file_range, "copied bytes", SC(pread64, cback, buf, sizeof buf, 0));
    SAY(copy_file_range, "copied data", "%.6s", buf);

    /* ioctl */
    R(ioctl, "TCGETS on a file", SC(ioctl, fd, TCGETS, buf));
    int avail = -1;
    SC(write, pipefd[1], "12345", 5);
    R(ioctl, "FIONREAD on a pipe", SC(ioctl, pipefd[0], FIONREAD, &avail));
    SAY(ioctl, "FIONREAD count", "%d", avail);
    R(ioctl, "bad fd", SC(ioctl, 96, FIONREAD, &avail));
    R(ioctl, "FIOCLEX", SC(ioctl, pipefd[0], FIOCLEX));
    R(fcntl, "F_GETFD after FIOCLEX", SC(fcntl, pipefd[0], F_GETFD));
    return 0;
}
