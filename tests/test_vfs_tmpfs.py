"""tmpfs data and directory semantics, and open-file behaviour, compared with the host's
own tmpfs (/dev/shm) where Linux is the oracle."""
import errno
import fcntl
import os
import shutil
import stat
import tempfile

import pytest

from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.dirent import pack_dirent64, reclen64
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

SHM = "/dev/shm"
SEEK_DATA, SEEK_HOLE = 3, 4

needs_shm = pytest.mark.skipif(not os.path.isdir(SHM), reason="needs the host tmpfs at /dev/shm")


def outcome(fn):
    try:
        return fn()
    except SysError as e:
        return errno.errorcode[e.errno]
    except OSError as e:
        return errno.errorcode[e.errno]


def pwrite(f, data, off):
    return f.write([memoryview(data)], off)


def pread(f, n, off):
    buf = bytearray(n)
    return bytes(buf[:f.read([memoryview(buf)], off)])


@needs_shm
def test_sparse_file_seek_data_hole_and_blocks_match_host_tmpfs(vfs, host_file):
    v, ctx = vfs
    fd, _ = host_file
    f = v.openat(ctx, None, b"/sparse", os.O_CREAT | os.O_RDWR, 0o644)
    plan = [("w", 0, 10), ("w", 3 * 4096 + 5, 100), ("w", 10 * 4096 - 1, 2),
            ("t", 20 * 4096 + 17), ("w", 15 * 4096, 4096), ("t", 12 * 4096 + 3)]
    for kind, off, n in [(p[0], p[1], p[2] if len(p) > 2 else 0) for p in plan]:
        if kind == "w":
            data = bytes(range(256)) * (n // 256 + 1)
            assert pwrite(f, data[:n], off) == os.pwrite(fd, data[:n], off)
        else:
            f.truncate(off)
            os.ftruncate(fd, off)
        hs, ms = os.fstat(fd), f.stat()
        assert (ms.size, ms.blocks) == (hs.st_size, hs.st_blocks)
        for probe in range(0, ms.size + 4097, 1024):
            for whence in (SEEK_DATA, SEEK_HOLE):
                assert outcome(lambda: f.seek(probe, whence)) == \
                    outcome(lambda: os.lseek(fd, probe, whence)), (kind, off, probe, whence)
    size = f.stat().size
    assert pread(f, size + 10, 0) == os.pread(fd, size + 10, 0)


@needs_shm
def test_seek_and_position_rules_match_host(vfs, host_file):
    v, ctx = vfs
    fd, _ = host_file
    f = v.openat(ctx, None, b"/f", os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"0123456789")
    f.write([memoryview(b"0123456789")])
    for off, whence in [(0, 0), (3, 1), (-2, 1), (-20, 1), (5, 2), (-3, 2), (-11, 2),
                        (100, 0), (-1, 0), (0, 7), (1 << 62, 0), (0, 1)]:
        assert outcome(lambda: f.seek(off, whence)) == outcome(lambda: os.lseek(fd, off, whence))
    assert outcome(lambda: pread(f, 4, -1)) == outcome(lambda: os.pread(fd, 4, -1))
    # Reading past EOF after seeking there returns nothing; writing there makes a hole.
    f.seek(20, 0)
    os.lseek(fd, 20, 0)
    assert f.write([memoryview(b"x")]) == os.write(fd, b"x")
    assert pread(f, 100, 0) == os.pread(fd, 100, 0)


@needs_shm
def test_o_append_applies_to_pwrite_like_linux(vfs):
    v, ctx = vfs
    fd = os.open(SHM, os.O_TMPFILE | os.O_RDWR | os.O_APPEND, 0o600)
    try:
        f = v.openat(ctx, None, b"/a", os.O_CREAT | os.O_RDWR | os.O_APPEND, 0o644)
        for data, off in ((b"abc", None), (b"XY", 0), (b"q", 1)):
            mine = f.write([memoryview(data)], off)
            theirs = os.write(fd, data) if off is None else os.pwrite(fd, data, off)
            assert mine == theirs
        assert pread(f, 100, 0) == os.pread(fd, 100, 0) == b"abcXYq"
        assert f.seek(0, 1) == os.lseek(fd, 0, 1)
    finally:
        os.close(fd)


@needs_shm
@pytest.mark.parametrize("flags", [
    os.O_RDONLY, os.O_WRONLY | os.O_CREAT, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC,
    os.O_RDWR | os.O_NONBLOCK | os.O_TRUNC | os.O_EXCL | os.O_CREAT, os.O_PATH,
    os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_NOCTTY | os.O_SYNC,
])
def test_f_getfl_matches_host(vfs, flags):
    v, ctx = vfs
    d = tempfile.mkdtemp(dir=SHM)
    try:
        target = "sub" if flags & os.O_DIRECTORY else "file"
        os.mkdir(os.path.join(d, "sub"))
        v.mkdir(ctx, None, b"/sub", 0o755)
        if not flags & os.O_CREAT:
            open(os.path.join(d, "file"), "w").close()
            v.openat(ctx, None, b"/file", os.O_CREAT | os.O_WRONLY, 0o644).decref()
        fd = os.open(os.path.join(d, target), flags, 0o644)
        try:
            host_flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        finally:
            os.close(fd)
        desc = v.openat(ctx, None, b"/" + target.encode(), flags, 0o644)
        assert desc.flags == host_flags
    finally:
        shutil.rmtree(d)


def test_getdents_positions_survive_changes(vfs):
    v, ctx = vfs
    v.mkdir(ctx, None, b"/d", 0o755)
    names = [b"f%03d" % i for i in range(120)]
    for n in names:
        v.openat(ctx, None, b"/d/" + n, os.O_CREAT | os.O_WRONLY, 0o644).decref()
    d = v.openat(ctx, None, b"/d", os.O_RDONLY | os.O_DIRECTORY)
    seen, removed = [], set()
    saved = None
    while True:
        batch = d.getdents(5 * reclen64(b"f000"))
        if not batch:
            break
        seen += [e.name for e in batch]
        if len(seen) > 40 and saved is None:
            saved = (d.pos, len(seen))
        # Remove entries both ahead of and behind the cursor between calls.
        for victim in (names[len(seen) % 120], names[(len(seen) * 7) % 120]):
            if victim not in removed:
                v.unlink(ctx, None, b"/d/" + victim)
                removed.add(victim)
    assert seen[:2] == [b".", b".."]
    assert len(seen) == len(set(seen))                 # nothing twice
    assert set(names) - removed <= set(seen)           # every survivor once
    # seekdir to a saved telldir position resumes right after what was seen then.
    d.seek(saved[0], 0)
    rest = []
    while batch := d.getdents(4096):
        rest += [e.name for e in batch]
    assert set(rest) == {n for n in seen[saved[1]:] if n not in removed}


def test_getdents_small_buffer_and_record_packing(vfs):
    v, ctx = vfs
    v.mkdir(ctx, None, b"/d", 0o755)
    v.openat(ctx, None, b"/d/" + b"x" * 200, os.O_CREAT | os.O_WRONLY, 0o644).decref()
    d = v.openat(ctx, None, b"/d", os.O_RDONLY | os.O_DIRECTORY)
    assert [e.name for e in d.getdents(48)] == [b".", b".."]
    with pytest.raises(SysError) as e:
        d.getdents(100)
    assert e.value.errno == errno.EINVAL
    [ent] = d.getdents(4096)
    rec = pack_dirent64(ent)
    assert len(rec) == reclen64(ent.name) == 224 and len(rec) % 8 == 0
    assert rec[19:19 + 200] == b"x" * 200 and rec[219] == 0
    assert d.getdents(4096) == []
    with pytest.raises(SysError) as e:
        d.read([memoryview(bytearray(4))])
    assert e.value.errno == errno.EISDIR


def test_directory_nlink_and_size_track_entries(vfs):
    v, ctx = vfs
    v.mkdir(ctx, None, b"/d", 0o755)
    v.mkdir(ctx, None, b"/d/a", 0o755)
    v.mkdir(ctx, None, b"/d/b", 0o755)
    v.openat(ctx, None, b"/d/f", os.O_CREAT | os.O_WRONLY, 0o644).decref()
    s = v.stat(ctx, None, b"/d")
    assert (s.nlink, s.size) == (4, 40 + 3 * 20)
    v.rename(ctx, None, b"/d/a", None, b"/a")
    s = v.stat(ctx, None, b"/d")
    assert (s.nlink, s.size) == (3, 40 + 2 * 20)
    assert v.stat(ctx, None, b"/").nlink == 4


def test_times_follow_operations(vfs):
    v, ctx = vfs
    f = v.openat(ctx, None, b"/f", os.O_CREAT | os.O_RDWR, 0o644)
    old = (1, 0)
    v.utimens(ctx, None, b"/f", old, old)
    s = v.stat(ctx, None, b"/f")
    assert s.atime == s.mtime == 10**9
    f.write([memoryview(b"x")])
    s = v.stat(ctx, None, b"/f")
    assert s.mtime != 10**9 and s.atime == 10**9
    v.utimens(ctx, None, b"/f", old, old)
    v.chmod(ctx, None, b"/f", 0o600)
    s = v.stat(ctx, None, b"/f")
    assert s.mtime == 10**9 and s.ctime > 10**9
    v.utimens(ctx, None, b"/", old, old)
    v.mkdir(ctx, None, b"/sub", 0o755)
    assert v.stat(ctx, None, b"/").mtime != 10**9
    v.utimens(ctx, None, b"/f", (5, 0), (1 << 30) - 2)    # UTIME_OMIT leaves mtime alone
    s = v.stat(ctx, None, b"/f")
    assert s.atime == 5 * 10**9 and s.mtime != 5 * 10**9


def test_xattrs(vfs):
    v, ctx = vfs
    v.openat(ctx, None, b"/f", os.O_CREAT | os.O_WRONLY, 0o644).decref()
    v.setxattr(ctx, None, b"/f", b"user.a", b"1")
    v.setxattr(ctx, None, b"/f", b"trusted.t", b"2")
    assert v.getxattr(ctx, None, b"/f", b"user.a") == b"1"
    assert sorted(v.listxattr(ctx, None, b"/f")) == [b"trusted.t", b"user.a"]
    for call, err in [
        (lambda: v.setxattr(ctx, None, b"/f", b"user.a", b"x", 1), errno.EEXIST),
        (lambda: v.setxattr(ctx, None, b"/f", b"user.b", b"x", 2), errno.ENODATA),
        (lambda: v.getxattr(ctx, None, b"/f", b"user.none"), errno.ENODATA),
        (lambda: v.getxattr(ctx, None, b"/f", b"bogus.a"), errno.EOPNOTSUPP),
        (lambda: v.setxattr(ctx, None, b"/f", b"user.big", bytes(65537)), errno.E2BIG),
        (lambda: v.removexattr(ctx, None, b"/f", b"user.none"), errno.ENODATA),
    ]:
        with pytest.raises(SysError) as e:
            call()
        assert e.value.errno == err
    user = v.root_context(Creds(1000, 1000, 1000, 1000, 1000, 1000))
    assert v.listxattr(user, None, b"/f") == [b"user.a"]
    with pytest.raises(SysError) as e:
        v.setxattr(user, None, b"/f", b"user.a", b"x")
    assert e.value.errno == errno.EACCES
    with pytest.raises(SysError) as e:
        v.getxattr(user, None, b"/f", b"trusted.t")
    assert e.value.errno == errno.ENODATA
    v.removexattr(ctx, None, b"/f", b"user.a")
    assert v.listxattr(ctx, None, b"/f") == [b"trusted.t"]


def test_size_limit_gives_enospc():
    v = VirtualFS(TmpFS(size_limit=3 * 4096))
    ctx = v.root_context()
    f = v.openat(ctx, None, b"/f", os.O_CREAT | os.O_RDWR, 0o644)
    assert f.write([memoryview(bytes(2 * 4096))]) == 2 * 4096
    assert f.write([memoryview(bytes(2 * 4096))]) == 4096       # short write at the limit
    with pytest.raises(SysError) as e:
        f.write([memoryview(b"x")])
    assert e.value.errno == errno.ENOSPC
    f.truncate(0)
    assert f.write([memoryview(b"x")]) == 1                      # space came back
    assert v.statfs(ctx, None, b"/").bfree == 2


def test_o_tmpfile(vfs):
    v, ctx = vfs
    f = v.openat(ctx, None, b"/", os.O_TMPFILE | os.O_RDWR, 0o600)
    f.write([memoryview(b"anon")])
    s = f.stat()
    assert stat.S_ISREG(s.mode) and s.nlink == 0 and s.size == 4
    assert f.readlink_name().endswith(b"(deleted)")
    assert [e.name for e in v.openat(ctx, None, b"/", os.O_RDONLY).getdents(4096)] == [b".", b".."]
    with pytest.raises(SysError) as e:
        v.openat(ctx, None, b"/", os.O_TMPFILE | os.O_RDONLY, 0o600)
    assert e.value.errno == errno.EINVAL


def test_unlinked_open_file_keeps_data(vfs):
    v, ctx = vfs
    f = v.openat(ctx, None, b"/f", os.O_CREAT | os.O_RDWR, 0o644)
    f.write([memoryview(b"still here")])
    v.unlink(ctx, None, b"/f")
    assert pread(f, 100, 0) == b"still here"
    assert f.stat().nlink == 0
    assert f.readlink_name() == b"/f (deleted)"
    with pytest.raises(SysError):
        v.stat(ctx, None, b"/f")


def test_ftruncate_needs_write_mode(vfs):
    v, ctx = vfs
    v.openat(ctx, None, b"/f", os.O_CREAT | os.O_WRONLY, 0o644).decref()
    f = v.openat(ctx, None, b"/f", os.O_RDONLY)
    with pytest.raises(SysError) as e:
        f.truncate(3)
    assert e.value.errno == errno.EINVAL
    p = v.openat(ctx, None, b"/f", os.O_PATH)
    for call in (lambda: p.truncate(0), lambda: p.read([memoryview(bytearray(1))]),
                 lambda: p.chmod(ctx.creds, 0o600), lambda: p.getdents(100)):
        with pytest.raises(SysError) as e:
            call()
        assert e.value.errno == errno.EBADF
    assert stat.S_ISREG(p.stat().mode)
