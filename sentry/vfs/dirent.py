"""getdents record layouts (struct linux_dirent64 and the older struct linux_dirent)."""
from __future__ import annotations

import struct

_HDR64 = struct.Struct("<QqHB")     # d_ino, d_off, d_reclen, d_type; then d_name + NUL
_HDR = struct.Struct("<QqH")        # d_ino, d_off, d_reclen; then d_name, NUL, pad, d_type


def _align8(n: int) -> int:
    return (n + 7) & ~7


def reclen64(name: bytes) -> int:
    return _align8(_HDR64.size + len(name) + 1)


def reclen(name: bytes) -> int:
    return _align8(_HDR.size + len(name) + 2)


def pack_dirent64(d) -> bytes:
    n = reclen64(d.name)
    rec = _HDR64.pack(d.ino, d.off, n, d.dtype) + d.name
    return rec + bytes(n - len(rec))


def pack_dirent(d) -> bytes:
    n = reclen(d.name)
    rec = bytearray(_HDR.pack(d.ino, d.off, n) + d.name)
    rec += bytes(n - len(rec))
    rec[-1] = d.dtype
    return bytes(rec)
