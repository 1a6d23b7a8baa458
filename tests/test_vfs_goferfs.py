"""goferfs: the sentry's view of a host directory served by a real gofer.

The oracle is the host kernel: whatever the VFS reports through a PathContext (stat,
getdents, read, readlink, statfs) is compared with os.lstat/os.listdir/open().read() of
the same host directory, and whatever a writable mount changes is checked on the host.
Each test starts its own gofer process (about 0.1 s) and shuts it down by pid.
"""
import errno
import os
import stat as st

import pytest

from pysentry.gofer import testing
from pysentry.gofer.p9 import messages as m
from pysentry.gofer.p9.client import Client
from pysentry.gofer.p9.dirent import Dirent as P9Dirent
from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs import goferfs
from pysentry.sentry.vfs.context import Creds, PathContext
from pysentry.sentry.vfs.goferfs import GoferFS, open_gofer_fs, parse_attrs
from pysentry.sentry.vfs.overlay import OverlayFS
from pysentry.sentry.vfs.stat import ST_RDONLY, V9FS_MAGIC, dtype_of
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

RD, WR, RW = os.O_RDONLY, os.O_WRONLY, os.O_RDWR
BIG = os.urandom(300_000)
FUTURE_ATIME = 4_000_000_000 * 10**9 + 123      # after every ctime: relatime leaves it
PAST_MTIME = 1_000_000_000 * 10**9 + 456_789


def build_tree(root) -> None:
    """Files of every kind the gofer serves, with fixed times."""
    root = os.fsencode(root)
    j = lambda *p: os.path.join(root, *p)   # noqa: E731
    os.makedirs(j(b"dir", b"sub"))
    os.mkdir(j(b"many"))
    _write(j(b"empty"), b"")
    _write(j(b"small.txt"), b"hello, gofer\n")
    _write(j(b"big.bin"), BIG)
    _write(j(b"dir", b"sub", b"deep.txt"), b"deep\n" * 100)
    with open(j(b"sparse.bin"), "wb") as f:
        f.truncate(1 << 20)
        f.seek(512 * 1024)
        f.write(b"island")
    _write(j(b"setuid"), b"#!/bin/true\n")
    os.chmod(j(b"setuid"), 0o4755)
    _write(j(b"caf\xe9"), b"latin-1 name\n")                  # not UTF-8
    _write(j("żółw".encode()), b"utf-8 name\n")
    os.link(j(b"small.txt"), j(b"dir", b"hardlink"))
    os.symlink(b"small.txt", j(b"rel"))
    os.symlink(b"/dir/sub/deep.txt", j(b"abs"))                # absolute: inside the mount
    os.symlink(b"nowhere", j(b"dangling"))
    os.symlink(b"dir", j(b"dirlink"))
    os.mkfifo(j(b"fifo"), 0o640)
    for i in range(300):        # several Treaddir at a small msize
        _write(j(b"many", b"entry-with-a-longish-name-%04d" % i), b"%d" % i)
    for path in _host_paths(root):
        os.utime(path, ns=(FUTURE_ATIME, PAST_MTIME), follow_symlinks=False)


def _write(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _host_paths(root: bytes) -> list:
    """Every path below root (root included), as bytes. Never follows a symlink: that
    would update the link's atime on the host (os.walk does, to tell directories)."""
    out = [root]
    with os.scandir(root) as entries:
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                out += _host_paths(e.path)
            else:
                out.append(e.path)
    return out


def _host_dirs(root: bytes) -> list:
    """(directory, names in it) for every directory below root, root included."""
    return [(p, os.listdir(p)) for p in _host_paths(root)
            if st.S_ISDIR(os.lstat(p).st_mode)]


def _rel(root: bytes, path: bytes) -> bytes:
    """The sandbox path of a host path under root (the mount is the sandbox's /)."""
    return b"/" + os.path.relpath(path, root).lstrip(b".")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("goferfs_tree")
    build_tree(root)
    return os.fsencode(root)


@pytest.fixture
def writable(tmp_path):
    root = tmp_path / "export"
    root.mkdir()
    return os.fsencode(root)


class Mounted:
    """A VirtualFS whose root filesystem is `fs`, with a root PathContext."""

    def __init__(self, fs, root_fs=None):
        self.fs = fs
        self.vfs = VirtualFS(root_fs or fs)
        self.ctx = self.vfs.root_context()

    def read_all(self, path: bytes, chunk: int = 65536) -> bytes:
        f = self.vfs.openat(self.ctx, None, path, RD)
        try:
            out = bytearray()
            while True:
                buf = bytearray(chunk)
                # three views per read: the data lands in scattered buffers
                cut1, cut2 = chunk // 3, 2 * chunk // 3
                mv = memoryview(buf)
                n = f.read([mv[:cut1], mv[cut1:cut2], mv[cut2:]])
                if n == 0:
                    return bytes(out)
                out += buf[:n]
        finally:
            f.decref()

    def write_file(self, path: bytes, data: bytes, flags=os.O_CREAT | os.O_TRUNC | WR,
                   mode=0o644) -> None:
        f = self.vfs.openat(self.ctx, None, path, flags, mode)
        try:
            assert f.write([memoryview(data)]) == len(data)
        finally:
            f.decref()

    def listdir(self, path: bytes, bufsize: int = 600) -> list:
        d = self.vfs.openat(self.ctx, None, path, RD | os.O_DIRECTORY)
        try:
            out = []
            while True:
                batch = d.getdents(bufsize)
                if not batch:
                    return out
                out += batch
        finally:
            d.decref()

    def stat(self, path: bytes, follow: bool = False):
        return self.vfs.stat(self.ctx, None, path, follow=follow)


def _errno(fn, *args, **kwargs) -> int:
    with pytest.raises(SysError) as info:
        fn(*args, **kwargs)
    return info.value.errno


def assert_stat_matches(ours, host, fs) -> None:
    assert ours.dev == fs.dev and ours.dev != host.st_dev
    assert (ours.ino, oct(ours.mode), ours.nlink, ours.uid, ours.gid, ours.rdev, ours.size) \
        == (host.st_ino, oct(host.st_mode), host.st_nlink, host.st_uid, host.st_gid,
            host.st_rdev, host.st_size)
    assert (ours.blocks, ours.blksize) == (host.st_blocks, host.st_blksize)
    assert (ours.atime, ours.mtime, ours.ctime) == \
        (host.st_atime_ns, host.st_mtime_ns, host.st_ctime_ns)


def assert_tree_matches(mnt: Mounted, root: bytes) -> None:
    for path in _host_paths(root):
        assert_stat_matches(mnt.stat(_rel(root, path)), os.lstat(path), mnt.fs)


def _snapshot(root: bytes) -> dict:
    """What a change to the host tree would alter (atime aside)."""
    snap = {}
    for path in _host_paths(root):
        s = os.lstat(path)
        data = None
        if st.S_ISREG(s.st_mode):
            with open(path, "rb") as f:
                data = f.read()
        elif st.S_ISLNK(s.st_mode):
            data = os.readlink(path)
        snap[path] = (s.st_ino, s.st_mode, s.st_nlink, s.st_uid, s.st_gid, s.st_size,
                      s.st_mtime_ns, s.st_ctime_ns, data)
    return snap


# == reading a tree: the host is the oracle ===============================================

@pytest.mark.parametrize("donate", [True, False], ids=["donate", "no-donate"])
def test_stat_of_every_file_matches_host(tree, donate):
    with open_gofer_fs(tree, ro=True, donate=donate) as fs:
        mnt = Mounted(fs)
        assert_tree_matches(mnt, tree)
        # Following symlinks lands on the target's attributes.
        for link, target in ((b"/rel", b"small.txt"), (b"/abs", b"dir/sub/deep.txt"),
                             (b"/dirlink", b"dir")):
            assert_stat_matches(mnt.stat(link, follow=True),
                                os.stat(os.path.join(tree, target)), fs)
        assert _errno(mnt.stat, b"/dangling", follow=True) == errno.ENOENT
        assert _errno(mnt.stat, b"/no-such-file") == errno.ENOENT
        assert _errno(mnt.stat, b"/small.txt/x") == errno.ENOTDIR


def test_getdents_matches_host_listing(tree):
    # A small msize spreads "many" over several Treaddir; a small getdents buffer makes
    # the VFS resume at positions we handed out.
    with open_gofer_fs(tree, ro=True, msize=8192) as fs:
        mnt = Mounted(fs)
        for top, host_names in _host_dirs(tree):
            ents = mnt.listdir(_rel(tree, top))
            names = [e.name for e in ents]
            assert len(names) == len(set(names))
            assert sorted(names) == sorted([b".", b".."] + host_names)
            for e in ents:
                if top == tree and e.name == b"..":
                    continue    # the mount is the sandbox's "/": its ".." is itself
                host = os.lstat(os.path.join(top, e.name))
                assert e.ino == host.st_ino, e.name
                assert e.dtype == dtype_of(host.st_mode), e.name
            offsets = [e.off for e in ents]
            assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


@pytest.mark.parametrize("donate", [True, False], ids=["donate", "no-donate"])
def test_file_contents_match_host(tree, donate):
    with open_gofer_fs(tree, ro=True, donate=donate, msize=65536) as fs:
        mnt = Mounted(fs)
        for path in _host_paths(tree):
            if not st.S_ISREG(os.lstat(path).st_mode):
                continue
            with open(path, "rb") as f:
                host = f.read()
            assert mnt.read_all(_rel(tree, path)) == host, path
            assert mnt.read_all(_rel(tree, path), chunk=4099) == host, path
        f = mnt.vfs.openat(mnt.ctx, None, b"/big.bin", RD)
        try:
            for offset, count in ((0, 10), (12345, 70000), (len(BIG) - 5, 100),
                                  (len(BIG), 10), (len(BIG) + 4096, 1)):
                buf = bytearray(count)
                n = f.read([memoryview(buf)], offset=offset)
                assert bytes(buf[:n]) == BIG[offset:offset + count]
            page = bytearray(4096)
            assert f.pread_for_mmap(8192, memoryview(page)) == 4096
            assert bytes(page) == BIG[8192:12288]
        finally:
            f.decref()
        h = fs.root().lookup(b"big.bin")._hold.reader
        assert (h.fd is not None) == donate


def test_symlinks_read_and_resolve_like_host(tree):
    with open_gofer_fs(tree, ro=True) as fs:
        mnt = Mounted(fs)
        for name in (b"rel", b"abs", b"dangling", b"dirlink"):
            assert mnt.vfs.readlink(mnt.ctx, None, b"/" + name) == \
                os.readlink(os.path.join(tree, name))
        assert mnt.read_all(b"/rel") == b"hello, gofer\n"
        assert mnt.read_all(b"/abs") == b"deep\n" * 100
        assert mnt.read_all(b"/dirlink/sub/deep.txt") == b"deep\n" * 100
        assert _errno(mnt.vfs.readlink, mnt.ctx, None, b"/small.txt") == errno.EINVAL
        assert _errno(mnt.vfs.openat, mnt.ctx, None, b"/rel", RD | os.O_NOFOLLOW) \
            == errno.ELOOP


def test_statfs_matches_host(tree):
    with open_gofer_fs(tree, ro=True) as fs:
        mnt = Mounted(fs)
        ours = mnt.vfs.statfs(mnt.ctx, None, b"/dir")
        host = os.statvfs(tree)
        assert ours.fstype_magic == V9FS_MAGIC
        assert (ours.bsize, ours.blocks, ours.files, ours.namelen) == \
            (host.f_bsize, host.f_blocks, host.f_files, host.f_namemax)
        assert ours.flags & ST_RDONLY
        assert fs.fstype == "9p"


def test_sparse_file_extents_come_from_the_host(tree):
    with open_gofer_fs(tree, ro=True) as fs:
        inode = fs.root().lookup(b"sparse.bin")
        fd = os.open(os.path.join(tree, b"sparse.bin"), RD)
        try:
            for offset in (0, 4096, 512 * 1024, 600 * 1024):
                for whence, ours in ((os.SEEK_DATA, inode.seek_data),
                                     (os.SEEK_HOLE, inode.seek_hole)):
                    try:
                        expected = os.lseek(fd, offset, whence)
                    except OSError as exc:
                        assert _errno(ours, offset) == exc.errno
                    else:
                        assert ours(offset) == expected
        finally:
            os.close(fd)


def test_xattrs_match_host(tmp_path):
    path = tmp_path / "tagged"
    path.write_bytes(b"x")
    try:
        os.setxattr(path, "user.colour", b"blue")
    except OSError as exc:
        pytest.skip(f"the host filesystem refuses user xattrs: {exc}")
    with open_gofer_fs(tmp_path, ro=True) as fs:
        mnt = Mounted(fs)
        assert mnt.vfs.getxattr(mnt.ctx, None, b"/tagged", b"user.colour") == b"blue"
        assert sorted(mnt.vfs.listxattr(mnt.ctx, None, b"/tagged")) == \
            sorted(os.fsencode(n) for n in os.listxattr(path))
        assert _errno(mnt.vfs.getxattr, mnt.ctx, None, b"/tagged", b"user.none") == \
            errno.ENODATA


# == changes ==============================================================================

def test_readonly_mount_refuses_every_change(tree):
    before = _snapshot(tree)
    with open_gofer_fs(tree, ro=True) as fs:
        mnt = Mounted(fs)
        v, c = mnt.vfs, mnt.ctx
        changes = [
            lambda: v.openat(c, None, b"/small.txt", WR),
            lambda: v.openat(c, None, b"/new", os.O_CREAT | WR, 0o644),
            lambda: v.mkdir(c, None, b"/newdir", 0o755),
            lambda: v.unlink(c, None, b"/small.txt"),
            lambda: v.rmdir(c, None, b"/dir/sub"),
            lambda: v.rename(c, None, b"/small.txt", None, b"/moved"),
            lambda: v.symlink(c, b"x", None, b"/newlink"),
            lambda: v.link(c, None, b"/small.txt", None, b"/newhard"),
            lambda: v.chmod(c, None, b"/small.txt", 0o600),
            lambda: v.chown(c, None, b"/small.txt", 1, 1),
            lambda: v.utimens(c, None, b"/small.txt", (1, 0), (1, 0)),
            lambda: v.truncate(c, None, b"/small.txt", 0),
            lambda: v.mknod(c, None, b"/newfifo", st.S_IFIFO | 0o644),
        ]
        for change in changes:
            assert _errno(change) == errno.EROFS
        # The filesystem refuses on its own too, whatever mount it sits under.
        small = fs.root().lookup(b"small.txt")
        assert _errno(small.write, 0, [memoryview(b"x")]) == errno.EROFS
        assert _errno(small.setattr, size=0) == errno.EROFS
        assert _errno(fs.root().create, b"n", st.S_IFREG | 0o644, 0, 0) == errno.EROFS
    assert _snapshot(tree) == before


@pytest.mark.parametrize("donate", [True, False], ids=["donate", "no-donate"])
def test_writable_mount_changes_reach_the_host(writable, donate):
    host = lambda *p: os.path.join(writable, *p)   # noqa: E731
    with open_gofer_fs(writable, donate=donate) as fs:
        mnt = Mounted(fs)
        v, c = mnt.vfs, mnt.ctx
        c.umask = 0         # the gofer runs with umask 022: modes must still be ours
        mnt.write_file(b"/a.txt", b"first", mode=0o666)
        assert open(host(b"a.txt"), "rb").read() == b"first"
        assert st.S_IMODE(os.stat(host(b"a.txt")).st_mode) == 0o666
        mnt.write_file(b"/a.txt", b"+more", flags=WR | os.O_APPEND)
        assert open(host(b"a.txt"), "rb").read() == b"first+more"
        v.mkdir(c, None, b"/d", 0o777)
        assert st.S_IMODE(os.stat(host(b"d")).st_mode) == 0o777
        v.mkdir(c, None, b"/d/e", 0o700)
        mnt.write_file(b"/d/e/f", BIG[:100_000])
        assert open(host(b"d", b"e", b"f"), "rb").read() == BIG[:100_000]
        # rename: into a directory, over an existing file, a directory across parents
        v.rename(c, None, b"/a.txt", None, b"/d/a.txt")
        mnt.write_file(b"/victim", b"to be replaced")
        v.rename(c, None, b"/d/a.txt", None, b"/victim")
        assert open(host(b"victim"), "rb").read() == b"first+more"
        assert not os.path.exists(host(b"d", b"a.txt"))
        v.rename(c, None, b"/d/e", None, b"/e2")
        assert os.listdir(host(b"e2")) == [b"f"]
        assert _errno(v.rename, c, None, b"/victim", None, b"/e2/f", 1) == errno.EEXIST
        # links
        v.symlink(c, b"victim", None, b"/sym")
        assert os.readlink(host(b"sym")) == b"victim"
        v.link(c, None, b"/victim", None, b"/e2/hard")
        assert os.stat(host(b"e2", b"hard")).st_ino == os.stat(host(b"victim")).st_ino
        assert mnt.stat(b"/victim").nlink == 2
        # attributes
        v.chmod(c, None, b"/victim", 0o4711)
        v.chown(c, None, b"/e2/f", 1234, 5678)
        v.utimens(c, None, b"/sym", (-2, 5), (1_500_000_000, 999_999_999), follow=False)
        v.truncate(c, None, b"/e2/f", 10)
        mnt.write_file(b"/e2/f", b"", flags=WR)             # no-op write keeps size
        v.truncate(c, None, b"/e2/f", 20_000)
        assert open(host(b"e2", b"f"), "rb").read() == BIG[:10] + bytes(19_990)
        v.mknod(c, None, b"/fifo", st.S_IFIFO | 0o600)
        assert st.S_ISFIFO(os.lstat(host(b"fifo")).st_mode)
        # removal
        assert _errno(v.rmdir, c, None, b"/e2") == errno.ENOTEMPTY
        v.unlink(c, None, b"/e2/hard")
        assert mnt.stat(b"/victim").nlink == 1
        v.unlink(c, None, b"/e2/f")
        v.rmdir(c, None, b"/e2")
        assert not os.path.exists(host(b"e2"))
        # Every attribute we now report is the host's, link counts and times included.
        assert_tree_matches(mnt, writable)
        assert sorted(e.name for e in mnt.listdir(b"/")) == \
            sorted([b".", b".."] + os.listdir(writable))
        assert sorted(e.name for e in mnt.listdir(b"/d")) == \
            sorted([b".", b".."] + os.listdir(host(b"d")))


def test_new_files_belong_to_their_creator(writable):
    # The gofer creates as its attach user (root); the sentry's caller must own the file.
    os.chmod(writable, 0o777)
    with open_gofer_fs(writable) as fs:
        mnt = Mounted(fs)
        v = mnt.vfs
        c = PathContext(v.root, v.root, Creds(1000, 1001, 1000, 1001, 1000, 1001), 0o022)
        f = v.openat(c, None, b"/file", os.O_CREAT | WR, 0o640)
        f.decref()
        v.mkdir(c, None, b"/dir", 0o750)
        v.symlink(c, b"file", None, b"/link")
        v.mknod(c, None, b"/fifo", st.S_IFIFO | 0o600)
        for name, mode in ((b"file", 0o640), (b"dir", 0o750), (b"link", 0o777),
                           (b"fifo", 0o600)):
            host = os.lstat(os.path.join(writable, name))
            assert (host.st_uid, host.st_gid, st.S_IMODE(host.st_mode)) == (1000, 1001, mode)
            assert_stat_matches(mnt.stat(b"/" + name), host, fs)
        # ... and the host's permission bits then bind the creator like anyone else.
        other = PathContext(v.root, v.root, Creds(*(2000,) * 6), 0o022)
        assert _errno(v.openat, other, None, b"/file", RD) == errno.EACCES


def test_open_file_survives_unlink_and_rename_of_its_name(writable):
    with open_gofer_fs(writable) as fs:
        mnt = Mounted(fs)
        v, c = mnt.vfs, mnt.ctx
        mnt.write_file(b"/f", b"payload")
        f = v.openat(c, None, b"/f", RW)
        try:
            v.rename(c, None, b"/f", None, b"/g")
            v.unlink(c, None, b"/g")
            assert os.listdir(writable) == []
            assert f.write([memoryview(b"PAY")], offset=0) == 3
            buf = bytearray(16)
            assert bytes(buf[:f.read([memoryview(buf)], offset=0)]) == b"PAYload"
            assert f.stat().nlink == 0
        finally:
            f.decref()
        mnt.write_file(b"/f", b"new file, same name")
        assert mnt.read_all(b"/f") == b"new file, same name"


def test_directory_positions_survive_changes(writable):
    for i in range(40):
        _write(os.path.join(writable, b"old%02d" % i), b"")
    with open_gofer_fs(writable) as fs:
        mnt = Mounted(fs)
        v, c = mnt.vfs, mnt.ctx
        d = v.openat(c, None, b"/", RD | os.O_DIRECTORY)
        try:
            seen = list(d.getdents(300))
            resume = d.pos
            for i in range(10):
                mnt.write_file(b"/new%02d" % i, b"")
            for e in seen[2:7]:
                v.unlink(c, None, b"/" + e.name)
            rest = []
            while batch := d.getdents(300):
                rest += batch
            names = [e.name for e in seen + rest]
            assert len(names) == len(set(names))
            # Every entry that existed throughout appears exactly once.
            assert {b"old%02d" % i for i in range(40)} <= set(names)
            # seekdir to a position handed out earlier resumes at the same place.
            d.seek(resume, os.SEEK_SET)
            again = []
            while batch := d.getdents(300):
                again += batch
            assert [e.name for e in again] == [e.name for e in rest]
        finally:
            d.decref()
        d_names = {e.name for e in mnt.listdir(b"/")} - {b".", b".."}
        assert d_names == set(os.listdir(writable))


# == overlay on goferfs ===================================================================

def test_overlay_writes_stay_out_of_the_host_dir(tree):
    before = _snapshot(tree)
    with open_gofer_fs(tree, ro=True) as fs:
        mnt = Mounted(fs, root_fs=OverlayFS(fs))
        v, c = mnt.vfs, mnt.ctx
        mnt.write_file(b"/small.txt", b"changed in the sandbox")
        mnt.write_file(b"/dir/sub/new.txt", b"brand new")
        mnt.write_file(b"/big.bin", b"HEAD", flags=WR)
        v.unlink(c, None, b"/dangling")
        v.rename(c, None, b"/setuid", None, b"/dir/moved")
        v.mkdir(c, None, b"/many/nested", 0o755)
        v.chmod(c, None, b"/empty", 0o600)
        assert mnt.read_all(b"/small.txt") == b"changed in the sandbox"
        assert mnt.read_all(b"/dir/hardlink") == b"hello, gofer\n"   # no copy-up of links
        assert mnt.read_all(b"/dir/sub/new.txt") == b"brand new"
        assert mnt.read_all(b"/big.bin") == b"HEAD" + BIG[4:]
        assert mnt.read_all(b"/dir/moved") == b"#!/bin/true\n"
        assert _errno(mnt.stat, b"/dangling") == errno.ENOENT
        assert st.S_IMODE(mnt.stat(b"/empty").mode) == 0o600
        # Untouched lower files look as on the host, inode number included.
        assert mnt.stat(b"/dir/sub/deep.txt").ino == \
            os.stat(os.path.join(tree, b"dir/sub/deep.txt")).st_ino
        names = {e.name for e in mnt.listdir(b"/")}
        assert b"dangling" not in names and b"setuid" not in names and b"rel" in names
        assert len(mnt.listdir(b"/many")) == 300 + 3
    assert _snapshot(tree) == before


# == donation =============================================================================

def test_donation_on_and_off_give_the_same_bytes(tmp_path):
    results = {}
    for donate in (True, False):
        root = tmp_path / ("on" if donate else "off")
        root.mkdir()
        (root / "data").write_bytes(BIG)
        with open_gofer_fs(root, donate=donate, msize=16384) as fs:
            mnt = Mounted(fs)
            f = mnt.vfs.openat(mnt.ctx, None, b"/data", RW)
            try:
                f.write([memoryview(b"<patch>"), memoryview(b"")], offset=100_001)
                f.seek(0, os.SEEK_END)
                f.write([memoryview(BIG[:5000])])
                buf = bytearray(len(BIG) + 6000)
                mv = memoryview(buf)
                n = f.read([mv[:7], mv[7:70000], mv[70000:]], offset=0)
                results[donate] = bytes(buf[:n])
            finally:
                f.decref()
            inode = fs.root().lookup(b"data")
            assert (inode._hold.writer.fd is not None) == donate
        assert (root / "data").read_bytes() == results[donate]
    assert results[True] == results[False]
    assert results[True] == BIG[:100_001] + b"<patch>" + BIG[100_008:] + BIG[:5000]


# == caching, identity and bounded fids ===================================================

class _CountingClient:
    """Counts the requests a GoferFS sends (wraps the real client)."""

    def __init__(self, fs):
        self.calls = 0
        real = fs.client._rpc

        def counted(*args):
            self.calls += 1
            return real(*args)
        fs.client._rpc = counted


def test_cached_lookups_attributes_and_listings_cost_no_requests(tree):
    with open_gofer_fs(tree, ro=True) as fs:
        mnt = Mounted(fs)
        paths = [b"/dir/sub/deep.txt", b"/abs", b"/many", b"/caf\xe9"]
        for p in paths:
            mnt.stat(p, follow=True)
        mnt.listdir(b"/many")
        assert _errno(mnt.stat, b"/many/absent") == errno.ENOENT
        assert _errno(mnt.stat, b"/dir/absent") == errno.ENOENT     # "dir" never listed
        counter = _CountingClient(fs)
        for p in paths:
            mnt.stat(p, follow=True)
        mnt.listdir(b"/many")
        assert _errno(mnt.stat, b"/many/absent") == errno.ENOENT
        assert _errno(mnt.stat, b"/many/also-absent") == errno.ENOENT   # listing is known
        assert _errno(mnt.stat, b"/dir/absent") == errno.ENOENT
        assert counter.calls == 0
        # A name never asked about costs one Twalk ("sub" is known from /abs), once.
        assert _errno(mnt.stat, b"/dir/sub/absent") == errno.ENOENT
        assert _errno(mnt.stat, b"/dir/sub/absent") == errno.ENOENT
        assert counter.calls == 1


def test_hard_links_are_one_inode(tree):
    with open_gofer_fs(tree, ro=True) as fs:
        a = fs.root().lookup(b"small.txt")
        b = fs.root().lookup(b"dir").lookup(b"hardlink")
        assert a is b and a.nlink == 2
        assert fs.root().lookup(b"small.txt") is a


def test_path_fids_stay_bounded_and_evicted_files_are_walked_again(tree):
    with open_gofer_fs(tree, ro=True, path_fids=8, idle_handles=4) as fs:
        mnt = Mounted(fs)
        names = sorted(os.listdir(os.path.join(tree, b"many")))
        for name in names:
            assert mnt.read_all(b"/many/" + name) == \
                open(os.path.join(tree, b"many", name), "rb").read()
        directories = 1 + 1                   # the root and "many" keep theirs
        assert fs.fids_in_use() <= directories + 8 + 4 * 2
        # Evicted files still work: their fids are walked again from the parent.
        for name in names[:20]:
            assert mnt.read_all(b"/many/" + name) == \
                open(os.path.join(tree, b"many", name), "rb").read()
            fs.root().lookup(b"many").lookup(name).refresh()
        assert fs.fids_in_use() <= directories + 8 + 4 * 2


def test_shared_mode_sees_changes_made_on_the_host(writable):
    host = lambda *p: os.path.join(writable, *p)   # noqa: E731
    _write(host(b"f"), b"one")
    with open_gofer_fs(writable, shared=True) as fs:
        mnt = Mounted(fs)
        assert mnt.stat(b"/f").size == 3
        assert _errno(mnt.stat, b"/later") == errno.ENOENT
        names = {e.name for e in mnt.listdir(b"/")}
        with open(host(b"f"), "ab") as f:
            f.write(b" two")
        _write(host(b"later"), b"made on the host")
        _write(host(b"replacement"), b"other inode")
        os.rename(host(b"replacement"), host(b"f"))
        assert_stat_matches(mnt.stat(b"/f"), os.lstat(host(b"f")), fs)
        assert mnt.read_all(b"/f") == b"other inode"
        assert mnt.read_all(b"/later") == b"made on the host"
        assert {e.name for e in mnt.listdir(b"/")} == names | {b".", b"..", b"later"}


def test_unmount_stops_the_gofer(tree):
    fs = open_gofer_fs(tree, ro=True)
    vfs = VirtualFS(TmpFS())
    vfs.mkdir(vfs.root_context(), None, b"/mnt", 0o755)
    vfs.mount(fs, b"/mnt")
    ctx = vfs.root_context()
    f = vfs.openat(ctx, None, b"/mnt/small.txt", RD)
    vfs.umount(b"/mnt")
    assert fs.process.returncode is not None
    # An open description now fails cleanly instead of reading a recycled fd.
    assert _errno(f.read, [memoryview(bytearray(4))]) == errno.EIO
    f.decref()


# == a peer no one here wrote =============================================================

@pytest.mark.skipif(not testing.have_diod(), reason="Debian's diod is not installed")
def test_diod_serves_the_same_view(tree):
    with testing.diod_server(os.fsdecode(tree)) as port:
        client = Client.connect_tcp("127.0.0.1", port, msize=65536)
        with GoferFS(client, readonly=True, aname=os.fsdecode(tree)) as fs:
            mnt = Mounted(fs)
            for path in _host_paths(tree):
                host = os.lstat(path)
                ours = mnt.stat(_rel(tree, path))
                assert (ours.ino, ours.mode, ours.nlink, ours.size, ours.mtime) == \
                    (host.st_ino, host.st_mode, host.st_nlink, host.st_size,
                     host.st_mtime_ns)
                if st.S_ISREG(host.st_mode):
                    with open(path, "rb") as f:
                        assert mnt.read_all(_rel(tree, path)) == f.read()
                if st.S_ISDIR(host.st_mode):
                    names = {e.name for e in mnt.listdir(_rel(tree, path))}
                    assert names == {b".", b".."} | set(os.listdir(path))


# == what comes off the socket is checked =================================================

def _rgetattr(**over):
    fields = dict(tag=1, valid=0x7FF, qid=m.Qid(0, 0, 5), mode=0o100644, uid=0, gid=0,
                  nlink=1, rdev=0, size=10, blksize=4096, blocks=8, atime_sec=1,
                  atime_nsec=2, mtime_sec=3, mtime_nsec=4, ctime_sec=5, ctime_nsec=6,
                  btime_sec=0, btime_nsec=0, gen=0, data_version=0)
    fields.update(over)
    return m.Rgetattr(**fields)


def test_attributes_out_of_range_are_eio():
    assert parse_attrs(_rgetattr()).size == 10
    # Negative times arrive as two's complement.
    assert parse_attrs(_rgetattr(mtime_sec=(1 << 64) - 2, mtime_nsec=5)).mtime_ns == \
        -2 * 10**9 + 5
    for bad in (dict(size=1 << 63), dict(mode=0o170644), dict(mode=0o644),
                dict(atime_nsec=10**9), dict(nlink=1 << 40), dict(blocks=1 << 64 - 1)):
        assert _errno(parse_attrs, _rgetattr(**bad)) == errno.EIO


class _HostileClient:
    """Just enough of a 9P client to serve a root directory whose listing is hostile."""

    msize = 8192
    root_qid = m.Qid(0x80, 0, 1)

    def __init__(self, pages):
        self.pages = pages
        self.fids = 0

    def attach(self, *args):
        return 0

    def getattr(self, fid, mask=0):
        return _rgetattr(mode=0o40755)

    def clone(self, fid):
        self.fids += 1
        return self.fids

    def lopen(self, fid, flags):
        return m.Qid(0x80, 0, 1), 0, None

    def readdir(self, fid, offset):
        return self.pages.get(offset, [])

    def clunk(self, fid):
        pass

    def close(self):
        pass


def _ent(name, cookie, qpath=7, dtype=8):
    return P9Dirent(m.Qid(0, 0, qpath), cookie, dtype, name)


def test_hostile_listing_entries_are_dropped():
    pages = {0: [_ent(".", 1, 1, 4), _ent("..", 2, 1, 4), _ent("ok", 3), _ent("a/b", 4),
                 _ent("", 5), _ent("x\0y", 6), _ent("ok", 7, qpath=9), _ent("z" * 256, 8),
                 _ent("weird-type", 9, dtype=99)]}
    fs = GoferFS(_HostileClient(pages))
    ents = list(fs.root().iterdir(2))
    assert [(e.name, e.ino, e.dtype) for e in ents] == [(b"ok", 7, 8), (b"weird-type", 7, 0)]


def test_listing_that_never_ends_is_eio():
    pages = {0: [_ent("a", 10)], 10: [_ent("b", 0)]}      # cookie 0 again: a loop
    fs = GoferFS(_HostileClient(pages))
    assert _errno(fs.root().iterdir, 2) == errno.EIO


def test_helpers_split_scattered_buffers():
    views = [memoryview(bytearray(3)), memoryview(bytearray(5))]
    rest = goferfs._advance(views, 4)
    assert [len(v) for v in rest] == [4]
    assert goferfs._advance(views, 8) == []
