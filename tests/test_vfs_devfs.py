"""/dev and the character-device registry."""
import errno
import os
import stat

import pytest

from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.devfs import DevFS
from pysentry.sentry.vfs.file import FileDescription
from pysentry.sentry.vfs.mount import MS_NODEV
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS


@pytest.fixture
def dev():
    v = VirtualFS(TmpFS(mode=0o755))
    ctx = v.root_context(Creds())
    v.mkdir(ctx, None, b"/dev", 0o755)
    v.mount(DevFS(), b"/dev")
    return v, ctx


def rd(f, n):
    buf = bytearray(n)
    return bytes(buf[:f.read([memoryview(buf)])])


@pytest.mark.parametrize("name", ["null", "zero", "full", "random", "urandom"])
def test_nodes_look_like_the_hosts(dev, name):
    v, ctx = dev
    mine = v.stat(ctx, None, b"/dev/" + name.encode())
    host = os.stat("/dev/" + name)
    assert (mine.mode, mine.rdev) == (host.st_mode, host.st_rdev)


def test_dev_layout(dev):
    v, ctx = dev
    assert v.readlink(ctx, None, b"/dev/fd") == b"/proc/self/fd"
    assert v.readlink(ctx, None, b"/dev/stderr") == b"/proc/self/fd/2"
    assert stat.S_IMODE(v.stat(ctx, None, b"/dev/shm").mode) == 0o1777
    assert stat.S_ISDIR(v.stat(ctx, None, b"/dev/pts").mode)
    assert ("devtmpfs", b"/dev", "devtmpfs") == v.mounts()[1][:3]


def test_memory_devices(dev):
    v, ctx = dev
    null = v.openat(ctx, None, b"/dev/null", os.O_RDWR)
    assert rd(null, 10) == b"" and null.write([memoryview(b"abc")]) == 3
    assert null.seek(100, 0) == 0
    zero = v.openat(ctx, None, b"/dev/zero", os.O_RDWR)
    assert rd(zero, 5) == bytes(5) and zero.write([memoryview(b"abc")]) == 3
    full = v.openat(ctx, None, b"/dev/full", os.O_RDWR)
    assert rd(full, 3) == bytes(3)
    with pytest.raises(SysError) as e:
        full.write([memoryview(b"x")])
    assert e.value.errno == errno.ENOSPC
    ur = v.openat(ctx, None, b"/dev/urandom", os.O_RDONLY)
    a, b = rd(ur, 32), rd(ur, 32)
    assert len(a) == 32 and a != b
    buf = bytearray(b"\xff" * 8)
    assert zero.pread_for_mmap(0, memoryview(buf)) == 8 and buf == bytes(8)


def test_mknod_in_tmpfs_opens_the_same_device(dev):
    v, ctx = dev
    v.mknod(ctx, None, b"/myzero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    f = v.openat(ctx, None, b"/myzero", os.O_RDONLY)
    assert type(f) is type(v.openat(ctx, None, b"/dev/zero", os.O_RDONLY))
    assert rd(f, 4) == bytes(4)
    assert f.readlink_name() == b"/myzero"
    v.mknod(ctx, None, b"/nodev", stat.S_IFCHR | 0o666, os.makedev(250, 1))
    with pytest.raises(SysError) as e:
        v.openat(ctx, None, b"/nodev", os.O_RDONLY)
    assert e.value.errno == errno.ENXIO
    v.mknod(ctx, None, b"/blk", stat.S_IFBLK | 0o666, os.makedev(8, 0))
    with pytest.raises(SysError) as e:
        v.openat(ctx, None, b"/blk", os.O_RDONLY)
    assert e.value.errno == errno.ENXIO


def test_registered_device_is_found_everywhere(dev):
    v, ctx = dev
    opened = []

    class Tty(FileDescription):
        pass

    def factory(location, flags):
        opened.append(location)
        return Tty(location, flags)

    v.chardevs.register(5, 0, factory)
    v.resolve(ctx, None, b"/dev").mount.fs.add_tty_nodes()
    f = v.openat(ctx, None, b"/dev/tty", os.O_RDWR)
    assert isinstance(f, Tty) and f.readlink_name() == b"/dev/tty"
    v.mknod(ctx, None, b"/tty2", stat.S_IFCHR | 0o620, os.makedev(5, 0))
    assert isinstance(v.openat(ctx, None, b"/tty2", os.O_RDWR), Tty)
    assert len(opened) == 2


def test_nodev_mount_refuses_devices():
    v = VirtualFS(TmpFS())
    ctx = v.root_context()
    v.mkdir(ctx, None, b"/m", 0o755)
    v.mount(TmpFS(), b"/m", MS_NODEV)
    v.mknod(ctx, None, b"/m/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with pytest.raises(SysError) as e:
        v.openat(ctx, None, b"/m/null", os.O_RDONLY)
    assert e.value.errno == errno.EACCES


def test_unprivileged_mknod_of_device_is_eperm(dev):
    v, ctx = dev
    user = v.root_context(Creds(1000, 1000, 1000, 1000, 1000, 1000))
    with pytest.raises(SysError) as e:
        v.mknod(user, None, b"/dev/shm/x", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert e.value.errno == errno.EPERM
