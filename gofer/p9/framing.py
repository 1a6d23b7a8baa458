"""Incremental framing: bytes arrive in arbitrary pieces, whole messages come out.

    decoder = FrameDecoder(max_size=msize)
    decoder.feed(chunk)
    for msg in decoder: ...

Invariants: a frame is yielded only once all its `size` bytes are buffered; a size field
below the header size or above `max_size` is a FramingError and leaves the decoder broken
(every later call raises it again: the stream has lost sync). A frame whose body is bad
raises MalformedMessage *after* the frame was consumed, so the caller can answer it and
keep iterating.
"""
import struct

from . import codec
from .constants import HEADER_SIZE
from .errors import FramingError

_SIZE = struct.Struct("<I")


class FrameDecoder:
    __slots__ = ("max_size", "_buf", "_pos", "_broken")

    def __init__(self, max_size: int):
        self.max_size = max_size    # may be lowered after Tversion negotiates msize
        self._buf = bytearray()
        self._pos = 0
        self._broken: FramingError | None = None

    def feed(self, data) -> None:
        if self._broken is not None:
            raise self._broken
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._pos

    def next_frame(self) -> bytes | None:
        """The next whole frame, or None until more bytes arrive."""
        if self._broken is not None:
            raise self._broken
        if self.buffered < _SIZE.size:
            return None
        size = _SIZE.unpack_from(self._buf, self._pos)[0]
        if size < HEADER_SIZE or size > self.max_size:
            self._broken = FramingError(
                f"message size {size} outside [{HEADER_SIZE}, {self.max_size}]")
            raise self._broken
        if self.buffered < size:
            return None
        frame = bytes(self._buf[self._pos:self._pos + size])
        self._pos += size
        if self._pos * 2 > len(self._buf):
            # Compact once the consumed prefix dominates, keeping appends amortised O(1).
            del self._buf[:self._pos]
            self._pos = 0
        return frame

    def next_message(self):
        frame = self.next_frame()
        return None if frame is None else codec.decode(frame)

    def __iter__(self):
        while True:
            msg = self.next_message()
            if msg is None:
                return
            yield msg
