"""overlay: a writable upper filesystem (tmpfs) over a read-only lower one.

The lower layer is any filesystem implementing the Inode interface (the gofer-backed
root in production, a tmpfs in tests); it is never written. The upper layer is a TmpFS
that this module owns and encodes state in, with Linux overlayfs's conventions:

  - whiteout: a character device 0/0 in upper hides the lower entry of that name;
  - opaque directory: xattr trusted.overlay.opaque=y on an upper directory hides the
    lower directory of that name entirely (set when a directory replaces a lower entry);
  - origin: xattr trusted.overlay.origin holds the lower inode number of a copied-up
    file, so its st_ino does not change on copy-up or rename.
These xattrs are hidden from the sandboxed program.

Copy-up: the first change to a lower file (open for writing, truncate, chmod, chown,
utimens, xattr, link, rename) copies it, and every directory above it, into upper: data
(holes stay holes), mode, owner, times, xattrs. Afterwards the file is served by upper
only. A description opened read-only before the copy-up sees the copy-up too, because
data calls are routed to the current layer at each call.

Inode numbers: st_dev is the overlay's own; st_ino is the lower inode number for a file
that has (or came from) a lower file, and the upper inode number with bit 62 set for
files created in the overlay (lower inode numbers are assumed below 2**62).

Directory rename: a directory that merges a lower directory would need Linux's
"redirect_dir" to be renamed; like overlayfs without that feature, rename of such a
directory fails with EXDEV (mv then copies). Directories created in the overlay rename
freely. A directory present in both layers reports st_nlink 1 (as Linux overlayfs does,
so tools do not trust nlink for leaf optimisation); one in a single layer reports that
layer's count.

Hard links between lower files are not preserved by copy-up (overlayfs without
index=on behaves the same).
"""
from __future__ import annotations

import errno
import stat as _st
import weakref

from ..kernel.errors import SysError
from .inode import RENAME_EXCHANGE, RENAME_NOREPLACE, Dirent, Filesystem, Inode
from .stat import OVERLAYFS_SUPER_MAGIC, StatFS
from .tmpfs import TmpFS

OPAQUE_XATTR = b"trusted.overlay.opaque"
ORIGIN_XATTR = b"trusted.overlay.origin"
PRIVATE_PREFIX = b"trusted.overlay."
UPPER_INO_BIT = 1 << 62
LOWER_BASE = 1 << 61        # getdents positions at/after this walk the lower listing
COPY_CHUNK = 1 << 16


def is_whiteout(inode) -> bool:
    return _st.S_ISCHR(inode.mode) and inode.rdev == 0


def _try_lookup(dir_inode, name: bytes):
    try:
        return dir_inode.lookup(name)
    except SysError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _origin(upper) -> int | None:
    try:
        return int(upper.getxattr(ORIGIN_XATTR))
    except (SysError, ValueError):
        return None


def _is_opaque(upper) -> bool:
    try:
        return upper.getxattr(OPAQUE_XATTR) == b"y"
    except SysError:
        return False


class OverlayFS(Filesystem):
    fstype = "overlay"

    def __init__(self, lower, upper: TmpFS | None = None):
        """`lower` is a Filesystem or the Inode of the lower root directory."""
        super().__init__()
        lower_root = lower.root() if isinstance(lower, Filesystem) else lower
        self.upper_fs = upper or TmpFS(mode=lower_root.mode & 0o7777)
        up_root = self.upper_fs.root()
        if not up_root.entries:
            up_root.mode = _st.S_IFDIR | (lower_root.mode & 0o7777)
            up_root.uid, up_root.gid = lower_root.uid, lower_root.gid
            up_root.atime_ns, up_root.mtime_ns = lower_root.atime_ns, lower_root.mtime_ns
            up_root.setxattr(ORIGIN_XATTR, str(lower_root.ino).encode())
        self._root = OverlayInode(self, None, b"/", up_root, lower_root)

    def root(self) -> "OverlayInode":
        return self._root

    def statfs(self) -> StatFS:
        # Linux's overlayfs reports the upper layer's filesystem. Ours is memory with no
        # meaningful size, so report the lower (the host disk): what df users expect.
        lower = self._root.lower
        fs = getattr(lower, "fs", None)
        sf = fs.statfs() if fs is not None and hasattr(fs, "statfs") else self.upper_fs.statfs()
        sf.fstype_magic = OVERLAYFS_SUPER_MAGIC
        sf.dev = self.dev
        return sf

    def options(self) -> str:
        return "lowerdir=gofer,upperdir=tmpfs"


class OverlayInode(Inode):
    """One file of the merged view. `upper`/`lower` are the layer inodes (either may be
    None, not both); `parent`/`name` locate it for copy-up (kept current by rename)."""

    def __init__(self, fs: OverlayFS, parent, name: bytes, upper, lower):
        # Attributes live in the layers; see the properties below.
        self.fs = fs
        self.parent = parent
        self.name = name
        self.upper = upper
        self.lower = lower
        self._children = weakref.WeakValueDictionary()   # identity of looked-up children
        self._lower_list = None                          # cached lower listing (read-only)
        if lower is not None:
            self.ino = lower.ino
        else:
            origin = _origin(upper)
            self.ino = origin if origin is not None else upper.ino | UPPER_INO_BIT

    # -- attributes come from the topmost layer -----------------------------------------
    @property
    def real(self):
        return self.upper if self.upper is not None else self.lower

    mode = property(lambda self: self.real.mode)
    uid = property(lambda self: self.real.uid)
    gid = property(lambda self: self.real.gid)
    rdev = property(lambda self: self.real.rdev)
    size = property(lambda self: self.real.size)
    atime_ns = property(lambda self: self.real.atime_ns)
    mtime_ns = property(lambda self: self.real.mtime_ns)
    ctime_ns = property(lambda self: self.real.ctime_ns)
    btime_ns = property(lambda self: self.real.btime_ns)

    @property
    def nlink(self):
        if self.is_dir() and self.upper is not None and self._merged():
            return 1
        return self.real.nlink

    def blocks(self) -> int:
        return self.real.blocks()

    def stat(self):
        st = self.real.stat()
        st.dev = self.fs.dev
        st.ino = self.ino
        st.nlink = self.nlink
        return st

    def setattr(self, **changes) -> None:
        self.copy_up()
        self.upper.setattr(**changes)

    def touch(self, atime=False, mtime=False, ctime=False) -> None:
        # Access-time updates never trigger a copy-up.
        if self.upper is not None:
            self.upper.touch(atime, mtime, ctime)

    # -- layer helpers ------------------------------------------------------------------
    def _opaque(self) -> bool:
        return self.upper is not None and _is_opaque(self.upper)

    def _merged(self) -> bool:
        """A directory with contents below it in lower."""
        return self.lower is not None and self.lower.is_dir() and not self._opaque()

    def _lower_has(self, name: bytes) -> bool:
        return self._merged() and _try_lookup(self.lower, name) is not None

    def _upper_dir(self):
        self.copy_up()
        return self.upper

    def _clear_whiteout(self, name: bytes) -> bool:
        """Remove a whiteout at `name` in upper; True if one was there."""
        up = self._upper_dir()
        existing = _try_lookup(up, name)
        if existing is None:
            return False
        if not is_whiteout(existing):
            raise SysError(errno.EEXIST)
        up.unlink(name, existing)
        return True

    def _whiteout(self, name: bytes) -> None:
        self._upper_dir().mknod(name, _st.S_IFCHR | 0, 0, 0, 0)

    def _adopt(self, name: bytes, upper) -> "OverlayInode":
        child = OverlayInode(self.fs, self, name, upper, None)
        self._children[name] = child
        return child

    # -- copy-up ------------------------------------------------------------------------
    def copy_up(self) -> None:
        if self.upper is not None:
            return
        if self.parent is None:
            raise SysError(errno.EIO)      # the root always has an upper directory
        self.parent.copy_up()
        lo = self.lower
        dir_up = self.parent.upper
        mode = lo.mode & 0o7777
        fmt = _st.S_IFMT(lo.mode)
        if fmt == _st.S_IFDIR:
            up = dir_up.mkdir(self.name, _st.S_IFDIR | mode, lo.uid, lo.gid)
        elif fmt == _st.S_IFREG:
            up = dir_up.create(self.name, _st.S_IFREG | mode, lo.uid, lo.gid)
            self._copy_data(lo, up)
        elif fmt == _st.S_IFLNK:
            up = dir_up.symlink(self.name, lo.readlink(), lo.uid, lo.gid)
        else:
            up = dir_up.mknod(self.name, fmt | mode, lo.rdev, lo.uid, lo.gid)
        try:
            for xname in lo.listxattr():
                if not xname.startswith(PRIVATE_PREFIX):
                    up.setxattr(xname, lo.getxattr(xname))
        except SysError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENODATA):
                raise
        up.setxattr(ORIGIN_XATTR, str(lo.ino).encode())
        up.atime_ns, up.mtime_ns = lo.atime_ns, lo.mtime_ns
        self.upper = up

    @staticmethod
    def _copy_data(lo, up) -> None:
        size = lo.size
        buf = bytearray(COPY_CHUNK)
        view = memoryview(buf)
        pos = 0
        while pos < size:
            try:
                pos = lo.seek_data(pos)
            except SysError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = min(lo.seek_hole(pos), size)
            while pos < end:
                n = lo.read(pos, [view[:min(COPY_CHUNK, end - pos)]])
                if n <= 0:
                    raise SysError(errno.EIO)
                if any(view[:n]):
                    up.write(pos, [view[:n]])
                pos += n
        up.set_size(size)

    # -- directory operations -----------------------------------------------------------
    def lookup(self, name: bytes) -> "OverlayInode":
        if not self.is_dir():
            raise SysError(errno.ENOTDIR)
        child = self._children.get(name)
        if child is not None:
            return child
        up = _try_lookup(self.upper, name) if self.upper is not None else None
        if up is not None and is_whiteout(up):
            raise SysError(errno.ENOENT)
        lo = None
        if (up is None or (up.is_dir() and not _is_opaque(up))) and self._merged():
            lo = _try_lookup(self.lower, name)
            if lo is not None and up is not None and not lo.is_dir():
                lo = None       # an upper directory hides a lower non-directory
        if up is None and lo is None:
            raise SysError(errno.ENOENT)
        child = OverlayInode(self.fs, self, name, up, lo)
        self._children[name] = child
        return child

    def _make(self, name: bytes, make, is_dir: bool) -> "OverlayInode":
        hid_lower = self._clear_whiteout(name)
        up = make(self._upper_dir())
        if is_dir and hid_lower:
            up.setxattr(OPAQUE_XATTR, b"y")
        return self._adopt(name, up)

    def create(self, name, mode, uid, gid):
        return self._make(name, lambda d: d.create(name, mode, uid, gid), False)

    def mkdir(self, name, mode, uid, gid):
        return self._make(name, lambda d: d.mkdir(name, mode, uid, gid), True)

    def mknod(self, name, mode, rdev, uid, gid):
        if _st.S_ISCHR(mode) and rdev == 0:
            raise SysError(errno.EPERM)     # would read back as a whiteout
        return self._make(name, lambda d: d.mknod(name, mode, rdev, uid, gid), False)

    def symlink(self, name, target, uid, gid):
        return self._make(name, lambda d: d.symlink(name, target, uid, gid), False)

    def new_tmpfile(self, mode, uid, gid):
        up = self._upper_dir().new_tmpfile(mode, uid, gid)
        return OverlayInode(self.fs, self, None, up, None)

    def link(self, name, inode) -> None:
        inode.copy_up()
        self._clear_whiteout(name)
        self._upper_dir().link(name, inode.upper)
        self._children[name] = inode

    def _remove_upper_whiteouts(self) -> None:
        """Before an upper directory is removed or replaced: drop the whiteouts in it
        (the merged view already showed it as empty)."""
        if self.upper is None:
            return
        for d in list(self.upper.iterdir(2)):
            self.upper.unlink(d.name, self.upper.lookup(d.name))

    def _check_empty(self) -> None:
        for _ in self.iterdir(2):
            raise SysError(errno.ENOTEMPTY)

    def unlink(self, name, inode) -> None:
        child = self.lookup(name)
        if child.is_dir():
            raise SysError(errno.EISDIR)
        needs_whiteout = self._lower_has(name)
        if child.upper is not None:
            self.upper.unlink(name, child.upper)
        if needs_whiteout:
            self._whiteout(name)
        self._children.pop(name, None)

    def rmdir(self, name, inode) -> None:
        child = self.lookup(name)
        if not child.is_dir():
            raise SysError(errno.ENOTDIR)
        child._check_empty()
        needs_whiteout = self._lower_has(name)
        if child.upper is not None:
            child._remove_upper_whiteouts()
            self.upper.rmdir(name, child.upper)
        if needs_whiteout:
            self._whiteout(name)
        self._children.pop(name, None)

    def rename(self, oldname, newdir, newname, flags: int = 0) -> None:
        if not isinstance(newdir, OverlayInode) or newdir.fs is not self.fs:
            raise SysError(errno.EXDEV)
        src = self.lookup(oldname)
        dst = newdir._children.get(newname) or _lookup_or_none(newdir, newname)
        if flags & RENAME_NOREPLACE and dst is not None:
            raise SysError(errno.EEXIST)
        movers = [src] + ([dst] if flags & RENAME_EXCHANGE and dst is not None else [])
        for m in movers:
            if m.is_dir() and m._merged():
                raise SysError(errno.EXDEV)
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise SysError(errno.ENOENT)
            src.copy_up()
            dst.copy_up()
            self._upper_dir()
            self.upper.rename(oldname, newdir._upper_dir(), newname, RENAME_EXCHANGE)
            for node, parent, name in ((src, newdir, newname), (dst, self, oldname)):
                if node.is_dir() and parent._lower_has(name):
                    node.upper.setxattr(OPAQUE_XATTR, b"y")
                node.parent, node.name = parent, name
                parent._children[name] = node
            return
        if dst is not None and dst.is_dir():
            dst._check_empty()
        src.copy_up()
        self._upper_dir()
        new_up = newdir._upper_dir()
        old_needs_whiteout = self._lower_has(oldname)
        existing = _try_lookup(new_up, newname)
        if existing is not None and existing.is_dir():
            dst._remove_upper_whiteouts()
        elif existing is not None and is_whiteout(existing) and src.is_dir():
            new_up.unlink(newname, existing)    # tmpfs refuses a dir over a non-dir
        self.upper.rename(oldname, new_up, newname, 0)
        if src.is_dir() and newdir._lower_has(newname):
            src.upper.setxattr(OPAQUE_XATTR, b"y")
        if old_needs_whiteout:
            self._whiteout(oldname)
        self._children.pop(oldname, None)
        src.parent, src.name = newdir, newname
        newdir._children[newname] = src

    def iterdir(self, offset: int):
        if not self.is_dir():
            raise SysError(errno.ENOTDIR)
        if offset < LOWER_BASE and self.upper is not None:
            for d in self.upper.iterdir(offset):
                up = self.upper.lookup(d.name)
                if is_whiteout(up):
                    continue
                origin = _origin(up)
                ino = origin if origin is not None else up.ino | UPPER_INO_BIT
                yield Dirent(ino, d.off, d.dtype, d.name)
            offset = LOWER_BASE
        if not self._merged():
            return
        if self._lower_list is None:
            self._lower_list = list(self.lower.iterdir(2))
        start = max(offset - LOWER_BASE, 0)
        for i in range(start, len(self._lower_list)):
            d = self._lower_list[i]
            if self.upper is not None and _try_lookup(self.upper, d.name) is not None:
                continue    # shown by the upper pass, or whited out
            yield Dirent(d.ino, LOWER_BASE + i + 1, d.dtype, d.name)

    # -- symlinks, data, xattrs ---------------------------------------------------------
    def readlink(self) -> bytes:
        return self.real.readlink()

    def read(self, offset, dst) -> int:
        return self.real.read(offset, dst)

    def write(self, offset, src) -> int:
        self.copy_up()
        return self.upper.write(offset, src)

    def set_size(self, size: int) -> None:
        self.copy_up()
        self.upper.set_size(size)

    def punch_hole(self, lo: int, hi: int) -> None:
        self.copy_up()
        self.upper.punch_hole(lo, hi)

    def zero_range(self, offset: int, length: int, keep_size: bool) -> None:
        self.copy_up()
        self.upper.zero_range(offset, length, keep_size)

    def seek_data(self, offset):
        return self.real.seek_data(offset)

    def seek_hole(self, offset):
        return self.real.seek_hole(offset)

    def fsync(self) -> None:
        if self.upper is not None:
            self.upper.fsync()

    def open(self, location, flags: int):
        if flags & 3 in (1, 2) or flags & 0o1000:      # O_WRONLY, O_RDWR, O_TRUNC
            self.copy_up()
        return super().open(location, flags)

    def getxattr(self, name: bytes) -> bytes:
        if name.startswith(PRIVATE_PREFIX):
            raise SysError(errno.ENODATA)
        return self.real.getxattr(name)

    def listxattr(self) -> list:
        try:
            names = self.real.listxattr()
        except SysError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
                return []
            raise
        return [n for n in names if not n.startswith(PRIVATE_PREFIX)]

    def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        if name.startswith(PRIVATE_PREFIX):
            raise SysError(errno.EPERM)
        self.copy_up()
        self.upper.setxattr(name, value, flags)

    def removexattr(self, name: bytes) -> None:
        if name.startswith(PRIVATE_PREFIX):
            raise SysError(errno.ENODATA)
        self.copy_up()
        self.upper.removexattr(name)

    def __repr__(self) -> str:
        return f"<OverlayInode {self.name!r} up={self.upper!r} lo={self.lower!r}>"


def _lookup_or_none(dir_inode: OverlayInode, name: bytes):
    try:
        return dir_inode.lookup(name)
    except SysError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
