/* Two processes share a POSIX shared memory object (/dev/shm) through separate mmaps:
 * the child is a fresh exec of this program, so nothing but the file connects them. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE (3 * 4096)

static char *map_it(const char *name, int flags, int *fd_out)
{
    int fd = shm_open(name, flags, 0600);
    if (fd < 0) { perror("shm_open"); exit(1); }
    if ((flags & O_CREAT) && ftruncate(fd, SIZE) < 0) { perror("ftruncate"); exit(1); }
    char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    *fd_out = fd;
    return p;
}

static int child(const char *name)
{
    int fd;
    char *p = map_it(name, O_RDWR, &fd);
    printf("child sees: %s\n", p);
    printf("child sees page 2: %s\n", p + 2 * 4096);
    strcpy(p + 4096, "reply from the child");
    /* A store the parent will look for with read(), not through its mapping. */
    strcpy(p + 2 * 4096 + 100, "stored by child");
    return 0;
}

int main(int argc, char **argv)
{
    char name[64];
    if (argc > 2 && strcmp(argv[1], "child") == 0)
        return child(argv[2]);
    snprintf(name, sizeof name, "/pysentry-mm-shm-%d", (int)getpid());
    int fd;
    char *p = map_it(name, O_RDWR | O_CREAT | O_EXCL, &fd);
    strcpy(p, "hello from the parent");
    /* write() of the file shows through the mapping of the child. */
    if (pwrite(fd, "written with pwrite", 20, 2 * 4096) != 20) { perror("pwrite"); return 1; }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "child", name, (char *)NULL);
        perror("exec");
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child status %d\n", st);
    printf("parent sees: %s\n", p + 4096);
    char buf[32] = {0};
    if (pread(fd, buf, 15, 2 * 4096 + 100) != 15) { perror("pread"); return 1; }
    printf("pread sees: %s\n", buf);
    /* A second, independent mapping of the same object in the same process. */
    int fd2 = shm_open(name, O_RDONLY, 0);
    char *q = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd2, 0);
    if (q == MAP_FAILED) { perror("mmap2"); return 1; }
    p[4096 + 6] = 'X';
    printf("second mapping sees: %s\n", q + 4096);
    munmap(p, SIZE);
    munmap(q, SIZE);
    shm_unlink(name);
    return 0;
}
