"""The gofer's event loop on a real socket: pipelining, flush, and hostile bytes.

Malformed but well-framed requests get Rlerror and the connection goes on; a frame whose
size is outside [7, msize] ends that connection; the gofer process survives all of it.
"""
import errno
import os
import selectors
import socket
import struct

import pytest

from pysentry.gofer import server as server_module
from pysentry.gofer import testing
from pysentry.gofer.export import Export
from pysentry.gofer.p9 import codec
from pysentry.gofer.p9 import constants as C
from pysentry.gofer.p9 import messages as m
from pysentry.gofer.p9.framing import FrameDecoder
from pysentry.gofer.server import Server


@pytest.fixture
def gofer(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"0123456789" * 1000)
    with testing.gofer_tcp(tmp_path, "--msize", "65536") as (port, proc):
        yield port, proc


class Raw:
    """A hand-driven 9P connection: send arbitrary bytes, receive decoded replies."""

    def __init__(self, port: int | None = None, sock: socket.socket | None = None):
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=10)
        self.decoder = FrameDecoder(1 << 20)

    def send(self, *msgs_or_bytes) -> None:
        self.sock.sendall(b"".join(x if isinstance(x, bytes) else codec.encode(x)
                                   for x in msgs_or_bytes))

    def recv(self):
        while (msg := self.decoder.next_message()) is None:
            data = self.sock.recv(1 << 16)
            if not data:
                return None
            self.decoder.feed(data)
        return msg

    def handshake(self) -> None:
        self.send(m.Tversion(C.NOTAG, 65536, "9P2000.L"),
                  m.Tattach(1, 0, C.NOFID, "", "", 0))
        assert self.recv() == m.Rversion(C.NOTAG, 65536, "9P2000.L")
        assert isinstance(self.recv(), m.Rattach)

    def close(self) -> None:
        self.sock.close()


def test_many_outstanding_requests_are_all_answered(gofer):
    port, _ = gofer
    c = Raw(port)
    try:
        c.handshake()
        c.send(m.Twalk(2, 0, 1, ["f.txt"]), m.Tlopen(3, 1, os.O_RDONLY))
        assert isinstance(c.recv(), m.Rwalk) and isinstance(c.recv(), m.Rlopen)
        requests = [m.Tread(100 + i, 1, i * 10, 10) for i in range(200)]
        requests.insert(50, m.Tflush(99, 120))
        c.send(*requests)
        replies = {}
        for _ in requests:
            r = c.recv()
            replies[r.tag] = r
        assert replies[99] == m.Rflush(99)
        for i in range(200):
            assert replies[100 + i] == m.Rread(100 + i, b"0123456789")
    finally:
        c.close()


def test_malformed_requests_get_rlerror_and_the_connection_goes_on(gofer):
    port, proc = gofer
    c = Raw(port)
    try:
        c.handshake()
        short_tread = struct.pack("<IBHI", 11, 116, 7, 0)                     # body too short
        trailing = codec.encode(m.Tclunk(8, 99))[:-4] + b"\x63\0\0\0junk"
        trailing = struct.pack("<I", len(trailing)) + trailing[4:]
        bad_walk = struct.pack("<IBHIIH", 17, 110, 9, 0, 1, 40)                # 40 names
        unknown = struct.pack("<IBHI", 11, 112, 10, 0)                        # 9P2000 Topen
        a_reply = codec.encode(m.Rclunk(11))
        c.send(short_tread, trailing, bad_walk, unknown, a_reply, m.Tgetattr(12, 0, 0x7FF))
        assert c.recv() == m.Rlerror(7, errno.EINVAL)
        assert c.recv() == m.Rlerror(8, errno.EINVAL)
        assert c.recv() == m.Rlerror(9, errno.EINVAL)
        assert c.recv() == m.Rlerror(10, errno.EOPNOTSUPP)
        assert c.recv() == m.Rlerror(11, errno.EINVAL)
        assert isinstance(c.recv(), m.Rgetattr)
        assert proc.poll() is None
    finally:
        c.close()


@pytest.mark.parametrize("bad_size", [0, 6, 65537, 0xFFFFFFFF])
def test_bad_frame_sizes_close_only_that_connection(gofer, bad_size):
    port, proc = gofer
    c = Raw(port)
    other = Raw(port)
    try:
        c.handshake()
        other.handshake()
        c.send(struct.pack("<IBH", bad_size, 116, 1) + b"\0" * 32)
        assert c.recv() is None                         # dropped: the stream lost sync
        other.send(m.Tgetattr(5, 0, 0x7FF))
        assert isinstance(other.recv(), m.Rgetattr)     # everyone else is still served
        assert proc.poll() is None
    finally:
        c.close()
        other.close()


def test_requests_before_version_and_garbage_then_disconnect(gofer):
    port, proc = gofer
    c = Raw(port)
    try:
        c.send(m.Tattach(1, 0, C.NOFID, "", "", 0))
        assert c.recv() == m.Rlerror(1, errno.EPROTO)
        c.sock.sendall(os.urandom(3))                   # half a size field, then hang up
    finally:
        c.close()
    c = Raw(port)
    try:
        c.handshake()
    finally:
        c.close()
    assert proc.poll() is None


def test_a_client_that_does_not_read_is_not_buffered_without_bound(tmp_path, monkeypatch):
    # The loop driven turn by turn in-process: once more than HIGH_WATER bytes of
    # replies wait for a peer that does not read, the gofer stops taking its requests.
    monkeypatch.setattr(server_module, "HIGH_WATER", 64 << 10)
    (tmp_path / "blob").write_bytes(b"x" * 1000)
    export = Export(os.open(tmp_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
    server = Server(export)
    ours, theirs = socket.socketpair()
    conn = server.add_connection(theirs)
    try:
        c = Raw(sock=ours)
        c.send(m.Tversion(C.NOTAG, 65536, "9P2000.L"), m.Tattach(1, 0, C.NOFID, "", "", 0),
               m.Twalk(2, 0, 1, ["blob"]), m.Tlopen(3, 1, os.O_RDONLY))
        server.poll(0)
        for _ in range(4):
            assert not isinstance(c.recv(), m.Rlerror)
        request = codec.encode(m.Tread(4, 1, 0, 1000))
        payload = memoryview(request * 20000)
        ours.setblocking(False)
        pos = 0
        for _ in range(200):
            try:
                pos += ours.send(payload[pos:pos + 4096])
            except BlockingIOError:
                pass
            server.poll(0)
            # bounded: at most one reply past the mark, plus what the kernel took
            assert conn.out_bytes <= server_module.HIGH_WATER + 1011
        assert pos < len(payload)                       # our sends were refused at last
        key = server.selector.get_key(theirs)
        assert not key.events & selectors.EVENT_READ    # the gofer stopped reading us
        answered = 0
        while answered < pos // len(request):           # drain: the gofer catches up
            server.poll(0)
            try:
                c.decoder.feed(ours.recv(1 << 20))
            except BlockingIOError:
                continue
            while (msg := c.decoder.next_message()) is not None:
                assert msg == m.Rread(4, b"x" * 1000)
                answered += 1
    finally:
        ours.close()
        for connection in list(server.connections):
            server._drop(connection)
        os.close(export.root_fd)
        os.close(export.procfds.fd)
