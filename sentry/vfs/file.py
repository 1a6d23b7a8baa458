"""Open file descriptions: the object an fd points at (shared by dup and fork).

`FileDescription` holds what Linux's `struct file` holds: the status flags, the position,
the location it was opened at, and a reference count. Subclasses implement `_read`,
`_write` and whatever else their file supports; the public methods check the access mode
and move the position, so every file type gets those rules the same way.

Reference counting: a description starts with one reference (the opener's). `incref()`
for every further holder (an fd slot, an in-flight syscall, an SCM_RIGHTS message);
`decref()` when it lets go; `release()` runs once, at the last decref.
"""
from __future__ import annotations

import errno
import itertools
import os
import stat as _st

from ..kernel.errors import SysError
from ..mm import filemap
from ..kernel.wait import POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, WaitQueue
from . import attrs, iov, perm
from .dirent import reclen64
from .inode import Dirent

O_ACCMODE = 0o3
O_RDONLY = os.O_RDONLY
O_WRONLY = os.O_WRONLY
O_RDWR = os.O_RDWR
O_APPEND = os.O_APPEND
O_NONBLOCK = os.O_NONBLOCK
O_PATH = os.O_PATH
O_LARGEFILE = 0o100000
O_DIRECT = 0o40000
O_NOATIME = 0o1000000
O_ASYNC = 0o20000
O_DIRECTORY = os.O_DIRECTORY

# Bits that are only meaningful at open time and so never appear in F_GETFL.
OPEN_ONLY_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC | os.O_CLOEXEC
# Bits F_SETFL may change (fs/fcntl.c SETFL_MASK).
SETFL_MASK = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME

SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4
MAX_OFFSET = (1 << 63) - 1
FIONREAD = 0x541B

_ALWAYS_READY = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM


class FileDescription:
    # A stream (pipe, socket, tty) has no position: seek is ESPIPE, pread/pwrite too.
    stream = False
    # Whether this description is one of its inode's `writers` (Linux's i_writecount):
    # only opens of a path take that, as Linux's do_dentry_open does; a memfd's first
    # description, like every pseudo file's, does not.
    _holds_write_access = False

    def __init__(self, location=None, flags: int = O_RDONLY, inode=None):
        self.flags = flags & ~OPEN_ONLY_FLAGS
        self.location = location
        self.inode = inode if inode is not None else (
            location.dentry.inode if location is not None else None)
        self.waitqueue = WaitQueue()
        self.pos = 0
        self._refs = 1

    # -- access mode --------------------------------------------------------------------
    @property
    def readable(self) -> bool:
        return not self.flags & O_PATH and (self.flags & O_ACCMODE) in (O_RDONLY, O_RDWR)

    @property
    def writable(self) -> bool:
        return not self.flags & O_PATH and (self.flags & O_ACCMODE) in (O_WRONLY, O_RDWR)

    @property
    def mount(self):
        return self.location.mount if self.location is not None else None

    def set_status_flags(self, flags: int, creds=None) -> None:
        """F_SETFL: only the SETFL_MASK bits change; the access mode never does.
        Turning O_NOATIME on needs ownership of the file (or privilege)."""
        if flags & O_NOATIME and not self.flags & O_NOATIME and self.inode is not None:
            if creds is None or not perm.is_owner(creds, self.inode):
                raise SysError(errno.EPERM)
        self.flags = (self.flags & ~SETFL_MASK) | (flags & SETFL_MASK)
        self.waitqueue.notify()

    def _check_not_path(self) -> None:
        if self.flags & O_PATH:
            raise SysError(errno.EBADF)

    # -- I/O ----------------------------------------------------------------------------
    def read(self, dst, offset: int | None = None) -> int:
        if not self.readable:
            raise SysError(errno.EBADF)
        if offset is not None:
            if self.stream:
                raise SysError(errno.ESPIPE)
            if offset < 0:
                raise SysError(errno.EINVAL)
            return self._read(dst, offset)
        n = self._read(dst, None if self.stream else self.pos)
        if not self.stream:
            self.pos += n
        return n

    def write(self, src, offset: int | None = None) -> int:
        if not self.writable:
            raise SysError(errno.EBADF)
        if offset is not None:
            if self.stream:
                raise SysError(errno.ESPIPE)
            if offset < 0:
                raise SysError(errno.EINVAL)
            return self._write(src, offset, advance=False)
        return self._write(src, None if self.stream else self.pos, advance=True)

    def _read(self, dst, offset) -> int:
        raise SysError(errno.EINVAL)

    def _write(self, src, offset, advance: bool) -> int:
        raise SysError(errno.EINVAL)

    def seek(self, offset: int, whence: int) -> int:
        if self.stream:
            raise SysError(errno.ESPIPE)
        self._check_not_path()
        return self._seek(offset, whence)

    def _seek(self, offset: int, whence: int) -> int:
        """Default: a position with no end (devices like /dev/zero accept any seek)."""
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = self.pos + offset
        else:
            raise SysError(errno.EINVAL)
        if new < 0:
            raise SysError(errno.EINVAL)
        self.pos = new
        return new

    def getdents(self, max_bytes: int, reclen=reclen64) -> list:
        self._check_not_path()
        raise SysError(errno.ENOTDIR)

    def ioctl(self, task, cmd: int, arg: int) -> int:
        self._check_not_path()
        raise SysError(errno.ENOTTY)

    def readiness(self, mask: int) -> int:
        return _ALWAYS_READY & mask

    def open_wait(self) -> None:
        """Raises WouldBlock while a blocking open must still wait (a FIFO without its
        peer). The open syscall calls this before installing the fd; default: ready."""

    # -- attributes ---------------------------------------------------------------------
    def stat(self):
        st = self.inode.stat()
        if self.location is not None:
            st.mnt_id = self.location.mount.id
        return st

    def truncate(self, length: int, creds=None) -> None:
        self._check_not_path()
        if not self.writable:
            raise SysError(errno.EINVAL)
        attrs.truncate(creds, self.mount, self.inode, length)

    def fsync(self) -> None:
        self._check_not_path()
        filemap.sync(self.inode)        # stores made through shared mappings first
        self.inode.fsync()

    def chmod(self, creds, mode: int) -> None:
        self._check_not_path()
        attrs.chmod(creds, self.mount, self.inode, mode)

    def chown(self, creds, uid: int, gid: int) -> None:
        self._check_not_path()
        attrs.chown(creds, self.mount, self.inode, uid, gid)

    def utimens(self, creds, atime, mtime) -> None:
        self._check_not_path()
        attrs.utimens(creds, self.mount, self.inode, atime, mtime)

    def pread_for_mmap(self, offset: int, dst: memoryview) -> int:
        raise SysError(errno.ENODEV)

    def pwrite_for_mmap(self, offset: int, src: memoryview) -> int:
        """Write back dirty bytes of a shared file mapping (no position, no O_APPEND)."""
        raise SysError(errno.ENODEV)

    # -- lifetime -----------------------------------------------------------------------
    def take_write_access(self) -> None:
        """Count this (writable) description among its inode's writers until released:
        exec of the file is ETXTBSY meanwhile."""
        self.inode.writers += 1
        self._holds_write_access = True

    def incref(self) -> None:
        if self._refs <= 0:
            raise RuntimeError("incref of a released file description")
        self._refs += 1

    def decref(self) -> None:
        self._refs -= 1
        if self._refs == 0:
            locks = getattr(self.inode, "_locks", None) if self.inode is not None else None
            if locks is not None:
                locks.release_owner(self)     # its flock and OFD locks
            if self._holds_write_access:
                self.inode.writers -= 1
            self.release()
        elif self._refs < 0:
            raise RuntimeError("file description released twice")

    @property
    def refs(self) -> int:
        return self._refs

    def release(self) -> None:
        pass

    def readlink_name(self) -> bytes:
        """What /proc/PID/fd/N shows: the path (from the namespace top), with
        " (deleted)" once the file was unlinked."""
        if self.location is None:
            return b"anon_inode:[%s]" % type(self).__name__.encode()
        from .mount import Location
        loc = self.location
        top = loc.mount
        while top.parent is not None:
            top = top.parent
        path = loc.path_from(Location(top, top.root))
        if loc.dentry.dead:
            path += b" (deleted)"
        return path

    def path_from(self, root) -> bytes:
        """The path relative to a task's root (for /proc/PID/fd of a chrooted task)."""
        path = self.location.path_from(root)
        return path + b" (deleted)" if self.location.dentry.dead else path

    def __repr__(self) -> str:
        return f"<{type(self).__name__} flags={self.flags:o} refs={self._refs}>"


class PathFile(FileDescription):
    """An O_PATH descriptor (or an O_PATH-like handle on a symlink): no I/O at all."""


class RegularFile(FileDescription):
    """A seekable file whose data the inode serves (Inode.read/write).

    All its data I/O goes through mm/filemap.py, which passes it to the inode unless the
    file is mapped MAP_SHARED, and then keeps read()/write() coherent with the mappings."""

    def _read(self, dst, offset) -> int:
        if not iov.total(dst):
            return 0
        n = filemap.read(self.inode, offset, dst)
        ino = self.inode
        if not (ino.atime_ns > ino.mtime_ns and ino.atime_ns > ino.ctime_ns):
            self._touch_atime()     # relatime may move atime: the rest of the checks
        return n

    def _touch_atime(self) -> None:
        # relatime: atime moves only when it is older than mtime/ctime.
        ino = self.inode
        if self.flags & O_NOATIME or ino.atime_ns > ino.mtime_ns and ino.atime_ns > ino.ctime_ns:
            return
        if self.mount is not None and self.mount.readonly:
            return
        ino.touch(atime=True)

    def _write(self, src, offset, advance: bool) -> int:
        # Linux honours O_APPEND for pwrite too (a documented deviation from POSIX).
        if self.flags & O_APPEND:
            offset = self.inode.size
        count = iov.total(src)
        if offset + count > MAX_OFFSET:
            if offset >= MAX_OFFSET:
                raise SysError(errno.EFBIG)
            src = iov.clip(src, MAX_OFFSET - offset)
        n = filemap.write(self.inode, offset, src) if count else 0
        if advance:
            self.pos = offset + n
        return n

    def _seek(self, offset: int, whence: int) -> int:
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = self.pos + offset
        elif whence == SEEK_END:
            new = self.inode.size + offset
        elif whence == SEEK_DATA:
            if offset < 0:
                raise SysError(errno.ENXIO)
            new = self.inode.seek_data(offset)
        elif whence == SEEK_HOLE:
            if offset < 0:
                raise SysError(errno.ENXIO)
            new = self.inode.seek_hole(offset)
        else:
            raise SysError(errno.EINVAL)
        if new < 0 or new > MAX_OFFSET:
            raise SysError(errno.EINVAL)
        self.pos = new
        return new

    def ioctl(self, task, cmd: int, arg: int) -> int:
        if cmd == FIONREAD:
            avail = min(max(self.inode.size - self.pos, 0), (1 << 31) - 1)
            task.copy_out(arg, avail.to_bytes(4, "little"))
            return 0
        return super().ioctl(task, cmd, arg)

    def pread_for_mmap(self, offset: int, dst: memoryview) -> int:
        return filemap.read(self.inode, offset, [dst])

    def pwrite_for_mmap(self, offset: int, src: memoryview) -> int:
        return filemap.write(self.inode, offset, [src])


class DirectoryFile(FileDescription):
    """A directory opened for getdents. Positions: 0 is ".", 1 is "..", then the
    filesystem's own positions (Inode.iterdir)."""

    def _read(self, dst, offset) -> int:
        raise SysError(errno.EISDIR)

    def _write(self, src, offset, advance) -> int:
        raise SysError(errno.EISDIR)

    def _dot_entries(self):
        d = self.location.dentry if self.location is not None else None
        me = self.inode.ino
        parent = d.parent.inode.ino if d is not None and d.parent is not None else me
        return [Dirent(me, 1, _st.S_IFDIR >> 12, b"."), Dirent(parent, 2, _st.S_IFDIR >> 12, b"..")]

    def getdents(self, max_bytes: int, reclen=reclen64) -> list:
        self._check_not_path()
        if self.location is not None and self.location.dentry.dead:
            return []
        out = []
        used = 0
        for ent in self._entries_from(self.pos):
            used += reclen(ent.name)
            if used > max_bytes:
                break
            out.append(ent)
        if out:
            self.pos = out[-1].off
        elif max_bytes > 0:
            # An entry exists but does not fit: Linux says EINVAL ("result buffer is too
            # small"); at the end of the directory the answer is an empty list.
            for ent in self._entries_from(self.pos):
                raise SysError(errno.EINVAL)
        else:
            raise SysError(errno.EINVAL)
        return out

    def _entries_from(self, pos: int):
        """The entries from position `pos` on: "." is 0, ".." 1, the filesystem's from 2."""
        if pos >= 2:
            return self.inode.iterdir(pos)      # the common case: no generator of ours
        return itertools.chain(self._dot_entries()[max(pos, 0):], self.inode.iterdir(2))

    def _seek(self, offset: int, whence: int) -> int:
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = self.pos + offset
        else:
            raise SysError(errno.EINVAL)
        if new < 0:
            raise SysError(errno.EINVAL)
        self.pos = new
        return new
