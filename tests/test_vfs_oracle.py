"""Differential tests: the same sequence of path operations runs against the host kernel
and against pysentry's VFS, and every result (value or errno) must agree.

Host side: a forked child chroots into a fresh directory on the host's tmpfs (/dev/shm,
so link counts and directory sizes follow tmpfs rules, as ours do), optionally drops to
an unprivileged uid, and runs the operations with plain os.* calls (ctypes for the few
Python lacks). VFS side: a VirtualFS rooted at a TmpFS, with a PathContext that tracks
the same cwd, root and credentials. Comparing errnos op by op pins down the order of
Linux's checks, not just the happy paths.
"""
import ctypes
import errno
import os
import pickle
import shutil
import stat as st
import tempfile
import traceback

import pytest

from pysentry.sentry.kernel.caps import CAP_SYS_CHROOT
from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.overlay import OverlayFS
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
HOST_BASE = "/dev/shm" if os.path.isdir("/dev/shm") else None
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
CLONE_NEWNS = 0x20000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the host oracle chroots: needs root")


def _b(p):
    return p if isinstance(p, bytes) else p.encode()


def _describe(s):
    """What we compare of a stat result (times and inode numbers differ by nature)."""
    fmt = st.S_IFMT(s.st_mode)
    size = s.st_size if fmt in (st.S_IFREG, st.S_IFLNK, st.S_IFDIR) else 0
    return (oct(fmt), oct(st.S_IMODE(s.st_mode)), s.st_nlink, size, s.st_uid, s.st_gid,
            s.st_rdev)


def _check(ret):
    """A libc call's result as os.* would give it: None, or OSError with errno."""
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return None


# == host side ===================================================================
def host_op(op):
    name, *a = op
    if name == "mkdir":
        return os.mkdir(a[0], a[1])
    if name == "mknod":
        return os.mknod(a[0], a[1], a[2] if len(a) > 2 else 0)
    if name == "symlink":
        return os.symlink(a[0], a[1])
    if name == "link":
        # os.link() ignores follow_symlinks without dir fds (bpo-41355): call linkat.
        flags = 0x400 if len(a) > 2 and a[2] else 0
        return _check(libc.linkat(AT_FDCWD, _b(a[0]), AT_FDCWD, _b(a[1]), flags))
    if name == "unlink":
        return os.unlink(a[0])
    if name == "rmdir":
        return os.rmdir(a[0])
    if name == "rename":
        flags = a[2] if len(a) > 2 else 0
        return _check(libc.renameat2(AT_FDCWD, _b(a[0]), AT_FDCWD, _b(a[1]), flags))
    if name == "open":
        fd = os.open(a[0], a[1], a[2] if len(a) > 2 else 0o666)
        try:
            return _describe(os.fstat(fd))
        finally:
            os.close(fd)
    if name == "stat":
        return _describe(os.stat(a[0]))
    if name == "lstat":
        return _describe(os.lstat(a[0]))
    if name == "readlink":
        return os.readlink(a[0])
    if name == "chmod":
        return os.chmod(a[0], a[1])
    if name == "chown":
        return os.chown(a[0], a[1], a[2], follow_symlinks=a[3] if len(a) > 3 else True)
    if name == "truncate":
        return os.truncate(a[0], a[1])
    if name == "access":
        flags = a[2] if len(a) > 2 else 0
        return _check(libc.faccessat(AT_FDCWD, _b(a[0]), a[1], flags))
    if name == "write":
        fd = os.open(a[0], os.O_WRONLY | (a[2] if len(a) > 2 else 0))
        try:
            return os.write(fd, a[1])
        finally:
            os.close(fd)
    if name == "read":
        fd = os.open(a[0], os.O_RDONLY | (a[1] if len(a) > 1 else 0))
        try:
            return os.read(fd, 1 << 20)
        finally:
            os.close(fd)
    if name == "listdir":
        return sorted(os.listdir(a[0]))
    if name == "chdir":
        return os.chdir(a[0])
    if name == "getcwd":
        return os.getcwd()
    if name == "chroot":
        return os.chroot(a[0])
    if name == "utime":
        return os.utime(a[0], ns=a[1]) if a[1] is not None else os.utime(a[0])
    if name == "umask":
        return os.umask(a[0])
    if name == "setuid":
        uid, gid, groups = a
        os.setgroups(list(groups))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        return None
    if name == "setfsuid":   # effective ids only: access() must use the real ones
        uid, gid = a
        os.setresgid(0, gid, 0)
        os.setresuid(0, uid, 0)
        return None
    if name == "mount_tmpfs":
        return _check(libc.mount(b"none", _b(a[0]), b"tmpfs", 0, b"mode=755"))
    if name == "mount_overlay":
        lower, target = a
        os.mkdir("/.upper")
        os.mkdir("/.work")
        opts = (f"lowerdir=/{lower},upperdir=/.upper,workdir=/.work,index=off,"
                "redirect_dir=off,metacopy=off,xino=off").encode()
        return _check(libc.mount(b"overlay", _b(target), b"overlay", 0, opts))
    raise AssertionError(f"unknown op {name}")


def _outcome(fn, op):
    try:
        return ("ok", fn(op))
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


def run_host(ops, need_mounts=False):
    base = tempfile.mkdtemp(dir=HOST_BASE, prefix="vfsoracle")
    os.chmod(base, 0o755)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            if need_mounts:
                _check(libc.unshare(CLONE_NEWNS))
                _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None))
            os.chroot(base)
            os.chdir("/")
            os.umask(0o022)
            data = pickle.dumps(("done", [_outcome(host_op, op) for op in ops]))
        except BaseException:
            data = pickle.dumps(("crash", traceback.format_exc()))
        with os.fdopen(wfd, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    shutil.rmtree(base, ignore_errors=True)
    kind, payload = pickle.loads(data)
    if kind == "crash":
        if need_mounts and "unshare" in payload:
            pytest.skip("cannot create a mount namespace here for the mount oracle")
        raise AssertionError("host oracle crashed:\n" + payload)
    return payload


# == VFS side ====================================================================
class VfsRunner:
    def __init__(self):
        self.vfs = VirtualFS(TmpFS(mode=0o755))
        self.ctx = self.vfs.root_context(Creds())

    def _open(self, path, flags, mode=0o666):
        return self.vfs.openat(self.ctx, None, _b(path), flags, mode)

    def op(self, op):
        v, c = self.vfs, self.ctx
        name, *a = op
        if name == "mkdir":
            return v.mkdir(c, None, _b(a[0]), a[1])
        if name == "mknod":
            return v.mknod(c, None, _b(a[0]), a[1], a[2] if len(a) > 2 else 0)
        if name == "symlink":
            return v.symlink(c, _b(a[0]), None, _b(a[1]))
        if name == "link":
            return v.link(c, None, _b(a[0]), None, _b(a[1]), a[2] if len(a) > 2 else False)
        if name == "unlink":
            return v.unlink(c, None, _b(a[0]))
        if name == "rmdir":
            return v.rmdir(c, None, _b(a[0]))
        if name == "rename":
            return v.rename(c, None, _b(a[0]), None, _b(a[1]), a[2] if len(a) > 2 else 0)
        if name == "open":
            f = self._open(a[0], a[1], a[2] if len(a) > 2 else 0o666)
            try:
                return _describe(_as_os_stat(f.stat()))
            finally:
                f.decref()
        if name in ("stat", "lstat"):
            return _describe(_as_os_stat(v.stat(c, None, _b(a[0]), follow=name == "stat")))
        if name == "readlink":
            return v.readlink(c, None, _b(a[0])).decode()
        if name == "chmod":
            return v.chmod(c, None, _b(a[0]), a[1])
        if name == "chown":
            return v.chown(c, None, _b(a[0]), a[1], a[2], a[3] if len(a) > 3 else True)
        if name == "truncate":
            return v.truncate(c, None, _b(a[0]), a[1])
        if name == "access":
            return v.access(c, None, _b(a[0]), a[1], a[2] if len(a) > 2 else 0)
        if name == "write":
            f = self._open(a[0], os.O_WRONLY | (a[2] if len(a) > 2 else 0))
            try:
                return f.write([memoryview(a[1])])
            finally:
                f.decref()
        if name == "read":
            f = self._open(a[0], os.O_RDONLY | (a[1] if len(a) > 1 else 0))
            try:
                buf = bytearray(1 << 20)
                return bytes(buf[:f.read([memoryview(buf)])])
            finally:
                f.decref()
        if name == "listdir":
            f = self._open(a[0], os.O_RDONLY | os.O_DIRECTORY)
            try:
                names = [d.name.decode() for d in f.getdents(1 << 20)]
                return sorted(n for n in names if n not in (".", ".."))
            finally:
                f.decref()
        if name == "chdir":
            c.cwd = v.resolve_dir(c, None, _b(a[0]))
            return None
        if name == "getcwd":
            path = v.getcwd(c)
            if path.startswith(b"(unreachable)"):
                raise SysError(errno.ENOENT)     # glibc's getcwd turns this into ENOENT
            return path.decode()
        if name == "chroot":
            if not c.creds.has_cap(CAP_SYS_CHROOT):
                raise SysError(errno.EPERM)
            c.root = v.resolve_dir(c, None, _b(a[0]))
            return None
        if name == "utime":
            if a[1] is None:
                return v.utimens(c, None, _b(a[0]), None, None)
            at, mt = a[1]
            return v.utimens(c, None, _b(a[0]), divmod(at, 10**9), divmod(mt, 10**9))
        if name == "umask":
            old, c.umask = c.umask, a[0]
            return old
        if name == "setuid":
            uid, gid, groups = a
            c.creds = Creds(uid, gid, uid, gid, uid, gid, tuple(groups))
            return None
        if name == "setfsuid":
            uid, gid = a
            c.creds = Creds(0, 0, uid, gid, uid, gid, ())
            return None
        if name == "mount_tmpfs":
            loc = v.resolve(c, None, _b(a[0]))
            v.mount(TmpFS(mode=0o755), loc.path_from(v.root))
            return None
        if name == "mount_overlay":
            lower, target = a
            v.mkdir(c, None, b"/.upper", 0o755)      # the host's layer dirs, for parity
            v.mkdir(c, None, b"/.work", 0o755)
            lower_inode = v.resolve(c, None, _b(lower)).dentry.inode
            v.mount(OverlayFS(lower_inode), v.resolve(c, None, _b(target)).path_from(v.root))
            return None
        raise AssertionError(f"unknown op {name}")

    def outcome(self, op):
        try:
            return ("ok", self.op(op))
        except SysError as e:
            return ("err", errno.errorcode.get(e.errno, e.errno))


class _StatView:
    def __init__(self, s):
        self.st_mode, self.st_nlink, self.st_size = s.mode, s.nlink, s.size
        self.st_uid, self.st_gid, self.st_rdev = s.uid, s.gid, s.rdev


def _as_os_stat(s):
    return _StatView(s)


def run_vfs(ops):
    r = VfsRunner()
    return [r.outcome(op) for op in ops]


def compare(ops, need_mounts=False):
    host = run_host(ops, need_mounts)
    mine = run_vfs(ops)
    diffs = [f"#{i} {op!r}: host={h!r} vfs={m!r}"
             for i, (op, h, m) in enumerate(zip(ops, host, mine)) if h != m]
    assert not diffs, "VFS differs from Linux:\n" + "\n".join(diffs)


# == scenarios ===================================================================
O = os
RW_CREAT = O.O_RDWR | O.O_CREAT

BASIC = [
    ("mkdir", "a", 0o755), ("mkdir", "a", 0o755), ("mkdir", "a/b/c", 0o755),
    ("open", "a/f", O.O_CREAT | O.O_WRONLY, 0o666), ("stat", "a/f"), ("stat", "a"),
    ("open", "a/f/", O.O_CREAT | O.O_WRONLY), ("open", "a/f/", O.O_RDONLY),
    ("open", "a/f/x", O.O_RDONLY), ("mkdir", "a/f/x", 0o755), ("open", "a", O.O_WRONLY),
    ("open", "a", O.O_RDONLY | O.O_CREAT), ("open", "a/f", O.O_DIRECTORY),
    ("open", "a/g/", O.O_CREAT | O.O_WRONLY), ("open", "", O.O_RDONLY),
    ("mkdir", ".", 0o755), ("mkdir", "..", 0o755), ("mkdir", "/", 0o755),
    ("mkdir", "a/", 0o755), ("mkdir", "d2/", 0o700), ("mkdir", "d3//", 0o700),
    ("stat", "d2"), ("stat", "a/."), ("stat", "a/f/."), ("stat", "a/f/.."),
    ("stat", "a//f"), ("stat", "/a/../a/f"), ("stat", "/../../a"),
    ("rmdir", "a/."), ("rmdir", "a/.."), ("rmdir", "/"), ("rmdir", "."),
    ("unlink", "a"), ("unlink", "a/f/"), ("rmdir", "a/f"), ("unlink", "."),
    ("unlink", ".."), ("unlink", "/"), ("unlink", "nonexist/"), ("unlink", "nonexist"),
    ("rmdir", "nonexist"), ("rmdir", "a"), ("rmdir", "a/"), ("unlink", "a/f"), ("rmdir", "a/"),
    ("stat", "a"), ("listdir", "."), ("mknod", "fifo", st.S_IFIFO | 0o644),
    ("mknod", "sock", st.S_IFSOCK | 0o644), ("mknod", "reg", 0o644),
    ("mknod", "dirnode", st.S_IFDIR | 0o755), ("mknod", "bad", 0o170000 | 0o644),
    ("mknod", "fifo/", st.S_IFIFO | 0o644), ("mknod", "newfifo/", st.S_IFIFO | 0o644),
    ("mknod", "null", st.S_IFCHR | 0o666, os.makedev(1, 3)), ("stat", "null"),
    ("stat", "fifo"), ("stat", "sock"), ("stat", "reg"),
    ("open", "sock", O.O_RDONLY), ("open", "fifo", O.O_RDONLY | O.O_NONBLOCK),
    ("open", "fifo", O.O_WRONLY | O.O_NONBLOCK), ("open", "fifo", O.O_RDWR),
    ("open", "null", O.O_RDWR), ("write", "null", b"abc"), ("read", "null"),
    ("umask", 0o077), ("mkdir", "private", 0o777), ("stat", "private"),
    ("open", "privfile", O.O_CREAT | O.O_WRONLY, 0o777), ("stat", "privfile"), ("umask", 0o022),
    ("open", "excl", O.O_CREAT | O.O_EXCL | O.O_WRONLY), ("open", "excl", O.O_CREAT | O.O_EXCL),
    ("listdir", "."), ("listdir", "private"), ("listdir", "reg"),
]

SYMLINKS = [
    ("mkdir", "d", 0o755), ("open", "d/f", RW_CREAT), ("write", "d/f", b"data"),
    ("symlink", "target", "dangling"), ("stat", "dangling"), ("lstat", "dangling"),
    ("readlink", "dangling"), ("readlink", "d/f"), ("readlink", "d"),
    ("open", "dangling", O.O_CREAT | O.O_WRONLY), ("stat", "target"), ("lstat", "dangling"),
    ("open", "dangling", O.O_CREAT | O.O_EXCL | O.O_WRONLY), ("open", "dangling", O.O_RDONLY | O.O_NOFOLLOW),
    ("open", "dangling", O.O_RDONLY | O.O_NOFOLLOW | O.O_CREAT),
    ("open", "dangling", O.O_PATH | O.O_NOFOLLOW),
    ("symlink", "d", "dl"), ("stat", "dl"), ("lstat", "dl"), ("lstat", "dl/"), ("stat", "dl/f"),
    ("open", "dl", O.O_RDONLY | O.O_NOFOLLOW | O.O_DIRECTORY),
    ("open", "dl/", O.O_RDONLY | O.O_NOFOLLOW), ("listdir", "dl"),
    ("unlink", "dl/"), ("rmdir", "dl/"), ("rmdir", "dl"), ("mkdir", "dl", 0o755),
    ("mkdir", "dl/", 0o755), ("symlink", "x", "dl/"), ("symlink", "x", "new/"),
    ("symlink", "", "empty"), ("symlink", "d/f", "d/f"),
    ("symlink", "loop2", "loop1"), ("symlink", "loop1", "loop2"), ("stat", "loop1"),
    ("lstat", "loop1"), ("open", "loop1", O.O_CREAT | O.O_WRONLY), ("stat", "loop1/x"),
    ("symlink", "self", "self"), ("stat", "self"), ("symlink", "selfdir/x", "selfdir"),
    ("stat", "selfdir"),
    ("symlink", "/d/f", "abs"), ("read", "abs"), ("symlink", "../../../d/f", "d/up"),
    ("read", "d/up"), ("symlink", "dl/f", "via"), ("read", "via"),
    ("symlink", "dangling", "chain"), ("read", "chain"),
    ("unlink", "dl"), ("stat", "via"), ("unlink", "dangling"), ("lstat", "dangling"),
    ("stat", "target"),
    ("symlink", "d/", "slashlink"), ("stat", "slashlink"), ("symlink", "d/f/", "fslash"),
    ("stat", "fslash"), ("lstat", "fslash"),
] + [("symlink", f"l{i + 1}", f"l{i}") for i in range(45)] + [
    ("open", "l45", O.O_CREAT | O.O_WRONLY), ("stat", "l5"), ("stat", "l6"), ("stat", "l4"),
    ("stat", "l0"), ("lstat", "l0"), ("open", "l0", O.O_RDONLY),
    ("symlink", "d", "n0"),
] + [("symlink", f"n{i - 1}/.", f"n{i}") for i in range(1, 43)] + [
    ("stat", "n38"), ("stat", "n39"), ("stat", "n40"), ("stat", "n41/f"), ("lstat", "n41"),
    ("open", "n39/f", O.O_RDONLY), ("open", "n40/new", O.O_CREAT | O.O_WRONLY),
]

RENAMES = [
    ("mkdir", "d", 0o755), ("mkdir", "e", 0o755), ("mkdir", "full", 0o755),
    ("open", "full/x", RW_CREAT), ("open", "f", RW_CREAT), ("open", "g", RW_CREAT),
    ("mkdir", "d/sub", 0o755),
    ("rename", "f", "g"), ("stat", "f"), ("stat", "g"), ("rename", "g", "d"),
    ("rename", "d", "g"), ("rename", "d", "full"), ("rename", "e", "d"), ("stat", "e"),
    ("mkdir", "e", 0o755), ("rename", "d", "d/sub/deeper"), ("rename", "d/sub", "d"),
    ("rename", "d", "d"), ("rename", "g", "g"), ("link", "g", "g2"), ("rename", "g", "g2"),
    ("stat", "g"), ("stat", "g2"), ("rename", ".", "x"), ("rename", "g", "."),
    ("rename", "g", ".."), ("rename", "g", "/"), ("rename", "nonexist", "x"),
    ("rename", "g", "g2", RENAME_NOREPLACE), ("rename", "g", "fresh", RENAME_NOREPLACE),
    ("rename", "fresh", "d", RENAME_EXCHANGE), ("stat", "fresh"), ("stat", "d"),
    ("rename", "fresh", "missing", RENAME_EXCHANGE),
    ("rename", "fresh", "d", RENAME_EXCHANGE | RENAME_NOREPLACE), ("rename", "d", "x", 8 << 4),
    ("rename", "g2/", "h"), ("rename", "g2", "h/"), ("rename", "fresh/", "e/"), ("stat", "e"),
    ("rename", "e", "newdir/"), ("stat", "newdir"), ("rename", "newdir", "full/x"),
    ("rename", "full/x", "newdir"), ("rename", "newdir/", "nd2"),
    ("rename", "full", "full/x/y"), ("rename", "nd2/sub", "nd2"),
    ("listdir", "."), ("listdir", "nd2"),
]

LINKS_AND_DATA = [
    ("open", "f", RW_CREAT), ("write", "f", b"hello world"), ("link", "f", "h"), ("stat", "f"),
    ("link", "f", "h"), ("link", "nonexist", "x"), ("mkdir", "d", 0o755), ("link", "d", "dd"),
    ("link", "f", "new/"), ("link", "f", "d/"), ("link", "f/", "z"), ("symlink", "f", "s"),
    ("link", "s", "hs"), ("lstat", "hs"), ("link", "s", "hf", True), ("stat", "hf"),
    ("stat", "f"), ("unlink", "f"), ("stat", "h"), ("read", "h"),
    ("open", "h", O.O_RDONLY | O.O_TRUNC), ("read", "h"), ("write", "h", b"abc"),
    ("write", "h", b"de", O.O_APPEND), ("read", "h"), ("truncate", "h", 10), ("read", "h"),
    ("stat", "h"), ("truncate", "h", 2), ("read", "h"), ("truncate", "h", -1),
    ("truncate", "d", 0), ("truncate", "s", 1), ("read", "h"), ("truncate", "nonexist", 0),
    ("open", "d", O.O_RDONLY | O.O_TRUNC), ("mknod", "p", st.S_IFIFO | 0o666),
    ("truncate", "p", 0), ("truncate", "h/", 0),
    ("chmod", "h", 0o4755), ("stat", "h"), ("chown", "h", 5, 6), ("stat", "h"),
    ("chmod", "h", 0o2755), ("chown", "h", -1, -1), ("stat", "h"), ("chmod", "h", 0o2745),
    ("chown", "h", 7, -1), ("stat", "h"), ("chmod", "d", 0o3755), ("chown", "d", 1, 1),
    ("stat", "d"), ("chown", "s", 9, 9, False), ("lstat", "s"), ("stat", "s"),
    ("mkdir", "d/sub", 0o755), ("stat", "d/sub"), ("open", "d/file", RW_CREAT, 0o2775),
    ("stat", "d/file"), ("utime", "h", (5 * 10**9 + 7, 9 * 10**9)),
    ("access", "h", 0), ("access", "h", 7), ("access", "h", 8), ("access", "nonexist", 0),
]

PERMISSIONS = [
    ("mkdir", "pub", 0o777), ("chmod", "pub", 0o777), ("mkdir", "priv", 0o700),
    ("open", "priv/x", RW_CREAT), ("mkdir", "noexec", 0o755), ("open", "noexec/y", RW_CREAT),
    ("chmod", "noexec", 0o666), ("mkdir", "ro", 0o555), ("mkdir", "tmp", 0o755),
    ("chmod", "tmp", 0o1777), ("open", "tmp/rootfile", RW_CREAT, 0o666),
    ("chmod", "tmp/rootfile", 0o666), ("open", "secret", RW_CREAT, 0o600),
    ("open", "grp", RW_CREAT, 0o640), ("chown", "grp", 0, 1000),
    ("open", "otherw", RW_CREAT, 0o602), ("chmod", "otherw", 0o602),
    ("open", "mine", RW_CREAT, 0o644), ("chown", "mine", 1000, 1000),
    ("open", "denied", RW_CREAT), ("chown", "denied", 1000, 1000), ("chmod", "denied", 0o077),
    ("open", "script", RW_CREAT), ("chmod", "script", 0o755), ("open", "zero", RW_CREAT),
    ("chmod", "zero", 0o000), ("mkdir", "mydir", 0o755), ("chown", "mydir", 1000, 1000),
    ("open", "mydir/f", RW_CREAT, 0o644), ("mkdir", "sgid", 0o755), ("chown", "sgid", 0, 1000),
    ("chmod", "sgid", 0o2777),
    # root's overrides
    ("open", "zero", O.O_RDWR), ("access", "zero", 4), ("access", "zero", 1),
    ("access", "script", 1), ("access", "priv", 1), ("open", "priv/x", O.O_RDONLY),
    ("setuid", 1000, 1000, [1000]),
    ("open", "secret", O.O_RDONLY), ("open", "grp", O.O_RDONLY), ("open", "grp", O.O_WRONLY),
    ("stat", "priv/x"), ("stat", "priv"), ("listdir", "priv"), ("mkdir", "priv/n", 0o755),
    ("stat", "noexec/y"), ("listdir", "noexec"), ("open", "ro/new", RW_CREAT),
    ("unlink", "tmp/rootfile"), ("rename", "tmp/rootfile", "tmp/r2"),
    ("open", "tmp/minefile", RW_CREAT), ("unlink", "tmp/minefile"),
    ("chmod", "secret", 0o644), ("chmod", "mine", 0o640), ("stat", "mine"),
    ("chown", "mine", -1, 1000), ("chown", "mine", -1, 0), ("chown", "mine", 0, -1),
    ("chown", "mine", 1000, -1), ("chmod", "mine", 0o2755), ("stat", "mine"),
    ("utime", "secret", None), ("utime", "secret", (1, 2)), ("utime", "otherw", None),
    ("utime", "otherw", (10**9, 2 * 10**9)), ("utime", "mine", (10**9, 2 * 10**9)),
    ("truncate", "secret", 0), ("truncate", "otherw", 0), ("access", "secret", 4),
    ("access", "otherw", 2), ("access", "otherw", 4), ("access", "pub", 1),
    ("access", "script", 1), ("access", "zero", 1), ("open", "denied", O.O_RDONLY),
    ("open", "zero", O.O_RDONLY), ("link", "secret", "pub/stolen"), ("link", "mine", "pub/ok"),
    ("link", "otherw", "pub/ow"), ("mknod", "pub/chr", st.S_IFCHR | 0o666, os.makedev(1, 3)),
    ("mknod", "pub/fifo", st.S_IFIFO | 0o666), ("stat", "pub/fifo"), ("rmdir", "priv"),
    ("unlink", "secret"), ("mkdir", "new", 0o755), ("rename", "mydir/f", "pub/f"),
    ("rename", "mydir", "pub/mydir"), ("rename", "pub", "pub2"),
    ("open", "sgid/f", RW_CREAT, 0o2775), ("stat", "sgid/f"), ("mkdir", "sgid/d", 0o755),
    ("stat", "sgid/d"), ("chroot", "pub"), ("mknod", "pub/x", 0o644),
]

STICKY_AND_MOVES = [
    ("mkdir", "tmp", 0o777), ("chmod", "tmp", 0o1777), ("mkdir", "tmp/rootdir", 0o777),
    ("chmod", "tmp/rootdir", 0o777), ("mkdir", "tmp/userdir", 0o755),
    ("chown", "tmp/userdir", 1000, 1000), ("mkdir", "tmp/userdir/locked", 0o555),
    ("chown", "tmp/userdir/locked", 1000, 1000), ("mkdir", "open", 0o777),
    ("chmod", "open", 0o777), ("open", "tmp/rootfile", RW_CREAT, 0o666),
    ("chmod", "tmp/rootfile", 0o666), ("open", "open/suid", RW_CREAT, 0o666),
    ("chmod", "open/suid", 0o6777), ("chown", "open/suid", 1000, 0),
    ("open", "open/theirs", RW_CREAT, 0o644), ("mkdir", "rootdir755", 0o755),
    ("open", "rootdir755/existing", RW_CREAT, 0o666), ("chmod", "rootdir755/existing", 0o666),
    ("setuid", 1000, 1000, [1000]),
    ("rename", "tmp/rootfile", "tmp/userdir/x"), ("unlink", "tmp/rootfile"),
    ("rmdir", "tmp/rootdir"), ("rename", "tmp/rootdir", "tmp/rd2"),
    ("open", "tmp/rootdir/mine", RW_CREAT), ("rename", "tmp/rootdir/mine", "tmp/mine"),
    ("rename", "tmp/userdir/locked", "open/locked"), ("rename", "tmp/userdir/locked", "tmp/userdir/l2"),
    ("rename", "tmp/userdir", "open/ud"), ("stat", "open/ud/l2"),
    ("open", "rootdir755/existing", RW_CREAT), ("open", "rootdir755/new", RW_CREAT),
    ("open", "rootdir755/existing", O.O_RDONLY | 0o1000000), ("open", "open/theirs", O.O_RDONLY | 0o1000000),
    ("open", "open/suid", O.O_WRONLY | O.O_TRUNC), ("stat", "open/suid"),
    ("chmod", "open/suid", 0o2755), ("stat", "open/suid"), ("mkdir", "open/dm", 0o7777),
    ("stat", "open/dm"), ("umask", 0), ("mkdir", "open/dm2", 0o7777), ("stat", "open/dm2"),
    ("open", "open/fm", RW_CREAT, 0o7777), ("stat", "open/fm"),
    ("symlink", "theirs", "open/sl"), ("access", "open/sl", 2, 0x100), ("access", "open/sl", 2),
    ("chown", "open/sl", 1000, 1000, False), ("chown", "open/fm", -1, 0),
]

ACCESS_REAL_IDS = [
    ("open", "secret", RW_CREAT, 0o600), ("chown", "secret", 1000, 1000),
    ("open", "rootonly", RW_CREAT, 0o600),
    ("setfsuid", 1000, 1000),
    ("access", "secret", 4), ("access", "rootonly", 4), ("access", "secret", 4, 0x200),
    ("access", "rootonly", 4, 0x200), ("open", "rootonly", O.O_RDONLY),
    ("open", "secret", O.O_RDONLY),
]

CHROOT = [
    ("mkdir", "jail", 0o755), ("mkdir", "jail/sub", 0o755), ("open", "jail/f", RW_CREAT),
    ("write", "jail/f", b"inside"), ("open", "f", RW_CREAT), ("write", "f", b"outside"),
    ("symlink", "/f", "jail/abs"), ("symlink", "../../../../f", "jail/sub/rel"),
    ("chroot", "jail"), ("read", "/f"), ("read", "/../../f"), ("read", "f"),
    ("read", "jail/abs"), ("getcwd",), ("chdir", "/sub"), ("getcwd",), ("read", "rel"),
    ("read", "../../../f"), ("listdir", "../.."), ("chdir", "/"), ("getcwd",),
    ("chdir", ".."), ("getcwd",), ("listdir", "."),
]

DEAD_CWD = [
    ("mkdir", "d", 0o755), ("chdir", "d"), ("rmdir", "../d"), ("getcwd",),
    ("open", "x", RW_CREAT), ("mkdir", "y", 0o755), ("stat", "."), ("listdir", "."),
    ("stat", ".."), ("chdir", ".."), ("getcwd",), ("listdir", "."),
]

NAMES = [
    ("mkdir", "n" * 255, 0o755), ("mkdir", "n" * 256, 0o755), ("stat", "n" * 256),
    ("open", "m" * 256, RW_CREAT), ("open", ("./" * 2047) + "n" * 1, RW_CREAT),
    ("stat", ("./" * 2047) + "n"), ("stat", ("./" * 2047) + "nn"),
    ("symlink", "t" * 4095, "longlink"), ("symlink", "t" * 4096, "longlink2"),
    ("lstat", "longlink"), ("stat", "longlink"), ("symlink", "x/" * 2050, "deep"),
    ("stat", "deep"), ("unlink", "n" * 256), ("rmdir", "n" * 255), ("rename", "n" * 256, "x"),
    ("mkdir", "n" * 255, 0o755), ("rename", "n" * 255, "m" * 256),
]

MOUNTS = [
    ("mkdir", "mnt", 0o755), ("mkdir", "mnt/hidden", 0o755), ("open", "outer", RW_CREAT),
    ("mount_tmpfs", "mnt"), ("stat", "mnt/hidden"), ("stat", "mnt"), ("open", "mnt/in", RW_CREAT),
    ("stat", "mnt/.."), ("read", "mnt/../outer"), ("chdir", "mnt"), ("read", "../outer"),
    ("chdir", "/"), ("rename", "outer", "mnt/moved"), ("link", "outer", "mnt/hl"),
    ("rename", "mnt/in", "in2"), ("rmdir", "mnt"), ("unlink", "mnt"), ("rename", "mnt", "m2"),
    ("rename", "outer", "mnt"), ("rename", "mnt/in", "mnt/in2"), ("listdir", "mnt"),
    ("symlink", "/outer", "mnt/l"), ("read", "mnt/l"), ("mkdir", "mnt/m", 0o755),
    ("mount_tmpfs", "mnt/m"), ("rmdir", "mnt/m"), ("stat", "mnt/m/.."), ("listdir", "mnt/m/../.."),
]


@pytest.mark.parametrize("name,ops", [
    ("basic", BASIC), ("symlinks", SYMLINKS), ("renames", RENAMES),
    ("links_and_data", LINKS_AND_DATA), ("permissions", PERMISSIONS),
    ("access_real_ids", ACCESS_REAL_IDS), ("sticky_and_moves", STICKY_AND_MOVES), ("chroot", CHROOT), ("dead_cwd", DEAD_CWD),
    ("names", NAMES),
])
def test_same_as_linux(name, ops):
    compare(ops)


def test_mounts_same_as_linux():
    compare(MOUNTS, need_mounts=True)


OVERLAY_SETUP = [
    ("mkdir", "lower", 0o755), ("mkdir", "lower/d", 0o755), ("mkdir", "lower/d/sub", 0o755),
    ("open", "lower/f", RW_CREAT, 0o644), ("write", "lower/f", b"lower data"),
    ("open", "lower/d/g", RW_CREAT, 0o600), ("open", "lower/d/sub/h", RW_CREAT),
    ("symlink", "f", "lower/l"), ("mkdir", "lower/empty", 0o755), ("mkdir", "lower/d2", 0o755),
    ("open", "lower/d2/x", RW_CREAT), ("write", "lower/d2/x", b"xx"),
    ("open", "lower/d2/y", RW_CREAT), ("write", "lower/d2/y", b"yyyy"),
    ("mknod", "lower/fifo", st.S_IFIFO | 0o644), ("chown", "lower/d2/y", 7, 8),
    ("mkdir", "ovl", 0o755), ("mount_overlay", "lower", "ovl"),
]

OVERLAY = OVERLAY_SETUP + [
    ("listdir", "ovl"), ("stat", "ovl"), ("stat", "ovl/d"), ("stat", "ovl/f"),
    ("read", "ovl/f"), ("read", "ovl/l"), ("readlink", "ovl/l"), ("stat", "ovl/fifo"),
    ("write", "ovl/f", b"+upper", O.O_APPEND), ("read", "ovl/f"), ("read", "lower/f"),
    ("stat", "ovl/f"), ("unlink", "ovl/d/g"), ("listdir", "ovl/d"), ("listdir", "lower/d"),
    ("open", "ovl/d/g", O.O_CREAT | O.O_EXCL | O.O_RDWR, 0o644), ("write", "ovl/d/g", b"new"),
    ("read", "ovl/d/g"), ("stat", "ovl/d/g"), ("rmdir", "ovl/d/sub"), ("unlink", "ovl/d/sub/h"),
    ("rmdir", "ovl/d/sub"), ("listdir", "ovl/d"), ("stat", "ovl/d"),
    ("mkdir", "ovl/d/sub", 0o700), ("listdir", "ovl/d/sub"), ("stat", "ovl/d/sub"),
    ("rename", "ovl/d", "ovl/dd"), ("rename", "ovl/d2/x", "ovl/x"), ("listdir", "ovl/d2"),
    ("read", "ovl/x"), ("listdir", "ovl"), ("mkdir", "ovl/newdir", 0o755),
    ("open", "ovl/newdir/n", RW_CREAT), ("rename", "ovl/newdir", "ovl/nd"),
    ("listdir", "ovl/nd"), ("rename", "ovl/nd", "ovl/empty"), ("listdir", "ovl/empty"),
    ("link", "ovl/d2/y", "ovl/ylink"), ("stat", "ovl/ylink"), ("read", "ovl/ylink"),
    ("chmod", "ovl/d2", 0o700), ("stat", "ovl/d2"), ("truncate", "ovl/d2/y", 1),
    ("read", "ovl/d2/y"), ("read", "lower/d2/y"), ("stat", "lower/d2/y"),
    ("rename", "ovl/x", "ovl/f"), ("read", "ovl/f"), ("listdir", "ovl"),
    ("rename", "ovl/f", "ovl/d2", RENAME_EXCHANGE), ("stat", "ovl/f"), ("read", "ovl/d2"),
    ("rename", "ovl/d2", "ovl/l", RENAME_EXCHANGE), ("readlink", "ovl/d2"), ("read", "ovl/l"),
    ("unlink", "ovl/fifo"), ("mknod", "ovl/fifo", 0o640), ("stat", "ovl/fifo"),
    ("rmdir", "ovl/d"), ("unlink", "ovl/d/g"), ("rmdir", "ovl/d/sub"), ("rmdir", "ovl/d"),
    ("stat", "ovl/d"), ("mkdir", "ovl/d", 0o755), ("listdir", "ovl/d"), ("listdir", "ovl"),
    ("listdir", "lower"), ("listdir", "lower/d"), ("chown", "ovl/d2", 3, 4), ("stat", "ovl/d2"),
    ("setuid", 1000, 1000, [1000]), ("open", "ovl/d2", O.O_RDONLY), ("write", "ovl/f", b"z"),
    ("unlink", "ovl/l"), ("mkdir", "ovl/nope", 0o755),
]

# st_nlink of directories: 1 when both layers hold the directory, else the layer's own.
OVERLAY_NLINK = OVERLAY_SETUP + [
    ("stat", "ovl"), ("stat", "ovl/d"), ("stat", "ovl/d2"), ("stat", "ovl/empty"),
    ("open", "ovl/d2/new", RW_CREAT), ("stat", "ovl/d2"), ("mkdir", "ovl/d2/s1", 0o755),
    ("stat", "ovl/d2"), ("rmdir", "ovl/d2/s1"), ("stat", "ovl/d2"), ("unlink", "ovl/d/g"),
    ("stat", "ovl/d"), ("unlink", "ovl/d/sub/h"), ("rmdir", "ovl/d/sub"), ("stat", "ovl/d"),
    ("mkdir", "ovl/d/sub", 0o755), ("stat", "ovl/d/sub"), ("mkdir", "ovl/nd", 0o755),
    ("mkdir", "ovl/nd/a", 0o755), ("stat", "ovl/nd"), ("rmdir", "ovl/empty"),
    ("mkdir", "ovl/empty", 0o755), ("stat", "ovl/empty"),
]


@pytest.mark.parametrize("name,ops", [("overlay", OVERLAY), ("overlay_nlink", OVERLAY_NLINK)])
def test_overlay_same_as_linux_overlayfs(name, ops):
    compare(ops, need_mounts=True)
