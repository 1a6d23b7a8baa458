/* execveat as Linux runs it: AT_EMPTY_PATH on an fd (O_RDONLY and O_PATH, a binary and a
 * script), AT_SYMLINK_NOFOLLOW on a link and on a file, and the errors for an empty path,
 * a directory, a pipe and bad flags. Each case runs in a child; the parent prints how it
 * ended.   execveat DIR   (a scratch directory the program may write) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *true_argv[] = {"sh", "-c", "exit 3", NULL};
static char *no_env[] = {NULL};

static void run(const char *what, int fd, const char *path, int flags) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        long r = syscall(SYS_execveat, fd, path, true_argv, no_env, flags);
        printf("%s: execveat returned %ld %s\n", what, r, strerrorname_np(errno));
        fflush(stdout);
        _exit(99);
    }
    int st;
    waitpid(c, &st, 0);
    printf("%s: exit %d\n", what, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

int main(int argc, char **argv) {
    char script[4096], link[4096];
    snprintf(script, sizeof script, "%s/script.sh", argv[1]);
    snprintf(link, sizeof link, "%s/sh-link", argv[1]);
    FILE *f = fopen(script, "w");
    fputs("#!/bin/sh\nexit 5\n", f);
    fclose(f);
    chmod(script, 0755);
    unlink(link);
    symlink("/bin/sh", link);

    int ro = open("/bin/sh", O_RDONLY);
    int path_fd = open("/bin/sh", O_PATH);
    int sfd = open(script, O_RDONLY);
    int dfd = open("/", O_RDONLY | O_DIRECTORY);
    int p[2];
    pipe(p);
    run("AT_EMPTY_PATH, O_RDONLY fd", ro, "", AT_EMPTY_PATH);
    run("AT_EMPTY_PATH, O_PATH fd", path_fd, "", AT_EMPTY_PATH);
    run("AT_EMPTY_PATH, script fd", sfd, "", AT_EMPTY_PATH);
    run("empty path without AT_EMPTY_PATH", ro, "", 0);
    run("AT_EMPTY_PATH, directory fd", dfd, "", AT_EMPTY_PATH);
    run("AT_EMPTY_PATH, pipe fd", p[0], "", AT_EMPTY_PATH);
    run("AT_EMPTY_PATH, bad fd", 97, "", AT_EMPTY_PATH);
    run("AT_SYMLINK_NOFOLLOW on a link", AT_FDCWD, link, AT_SYMLINK_NOFOLLOW);
    run("AT_SYMLINK_NOFOLLOW on a file", AT_FDCWD, "/bin/sh", AT_SYMLINK_NOFOLLOW);
    run("bad flags", AT_FDCWD, "/bin/sh", 0x1);
    run("relative to a dirfd", dfd, "bin/sh", 0);
    unlink(script);
    unlink(link);
    return 0;
}
