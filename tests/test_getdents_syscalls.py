"""getdents64 and getdents through a real program, natively and in the sandbox, on a volume
(gofer) and on the sandbox's /tmp (tmpfs): record layout, buffer sizes, positions."""
import pathlib
import shutil
import tempfile

import pytest

from conftest import assert_same, compile_c

PROG = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAXN 200
static char names[MAXN][64];
static int types[MAXN];
static int n;

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

/* One record at buf+off of either layout: name, type, reclen, d_off, d_ino. */
static void record(const char *buf, long off, int layout64, const char **name, int *type,
                   unsigned short *reclen, int64_t *doff, uint64_t *ino) {
    memcpy(ino, buf + off, 8);
    memcpy(doff, buf + off + 8, 8);
    memcpy(reclen, buf + off + 16, 2);
    if (layout64) {
        *type = (unsigned char)buf[off + 18];
        *name = buf + off + 19;
    } else {
        *type = (unsigned char)buf[off + *reclen - 1];
        *name = buf + off + 18;
    }
}

/* A full pass with buffers of `size` bytes: names sorted, counts, checks printed. */
static void pass(int fd, int layout64, unsigned long size, const char *dir) {
    static char buf[65536];
    long nr = layout64 ? SYS_getdents64 : SYS_getdents;
    int calls = 0, bad_ino = 0, bad_len = 0, bad_nul = 0;
    n = 0;
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        long got = syscall(nr, fd, buf, size);
        if (got < 0) { printf("  size %lu: errno %d\n", size & 0xffffffff, errno); return; }
        if (got == 0) break;
        calls++;
        for (long off = 0; off < got;) {
            const char *name; int type; unsigned short reclen; int64_t doff; uint64_t ino;
            record(buf, off, layout64, &name, &type, &reclen, &doff, &ino);
            if (reclen % 8 || reclen < (layout64 ? 24 : 24)) bad_len++;
            /* the name's NUL inside the record (padding after it is unspecified) */
            size_t hdr = layout64 ? 19 : 18;
            if (hdr + strlen(name) + 1 > (size_t)reclen - (layout64 ? 0 : 1)) bad_nul++;
            if (n < MAXN) {
                snprintf(names[n], sizeof names[n], "%s", name);
                types[n] = type;
                char path[512];
                struct stat st;
                snprintf(path, sizeof path, "%s/%s", dir, name);
                if (strcmp(name, "..") && lstat(path, &st) == 0 && st.st_ino != ino) bad_ino++;
                n++;
            }
            off += reclen;
        }
    }
    qsort(names, n, sizeof names[0], cmp);
    printf("  size %lu: %d entries, %s calls, bad ino %d, bad reclen %d, name past record %d\n",
           size & 0xffffffff, n, calls > 1 ? "several" : "one", bad_ino, bad_len, bad_nul);
    for (int i = 0; i < n; i++) printf("    %s\n", names[i]);
}

/* Positions: resume at the d_off of the k-th record must give exactly the rest. */
static void resume(int fd, int k) {
    static char buf[65536];
    char seen[MAXN][64];
    int count = 0;
    int64_t pos_after_k = -1;
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, 200);
        if (got <= 0) break;
        for (long off = 0; off < got;) {
            const char *name; int type; unsigned short reclen; int64_t doff; uint64_t ino;
            record(buf, off, 1, &name, &type, &reclen, &doff, &ino);
            if (count < MAXN) snprintf(seen[count], 64, "%s", name);
            if (count == k) pos_after_k = doff;
            count++;
            off += reclen;
        }
    }
    if (lseek(fd, pos_after_k, SEEK_SET) != pos_after_k) { printf("  seek failed\n"); return; }
    int rest = 0, wrong = 0;
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (got <= 0) break;
        for (long off = 0; off < got;) {
            const char *name; int type; unsigned short reclen; int64_t doff; uint64_t ino;
            record(buf, off, 1, &name, &type, &reclen, &doff, &ino);
            if (k + 1 + rest >= count || strcmp(seen[k + 1 + rest], name)) wrong++;
            rest++;
            off += reclen;
        }
    }
    printf("  resume after record %d: %s\n", k, rest == count - k - 1 && !wrong ? "the rest, in order" : "WRONG");
}

int main(int argc, char **argv) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/getdents-XXXXXX", argv[1]);
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char path[8192];
    for (int i = 0; i < 70; i++) {
        /* names of 1 to 40 bytes: every record length and padding */
        char name[64];
        int len = 1 + i % 40;
        for (int c = 0; c < len; c++) name[c] = 'a' + (i + c) % 26;
        snprintf(name + len, sizeof name - len, "%d", i);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int f = open(path, O_CREAT | O_WRONLY, 0644);
        if (f < 0) { perror("create"); return 1; }
        close(f);
    }
    snprintf(path, sizeof path, "%s/subdir", dir); mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/link", dir); symlink("subdir", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    unsigned long sizes[] = {10, 24, 100, 1000, 32768, (1UL << 32) | 1000};
    for (int layout = 1; layout >= 0; layout--) {
        printf("%s\n", layout ? "getdents64" : "getdents");
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) pass(fd, layout, sizes[i], dir);
    }
    /* d_type of each kind */
    static char buf[65536];
    const char *kinds[] = {".", "..", "a0", "subdir", "link"};
    lseek(fd, 0, SEEK_SET);
    long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        for (long off = 0; off < got;) {
            const char *name; int type; unsigned short reclen; int64_t doff; uint64_t ino;
            record(buf, off, 1, &name, &type, &reclen, &doff, &ino);
            if (!strcmp(name, kinds[i])) printf("type %s %d\n", name, type);
            off += reclen;
        }
    resume(fd, 0);
    resume(fd, 1);
    resume(fd, 7);
    resume(fd, 50);
    close(fd);
    /* clean up so that the next run starts from nothing */
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!strcmp(e->d_name, "subdir")) rmdir(path); else unlink(path);
    }
    closedir(d);
    return rmdir(dir) ? 1 : 0;
}
"""


@pytest.fixture
def volume_dir():
    base = pathlib.Path("/var/tmp/pysentry-test-volumes")
    base.mkdir(parents=True, exist_ok=True)
    d = tempfile.mkdtemp(dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_getdents_on_a_volume_matches_linux(volume_dir):
    prog = compile_c(PROG)
    assert_same([prog, volume_dir], "--volume", f"{volume_dir}:{volume_dir}")


def test_getdents_on_tmpfs_matches_linux():
    prog = compile_c(PROG)
    assert_same([prog, "/tmp"])
