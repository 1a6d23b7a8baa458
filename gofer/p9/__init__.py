"""9P2000.L, sans-I/O: message classes, codec and framing shared by gofer and sentry.

The client (client.py) is imported explicitly: `from pysentry.gofer.p9.client import
Client`.
"""
from .codec import decode, encode
from .dirent import Dirent, decode_dirents, encode_dirent
from .errors import EncodeError, FramingError, MalformedMessage, ProtocolError, UnknownMessage
from .framing import FrameDecoder
from .messages import BY_NAME, BY_TYPE, Qid

__all__ = ["decode", "encode", "Dirent", "decode_dirents", "encode_dirent", "EncodeError",
           "FramingError", "MalformedMessage", "ProtocolError", "UnknownMessage",
           "FrameDecoder", "BY_NAME", "BY_TYPE", "Qid"]
