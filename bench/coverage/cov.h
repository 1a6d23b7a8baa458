/* Helpers for the coverage corpus (the C programs in bench/coverage).
 *
 * Every observation is one line "SYSCALL what: value", where SYSCALL is the exact name
 * in the syscall table; the harness compares these lines with native Linux and credits
 * each syscall only if all of its lines match. So a line must hold only what native and
 * a correct sandbox agree on: return values, errno names, flags, data, but no pids,
 * addresses, times or inode numbers. Syscalls under test are made with syscall(2) so that
 * the line names the call that really ran (glibc wrappers often use another one).
 * stdout is unbuffered so that output up to a crash survives it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SC(name, ...) syscall(SYS_##name, ##__VA_ARGS__)

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* The return value, or "-1 ENAME". */
__attribute__((unused)) static long r_(const char *sys, const char *what, long ret) {
    if (ret == -1) printf("%s %s: -1 %s\n", sys, what, ename(errno));
    else printf("%s %s: %ld\n", sys, what, ret);
    return ret;
}

/* "ok" for any success (when the value itself differs between runs), or "-1 ENAME". */
__attribute__((unused)) static long ok_(const char *sys, const char *what, long ret) {
    if (ret == -1) printf("%s %s: -1 %s\n", sys, what, ename(errno));
    else printf("%s %s: ok\n", sys, what);
    return ret;
}

/* For an fd-returning call checked only for success: prints "fd" and closes it, so that
 * a difference here does not shift the fd numbers every later line sees. */
__attribute__((unused)) static long fd_(const char *sys, const char *what, long ret) {
    if (ret == -1) printf("%s %s: -1 %s\n", sys, what, ename(errno));
    else {
        printf("%s %s: fd\n", sys, what);
        close((int)ret);
    }
    return ret;
}

#define FD(sys, what, expr) fd_(#sys, what, (long)(expr))
#define R(sys, what, expr) r_(#sys, what, (long)(expr))
#define OK(sys, what, expr) ok_(#sys, what, (long)(expr))
#define SAY(sys, what, fmt, ...) printf(#sys " " what ": " fmt "\n", ##__VA_ARGS__)
#define YES(c) ((c) ? "yes" : "no")

static char scratch[256];
static pid_t scratch_owner;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    if (scratch[0] && getpid() == scratch_owner) {
        if (chdir("/") != 0) return;
        nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* A private scratch directory under /tmp, made the working directory; removed at exit. */
static void setup(const char *name) {
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(scratch, sizeof scratch, "/tmp/cov-%s-%d", name, getpid());
    if (mkdir(scratch, 0755) != 0 || chdir(scratch) != 0) {
        printf("setup failed: %s\n", ename(errno));
        exit(1);
    }
    scratch_owner = getpid();
    atexit(cleanup);
}

/* Write a whole file (setup, not under test). */
__attribute__((unused)) static void put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        printf("setup failed: %s: %s\n", path, ename(errno));
        exit(1);
    }
    close(fd);
}

/* Wait for a child and describe how it ended. */
__attribute__((unused)) static const char *ended(pid_t pid) {
    static char buf[64];
    int st;
    if (waitpid(pid, &st, 0) != pid) return "wait failed";
    if (WIFEXITED(st)) snprintf(buf, sizeof buf, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) snprintf(buf, sizeof buf, "signal %s", sigabbrev_np(WTERMSIG(st)));
    else snprintf(buf, sizeof buf, "status %#x", st);
    return buf;
}
