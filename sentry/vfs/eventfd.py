"""eventfd(2): a 64-bit counter that a read drains and a write adds to.

Also home of `AnonFile`, the common base of the anonymous-inode files (eventfd, epoll,
timerfd, signalfd): they all hang off one shared inode, as Linux's anon_inode_getfile()
does (fstat shows the same st_ino and mode 0600 for all of them), have no position (lseek
is a no-op returning 0, pread/pwrite are ESPIPE) and show as "anon_inode:[NAME]".

Counter rules (fs/eventfd.c):
  - the counter holds 0 .. MAX_COUNT (2**64 - 2); 2**64 - 1 is never reachable by write;
  - read needs a buffer of at least 8 bytes; on a zero counter it blocks (EAGAIN when
    non-blocking); otherwise it returns the counter and zeroes it, or with EFD_SEMAPHORE
    returns 1 and decrements;
  - write takes exactly 8 bytes (any other length is EINVAL, since Linux 6.9; older
    kernels took the first 8 of a longer buffer); the value 2**64 - 1 is EINVAL; a write that would push the
    counter past MAX_COUNT blocks until a read makes room;
  - readiness: POLLIN while the counter is non-zero, POLLOUT while at least 1 can be added.
"""
from __future__ import annotations

import errno
import struct

from ..kernel.errors import SysError, WouldBlock
from ..kernel.wait import POLLERR, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM
from . import iov
from .anon import AnonInode
from .file import O_NONBLOCK, O_RDWR, FileDescription

EFD_SEMAPHORE = 1
EFD_CLOEXEC = 0o2000000
EFD_NONBLOCK = O_NONBLOCK
MAX_COUNT = (1 << 64) - 2
_U64 = struct.Struct("<Q")

_shared_inode = None


def anon_inode() -> AnonInode:
    """The one inode behind every anonymous-inode file (Linux's anon_inode_inode)."""
    global _shared_inode
    if _shared_inode is None:
        _shared_inode = AnonInode()
    return _shared_inode


class AnonFile(FileDescription):
    """A file on the shared anonymous inode: no position, a bracketed name."""
    stream = True
    anon_name = b"?"

    def __init__(self, flags: int):
        super().__init__(None, O_RDWR | (flags & O_NONBLOCK), inode=anon_inode())

    def seek(self, offset: int, whence: int) -> int:
        # noop_llseek: any lseek "succeeds" and reports position 0.
        return 0

    def readlink_name(self) -> bytes:
        return b"anon_inode:[%s]" % self.anon_name


class EventFD(AnonFile):
    anon_name = b"eventfd"

    def __init__(self, initval: int, flags: int):
        super().__init__(flags)
        self.count = initval
        self.semaphore = bool(flags & EFD_SEMAPHORE)

    def _read(self, dst, offset) -> int:
        if iov.total(dst) < 8:
            raise SysError(errno.EINVAL)
        if self.count == 0:
            raise WouldBlock(POLLIN)
        value = 1 if self.semaphore else self.count
        self.count -= value
        iov.copy_into(dst, _U64.pack(value))
        self.waitqueue.notify(POLLOUT | POLLWRNORM)
        return 8

    def _write(self, src, offset, advance: bool) -> int:
        if iov.total(src) != 8:
            raise SysError(errno.EINVAL)
        value = _U64.unpack(iov.gather(src, 8))[0]
        if value == (1 << 64) - 1:
            raise SysError(errno.EINVAL)
        if value > MAX_COUNT - self.count:
            raise WouldBlock(POLLOUT)
        self.count += value
        # Linux wakes readers even for a write of 0 (an edge-triggered watcher sees it).
        self.waitqueue.notify(POLLIN | POLLRDNORM)
        return 8

    def readiness(self, mask: int) -> int:
        r = 0
        if self.count > 0:
            r |= POLLIN | POLLRDNORM
        if self.count < MAX_COUNT:
            r |= POLLOUT | POLLWRNORM
        return r & (mask | POLLERR)
