"""fallocate PUNCH_HOLE and ZERO_RANGE (tests/progs/fallocate_punch.c against native Linux):
a punched hole gives its whole pages back instead of being written with zeros, on tmpfs
(both file representations) and on a volume (the host's own punch, through the donated
fd), and mappings of the file read the zeros.

The native side runs on a filesystem of the same type as the sandbox's: /dev/shm (tmpfs)
for the sandbox's /dev/shm, a host directory for a volume of another one next to it."""
import errno
import os

import pytest

from conftest import (HOST_SHM, PLATFORMS, assert_same_stdout, compile_c, run_native,
                      run_native_and_on_volume, run_sandbox)
from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs import iov
from pysentry.sentry.vfs.goferfs import open_gofer_fs
from pysentry.sentry.vfs.tmpfs import PAGE, FileData, TmpFS

S_IFREG = 0o100000


def _host_is_tmpfs(path: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1:3] == [path, "tmpfs"] for line in f)


@pytest.mark.skipif(not _host_is_tmpfs(HOST_SHM), reason="the host's /dev/shm is not a tmpfs")
@pytest.mark.parametrize("platform", PLATFORMS)
def test_punch_on_tmpfs_matches_linux(platform):
    prog = compile_c("fallocate_punch")
    assert_same_stdout(run_native([prog, HOST_SHM]),
                        run_sandbox([prog, "/dev/shm"], f"--platform={platform}"))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_punch_on_a_volume_matches_linux(platform, tmp_path):
    assert_same_stdout(*run_native_and_on_volume(compile_c("fallocate_punch"), tmp_path, platform))


# ---- the filesystems' side, without a sandbox ------------------------------------------
def _tmpfs_file(fs):
    return fs.root().create(b"f", S_IFREG | 0o644, 0, 0)


def _read(inode, offset, n) -> bytes:
    buf = bytearray(n)
    got = inode.read(offset, [memoryview(buf)])
    return bytes(buf[:got])


def test_tmpfs_punch_of_a_sparse_file_needs_no_space():
    # Writing zeros over the range would need 64 MiB of a 1 MiB filesystem (ENOSPC).
    fs = TmpFS(size_limit=1 << 20)
    f = _tmpfs_file(fs)
    f.set_size(64 << 20)
    f.write(32 << 20, [memoryview(b"x" * PAGE)])
    assert f.pages.fd is not None and fs.pages_used == 1
    f.punch_hole(0, 64 << 20)
    assert (fs.pages_used, f.blocks(), f.size) == (0, 0, 64 << 20)
    assert _read(f, 32 << 20, PAGE) == bytes(PAGE)


@pytest.mark.parametrize("memfd", [False, True], ids=["small", "memfd"])
def test_tmpfs_punch_frees_whole_pages_and_zeroes_partial_ones(memfd):
    fs = TmpFS()
    f = _tmpfs_file(fs)
    data = bytes(range(256)) * (4 * PAGE // 256)
    if memfd:
        f.set_size(FileData.SMALL_PAGES * PAGE + 1)       # past small mode
    f.write(0, [memoryview(data)])
    assert (f.pages.fd is not None) == memfd
    before = fs.pages_used
    f.punch_hole(PAGE + 10, 3 * PAGE + 20)        # half of page 1, all of page 2, a bit of 3
    assert fs.pages_used == before - 1
    assert f.blocks() == (before - 1) * (PAGE // 512)
    want = data[:PAGE + 10] + bytes(2 * PAGE + 10) + data[3 * PAGE + 20:]
    assert _read(f, 0, 4 * PAGE) == want
    f.punch_hole(0, 4 * PAGE)
    assert fs.pages_used == before - 4
    assert _read(f, 0, 4 * PAGE) == bytes(4 * PAGE)


@pytest.mark.parametrize("donate", [True, False], ids=["donate", "no-donate"])
def test_volume_punch_reaches_the_host(tmp_path, donate):
    root = tmp_path / "export"
    root.mkdir()
    data = os.urandom(64 * PAGE)
    (root / "data").write_bytes(data)
    twin = tmp_path / "twin"                 # punched natively, to compare blocks with
    twin.write_bytes(data)
    lo, hi = 3 * PAGE + 100, 40 * PAGE + 7
    fd = os.open(twin, os.O_RDWR)
    try:
        iov.host_fallocate(fd, iov.FALLOC_FL_PUNCH_HOLE | iov.FALLOC_FL_KEEP_SIZE, lo, hi - lo)
    finally:
        os.close(fd)
    with open_gofer_fs(os.fsencode(root), donate=donate) as fs:
        inode = fs.root().lookup(b"data")
        inode.punch_hole(lo, hi)
        assert (inode._hold.writer.fd is not None) == donate
        if donate:
            assert inode.stat().blocks == os.stat(twin).st_blocks
            assert inode.stat().blocks < len(data) // 512
        else:
            # 9P2000.L has no fallocate message: the hole is made of written zeros.
            assert inode.stat().blocks >= len(data) // 512
        try:
            inode.zero_range(0, PAGE, True)
            zeroed = True
        except SysError as exc:
            assert exc.errno == errno.EOPNOTSUPP and not donate
            zeroed = False
    want = data[:lo] + bytes(hi - lo) + data[hi:]
    if zeroed:
        want = bytes(PAGE) + want[PAGE:]
    assert (root / "data").read_bytes() == want
    assert os.path.getsize(root / "data") == len(data)
