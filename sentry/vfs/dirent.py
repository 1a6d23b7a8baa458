"""getdents record layouts (struct linux_dirent64 and the older struct linux_dirent)."""
from __future__ import annotations

import struct

_HDR64 = struct.Struct("<QqHB")     # d_ino, d_off, d_reclen, d_type; then d_name + NUL
_HDR = struct.Struct("<QqH")        # d_ino, d_off, d_reclen; then d_name, NUL, pad, d_type


def _align8(n: int) -> int:
    return (n + 7) & ~7


def reclen64(name: bytes) -> int:
    return (len(name) + _HDR64.size + 1 + 7) & ~7


def reclen(name: bytes) -> int:
    return (len(name) + _HDR.size + 2 + 7) & ~7


# A getdents call packs every entry it returns: the loops below take one struct.pack and
# one padded copy of the name per record, with no call per record.
_pack64 = _HDR64.pack
_pack = _HDR.pack


# Records of recently listed entries. A record is a function of its Dirent's value alone,
# so a hit is always right; listings hand out the same Dirents pass after pass (tmpfs and
# gofer directories keep one per entry), so a directory read again packs nothing. Bounded
# by emptying it when full.
_records64: dict = {}
RECORD_CACHE_MAX = 4096


def pack_dirents64(entries) -> bytes:
    """struct linux_dirent64 records of `entries` (Dirents), back to back."""
    cache = _records64
    out = []
    for d in entries:
        rec = cache.get(d)
        if rec is None:
            ino, off, dtype, name = d
            n = (len(name) + 27) & ~7               # reclen64(name)
            rec = _pack64(ino, off, n, dtype) + name.ljust(n - 19, b"\0")  # NUL, padding
            if len(cache) >= RECORD_CACHE_MAX:
                cache.clear()
            cache[d] = rec
        out.append(rec)
    return b"".join(out)


def pack_dirents(entries) -> bytes:
    """struct linux_dirent records (d_type in the record's last byte), back to back."""
    out = []
    for ino, off, dtype, name in entries:
        n = (len(name) + 27) & ~7                   # reclen(name)
        out.append(_pack(ino, off, n))
        out.append(name.ljust(n - 19, b"\0"))        # name, NUL, padding up to d_type
        out.append(bytes((dtype,)))
    return b"".join(out)


def pack_dirent64(d) -> bytes:
    return pack_dirents64((d,))


def pack_dirent(d) -> bytes:
    return pack_dirents((d,))
