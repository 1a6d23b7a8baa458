"""Our 9P client against a server no one here wrote: Debian's diod.

Every answer is checked against what the host's own system calls say about the served
directory, and every change the client makes is checked on the host afterwards.
"""
import errno
import os
import stat

import pytest

from pysentry.gofer import testing
from pysentry.gofer.p9 import constants as C
from pysentry.gofer.p9.client import Client
from pysentry.sentry.kernel.errors import SysError

pytestmark = pytest.mark.skipif(not testing.have_diod(),
                                reason="Debian's diod is not installed (apt-get install diod)")

BIG = bytes(range(256)) * 1200          # 300 KiB: several Tread/Twrite at msize 64 KiB


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "export"
    root.mkdir()
    (root / "big.bin").write_bytes(BIG)
    (root / "d").mkdir()
    (root / "d" / "inner.txt").write_bytes(b"inner\n")
    os.symlink("big.bin", root / "link")
    with testing.diod_server(root) as port:
        with Client.connect_tcp("127.0.0.1", port, msize=65536) as client:
            yield root, client, client.attach(str(root))


def test_version_negotiates_the_smaller_msize(served):
    _, client, _ = served
    assert client.msize == 65536


def test_walk_getattr_matches_host_stat(served):
    root, c, top = served
    fid, qids = c.walk(top, ["d", "inner.txt"])
    st = os.stat(root / "d" / "inner.txt")
    assert [q.path for q in qids] == [os.stat(root / "d").st_ino, st.st_ino]
    assert qids[0].type == C.QTDIR and qids[1].type == C.QTFILE
    a = c.getattr(fid)
    assert (a.mode, a.uid, a.gid, a.nlink, a.size) == \
        (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size)
    assert (a.mtime_sec, a.mtime_nsec) == divmod(st.st_mtime_ns, 10**9)
    with pytest.raises(SysError) as info:
        c.walk(top, ["nonexistent"])
    assert info.value.errno == errno.ENOENT


def test_lopen_and_read_in_msize_pieces(served):
    _, c, top = served
    fid, _ = c.walk(top, ["big.bin"])
    qid, iounit, hostfd = c.lopen(fid, os.O_RDONLY)
    assert hostfd is None                       # TCP never carries fds
    assert c.read(fid, 0, len(BIG) + 10) == BIG
    assert c.read(fid, 1000, 70000) == BIG[1000:71000]
    assert c.read(fid, len(BIG), 10) == b""
    dst = [memoryview(bytearray(5)), memoryview(bytearray(7))]
    assert c.read_into(fid, 3, dst) == 12
    assert bytes(dst[0]) + bytes(dst[1]) == BIG[3:15]


def test_readdir_lists_what_the_host_lists(served):
    root, c, top = served
    fid = c.clone(top)
    c.lopen(fid, os.O_RDONLY | os.O_DIRECTORY)
    entries = c.readdir_all(fid)
    names = {e.name for e in entries}
    assert names - {".", ".."} == set(os.listdir(root))
    by_name = {e.name: e for e in entries}
    assert by_name["d"].type == 4 and by_name["link"].type == 10
    assert by_name["big.bin"].qid.path == os.stat(root / "big.bin").st_ino
    # paging with a small count visits the same entries through the cookies
    paged, offset = [], 0
    while batch := c.readdir(fid, offset, count=40):
        paged += batch
        offset = batch[-1].offset
    assert [e.name for e in paged] == [e.name for e in entries]


def test_create_write_and_read_back_on_the_host(served):
    root, c, top = served
    fid = c.clone(top)
    qid, _, _ = c.lcreate(fid, "new.bin", os.O_RDWR, 0o640)
    assert c.write(fid, 0, BIG) == len(BIG)
    c.fsync(fid)
    st = os.stat(root / "new.bin")
    assert (root / "new.bin").read_bytes() == BIG
    assert qid.path == st.st_ino and stat.S_IMODE(st.st_mode) == 0o640
    views = [memoryview(b"abc"), memoryview(b"def")]
    assert c.write(fid, 2, views) == 6
    assert (root / "new.bin").read_bytes()[:8] == BIG[:2] + b"abcdef"


def test_mkdir_symlink_readlink(served):
    root, c, top = served
    qid = c.mkdir(top, "newdir", 0o750)
    st = os.stat(root / "newdir")
    assert qid.path == st.st_ino and stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o750 & ~_umask()
    c.symlink(top, "sl", "d/inner.txt")
    assert os.readlink(root / "sl") == "d/inner.txt"
    link, qids = c.walk(top, ["link"])
    assert qids[0].type == C.QTSYMLINK
    assert c.readlink(link) == os.readlink(root / "link")


def _umask() -> int:
    # diod creates with its own umask in effect (0022 unless the environment differs)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_rename_and_unlink(served):
    root, c, top = served
    d, _ = c.walk(top, ["d"])
    c.renameat(top, "big.bin", d, "moved.bin")           # diod 1.0: falls back to Trename
    assert not (root / "big.bin").exists()
    assert (root / "d" / "moved.bin").read_bytes() == BIG
    c.unlinkat(d, "moved.bin")                            # falls back to Tremove
    assert not (root / "d" / "moved.bin").exists()
    with pytest.raises(SysError) as info:
        c.unlinkat(top, "d", 0)                           # a directory without AT_REMOVEDIR
    assert info.value.errno == errno.EISDIR
    c.unlinkat(d, "inner.txt")
    c.clunk(d)
    c.unlinkat(top, "d", C.AT_REMOVEDIR)
    assert sorted(os.listdir(root)) == ["link"]


def test_statfs_matches_host(served):
    root, c, top = served
    sfs = c.statfs(top)
    host = os.statvfs(root)
    assert sfs.bsize == host.f_bsize and sfs.blocks == host.f_blocks
    assert sfs.files == host.f_files and sfs.namelen == host.f_namemax


def test_setattr_truncate_chmod_times(served):
    root, c, top = served
    fid, _ = c.walk(top, ["big.bin"])
    c.setattr(fid, C.SETATTR_SIZE | C.SETATTR_MODE, size=10, mode=0o600)
    c.setattr(fid, C.SETATTR_ATIME | C.SETATTR_ATIME_SET | C.SETATTR_MTIME |
              C.SETATTR_MTIME_SET, atime=(1000, 5), mtime=(2000, 7))
    st = os.stat(root / "big.bin")
    assert st.st_size == 10 and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_atime_ns == 1000 * 10**9 + 5 and st.st_mtime_ns == 2000 * 10**9 + 7
