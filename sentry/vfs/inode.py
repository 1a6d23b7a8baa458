"""The filesystem interface: what a filesystem implements so the VFS can mount it.

Two classes, both meant to be subclassed: `Filesystem` (one instance per mounted
filesystem, Linux's superblock) and `Inode` (one object per file of that filesystem).
tmpfs, overlay and devfs implement them in this package; goferfs (the 9P client) implements
them against the gofer.

Division of labour
------------------
The VFS (vfs.py) owns the name space: dentries (the cached name tree), mounts, path walk,
symlink following, `.`/`..`, chroot, permission checks (perm.py), read-only mounts,
sticky directories, the type rules of unlink/rmdir/rename, umask, the uid/gid/mode of new
files, and timestamps requested by utimens. A filesystem only performs the operation it is
asked for; it may assume the VFS already checked that:
  - `name` is a single component: not empty, no b"/", not b"." or b"..", at most 255 bytes;
  - the caller may do it (search/write permission, sticky bit, ownership);
  - the types fit (rmdir gets a directory, unlink a non-directory, rename's type rules);
  - the parent directory is still linked (not removed).
A filesystem still reports what only it can know: ENOENT for a missing name, EEXIST,
ENOTEMPTY, ENOSPC, EROFS (a read-only filesystem), EIO, EOPNOTSUPP/EPERM for an operation it
does not support. All failures are `SysError(errno)`.

Identity
--------
`lookup` must return the *same* Inode object for the same file while the VFS holds it
(the VFS caches dentries, so it only calls `lookup` for names it has not seen, or that
failed revalidation; see `Filesystem.revalidate`). Inode objects must be hashable by
identity and weak-referenceable (the default for a plain class), since the VFS keys FIFO
pipes and bound unix sockets by inode. Hard links are the same Inode under two names.

Attributes (read by the VFS on every permission check, so keep them cheap)
---------------------------------------------------------------------------
  fs, ino, mode (S_IFMT type | permission bits incl. suid/sgid/sticky), uid, gid, nlink,
  size, rdev (encoded like os.makedev), atime_ns, mtime_ns, ctime_ns, btime_ns.
`stat()` builds a `Stat` from them (override it if you have a better source).
`setattr(mode=, uid=, gid=, size=, atime_ns=, mtime_ns=, ctime_ns=)` changes the given ones
(None = unchanged); the filesystem updates ctime itself when ctime_ns is None and something
changed, and implements size changes of regular files (truncate/extend with zeros). The
base setattr stores the fields and calls `set_size(size)` for a size change.
`touch(atime=, mtime=, ctime=)` sets the named times to now (the VFS calls it for relatime
access-time updates after reads; a remote filesystem may make it a no-op). `blocks()` is
st_blocks (512-byte units).

Directory operations (only called on directories)
-------------------------------------------------
  lookup(name) -> Inode                               ENOENT if absent
  create(name, mode, uid, gid) -> Inode               regular file; mode has S_IFREG
  mkdir(name, mode, uid, gid) -> Inode
  mknod(name, mode, rdev, uid, gid) -> Inode          S_IFCHR/S_IFBLK/S_IFIFO/S_IFSOCK/S_IFREG
  symlink(name, target, uid, gid) -> Inode
  link(name, inode)                                   inode is on this same filesystem
  unlink(name, inode)                                 inode is the non-directory at name
  rmdir(name, inode)                                  ENOTEMPTY unless empty
  rename(oldname, newdir, newname, flags)             newdir is on this filesystem; replaces
        an existing newname atomically (the VFS checked the type rules); flags may hold
        RENAME_NOREPLACE or RENAME_EXCHANGE (swap the two entries).
  iterdir(offset) -> iterable of Dirent(ino, off, dtype, name)
        the entries at positions >= offset, in order, *without* "." and ".." (the VFS
        synthesizes them at positions 0 and 1).  Positions are ints in [2, 2**63) chosen by
        the filesystem; `off` of an entry is the position just after it (where the next
        call resumes).  A position must stay valid while entries are added or removed.
  new_tmpfile(mode, uid, gid) -> Inode                O_TMPFILE (default EOPNOTSUPP)

Symlinks:  readlink() -> bytes

Regular files (data; the position, O_APPEND and access-mode rules live in file.py):
  read(offset, dst) -> int        fill the memoryviews of `dst` from `offset`; 0 at EOF
  write(offset, src) -> int       write the memoryviews of `src` at `offset`, extending
  seek_data(offset) / seek_hole(offset) -> int    SEEK_DATA/SEEK_HOLE (default: one extent)
  punch_hole(lo, hi)              fallocate PUNCH_HOLE of [lo, hi) (lo < size; hi may be
        past it, the size never moves): reads as zeros afterwards, whole blocks given back
        where the filesystem can (default: zeros written, for a filesystem with no way to
        free space)
  zero_range(offset, length, keep_size)   fallocate ZERO_RANGE (default EOPNOTSUPP, as
        Linux's tmpfs)
  fsync()
  open(location, flags) -> FileDescription
        default: a generic RegularFile / DirectoryFile over the methods above.  A filesystem
        may return its own FileDescription subclass (e.g. one backed by a donated host fd).
        Device nodes, FIFOs and sockets never reach `open`: the VFS serves them from the
        character-device registry (devices.py), pipe.py and the socket binding table.

Extended attributes (default EOPNOTSUPP):
  getxattr(name) -> bytes (ENODATA), setxattr(name, value, flags), listxattr() -> list,
  removexattr(name).  The VFS checks namespace permissions (trusted.* needs root).

Filesystem attributes: fstype (str, as /proc/mounts shows it), dev (allocate with
`alloc_dev()`), readonly (EROFS for every change), revalidate (True for a filesystem whose
files may change behind the sentry's back: the VFS then calls
`dir.revalidate_child(name, child) -> bool` on every cached lookup and drops the cached
dentry when it returns False), root() -> Inode, statfs() -> StatFS, options() -> str
(extra /proc/mounts options), release() (called when unmounted).
"""
from __future__ import annotations

import errno
import itertools
import stat as _st
import time
from typing import Iterable, NamedTuple

from ..kernel.errors import SysError
from .stat import Stat, StatFS, dtype_of

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4

XATTR_CREATE = 1
XATTR_REPLACE = 2

ZERO_CHUNK = 1 << 20       # bytes per write when a hole can only be made of zeros

_anon_minors = itertools.count(0x40)   # minor numbers of major 0, like Linux's anon devs


def alloc_dev() -> int:
    """A fresh st_dev (major 0, like Linux's tmpfs/proc/overlay instances)."""
    minor = next(_anon_minors)
    return ((minor & 0xffffff00) << 12) | (minor & 0xff)


def now_ns() -> int:
    return time.time_ns()


class Dirent(NamedTuple):
    ino: int
    off: int       # position to resume at after this entry
    dtype: int     # DT_* (stat.dtype_of)
    name: bytes


class Filesystem:
    fstype = "none"
    readonly = False
    revalidate = False

    def __init__(self):
        self.dev = alloc_dev()

    def root(self) -> "Inode":
        raise NotImplementedError

    def statfs(self) -> StatFS:
        return StatFS(fstype_magic=0, bsize=4096, namelen=255, dev=self.dev)

    def options(self) -> str:
        return ""

    def release(self) -> None:
        pass


class Inode:
    """Base inode: attributes in fields, every operation refused with the errno Linux
    gives for a file that does not support it. Subclasses override what they support."""

    blksize = 4096
    # Open descriptions with write access taken (FileDescription.take_write_access): exec
    # of the file is ETXTBSY while there are any.
    writers = 0
    # Set once the file was opened to be executed: only such a file can be the program of
    # a live process, whose write access Linux refuses (ETXTBSY).
    executed = False

    def __init__(self, fs: Filesystem, ino: int, mode: int, uid: int = 0, gid: int = 0,
                 rdev: int = 0):
        t = now_ns()
        self.fs = fs
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.nlink = 1
        self.size = 0
        self.atime_ns = self.mtime_ns = self.ctime_ns = self.btime_ns = t

    # -- attributes ---------------------------------------------------------------------
    @property
    def ftype(self) -> int:
        return _st.S_IFMT(self.mode)

    def is_dir(self) -> bool:
        return _st.S_ISDIR(self.mode)

    def blocks(self) -> int:
        """st_blocks in 512-byte units."""
        return (self.size + 511) // 512

    def stat(self) -> Stat:
        return Stat(dev=self.fs.dev, ino=self.ino, mode=self.mode, nlink=self.nlink,
                    uid=self.uid, gid=self.gid, rdev=self.rdev, size=self.size,
                    blksize=self.blksize, blocks=self.blocks(),
                    atime=self.atime_ns, mtime=self.mtime_ns, ctime=self.ctime_ns,
                    btime=self.btime_ns)

    def setattr(self, *, mode=None, uid=None, gid=None, size=None, atime_ns=None,
                mtime_ns=None, ctime_ns=None) -> None:
        if self.fs.readonly:
            raise SysError(errno.EROFS)
        if size is not None:
            if _st.S_ISDIR(self.mode):
                raise SysError(errno.EISDIR)
            if not _st.S_ISREG(self.mode):
                raise SysError(errno.EINVAL)
            self.set_size(size)
        if mode is not None:
            self.mode = _st.S_IFMT(self.mode) | (mode & 0o7777)
        if uid is not None:
            self.uid = uid
        if gid is not None:
            self.gid = gid
        if atime_ns is not None:
            self.atime_ns = atime_ns
        if mtime_ns is not None:
            self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns if ctime_ns is not None else now_ns()

    def set_size(self, size: int) -> None:
        raise SysError(errno.EINVAL)

    def touch(self, atime=False, mtime=False, ctime=False) -> None:
        t = now_ns()
        if atime:
            self.atime_ns = t
        if mtime:
            self.mtime_ns = t
        if ctime:
            self.ctime_ns = t

    # -- directories --------------------------------------------------------------------
    def _not_dir(self):
        raise SysError(errno.ENOTDIR)

    def lookup(self, name: bytes) -> "Inode":
        self._not_dir()

    def revalidate_child(self, name: bytes, child: "Inode") -> bool:
        return True

    def create(self, name: bytes, mode: int, uid: int, gid: int) -> "Inode":
        self._not_dir()

    def mkdir(self, name: bytes, mode: int, uid: int, gid: int) -> "Inode":
        self._not_dir()

    def mknod(self, name: bytes, mode: int, rdev: int, uid: int, gid: int) -> "Inode":
        self._not_dir()

    def symlink(self, name: bytes, target: bytes, uid: int, gid: int) -> "Inode":
        self._not_dir()

    def link(self, name: bytes, inode: "Inode") -> None:
        self._not_dir()

    def unlink(self, name: bytes, inode: "Inode") -> None:
        self._not_dir()

    def rmdir(self, name: bytes, inode: "Inode") -> None:
        self._not_dir()

    def rename(self, oldname: bytes, newdir: "Inode", newname: bytes, flags: int = 0) -> None:
        self._not_dir()

    def iterdir(self, offset: int) -> Iterable[Dirent]:
        self._not_dir()

    def new_tmpfile(self, mode: int, uid: int, gid: int) -> "Inode":
        raise SysError(errno.EOPNOTSUPP)

    # -- symlinks -----------------------------------------------------------------------
    def readlink(self) -> bytes:
        raise SysError(errno.EINVAL)

    # -- regular file data --------------------------------------------------------------
    def read(self, offset: int, dst) -> int:
        raise SysError(errno.EISDIR if self.is_dir() else errno.EINVAL)

    def write(self, offset: int, src) -> int:
        raise SysError(errno.EISDIR if self.is_dir() else errno.EINVAL)

    def seek_data(self, offset: int) -> int:
        if offset >= self.size:
            raise SysError(errno.ENXIO)
        return offset

    def seek_hole(self, offset: int) -> int:
        if offset >= self.size:
            raise SysError(errno.ENXIO)
        return self.size

    def punch_hole(self, lo: int, hi: int) -> None:
        hi = min(hi, self.size)
        zeros = memoryview(bytes(min(hi - lo, ZERO_CHUNK))) if lo < hi else None
        while lo < hi:
            n = self.write(lo, [zeros[:hi - lo]])
            if n <= 0:
                raise SysError(errno.EIO)
            lo += n

    def zero_range(self, offset: int, length: int, keep_size: bool) -> None:
        raise SysError(errno.EOPNOTSUPP)

    def fsync(self) -> None:
        pass

    def open(self, location, flags: int):
        from .file import DirectoryFile, RegularFile, PathFile
        if _st.S_ISDIR(self.mode):
            return DirectoryFile(location, flags)
        if _st.S_ISREG(self.mode):
            return RegularFile(location, flags)
        if _st.S_ISLNK(self.mode):
            return PathFile(location, flags)
        raise SysError(errno.ENXIO)

    # -- extended attributes ------------------------------------------------------------
    def getxattr(self, name: bytes) -> bytes:
        raise SysError(errno.EOPNOTSUPP)

    def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        raise SysError(errno.EOPNOTSUPP)

    def listxattr(self) -> list:
        raise SysError(errno.EOPNOTSUPP)

    def removexattr(self, name: bytes) -> None:
        raise SysError(errno.EOPNOTSUPP)

    def dtype(self) -> int:
        return dtype_of(self.mode)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ino={self.ino} mode={self.mode:o}>"
