"""overlay properties that the host-overlayfs comparison in test_vfs_oracle.py cannot see:
inode numbers, the lower layer staying untouched, hidden private xattrs, copy-up of
data with holes, getdents positions over a merged directory."""
import errno
import os
import stat

import pytest

from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.overlay import OverlayFS
from pysentry.sentry.vfs.stat import OVERLAYFS_SUPER_MAGIC
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS


class ReadOnlyTmpFS(TmpFS):
    """A lower layer that refuses every change, to prove the overlay never writes it."""
    readonly = True


def _write(v, ctx, path, data, flags=0):
    f = v.openat(ctx, None, path, os.O_CREAT | os.O_WRONLY | flags, 0o644)
    f.write([memoryview(data)])
    f.decref()


def _read(v, ctx, path):
    f = v.openat(ctx, None, path, os.O_RDONLY)
    buf = bytearray(1 << 20)
    n = f.read([memoryview(buf)])
    f.decref()
    return bytes(buf[:n])


def _names(v, ctx, path, chunk=1 << 16):
    d = v.openat(ctx, None, path, os.O_RDONLY | os.O_DIRECTORY)
    out = []
    while batch := d.getdents(chunk):
        out += batch
    return [e for e in out if e.name not in (b".", b"..")]


@pytest.fixture
def layers():
    lower = TmpFS()
    lv = VirtualFS(lower)
    lctx = lv.root_context()
    lv.mkdir(lctx, None, b"/d", 0o755)
    for i in range(30):
        _write(lv, lctx, b"/d/f%02d" % i, b"lower %d" % i)
    _write(lv, lctx, b"/file", b"L" * 100)
    sparse = lv.openat(lctx, None, b"/sparse", os.O_CREAT | os.O_RDWR, 0o644)
    sparse.write([memoryview(b"head")], 0)
    sparse.write([memoryview(b"tail")], 1 << 20)
    sparse.decref()
    lv.setxattr(lctx, None, b"/file", b"user.color", b"blue")
    lower.readonly = True          # from here on the lower layer refuses any change
    ov = OverlayFS(lower)
    v = VirtualFS(ov)
    return lower, lv, lctx, v, v.root_context(Creds())


def test_inode_numbers_are_stable_across_copy_up_and_rename(layers):
    lower, lv, lctx, v, ctx = layers
    lower_ino = lv.stat(lctx, None, b"/file").ino
    assert v.stat(ctx, None, b"/file").ino == lower_ino
    _write(v, ctx, b"/file", b"changed")                       # copy-up
    assert v.stat(ctx, None, b"/file").ino == lower_ino
    v.rename(ctx, None, b"/file", None, b"/d/moved")
    assert v.stat(ctx, None, b"/d/moved").ino == lower_ino
    by_name = {e.name: e.ino for e in _names(v, ctx, b"/d")}
    assert by_name[b"moved"] == lower_ino
    for name in (b"f00", b"f29"):
        assert by_name[name] == v.stat(ctx, None, b"/d/" + name).ino
    _write(v, ctx, b"/d/new", b"n")
    new_ino = v.stat(ctx, None, b"/d/new").ino
    assert {e.name: e.ino for e in _names(v, ctx, b"/d")}[b"new"] == new_ino
    all_inos = [e.ino for e in _names(v, ctx, b"/d")]
    assert len(all_inos) == len(set(all_inos))
    assert v.stat(ctx, None, b"/d").dev == v.stat(ctx, None, b"/d/new").dev != \
        lv.stat(lctx, None, b"/d").dev


def test_lower_is_never_written(layers):
    lower, lv, lctx, v, ctx = layers
    _write(v, ctx, b"/file", b"x", os.O_TRUNC)
    v.chmod(ctx, None, b"/d/f01", 0o600)
    v.unlink(ctx, None, b"/d/f02")
    v.rename(ctx, None, b"/d/f03", None, b"/f03")
    v.mkdir(ctx, None, b"/d/sub", 0o755)
    v.truncate(ctx, None, b"/sparse", 3)
    v.setxattr(ctx, None, b"/d/f04", b"user.k", b"v")
    assert _read(lv, lctx, b"/file") == b"L" * 100
    assert stat.S_IMODE(lv.stat(lctx, None, b"/d/f01").mode) == 0o644
    assert len(_names(lv, lctx, b"/d")) == 30
    assert lv.stat(lctx, None, b"/sparse").size == (1 << 20) + 4
    assert lv.listxattr(lctx, None, b"/d/f04") == []


def test_copy_up_keeps_holes_metadata_and_xattrs(layers):
    lower, lv, lctx, v, ctx = layers
    f = v.openat(ctx, None, b"/sparse", os.O_RDWR)
    f.write([memoryview(b"HEAD")], 0)
    st = f.stat()
    assert st.size == (1 << 20) + 4
    assert st.blocks == 2 * 8          # two data pages, the hole stays a hole
    buf = bytearray(4)
    f.read([memoryview(buf)], 1 << 20)
    assert bytes(buf) == b"tail"
    assert f.seek(4096, 3) == 1 << 20  # SEEK_DATA skips the hole
    v.chmod(ctx, None, b"/file", 0o640)
    assert v.getxattr(ctx, None, b"/file", b"user.color") == b"blue"
    assert _read(v, ctx, b"/file") == b"L" * 100


def test_private_xattrs_are_hidden(layers):
    lower, lv, lctx, v, ctx = layers
    _write(v, ctx, b"/file", b"up")                            # now has an origin xattr
    v.mkdir(ctx, None, b"/opaque", 0o755)
    assert v.listxattr(ctx, None, b"/file") == [b"user.color"]
    for call, err in [
        (lambda: v.getxattr(ctx, None, b"/file", b"trusted.overlay.origin"), errno.ENODATA),
        (lambda: v.setxattr(ctx, None, b"/file", b"trusted.overlay.opaque", b"y"), errno.EPERM),
        (lambda: v.removexattr(ctx, None, b"/", b"trusted.overlay.origin"), errno.ENODATA),
    ]:
        with pytest.raises(SysError) as e:
            call()
        assert e.value.errno == err


def test_readonly_fd_opened_before_copy_up_sees_the_copy(layers):
    lower, lv, lctx, v, ctx = layers
    ro = v.openat(ctx, None, b"/file", os.O_RDONLY)
    _write(v, ctx, b"/file", b"NEW", 0)
    buf = bytearray(3)
    ro.read([memoryview(buf)])
    assert bytes(buf) == b"NEW"


def test_merged_getdents_in_small_chunks_with_changes(layers):
    lower, lv, lctx, v, ctx = layers
    for i in range(0, 30, 3):
        v.unlink(ctx, None, b"/d/f%02d" % i)
    for i in range(10):
        _write(v, ctx, b"/d/u%02d" % i, b"u")
    _write(v, ctx, b"/d/f01", b"copied up")
    expect = {b"f%02d" % i for i in range(30) if i % 3} | {b"u%02d" % i for i in range(10)}
    got = [e.name for e in _names(v, ctx, b"/d", chunk=64)]
    assert sorted(got) == sorted(expect)
    assert len(got) == len(set(got))
    # Resuming from a position saved mid-way gives exactly the remainder.
    d = v.openat(ctx, None, b"/d", os.O_RDONLY | os.O_DIRECTORY)
    first = d.getdents(200)
    mark = d.pos
    rest = []
    while batch := d.getdents(200):
        rest += batch
    d.seek(mark, 0)
    again = []
    while batch := d.getdents(200):
        again += batch
    assert [e.name for e in again] == [e.name for e in rest]
    assert len(first) + len(rest) == len(expect) + 2


def test_opaque_directory_hides_lower_contents(layers):
    lower, lv, lctx, v, ctx = layers
    for e in _names(v, ctx, b"/d"):
        v.unlink(ctx, None, b"/d/" + e.name)
    v.rmdir(ctx, None, b"/d")
    v.mkdir(ctx, None, b"/d", 0o700)
    assert _names(v, ctx, b"/d") == []
    with pytest.raises(SysError) as e:
        v.stat(ctx, None, b"/d/f05")
    assert e.value.errno == errno.ENOENT
    _write(v, ctx, b"/d/f05", b"fresh")
    assert _read(v, ctx, b"/d/f05") == b"fresh"
    assert v.stat(ctx, None, b"/d").nlink == 2       # upper only, not merged


def test_rename_merged_directory_is_exdev_but_new_directories_move(layers):
    lower, lv, lctx, v, ctx = layers
    with pytest.raises(SysError) as e:
        v.rename(ctx, None, b"/d", None, b"/e")
    assert e.value.errno == errno.EXDEV
    v.mkdir(ctx, None, b"/n", 0o755)
    _write(v, ctx, b"/n/inside", b"i")
    v.rename(ctx, None, b"/n", None, b"/d/n")
    assert _read(v, ctx, b"/d/n/inside") == b"i"


def test_hard_link_of_lower_file(layers):
    lower, lv, lctx, v, ctx = layers
    v.link(ctx, None, b"/d/f07", None, b"/hl")
    assert v.stat(ctx, None, b"/hl").nlink == 2
    _write(v, ctx, b"/hl", b"via link", os.O_TRUNC)
    assert _read(v, ctx, b"/d/f07") == b"via link"


def test_statfs_and_mount_listing(layers):
    lower, lv, lctx, v, ctx = layers
    sf = v.statfs(ctx, None, b"/d")
    assert sf.fstype_magic == OVERLAYFS_SUPER_MAGIC
    assert v.mounts()[0][2] == "overlay"


def test_lower_can_be_a_subdirectory_inode():
    base = TmpFS()
    bv = VirtualFS(base)
    bctx = bv.root_context()
    bv.mkdir(bctx, None, b"/rootfs", 0o751)
    _write(bv, bctx, b"/rootfs/etc", b"config")
    ov = OverlayFS(bv.resolve(bctx, None, b"/rootfs").dentry.inode)
    v = VirtualFS(ov)
    ctx = v.root_context()
    assert stat.S_IMODE(v.stat(ctx, None, b"/").mode) == 0o751
    assert _read(v, ctx, b"/etc") == b"config"
