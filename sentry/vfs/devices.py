"""Character devices: a registry from (major, minor) to a factory of open files.

Opening any S_IFCHR inode, whichever filesystem holds it (devfs, a tmpfs where the
program ran mknod, the host through the gofer), goes through the registry, so the same
device number always opens the same device. The memory devices of drivers/char/mem.c
are built in; the kernel layer adds tty/ptmx and friends with `register`.

A factory is called as factory(location, flags) and returns a FileDescription.
"""
from __future__ import annotations

import errno
import os

from ..kernel.errors import SysError
from . import iov
from .file import FileDescription
from .stat import major, minor

MEM_MAJOR = 1
NULL_MINOR, ZERO_MINOR, FULL_MINOR, RANDOM_MINOR, URANDOM_MINOR = 3, 5, 7, 8, 9
TTYAUX_MAJOR = 5          # /dev/tty is (5, 0), /dev/ptmx is (5, 2)


class CharDevices:
    def __init__(self):
        self._factories: dict[tuple[int, int], object] = {}

    def register(self, major_: int, minor_: int, factory) -> None:
        self._factories[(major_, minor_)] = factory

    def unregister(self, major_: int, minor_: int) -> None:
        self._factories.pop((major_, minor_), None)

    def lookup(self, rdev: int):
        return self._factories.get((major(rdev), minor(rdev)))

    def open(self, rdev: int, location, flags: int) -> FileDescription:
        factory = self.lookup(rdev)
        if factory is None:
            raise SysError(errno.ENXIO)
        return factory(location, flags)


class _MemDevice(FileDescription):
    """Seeks always succeed and land at 0 (null_lseek); reads and writes never block."""

    def _seek(self, offset: int, whence: int) -> int:
        self.pos = 0
        return 0

    def _write(self, src, offset, advance) -> int:
        return iov.total(src)


class NullFile(_MemDevice):
    def _read(self, dst, offset) -> int:
        return 0


def _fill_zero(dst) -> int:
    n = 0
    for v in dst:
        v[:] = bytes(len(v))
        n += len(v)
    return n


class ZeroFile(_MemDevice):
    def _read(self, dst, offset) -> int:
        return _fill_zero(dst)

    def pread_for_mmap(self, offset: int, dst: memoryview) -> int:
        return _fill_zero([dst])


class FullFile(ZeroFile):
    def _write(self, src, offset, advance) -> int:
        raise SysError(errno.ENOSPC)


class RandomFile(_MemDevice):
    """/dev/random and /dev/urandom: both from the host's getrandom (which, like Linux
    since 5.6, never blocks once the pool is initialised)."""

    def _read(self, dst, offset) -> int:
        n = 0
        for v in dst:
            v[:] = os.getrandom(len(v))
            n += len(v)
        return n


def default_chardevs() -> CharDevices:
    reg = CharDevices()
    for minor_, cls in ((NULL_MINOR, NullFile), (ZERO_MINOR, ZeroFile), (FULL_MINOR, FullFile),
                        (RANDOM_MINOR, RandomFile), (URANDOM_MINOR, RandomFile)):
        reg.register(MEM_MAJOR, minor_, cls)
    return reg
