/* Write access against execution (ETXTBSY) and the file types execveat refuses, as a
 * program sees them: a file with an open writable description cannot be executed (by
 * name or through an fd), and the program of a live process cannot be opened for
 * writing or truncated. Files go in a fresh directory under argv[1]. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *err(int r)
{
    return r < 0 ? strerror(errno) : "ok";
}

/* execveat in a child; prints what it returned, or the child's own line if it ran. */
static void try_exec(const char *what, int dirfd, const char *path, int flags)
{
    char *const av[] = {"x", "ran", NULL};
    pid_t p = fork();
    if (p == 0) {
        syscall(SYS_execveat, dirfd, path, av, environ, flags);
        printf("%-36s -> %s\n", what, strerror(errno));
        _exit(0);
    }
    waitpid(p, NULL, 0);
}

static void try_open(const char *what, const char *path, int flags)
{
    int fd = open(path, flags);
    printf("%-36s -> %s\n", what, err(fd));
    if (fd >= 0)
        close(fd);
}

static void copy_file(const char *from, const char *to, int mode)
{
    int in = open(from, O_RDONLY), out = open(to, O_CREAT | O_WRONLY | O_TRUNC, mode);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            exit(3);
    close(in);
    close(out);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "ran")) {      /* run directly, or as a script's interpreter */
            printf("    (child ran)\n");
            return 0;
        }
    if (argc > 1 && !strcmp(argv[1], "wait")) {
        /* A live process of the copy: tells its parent it runs, then waits for EOF. */
        char c;
        if (write(1, "r", 1) != 1 || read(0, &c, 1) < 0)
            return 1;
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n] = 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/txtbsyXXXXXX", argv[1]);
    if (!mkdtemp(dir) || chdir(dir)) {
        perror("mkdtemp");
        return 1;
    }
    copy_file(self, "exe", 0755);
    symlink("exe", "lnk");

    printf("-- the running program\n");
    try_open("open self O_WRONLY", self, O_WRONLY);
    try_open("open self O_RDWR", self, O_RDWR);
    try_open("open self O_RDONLY|O_TRUNC", self, O_RDONLY | O_TRUNC);
    try_open("open self O_RDONLY", self, O_RDONLY);
    printf("%-36s -> %s\n", "truncate self", err(truncate(self, 0)));

    printf("-- a writer open\n");
    int w = open("exe", O_WRONLY);
    try_exec("execve by name", AT_FDCWD, "exe", 0);
    try_exec("execveat of the writable fd", w, "", AT_EMPTY_PATH);
    int r = open("exe", O_RDONLY);
    try_exec("execveat of a read-only fd", r, "", AT_EMPTY_PATH);
    int w2 = dup(w);
    close(w);
    try_exec("one dup of the writer left", AT_FDCWD, "exe", 0);
    close(w2);
    try_exec("writer closed", AT_FDCWD, "exe", 0);
    try_exec("read-only fd, writer closed", r, "", AT_EMPTY_PATH);
    close(r);

    printf("-- a writer in another process\n");
    int ready[2], hold[2];
    if (pipe(ready) || pipe(hold))
        return 1;
    pid_t holder = fork();
    if (holder == 0) {
        int fd = open("exe", O_RDWR);
        char c;
        close(ready[0]);
        close(hold[1]);
        if (write(ready[1], "r", 1) != 1 || read(hold[0], &c, 1) < 0)
            _exit(1);
        close(fd);
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        return 1;
    try_exec("execve by name", AT_FDCWD, "exe", 0);
    close(hold[1]);
    waitpid(holder, NULL, 0);
    close(ready[0]);
    try_exec("after the holder exited", AT_FDCWD, "exe", 0);

    printf("-- a copy running\n");
    int to_child[2], from_child[2];
    if (pipe(to_child) || pipe(from_child))
        return 1;
    pid_t running = fork();
    if (running == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[1]);
        close(from_child[0]);
        execl("./exe", "exe", "wait", (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    if (read(from_child[0], &c, 1) != 1)
        return 1;
    try_open("open it O_WRONLY", "exe", O_WRONLY);
    try_open("open it O_RDWR|O_TRUNC", "exe", O_RDWR | O_TRUNC);
    printf("%-36s -> %s\n", "truncate it", err(truncate("exe", 0)));
    link("exe", "hard");
    try_open("open a hard link of it O_WRONLY", "hard", O_WRONLY);
    try_open("open it O_RDONLY", "exe", O_RDONLY);
    try_exec("execve it again", AT_FDCWD, "exe", 0);
    close(to_child[1]);
    waitpid(running, NULL, 0);
    close(from_child[0]);
    try_open("open it O_WRONLY after exit", "exe", O_WRONLY);

    printf("-- written through a shared mapping, then closed\n");
    int m = open("exe", O_RDWR);
    struct stat st;
    fstat(m, &st);
    unsigned char *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    p[st.st_size - 1] ^= 0;
    try_exec("mapped writable, fd open", AT_FDCWD, "exe", 0);
    close(m);
    munmap(p, st.st_size);
    try_exec("unmapped and closed", AT_FDCWD, "exe", 0);

    printf("-- what execveat refuses\n");
    try_exec("O_PATH|O_NOFOLLOW symlink fd", open("lnk", O_PATH | O_NOFOLLOW), "",
             AT_EMPTY_PATH);
    try_exec("O_PATH of the file", open("exe", O_PATH), "", AT_EMPTY_PATH);
    try_exec("'lnk' with AT_SYMLINK_NOFOLLOW", AT_FDCWD, "lnk", AT_SYMLINK_NOFOLLOW);
    try_exec("directory fd", open(".", O_RDONLY), "", AT_EMPTY_PATH);
    int mfd = memfd_create("m", 0);
    {
        int in = open(self, O_RDONLY);
        char buf[65536];
        ssize_t k;
        while ((k = read(in, buf, sizeof buf)) > 0)
            if (write(mfd, buf, k) != k)
                return 3;
        close(in);
    }
    try_exec("memfd, its writable fd open", mfd, "", AT_EMPTY_PATH);

    printf("-- a script open for writing\n");
    int s = open("script", O_CREAT | O_WRONLY, 0755);
    dprintf(s, "#!%s/exe\n", dir);
    try_exec("execve of the script", AT_FDCWD, "script", 0);
    close(s);
    try_exec("script closed", AT_FDCWD, "script", 0);
    return 0;
}
