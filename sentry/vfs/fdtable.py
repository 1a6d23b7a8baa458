"""File descriptor tables: fd number -> (open file description, close-on-exec).

A table may be shared by threads (CLONE_FILES); fork() copies it. Every slot holds one
reference on its description: install/dup take one, close/exec drop one, and the
description's release() runs when the last reference anywhere goes.
"""
from __future__ import annotations

import bisect
import errno

from ..kernel.errors import SysError

CLOSE_RANGE_UNSHARE = 2
CLOSE_RANGE_CLOEXEC = 4


class FDTable:
    def __init__(self, limit: int = 1024):
        self.limit = limit             # RLIMIT_NOFILE soft limit: fds are < limit
        self._files: dict[int, object] = {}
        self._cloexec: set[int] = set()
        self._free_hint = 0            # no free fd below this

    # -- lookup ---------------------------------------------------------------------------
    def get(self, fd: int):
        desc = self._files.get(fd)
        if desc is None:
            raise SysError(errno.EBADF)
        return desc

    def __contains__(self, fd: int) -> bool:
        return fd in self._files

    def __len__(self) -> int:
        return len(self._files)

    def items(self) -> list:
        """[(fd, description)] in fd order."""
        return sorted(self._files.items())

    def get_cloexec(self, fd: int) -> bool:
        self.get(fd)
        return fd in self._cloexec

    def set_cloexec(self, fd: int, on: bool) -> None:
        self.get(fd)
        if on:
            self._cloexec.add(fd)
        else:
            self._cloexec.discard(fd)

    # -- allocation -----------------------------------------------------------------------
    def _lowest_free(self, minfd: int) -> int:
        fd = max(minfd, self._free_hint)
        while fd in self._files:
            fd += 1
        return fd

    def install(self, desc, cloexec: bool = False, minfd: int = 0) -> int:
        """Put `desc` at the lowest free fd >= minfd, taking a new reference on it."""
        if minfd < 0 or minfd >= self.limit:
            raise SysError(errno.EINVAL)
        fd = self._lowest_free(minfd)
        if fd >= self.limit:
            raise SysError(errno.EMFILE)
        desc.incref()
        self._set(fd, desc, cloexec)
        if minfd <= self._free_hint:
            self._free_hint = fd + 1
        return fd

    def _set(self, fd: int, desc, cloexec: bool) -> None:
        self._files[fd] = desc
        if cloexec:
            self._cloexec.add(fd)
        else:
            self._cloexec.discard(fd)

    def dup2(self, oldfd: int, newfd: int, cloexec: bool = False) -> int:
        """dup2/dup3: newfd becomes a copy of oldfd, closing what it held."""
        desc = self.get(oldfd)
        if newfd < 0 or newfd >= self.limit:
            raise SysError(errno.EBADF)
        if oldfd == newfd:
            return newfd
        desc.incref()
        old = self._files.get(newfd)
        self._set(newfd, desc, cloexec)
        if old is not None:
            self._drop(old)
        return newfd

    def dup2_install(self, fd: int, desc, cloexec: bool = False) -> int:
        """Put `desc` at exactly `fd` (closing what was there), taking a new reference,
        like install(). For setting up a first task's stdin/stdout/stderr."""
        if fd < 0 or fd >= self.limit:
            raise SysError(errno.EBADF)
        desc.incref()
        old = self._files.get(fd)
        self._set(fd, desc, cloexec)
        if old is not None:
            self._drop(old)
        return fd

    # -- release --------------------------------------------------------------------------
    def remove(self, fd: int):
        """Take fd out of the table and return its description *with* the table's
        reference (the caller decrefs it, e.g. after flushing locks)."""
        desc = self._files.pop(fd, None)
        if desc is None:
            raise SysError(errno.EBADF)
        self._cloexec.discard(fd)
        if fd < self._free_hint:
            self._free_hint = fd
        return desc

    def close(self, fd: int) -> None:
        self._drop(self.remove(fd))

    def _drop(self, desc) -> None:
        """A description leaves this table: closing any fd of a file releases this
        table's POSIX record locks on it (their owner is the fd table, as in Linux)."""
        locks = getattr(desc.inode, "_locks", None) if desc.inode is not None else None
        if locks is not None:
            locks.release_owner(self)
        desc.decref()

    def close_range(self, first: int, last: int, flags: int = 0) -> None:
        """close_range(2). CLOSE_RANGE_UNSHARE is the caller's job (unshare the table
        first); it is accepted here."""
        if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
            raise SysError(errno.EINVAL)
        fds = sorted(self._files)
        lo = bisect.bisect_left(fds, first)
        hi = bisect.bisect_right(fds, last)
        for fd in fds[lo:hi]:
            if flags & CLOSE_RANGE_CLOEXEC:
                self._cloexec.add(fd)
            else:
                self.close(fd)

    def fork(self) -> "FDTable":
        child = FDTable(self.limit)
        for fd, desc in self._files.items():
            desc.incref()
            child._files[fd] = desc
        child._cloexec = set(self._cloexec)
        child._free_hint = self._free_hint
        return child

    def on_exec(self) -> None:
        for fd in sorted(self._cloexec):
            self.close(fd)

    def close_all(self) -> None:
        """Task exit: drop every fd."""
        for fd in sorted(self._files):
            self.close(fd)
