"""Large reads of a host fd copied out of a read-only mapping of it.

The host kernel's read path walks the page cache page by page (lookup, reference, copy,
release): for a 1 MiB read that costs about as much again as the copy itself (tmpfs
preadv 176 us, memcpy out of a mapping 73 us; a volume's ext4 file 125-135 us against
73-79 us, measured here). Copying out of a mapping of the file runs at memory speed.

A file mapped here may be truncated by someone else at any moment (a volume is a host
directory), and touching a page past its new end is SIGBUS. So the copy is native/
safecopy.c's: a fault ends it with the bytes done so far (a short read, as a read(2)
racing a truncate gives) and the sentry lives. Mappings never reach past the size the
host reported when they were made; the caller clips each read to the size it knows.

Each mapping is one VMA of the sentry's own address space: their number is capped (the
least recently read is unmapped to make room).
"""
from __future__ import annotations

import collections
import os

from pysentry.native import _copy

MAX_MAPPINGS = 256
_LIVE: "collections.OrderedDict[ReadMapping, None]" = collections.OrderedDict()
_ffi, _lib = _copy.ffi, _copy.lib
_installed = False


class ReadMapping:
    """A read-only mapping of (a prefix of) one host fd, made when first needed.

    `may_shrink`: whether anyone but the sentry can shrink the file (a host file) and
    each copy must be the SIGBUS-safe one. A memfd only the sentry resizes, and whose
    mapping it drops before a shrink (tmpfs), is copied by plain slicing, which costs a
    fifth as much for a 4 KiB read."""
    __slots__ = ("fd", "may_shrink", "addr", "length", "view", "__weakref__")

    def __init__(self, fd: int, may_shrink: bool = True):
        self.fd = fd
        self.may_shrink = may_shrink
        self.addr = 0
        self.length = 0
        self.view = None

    def copy(self, offset: int, dst, size: int) -> int | None:
        """Copy the file's bytes from `offset` up to `size` (what the caller knows of its
        size, > offset) into the views of `dst`, as much as they hold. None when the host
        will not map the file (read it another way); a short count when the file shrank
        under the copy."""
        if size > self.length and not self._map(size):
            return None
        end = min(size, self.length)
        pos = offset
        view = self.view
        for d in dst:
            n = min(len(d), end - pos)
            if n <= 0:
                break
            if view is not None:
                d[:n] = view[pos:pos + n]
                got = n
            else:
                got = _lib.sc_copy(_ffi.from_buffer(d), _ffi.cast("char *", self.addr + pos), n)
            pos += got
            if got < n:
                break
        _LIVE.move_to_end(self)
        return pos - offset

    def _map(self, want: int) -> bool:
        global _installed
        if not _installed:
            if _lib.sc_install():
                return False
            _installed = True
        self.close()
        try:
            length = min(want, os.fstat(self.fd).st_size)
        except OSError:
            return False
        if length <= 0:
            return False
        err = _ffi.new("int*")
        addr = _lib.sc_map(self.fd, length, err)
        if not addr:
            return False
        self.addr, self.length = addr, length
        if not self.may_shrink:
            self.view = memoryview(_ffi.buffer(_ffi.cast("char *", addr), length))
        _LIVE[self] = None
        while len(_LIVE) > MAX_MAPPINGS:       # while: the cap holds even once lowered
            next(iter(_LIVE)).close()
        return True

    def close(self) -> None:
        """Unmap (the fd stays its owner's)."""
        if self.addr:
            if self.view is not None:
                self.view.release()
                self.view = None
            _lib.sc_unmap(self.addr, self.length)
            self.addr = self.length = 0
            _LIVE.pop(self, None)
