"""Directory entries carried in Rreaddir data: qid[13] offset[8] type[1] name[s].

`offset` is the cookie to pass as Treaddir.offset to continue *after* this entry; `type` is
the Linux DT_* value of the entry.
"""
import struct
from typing import NamedTuple

from .errors import EncodeError, MalformedMessage
from .messages import Qid, Rreaddir

_FIXED = struct.Struct("<BIQQBH")   # qid, offset, type, name length


class Dirent(NamedTuple):
    qid: Qid
    offset: int
    type: int
    name: str


def encode_dirent(entry: Dirent) -> bytes:
    raw = entry.name.encode("utf-8", "surrogateescape")
    if len(raw) > 0xFFFF:
        raise EncodeError("dirent name longer than 65535 bytes")
    try:
        return _FIXED.pack(*entry.qid, entry.offset, entry.type, len(raw)) + raw
    except struct.error as exc:
        raise EncodeError(f"cannot encode dirent: {exc}") from None


def decode_dirents(data) -> list:
    """All entries in `data`; MalformedMessage if it does not hold a whole number of them."""
    entries = []
    pos = 0
    view = memoryview(data)
    while pos < len(view):
        if pos + _FIXED.size > len(view):
            raise MalformedMessage("Rreaddir: truncated entry", Rreaddir.TYPE)
        qtype, version, path, offset, dtype, length = _FIXED.unpack_from(view, pos)
        pos += _FIXED.size
        if pos + length > len(view):
            raise MalformedMessage("Rreaddir: truncated name", Rreaddir.TYPE)
        name = bytes(view[pos:pos + length]).decode("utf-8", "surrogateescape")
        pos += length
        entries.append(Dirent(Qid(qtype, version, path), offset, dtype, name))
    return entries


def dirent_size(name: str) -> int:
    return _FIXED.size + len(name.encode("utf-8", "surrogateescape"))
