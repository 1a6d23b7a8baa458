"""The file data path (read/write/pread/pwrite/readv/lseek into application memory):
edge cases compared with native Linux, and tmpfs's large-file store compared with the
host's tmpfs (/dev/shm)."""
import errno
import gc
import os
import pathlib
import shutil
import tempfile
import uuid

import pytest

from conftest import assert_same, compile_c
from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.tmpfs import FileData, TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

SHM = "/dev/shm"
SEEK_DATA, SEEK_HOLE = 3, 4
PAGE = 4096
SMALL = FileData.SMALL_PAGES * PAGE
# Not under /tmp: the sandbox's /tmp is its own tmpfs.
HOST_SCRATCH = pathlib.Path("/var/tmp/pysentry-test-datapath")

needs_shm = pytest.mark.skipif(not os.path.isdir(SHM), reason="needs the host tmpfs at /dev/shm")


# ---- differential: the sandbox against native Linux --------------------------------------
# The program prints what each case returned and checksums of what arrived; the file is
# created, used and unlinked by the program itself, at the path it is given.
@pytest.mark.parametrize("where,size", [
    ("tmpfs", 20000),            # a small tmpfs file (page dict)
    ("tmpfs", 300000),           # a large one (its own memfd)
    ("overlay", 300000),         # the root filesystem's writable layer
    ("volume", 300000),          # a host directory: donated host fds
])
def test_data_path_edge_cases_match_linux(where, size):
    prog = compile_c("file_data_path")
    opts = []
    name = f"datapath-{uuid.uuid4().hex[:8]}"
    if where == "tmpfs":
        path = f"/tmp/{name}"                  # the sandbox's tmpfs; the host's /tmp natively
    else:
        HOST_SCRATCH.mkdir(parents=True, exist_ok=True)
        d = tempfile.mkdtemp(dir=HOST_SCRATCH)
        path = f"{d}/{name}"
        if where == "volume":
            opts = ["--volume", f"{d}:{d}"]
    try:
        box = assert_same([prog, path, str(size)], *opts)
    finally:
        if where != "tmpfs":
            shutil.rmtree(d, ignore_errors=True)
    out = box.stdout.decode()
    # The cases the comparison is about did happen (not, say, all failing alike).
    assert "read into unmapped tail: 4096 " in out
    assert "write from unmapped tail: 4096 " in out
    assert "parent untouched: 1" in out
    assert f"size {size}" in out


@pytest.mark.parametrize("where", ["tmpfs", "volume"])
def test_reads_past_the_first_chunk_match_linux(where):
    prog = compile_c("read_chunks")
    name = f"chunks-{uuid.uuid4().hex[:8]}"
    opts, d = [], None
    if where == "tmpfs":
        path = f"/tmp/{name}"
    else:
        HOST_SCRATCH.mkdir(parents=True, exist_ok=True)
        d = tempfile.mkdtemp(dir=HOST_SCRATCH)
        path = f"{d}/{name}"
        opts = ["--volume", f"{d}:{d}"]
    try:
        box = assert_same([prog, path], *opts)
    finally:
        if d:
            shutil.rmtree(d, ignore_errors=True)
    out = box.stdout.decode()
    assert "pread whole into 8 MiB: 3145733 " in out
    assert "pread into 2 MiB mapped of 8: 2097152 " in out
    assert "pread past user space: -1 Bad address" in out
    assert "preadv total past MAX_RW_COUNT: 3145728 " in out     # cut short by the unmapped part
    assert "preadv second buffer past user space: -1 Bad address" in out
    assert "parent untouched: 1" in out


# ---- tmpfs large files against the host's tmpfs -----------------------------------------
def outcome(fn):
    try:
        return fn()
    except (SysError, OSError) as e:
        return errno.errorcode[e.errno]


def pattern(n, seed):
    return bytes((seed + i * 7) & 0xFF for i in range(min(n, 65536))) * (n // 65536 + 1)


def pread(f, n, off):
    buf = bytearray(n)
    return bytes(buf[:f.read([memoryview(buf)], off)])


PLANS = {
    # a file that grows past the small store by writing
    "grow-by-write": [("w", 0, 3000), ("w", SMALL - 100, 5000), ("w", 1 << 20, 70000),
                      ("t", (1 << 20) + 5), ("w", 200 * PAGE + 1, 2 * PAGE)],
    # made large by truncate, then written sparsely, shrunk inside a page, grown again
    "grow-by-truncate": [("w", 5, 10), ("t", 3 << 20), ("w", (2 << 20) + 17, 10000),
                         ("w", PAGE * 3, PAGE), ("t", (2 << 20) + 100), ("t", 5 << 20),
                         ("w", (5 << 20) - 3, 9)],
    # one big write in several views, then an overwrite inside it
    "views": [("v", 12345, 300000), ("w", 20000, 40000), ("t", 100000)],
}


@needs_shm
@pytest.mark.parametrize("plan", sorted(PLANS))
def test_large_tmpfs_file_matches_host_tmpfs(vfs, host_file, plan):
    v, ctx = vfs
    fd, _ = host_file
    f = v.openat(ctx, None, b"/big", os.O_CREAT | os.O_RDWR, 0o644)
    for step, (kind, off, *n) in enumerate(PLANS[plan]):
        if kind in "wv":
            data = pattern(n[0], step)[:n[0]]
            views = [memoryview(data)]
            if kind == "v":              # uneven views, as a readv/writev gives them
                views = [memoryview(data)[a:b] for a, b in
                         zip((0, 1, 4097, 70000), (1, 4097, 70000, len(data)))]
            assert f.write(views, off) == os.pwrite(fd, data, off)
        else:
            f.truncate(off)
            os.ftruncate(fd, off)
        hs, ms = os.fstat(fd), f.stat()
        assert (ms.size, ms.blocks) == (hs.st_size, hs.st_blocks), (plan, step)
        # Whole-file reads after every step (through the memfd's read mapping once the
        # pages all hold data): the bytes, and no hole allocated by reading it.
        assert pread(f, ms.size + 10, 0) == os.pread(fd, ms.size + 10, 0), (plan, step)
        assert f.stat().blocks == ms.blocks, (plan, step)
        if f.inode.pages.fd is not None:           # and the memfd holds just those pages
            assert os.fstat(f.inode.pages.fd).st_blocks == ms.blocks, (plan, step)
        for probe in list(range(0, ms.size + 2 * PAGE, 7 * PAGE + 123)) + [ms.size - 1]:
            for whence in (SEEK_DATA, SEEK_HOLE):
                assert outcome(lambda: f.seek(probe, whence)) == \
                    outcome(lambda: os.lseek(fd, probe, whence)), (plan, step, probe, whence)
    size = f.stat().size
    assert f.inode.pages.fd is not None          # the plan did reach the memfd store
    assert pread(f, size + 10, 0) == os.pread(fd, size + 10, 0)
    # reads into several views, at an offset inside a page
    bufs = [bytearray(n) for n in (1, 5000, 123457)]
    got = f.read([memoryview(b) for b in bufs], 777)
    assert b"".join(bufs)[:got] == os.pread(fd, 128458, 777)
    f.decref()


def test_tmpfs_read_mappings_are_capped_and_dropped(vfs, monkeypatch):
    from pysentry.sentry.vfs import readmap
    v, ctx = vfs
    monkeypatch.setattr(readmap, "MAX_MAPPINGS", 2)
    files = []
    for i in range(4):
        f = v.openat(ctx, None, b"/m%d" % i, os.O_CREAT | os.O_RDWR, 0o644)
        data = pattern(SMALL + 3 * PAGE, i)[:SMALL + 3 * PAGE]
        assert f.write([memoryview(data)], 0) == len(data)
        files.append((f, data))
    for _ in range(2):
        for f, data in files:
            assert pread(f, len(data), 0) == data
            assert pread(f, 100, PAGE - 50) == data[PAGE - 50:PAGE + 50]
            assert f.inode.pages._map.addr                # this read went through a mapping
            assert len(readmap._LIVE) <= 2
    # Shrinking drops the mapping first, and a read after it maps what is left.
    f, data = files[-1]
    f.truncate(PAGE + 1)
    assert f.inode.pages._map is None
    assert pread(f, 3 * PAGE, 0) == data[:PAGE + 1]
    for f, _ in files:
        f.decref()


def test_a_read_mapping_survives_its_file_shrinking_under_it(tmp_path):
    # A host file truncated behind the sentry's back (a volume shared with the host):
    # copying from the part of the mapping past the new end is SIGBUS, which must end
    # the copy with a short count, not the process.
    from pysentry.sentry.vfs.readmap import ReadMapping
    path = tmp_path / "f"
    path.write_bytes(b"a" * (8 * PAGE))
    fd = os.open(path, os.O_RDONLY)
    try:
        m = ReadMapping(fd)
        buf = bytearray(8 * PAGE)
        assert m.copy(0, [memoryview(buf)], 8 * PAGE) == 8 * PAGE
        os.truncate(path, 2 * PAGE + 10)
        buf = bytearray(8 * PAGE)
        got = m.copy(0, [memoryview(buf)], 8 * PAGE)      # the caller's size is stale
        assert 2 * PAGE + 10 <= got < 8 * PAGE
        assert bytes(buf[:2 * PAGE + 10]) == b"a" * (2 * PAGE + 10)
        m.close()
    finally:
        os.close(fd)


def test_large_tmpfs_file_space_is_charged_and_refunded():
    fs = TmpFS(size_limit=64 * PAGE + SMALL)
    v = VirtualFS(fs)
    ctx = v.root_context(Creds())
    f = v.openat(ctx, None, b"/f", os.O_CREAT | os.O_RDWR, 0o644)
    assert f.write([memoryview(b"a" * 10)], 0) == 10
    assert fs.pages_used == 1
    # Past the limit a write stores the pages that fit (a short count), then ENOSPC.
    want = 100 * PAGE
    n = f.write([memoryview(b"b" * want)], PAGE - 10)
    assert n == (64 * PAGE + SMALL) - (PAGE - 10)
    assert fs.pages_used == 64 + FileData.SMALL_PAGES
    assert outcome(lambda: f.write([memoryview(b"c")], n + PAGE - 10)) == "ENOSPC"
    assert pread(f, 20, PAGE - 15) == bytes(5) + b"b" * 15
    # Overwriting charged pages needs no space.
    assert f.write([memoryview(b"d" * PAGE)], 2 * PAGE) == PAGE
    # Truncation gives pages back; so does the last close of an unlinked file.
    f.truncate(8 * PAGE + 1)
    assert fs.pages_used == 9
    data = f.inode.pages
    f.decref()
    v.unlink(ctx, None, b"/f")
    f = None                      # our last reference to the open file
    gc.collect()
    assert fs.pages_used == 0
    assert data.fd is None                        # its memfd was closed


# ---- AddressSpace.views: the buffers handed to files ----------------------------------------
class _NoPlatform:
    """The platform half of an address space, for a model-only test: nothing is mapped."""
    def map_memfile(self, *a): pass
    def protect(self, *a): pass
    def unmap(self, *a): pass
    def release(self): pass


@pytest.fixture
def aspace():
    from pysentry.sentry.mm.addrspace import AddressSpace
    from pysentry.sentry.mm.memfile import MemoryFile
    mf = MemoryFile(1 << 30)
    return AddressSpace(mf, _NoPlatform(), 1 << 40)


def test_views_of_a_buffer_cut_short_by_an_unmapped_page(aspace):
    from pysentry.sentry.mm.addrspace import PROT_READ, PROT_WRITE
    base = 0x10000000
    aspace.map_anon(base, 2 * PAGE, PROT_READ | PROT_WRITE, False)
    aspace.map_anon(base + 2 * PAGE, PAGE, PROT_READ, False)     # read-only neighbour
    # Without `partial`, any inaccessible byte is EFAULT.
    assert outcome(lambda: aspace.views(base + 10, 3 * PAGE, True)) == "EFAULT"
    # With it, the writable beginning: up to the read-only page, then up to the hole.
    vs = aspace.views(base + 10, 3 * PAGE, True, True)
    assert sum(map(len, vs)) == 2 * PAGE - 10
    vs = aspace.views(base + 10, 4 * PAGE, False, True)
    assert sum(map(len, vs)) == 3 * PAGE - 10
    # An inaccessible first byte stays EFAULT; so does a range starting past the top.
    assert outcome(lambda: aspace.views(base + 3 * PAGE, 10, False, True)) == "EFAULT"
    assert outcome(lambda: aspace.views(base + 2 * PAGE, 10, True, True)) == "EFAULT"
    assert outcome(lambda: aspace.views(1 << 40, 10, False, True)) == "EFAULT"
    # The views alias the memory: what is stored through them is what reads back.
    vs = aspace.views(base + PAGE - 3, 6, True)
    vs[0][:] = b"abcdef"
    assert aspace.read(base + PAGE - 3, 6) == b"abcdef"


def test_views_for_a_store_break_copy_on_write_after_fork(aspace):
    from pysentry.sentry.mm.addrspace import PROT_READ, PROT_WRITE
    base = 0x20000000
    aspace.map_anon(base, 3 * PAGE, PROT_READ | PROT_WRITE, False)
    aspace.write(base, b"p" * (3 * PAGE))
    child = aspace.fork(_NoPlatform())
    # Reading needs no copy: one view over the shared run.
    assert len(child.views(base, 3 * PAGE, False)) == 1
    # A kernel store (a read() into the child's buffer) copies the pages it touches.
    for v in child.views(base + PAGE - 1, 2, True):
        v[:] = b"c" * len(v)
    assert child.read(base + PAGE - 2, 4) == b"pccp"
    assert aspace.read(base, 3 * PAGE) == b"p" * (3 * PAGE)


def _no_fds(monkeypatch):
    def fail(*_):
        raise OSError(errno.EMFILE, "Too many open files")
    monkeypatch.setattr(os, "memfd_create", fail)


def _no_budget(monkeypatch):
    monkeypatch.setattr(FileData, "MEMFDS", FileData.memfds_open)


@pytest.mark.parametrize("starve", [_no_fds, _no_budget])
def test_large_tmpfs_file_without_a_host_fd_stays_in_pages(vfs, monkeypatch, starve):
    """memfd_create failing with EMFILE (the sentry's fd limit), or tmpfs's share of the
    fds spent, must not fail the write."""
    starve(monkeypatch)
    v, ctx = vfs
    f = v.openat(ctx, None, b"/f", os.O_CREAT | os.O_RDWR, 0o644)
    data = pattern(3 * SMALL, 1)[:3 * SMALL]
    assert f.write([memoryview(data)], 100) == len(data)
    assert f.inode.pages.fd is None
    assert pread(f, len(data) + 200, 0) == bytes(100) + data
    f.truncate(SMALL + 1)
    assert f.stat().size == SMALL + 1 and f.stat().blocks == (FileData.SMALL_PAGES + 1) * 8
    f.decref()


TOP_SRC = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
int main(void) {
    /* The last page below the top of user space: 0x7ffffffff000 on x86-64 Linux; the
       sandbox's is lower (its ptrace stub lives above it), so take the first that maps. */
    char *last = MAP_FAILED;
    unsigned long tops[] = { 0x7ffffffff000UL, 0x7fffffff0000UL };
    for (int i = 0; i < 2 && last == MAP_FAILED; i++)
        last = mmap((void *)(tops[i] - 4096), 4096, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (last == MAP_FAILED) { printf("mmap failed %d\n", errno); return 1; }
    int fd = open("/proc/self/exe", O_RDONLY);
    errno = 0;
    long r = read(fd, last + 4000, 200);            /* crosses the top: EFAULT, no bytes */
    printf("read across the top: %ld errno %d\n", r, r < 0 ? errno : 0);
    struct iovec v = { last + 4000, 200 };
    errno = 0;
    r = readv(fd, &v, 1);
    printf("readv across the top: %ld errno %d\n", r, r < 0 ? errno : 0);
    r = read(fd, last + 4000, 96);                  /* ends exactly at the top: fine */
    printf("read up to the top: %ld\n", r);
    return 0;
}
"""


def test_a_buffer_reaching_past_user_space_is_efault():
    assert_same([compile_c(TOP_SRC)])
