/* A memfd shared with children: an inherited mapping (fork), a mapping the child makes
 * itself, and an exec'd program that maps the inherited fd. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE (2 * 4096)

static void wait_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid || st != 0) { printf("child failed %d\n", st); exit(1); }
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "exec-child") == 0) {
        int fd = atoi(argv[2]);
        char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) { perror("exec-child mmap"); return 1; }
        printf("exec'd child sees: %s\n", p + 512);
        strcpy(p + 4096, "from the exec'd child");
        return 0;
    }
    int fd = memfd_create("shared", 0);
    if (fd < 0 || ftruncate(fd, SIZE) < 0) { perror("memfd"); return 1; }
    char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {                         /* inherited mapping */
        strcpy(p, "stored by the forked child");
        _exit(0);
    }
    wait_child(pid);
    printf("after fork child: %s\n", p);

    pid = fork();
    if (pid == 0) {                         /* the child's own mapping of the same fd */
        char *q = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (q == MAP_FAILED) _exit(2);
        strcpy(q + 512, "via the child's own mmap");
        if (pwrite(fd, "pwritten", 8, 1024) != 8) _exit(3);
        _exit(0);
    }
    wait_child(pid);
    printf("own-mmap child: %s / %s\n", p + 512, p + 1024);

    pid = fork();
    if (pid == 0) {
        char fdtext[16];
        snprintf(fdtext, sizeof fdtext, "%d", fd);
        execl("/proc/self/exe", argv[0], "exec-child", fdtext, (char *)NULL);
        _exit(127);
    }
    wait_child(pid);
    printf("after exec child: %s\n", p + 4096);

    /* Private mappings are copies: a child's store stays its own... */
    char *priv = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (priv == MAP_FAILED) { perror("private"); return 1; }
    printf("private copy starts with: %s\n", priv);
    priv[0] = 'S';
    pid = fork();
    if (pid == 0) { priv[0] = 'C'; p[1] = 'T'; _exit(0); }
    wait_child(pid);
    printf("private after child: %c, shared after child: %.5s\n", priv[0], p);
    char buf[8] = {0};
    pread(fd, buf, 5, 0);
    printf("file: %s\n", buf);
    return 0;
}
