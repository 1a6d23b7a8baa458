"""Large reads of a volume file go through a mapping of its host fd (sentry/vfs/
readmap.py). The host may truncate the file under that mapping at any moment: the copy
must then end short, and neither the program nor the sentry may die of the SIGBUS."""
import os
import random
import shutil
import tempfile
import threading

from conftest import compile_c, run_sandbox

PROG = r'''
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    char *buf = malloc(1 << 20);
    long bad = 0, reads = 0;
    for (int pass = 0; pass < 300; pass++)
        for (long off = 0; off < (8L << 20); off += 1 << 20) {
            ssize_t n = pread(fd, buf, 1 << 20, off);
            if (n < 0) { perror("pread"); return 1; }
            reads++;
            for (ssize_t i = 0; i < n; i += 4096)   /* the file's bytes, or zeros */
                if (buf[i] != 'a' && buf[i] != 0) bad++;
        }
    printf("reads %ld, bytes that were neither the file's nor zero: %ld\n", reads, bad);
    return 0;
}
'''


def test_a_volume_file_truncated_while_read_through_the_mapping():
    prog = compile_c(PROG)
    d = tempfile.mkdtemp(prefix="pysentry-readmap-", dir="/var/tmp")
    path = os.path.join(d, "f")
    with open(path, "wb") as f:
        f.write(b"a" * (8 << 20))
    stop = threading.Event()
    cuts = []

    def truncate_and_restore():
        rnd = random.Random(1)
        while not stop.is_set():
            size = rnd.randrange(0, 8 << 20)
            os.truncate(path, size)
            cuts.append(size)
            with open(path, "r+b") as f:
                f.seek(size)
                f.write(b"a" * ((8 << 20) - size))
    t = threading.Thread(target=truncate_and_restore)
    t.start()
    try:
        box = run_sandbox([prog, path], "--volume", f"{d}:{d}")
    finally:
        stop.set()
        t.join()
        shutil.rmtree(d, ignore_errors=True)
    assert box.returncode == 0, box.stderr[-2000:]
    assert box.stdout == b"reads 2400, bytes that were neither the file's nor zero: 0\n"
    assert b"internal error" not in box.stderr
    assert len(cuts) > 10          # the host side really cut the file while it was read
