"""Message bodies described with construct, derived from the table in messages.py.

This is the general codec: every 9P2000.L message can be built and parsed here. The hot
messages additionally have hand-written `struct` codecs in fastpath.py (construct costs
tens of microseconds per message, see bench_codec.py); tests check both agree.
"""
from construct import (Adapter, ConstructError, GreedyBytes, Int8ul, Int16ul, Int32ul,
                       Int64ul, Prefixed, PrefixedArray, Struct, Terminated)

from .constants import MAXWELEM
from .errors import EncodeError, MalformedMessage
from .messages import BY_TYPE, Qid


class _Text(Adapter):
    """length[2] + bytes, presented as str (UTF-8 with surrogateescape: lossless)."""

    def _decode(self, obj, context, path):
        return bytes(obj).decode("utf-8", "surrogateescape")

    def _encode(self, obj, context, path):
        if isinstance(obj, str):
            return obj.encode("utf-8", "surrogateescape")
        return bytes(obj)


class _QidAdapter(Adapter):
    def _decode(self, obj, context, path):
        return Qid(obj.type, obj.version, obj.path)

    def _encode(self, obj, context, path):
        qtype, version, qpath = obj
        return {"type": qtype, "version": version, "path": qpath}


class _Data(Adapter):
    def _decode(self, obj, context, path):
        return bytes(obj)

    def _encode(self, obj, context, path):
        return bytes(obj)


TEXT = _Text(Prefixed(Int16ul, GreedyBytes))
QID = _QidAdapter(Struct("type" / Int8ul, "version" / Int32ul, "path" / Int64ul))

KINDS = {
    "u8": Int8ul,
    "u16": Int16ul,
    "u32": Int32ul,
    "u64": Int64ul,
    "str": TEXT,
    "qid": QID,
    "names": PrefixedArray(Int16ul, TEXT),
    "qids": PrefixedArray(Int16ul, QID),
    "data": _Data(Prefixed(Int32ul, GreedyBytes)),
}

# Terminated makes trailing bytes after the last field an error instead of being ignored.
BODIES = {
    type_no: Struct(*(name / KINDS[kind] for name, kind in cls.FIELDS), Terminated)
    for type_no, cls in BY_TYPE.items()
}

_ARRAY_KINDS = ("names", "qids")


def encode_body(msg) -> bytes:
    for name, kind in msg.FIELDS:
        if kind in _ARRAY_KINDS and len(getattr(msg, name)) > MAXWELEM:
            raise EncodeError(f"{type(msg).__name__}.{name}: more than {MAXWELEM} elements")
    try:
        return BODIES[msg.TYPE].build(msg._asdict())
    except (ConstructError, TypeError, ValueError, UnicodeError) as exc:
        raise EncodeError(f"cannot encode {type(msg).__name__}: {exc}") from None


def decode_body(cls, tag: int, body) -> object:
    try:
        parsed = BODIES[cls.TYPE].parse(bytes(body))
    except ConstructError as exc:
        raise MalformedMessage(f"{cls.__name__}: {exc.__class__.__name__}", cls.TYPE, tag) \
            from None
    values = [parsed[name] for name, _ in cls.FIELDS]
    for (name, kind), value in zip(cls.FIELDS, values):
        if kind in _ARRAY_KINDS:
            if len(value) > MAXWELEM:
                raise MalformedMessage(f"{cls.__name__}: {len(value)} {name} > {MAXWELEM}",
                                       cls.TYPE, tag)
    return cls(tag, *(list(v) if kind in _ARRAY_KINDS else v
                      for (_, kind), v in zip(cls.FIELDS, values)))
