"""Whole-frame encode/decode: header size[4] type[1] tag[2], then the body.

Sans-I/O: bytes in, message objects out, and back. Framing a byte stream into frames is
framing.py's job; this module handles exactly one frame at a time.

Bodies go through the hand-written hot-path codecs (fastpath.py) when there is one, else
the general table-driven codec (tablecodec.py). `reference=True` uses the construct codec
(construct_bodies.py) instead, imported only then: it is the independent oracle the tests
compare against, never on a runtime path (construct is slow to import and large).
"""
import struct

from . import fastpath, tablecodec
from .constants import HEADER_SIZE
from .errors import EncodeError, MalformedMessage, UnknownMessage
from .messages import BY_TYPE

_HEADER = struct.Struct("<IBH")


def _general(reference: bool):
    if reference:
        from . import construct_bodies
        return construct_bodies
    return tablecodec


def encode(msg, *, use_fastpath: bool = True, reference: bool = False) -> bytes:
    """The frame for `msg`. Raises EncodeError if a field does not fit on the wire."""
    encoder = fastpath.ENCODERS.get(msg.TYPE) if use_fastpath and not reference else None
    if encoder is not None:
        try:
            return encoder(msg)
        except (struct.error, TypeError, AttributeError, UnicodeError) as exc:
            raise EncodeError(f"cannot encode {type(msg).__name__}: {exc}") from None
    body = _general(reference).encode_body(msg)
    try:
        return _HEADER.pack(HEADER_SIZE + len(body), msg.TYPE, msg.tag) + body
    except (struct.error, TypeError) as exc:
        raise EncodeError(f"cannot encode {type(msg).__name__} header: {exc}") from None


def parse_header(frame) -> tuple:
    """(size, type, tag) of a frame; MalformedMessage if shorter than a header."""
    if len(frame) < HEADER_SIZE:
        raise MalformedMessage(f"frame of {len(frame)} bytes is shorter than a header")
    return _HEADER.unpack_from(frame)


def decode(frame, *, use_fastpath: bool = True, reference: bool = False):
    """The message in `frame`, which must be exactly one whole frame."""
    size, msg_type, tag = parse_header(frame)
    if size != len(frame):
        raise MalformedMessage(f"size field {size} but frame is {len(frame)} bytes",
                               msg_type, tag)
    cls = BY_TYPE.get(msg_type)
    if cls is None:
        raise UnknownMessage(f"unknown message type {msg_type}", msg_type, tag)
    body = memoryview(frame)[HEADER_SIZE:]
    decoder = fastpath.DECODERS.get(msg_type) if use_fastpath and not reference else None
    if decoder is not None:
        return decoder(tag, body)
    return _general(reference).decode_body(cls, tag, body)
