"""The general body codec, built with `struct` from the table in messages.py.

Every 9P2000.L message body can be encoded and decoded here. It replaces construct on every
runtime path: importing construct costs about 7 MiB of resident memory and a good part of a
second interpreter-start per process (the sentry and each gofer), for messages that are
mostly sent once (Tversion, Tattach). construct_bodies.py stays as the independent
reference codec: tests check this codec against it byte for byte, including what each one
refuses.

Each message layout is compiled once (on first use) into steps: a run of fixed-size fields (integers and
qids) becomes one `struct.Struct`; each counted field (str, names, qids, data) is a step of
its own. Decoding checks every count against the bytes that are really there and that the
body ends exactly where the last field does.
"""
import struct

from .constants import MAXWELEM
from .errors import EncodeError, MalformedMessage
from .messages import BY_TYPE, Qid

_FIXED_FORMATS = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "qid": "BIQ"}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_QID = struct.Struct("<BIQ")


class _Short(Exception):
    """Raised inside a decode step; turned into MalformedMessage with the message's name."""


def _text(value) -> bytes:
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    if len(raw) > 0xFFFF:
        raise EncodeError("string longer than 65535 bytes")
    return raw


def _read_text(body, pos):
    if pos + 2 > len(body):
        raise _Short("short string length")
    length = _U16.unpack_from(body, pos)[0]
    pos += 2
    if pos + length > len(body):
        raise _Short(f"string of {length} bytes runs past the end")
    return bytes(body[pos:pos + length]).decode("utf-8", "surrogateescape"), pos + length


def _read_count(body, pos, fmt, what):
    if pos + fmt.size > len(body):
        raise _Short(f"short {what} count")
    return fmt.unpack_from(body, pos)[0], pos + fmt.size


# --- steps: (encode(msg) -> list of bytes, decode(body, pos, out) -> pos) ---------------

def _fixed_step(fields):
    """A run of fixed-size fields: `fields` is a list of (index in the tuple, kind)."""
    layout = struct.Struct("<" + "".join(_FIXED_FORMATS[kind] for _, kind in fields))
    kinds = [kind for _, kind in fields]

    def encode(msg, parts):
        values = []
        for index, kind in fields:
            value = msg[index]
            if kind == "qid":
                qtype, version, qpath = value
                values += (qtype, version, qpath)
            else:
                values.append(value)
        parts.append(layout.pack(*values))

    def decode(body, pos, out):
        if pos + layout.size > len(body):
            raise _Short(f"body ends inside fixed fields ({len(body) - pos} of "
                         f"{layout.size} bytes)")
        values = layout.unpack_from(body, pos)
        i = 0
        for kind in kinds:
            if kind == "qid":
                out.append(Qid(values[i], values[i + 1], values[i + 2]))
                i += 3
            else:
                out.append(values[i])
                i += 1
        return pos + layout.size

    return encode, decode


def _str_step(index):
    def encode(msg, parts):
        raw = _text(msg[index])
        parts.append(_U16.pack(len(raw)))
        parts.append(raw)

    def decode(body, pos, out):
        text, pos = _read_text(body, pos)
        out.append(text)
        return pos

    return encode, decode


def _names_step(index):
    def encode(msg, parts):
        names = msg[index]
        if len(names) > MAXWELEM:
            raise EncodeError(f"more than {MAXWELEM} names")
        parts.append(_U16.pack(len(names)))
        for name in names:
            raw = _text(name)
            parts.append(_U16.pack(len(raw)))
            parts.append(raw)

    def decode(body, pos, out):
        count, pos = _read_count(body, pos, _U16, "name")
        if count > MAXWELEM:
            raise _Short(f"{count} names > {MAXWELEM}")
        names = []
        for _ in range(count):
            name, pos = _read_text(body, pos)
            names.append(name)
        out.append(names)
        return pos

    return encode, decode


def _qids_step(index):
    def encode(msg, parts):
        qids = msg[index]
        if len(qids) > MAXWELEM:
            raise EncodeError(f"more than {MAXWELEM} qids")
        parts.append(_U16.pack(len(qids)))
        for qtype, version, qpath in qids:
            parts.append(_QID.pack(qtype, version, qpath))

    def decode(body, pos, out):
        count, pos = _read_count(body, pos, _U16, "qid")
        if count > MAXWELEM:
            raise _Short(f"{count} qids > {MAXWELEM}")
        if pos + count * _QID.size > len(body):
            raise _Short(f"{count} qids run past the end")
        out.append([Qid(*_QID.unpack_from(body, pos + i * _QID.size)) for i in range(count)])
        return pos + count * _QID.size

    return encode, decode


def _data_step(index):
    def encode(msg, parts):
        data = bytes(msg[index])
        parts.append(_U32.pack(len(data)))
        parts.append(data)

    def decode(body, pos, out):
        count, pos = _read_count(body, pos, _U32, "data")
        if pos + count > len(body):
            raise _Short(f"data count {count} but {len(body) - pos} bytes follow")
        out.append(bytes(body[pos:pos + count]))
        return pos + count

    return encode, decode


_COUNTED_STEPS = {"str": _str_step, "names": _names_step, "qids": _qids_step,
                  "data": _data_step}


def _compile(cls) -> tuple:
    steps, run = [], []
    for offset, (_, kind) in enumerate(cls.FIELDS):
        index = offset + 1                  # field 0 of every message tuple is the tag
        if kind in _FIXED_FORMATS:
            run.append((index, kind))
            continue
        if run:
            steps.append(_fixed_step(run))
            run = []
        steps.append(_COUNTED_STEPS[kind](index))
    if run:
        steps.append(_fixed_step(run))
    return tuple(steps)


# Compiled on first use: most message types never occur in a given process.
_PLANS: dict = {}


def _plan(cls) -> tuple:
    plan = _PLANS.get(cls.TYPE)
    if plan is None:
        plan = _PLANS[cls.TYPE] = _compile(BY_TYPE[cls.TYPE])
    return plan


def encode_body(msg) -> bytes:
    """The body of `msg` (no header). EncodeError if a field does not fit on the wire."""
    parts = []
    try:
        for encode, _ in _plan(msg):
            encode(msg, parts)
    except EncodeError as exc:
        raise EncodeError(f"cannot encode {type(msg).__name__}: {exc}") from None
    except (struct.error, TypeError, ValueError, AttributeError, IndexError) as exc:
        # ValueError covers UnicodeError (unencodable surrogates) and wrong qid shapes.
        raise EncodeError(f"cannot encode {type(msg).__name__}: {exc}") from None
    return b"".join(parts)


def decode_body(cls, tag: int, body) -> object:
    """The message of class `cls` in `body` (header stripped), which it must fill exactly."""
    out = [tag]
    pos = 0
    try:
        for _, decode in _plan(cls):
            pos = decode(body, pos, out)
    except _Short as exc:
        raise MalformedMessage(f"{cls.__name__}: {exc}", cls.TYPE, tag) from None
    if pos != len(body):
        raise MalformedMessage(f"{cls.__name__}: {len(body) - pos} trailing bytes",
                               cls.TYPE, tag)
    return cls(*out)
