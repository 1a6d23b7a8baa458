"""Advisory file locks: POSIX record locks (fcntl F_SETLK/F_SETLKW/F_GETLK), open file
description locks (F_OFD_*) and flock(2).

Locks live per inode, in the sentry: every process of the sandbox sees the same table
(locks are not forwarded to the host, so they do not interlock with host processes).
Owners: a POSIX record lock belongs to a process (thread group); an OFD lock and a flock
belong to an open file description. POSIX and flock locks are separate tables, as on Linux.

Invariant: one owner's record locks on an inode never overlap each other; setting a range
splits, merges and converts what it covers, exactly like Linux's posix_lock_file.
"""
import errno

from ..kernel.errors import SysError
from ..kernel.wait import WaitQueue

F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
OFFSET_MAX = (1 << 63) - 1


class Lock:
    __slots__ = ("owner", "start", "end", "type", "pid")

    def __init__(self, owner, start, end, type_, pid):
        self.owner, self.start, self.end, self.type, self.pid = owner, start, end, type_, pid

    def conflicts(self, owner, start, end, type_) -> bool:
        return (self.owner is not owner and self.start <= end and start <= self.end
                and (self.type == F_WRLCK or type_ == F_WRLCK))


class InodeLocks:
    """The record locks and flocks of one inode, and a queue for waiters."""

    def __init__(self):
        self.posix: list[Lock] = []
        self.flocks: list[Lock] = []
        self.waitqueue = WaitQueue()

    def find_conflict(self, owner, start, end, type_):
        for lk in self.posix:
            if lk.conflicts(owner, start, end, type_):
                return lk
        return None

    def set_posix(self, owner, start, end, type_, pid) -> None:
        """Apply a lock or unlock of [start, end] for owner (the caller checked conflicts)."""
        kept = []
        for lk in self.posix:
            if lk.owner is not owner or lk.end < start - 1 or lk.start > end + 1:
                kept.append(lk)
                continue
            # Same owner, overlapping or adjacent.
            if lk.type == type_ and type_ != F_UNLCK:
                start, end = min(start, lk.start), max(end, lk.end)   # merge
                continue
            if lk.end < start or lk.start > end:
                kept.append(lk)        # adjacent with another type: untouched
                continue
            if lk.start < start:
                kept.append(Lock(owner, lk.start, start - 1, lk.type, lk.pid))
            if lk.end > end:
                kept.append(Lock(owner, end + 1, lk.end, lk.type, lk.pid))
        if type_ != F_UNLCK:
            kept.append(Lock(owner, start, end, type_, pid))
        kept.sort(key=lambda lk: lk.start)
        self.posix = kept
        self.waitqueue.notify()

    def release_owner(self, owner) -> None:
        before = len(self.posix) + len(self.flocks)
        self.posix = [lk for lk in self.posix if lk.owner is not owner]
        self.flocks = [lk for lk in self.flocks if lk.owner is not owner]
        if len(self.posix) + len(self.flocks) != before:
            self.waitqueue.notify()

    def flock_conflict(self, owner, type_):
        for lk in self.flocks:
            if lk.owner is not owner and (lk.type == F_WRLCK or type_ == F_WRLCK):
                return lk
        return None

    def set_flock(self, owner, type_) -> None:
        self.flocks = [lk for lk in self.flocks if lk.owner is not owner]
        if type_ != F_UNLCK:
            self.flocks.append(Lock(owner, 0, OFFSET_MAX, type_, 0))
        self.waitqueue.notify()


def locks_of(inode) -> InodeLocks:
    table = getattr(inode, "_locks", None)
    if table is None:
        table = InodeLocks()
        try:
            inode._locks = table
        except AttributeError:           # inodes with __slots__ and no room: no locking
            raise SysError(errno.ENOLCK)
    return table


def lock_range(whence_base: int, start: int, length: int) -> tuple[int, int]:
    """The [first, last] byte range of a struct flock, after l_whence was applied."""
    start = whence_base + start
    if length > 0:
        end = start + length - 1
    elif length < 0:
        end = start - 1
        start = start + length
    else:
        end = OFFSET_MAX
    if start < 0:
        raise SysError(errno.EINVAL)
    return start, min(end, OFFSET_MAX)
