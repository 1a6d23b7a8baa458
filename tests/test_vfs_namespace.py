"""The name space: mounts (listing, bind, umount, read-only, noexec), chroot and getcwd,
paths of open files, exec permission, and AF_UNIX socket names."""
import errno
import os
import stat

import pytest

from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs.context import Creds, PathContext
from pysentry.sentry.vfs.mount import MS_NOEXEC, MS_NOSUID, MS_RDONLY
from pysentry.sentry.vfs.stat import ST_NOEXEC, ST_RDONLY, TMPFS_MAGIC
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

USER = Creds(1000, 1000, 1000, 1000, 1000, 1000)


def err(call):
    with pytest.raises(SysError) as e:
        call()
    return e.value.errno


@pytest.fixture
def ns():
    v = VirtualFS(TmpFS(mode=0o755), source="rootfs")
    ctx = v.root_context(Creds())
    for d in (b"/tmp", b"/ro", b"/noexec", b"/a", b"/a/b"):
        v.mkdir(ctx, None, d, 0o755)
    v.mount(TmpFS(), b"/tmp", source="tmpfs")
    v.mount(TmpFS(), b"/ro", MS_RDONLY | MS_NOSUID)
    v.mount(TmpFS(), b"/noexec", MS_NOEXEC)
    return v, ctx


def test_mount_listing(ns):
    v, ctx = ns
    listing = v.mounts()
    assert [(src, path, t) for src, path, t, _ in listing] == [
        ("rootfs", b"/", "tmpfs"), ("tmpfs", b"/tmp", "tmpfs"), ("tmpfs", b"/ro", "tmpfs"),
        ("tmpfs", b"/noexec", "tmpfs")]
    assert listing[2][3].startswith("ro,nosuid")
    assert listing[3][3].startswith("rw,noexec")
    # Seen from a chroot into /a, only mounts below it show, with paths relative to it.
    v.mkdir(ctx, None, b"/a/b/m", 0o755)
    v.mount(TmpFS(), b"/a/b/m")
    jail = v.resolve(ctx, None, b"/a")
    assert [p for _, p, _, _ in v.mounts(jail)] == [b"/b/m"]


def test_statfs_reports_mount_flags(ns):
    v, ctx = ns
    sf = v.statfs(ctx, None, b"/ro")
    assert sf.fstype_magic == TMPFS_MAGIC and sf.flags & ST_RDONLY
    assert v.statfs(ctx, None, b"/noexec").flags & ST_NOEXEC
    assert not v.statfs(ctx, None, b"/tmp").flags & ST_RDONLY
    assert v.statfs(ctx, None, b"/tmp").fsid != v.statfs(ctx, None, b"/").fsid


def test_readonly_mount(ns):
    v, ctx = ns
    ro_fs = v.resolve(ctx, None, b"/ro").mount.fs
    ro_fs.root().create(b"f", 0o100644, 0, 0)      # populated behind the mount's back
    ro_fs.root().mknod(b"null", stat.S_IFCHR | 0o666, os.makedev(1, 3), 0, 0)
    for call in (lambda: v.mkdir(ctx, None, b"/ro/d", 0o755),
                 lambda: v.openat(ctx, None, b"/ro/new", os.O_CREAT | os.O_WRONLY, 0o644),
                 lambda: v.openat(ctx, None, b"/ro/f", os.O_WRONLY),
                 lambda: v.unlink(ctx, None, b"/ro/f"),
                 lambda: v.chmod(ctx, None, b"/ro/f", 0o600),
                 lambda: v.truncate(ctx, None, b"/ro/f", 0),
                 lambda: v.access(ctx, None, b"/ro/f", os.W_OK),
                 lambda: v.rename(ctx, None, b"/ro/f", None, b"/ro/g"),
                 lambda: v.utimens(ctx, None, b"/ro/f", None, None)):
        assert err(call) == errno.EROFS
    assert err(lambda: v.mkdir(ctx, None, b"/ro/f", 0o755)) == errno.EEXIST
    v.openat(ctx, None, b"/ro/f", os.O_RDONLY)
    null = v.openat(ctx, None, b"/ro/null", os.O_WRONLY)     # devices stay writable
    assert null.write([memoryview(b"x")]) == 1


def test_cross_mount_rename_and_link_are_exdev(ns):
    v, ctx = ns
    v.openat(ctx, None, b"/tmp/f", os.O_CREAT | os.O_WRONLY, 0o644)
    assert err(lambda: v.rename(ctx, None, b"/tmp/f", None, b"/f")) == errno.EXDEV
    assert err(lambda: v.link(ctx, None, b"/tmp/f", None, b"/f")) == errno.EXDEV
    assert err(lambda: v.rmdir(ctx, None, b"/tmp")) == errno.EBUSY


def test_bind_mount_and_umount(ns):
    v, ctx = ns
    v.openat(ctx, None, b"/a/b/file", os.O_CREAT | os.O_WRONLY, 0o644).decref()
    v.mkdir(ctx, None, b"/tmp/view", 0o755)
    v.bind_mount(v.resolve(ctx, None, b"/a"), b"/tmp/view", MS_RDONLY)
    assert v.stat(ctx, None, b"/tmp/view/b/file").ino == v.stat(ctx, None, b"/a/b/file").ino
    assert err(lambda: v.unlink(ctx, None, b"/tmp/view/b/file")) == errno.EROFS
    v.unlink(ctx, None, b"/a/b/file")
    assert err(lambda: v.stat(ctx, None, b"/tmp/view/b/file")) == errno.ENOENT
    # ".." from the bind's root leaves through its mountpoint.
    assert v.stat(ctx, None, b"/tmp/view/..").ino == v.stat(ctx, None, b"/tmp").ino
    assert err(lambda: v.umount(b"/tmp")) == errno.EBUSY
    assert err(lambda: v.umount(b"/tmp/view/b")) == errno.EINVAL
    v.umount(b"/tmp/view")
    assert err(lambda: v.stat(ctx, None, b"/tmp/view/b")) == errno.ENOENT
    assert len(v.mounts()) == 4


def test_stacked_mounts_show_the_top(ns):
    v, ctx = ns
    v.openat(ctx, None, b"/tmp/under", os.O_CREAT | os.O_WRONLY, 0o644).decref()
    v.mount(TmpFS(), b"/tmp")
    assert err(lambda: v.stat(ctx, None, b"/tmp/under")) == errno.ENOENT
    v.umount(b"/tmp")
    v.stat(ctx, None, b"/tmp/under")


def test_getcwd_and_paths_around_chroot(ns):
    v, ctx = ns
    v.mkdir(ctx, None, b"/tmp/x", 0o755)
    f = v.openat(ctx, None, b"/tmp/x", os.O_RDONLY)
    jail_ctx = PathContext(root=v.resolve(ctx, None, b"/tmp"),
                           cwd=v.resolve(ctx, None, b"/tmp/x"), creds=ctx.creds)
    assert v.getcwd(jail_ctx) == b"/x"
    assert v.resolve(jail_ctx, None, b"../../..") == jail_ctx.root
    assert v.resolve(jail_ctx, None, b"/..") == jail_ctx.root
    assert f.readlink_name() == b"/tmp/x"
    assert f.path_from(jail_ctx.root) == b"/x"
    outside = PathContext(root=jail_ctx.root, cwd=v.resolve(ctx, None, b"/a/b"), creds=ctx.creds)
    assert v.getcwd(outside) == b"(unreachable)/a/b"
    v.rmdir(ctx, None, b"/tmp/x")
    assert err(lambda: v.getcwd(jail_ctx)) == errno.ENOENT
    assert f.readlink_name() == b"/tmp/x (deleted)"


def test_exec_permission(ns):
    v, ctx = ns
    for path, mode in ((b"/prog", 0o755), (b"/noexec/prog", 0o755), (b"/data", 0o644),
                       (b"/xonly", 0o711)):
        v.openat(ctx, None, path, os.O_CREAT | os.O_WRONLY, mode).decref()
        v.chmod(ctx, None, path, mode)
    assert v.open_for_exec(ctx, None, b"/prog").readable
    assert err(lambda: v.open_for_exec(ctx, None, b"/noexec/prog")) == errno.EACCES
    assert err(lambda: v.open_for_exec(ctx, None, b"/data")) == errno.EACCES   # even root
    assert err(lambda: v.open_for_exec(ctx, None, b"/a")) == errno.EACCES
    assert err(lambda: v.access(ctx, None, b"/noexec/prog", os.X_OK)) == errno.EACCES
    user = v.root_context(USER)
    f = v.open_for_exec(user, None, b"/xonly")          # exec without read permission
    assert f.readable
    assert err(lambda: v.openat(user, None, b"/xonly", os.O_RDONLY)) == errno.EACCES


def test_unix_socket_names(ns):
    v, ctx = ns
    endpoint = object()
    loc = v.bind_socket(ctx, None, b"/tmp/sock", 0o777, endpoint)
    assert stat.S_ISSOCK(loc.dentry.inode.mode)
    assert stat.S_IMODE(loc.dentry.inode.mode) == 0o755          # umask applies
    assert v.connect_socket(ctx, None, b"/tmp/sock") is endpoint
    assert err(lambda: v.bind_socket(ctx, None, b"/tmp/sock", 0o777, object())) == errno.EADDRINUSE
    assert err(lambda: v.connect_socket(ctx, None, b"/tmp")) == errno.ECONNREFUSED
    assert err(lambda: v.openat(ctx, None, b"/tmp/sock", os.O_RDONLY)) == errno.ENXIO
    user = v.root_context(USER)
    assert err(lambda: v.connect_socket(user, None, b"/tmp/sock")) == errno.EACCES
    v.unbind_socket(loc)
    assert err(lambda: v.connect_socket(ctx, None, b"/tmp/sock")) == errno.ECONNREFUSED


def test_symlink_budget_is_shared_across_nested_links(ns):
    # t_i -> "t_{i-1}/.": resolving t_i nests i link bodies; 40 follows in all are allowed.
    v, ctx = ns
    v.mkdir(ctx, None, b"/s", 0o755)
    v.symlink(ctx, b"/a", None, b"/s/t0")
    for i in range(1, 45):
        v.symlink(ctx, b"t%d/." % (i - 1), None, b"/s/t%d" % i)
    assert v.stat(ctx, None, b"/s/t39").ino == v.stat(ctx, None, b"/a").ino
    assert err(lambda: v.stat(ctx, None, b"/s/t40")) == errno.ELOOP
    assert err(lambda: v.stat(ctx, None, b"/s/t40/b")) == errno.ELOOP
