/* Stores through a MAP_SHARED mapping must reach the file itself.
 * usage: mm_shared_volume DIR OTHER_DIR MODE
 *   DIR and OTHER_DIR name the same host directory (in pysentry: two volumes of it, so
 *   OTHER_DIR's files are read straight from the host, not through DIR's mapping).
 *   MODE msync|fsync: store, sync, read the file through OTHER_DIR;
 *        munmap: store, unmap, read it back through DIR and OTHER_DIR;
 *        exit:   store and exit with the mapping in place;
 *        linger: a child stores and stays alive (mapping in place) after we exit;
 *                prints its pid. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096

static char *map_file(const char *path, int *fd_out)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); exit(1); }
    if (ftruncate(fd, 3 * PG) < 0) { perror("ftruncate"); exit(1); }
    char *p = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    *fd_out = fd;
    return p;
}

static void store(char *p, const char *mode)
{
    snprintf(p, 64, "first page stored (%s)", mode);
    snprintf(p + 2 * PG + 7, 64, "third page stored (%s)", mode);
}

static void show(const char *dir, const char *name)
{
    char path[512], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror("open for reading"); exit(1); }
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 40, 0);
    printf("%s: [%s]", name, buf);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 40, 2 * PG + 7);
    printf(" [%s] size %ld\n", buf, (long)lseek(fd, 0, SEEK_END));
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 4) return 2;
    const char *dir = argv[1], *other = argv[2], *mode = argv[3];
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, mode);
    int fd;
    if (strcmp(mode, "linger") == 0) {
        int pipefd[2];
        pipe(pipefd);
        pid_t pid = fork();
        if (pid == 0) {
            /* Let go of the caller's pipes: whoever runs us waits for their EOF. */
            int null = open("/dev/null", O_RDWR);
            dup2(null, 0); dup2(null, 1); dup2(null, 2);
            char *p = map_file(path, &fd);
            store(p, mode);
            write(pipefd[1], "x", 1);
            alarm(30);              /* never outlive the test by much */
            for (;;) pause();
        }
        char c;
        read(pipefd[0], &c, 1);
        printf("%d\n", (int)pid);
        return 0;
    }
    char *p = map_file(path, &fd);
    store(p, mode);
    if (strcmp(mode, "msync") == 0) {
        printf("msync %d\n", msync(p, 3 * PG, MS_SYNC));
        show(other, mode);
    } else if (strcmp(mode, "fsync") == 0) {
        printf("fsync %d\n", fsync(fd));
        show(other, mode);
    } else if (strcmp(mode, "munmap") == 0) {
        printf("munmap %d\n", munmap(p, 3 * PG));
        show(dir, mode);
        show(other, mode);
    }
    return 0;
}
