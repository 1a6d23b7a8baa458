"""Protocol errors of the 9P codec.

Every way a byte stream can be wrong maps to one of these, never to an IndexError or a
struct.error escaping from the codec:

- FramingError: the stream itself is unusable (size field below the header size or above
  msize). The peer and we no longer agree where messages start; the connection must close.
- MalformedMessage: one frame was delimited correctly but its body is wrong (short,
  trailing garbage, a count that disagrees with the bytes, an out-of-range field). The
  frame has been consumed; a server may answer Rlerror(EINVAL) for `tag` and go on.
- UnknownMessage: a well-framed message of a type 9P2000.L does not define.
- EncodeError: a value we were asked to put on the wire does not fit its field.
"""


class ProtocolError(Exception):
    """Base class of everything the codec raises about bad protocol data."""


class FramingError(ProtocolError):
    pass


class MalformedMessage(ProtocolError):
    def __init__(self, reason: str, msg_type: int | None = None, tag: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.msg_type = msg_type
        self.tag = tag


class UnknownMessage(MalformedMessage):
    pass


class EncodeError(ProtocolError, ValueError):
    pass
