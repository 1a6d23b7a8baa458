"""The gofer's event loop: transports in, Session out.

One thread, one selector. Each connection owns a FrameDecoder, a Session and an output
queue. Every complete request is served immediately and its reply queued, so any number of
requests may be outstanding on a connection (pipelining). Replies are written without
blocking; while more than HIGH_WATER bytes wait to be sent, that connection is not read,
so a client that stops reading cannot make the gofer buffer without bound.

fd donation (documented protocol extension): on a unix-socket connection whose session
donates, the reply to Tlopen/Tlcreate of a regular file is sent with one SCM_RIGHTS fd in
the same sendmsg as the reply's first byte. The 9P bytes are unchanged; the presence of
the ancillary fd is the flag. A client that does not want fds simply never sees one on
TCP, and `--no-donate` turns donation off on unix sockets.

A connection is dropped on a framing error (size outside [7, msize]); a well-framed but
malformed request is answered with Rlerror(EINVAL) (EOPNOTSUPP for unknown types).
"""
import array
import collections
import errno
import os
import selectors
import socket

from .p9 import codec, messages as m
from .p9.errors import EncodeError, FramingError, MalformedMessage, UnknownMessage
from .p9.framing import FrameDecoder
from .session import Session

HIGH_WATER = 8 << 20
RECV_SIZE = 1 << 18


class Connection:
    def __init__(self, sock: socket.socket, session: Session, max_msize: int):
        self.sock = sock
        self.session = session
        self.decoder = FrameDecoder(max_msize)
        self.out: collections.deque = collections.deque()   # [memoryview, fd or None]
        self.out_bytes = 0
        self.events = selectors.EVENT_READ     # what the selector watches for us now
        self.closed = False

    def queue(self, frame: bytes, fd) -> None:
        self.out.append([memoryview(frame), fd])
        self.out_bytes += len(frame)

    def flush(self) -> None:
        """Send what the socket takes now; raises OSError if the peer is gone."""
        while self.out:
            item = self.out[0]
            view, fd = item
            try:
                if fd is not None:
                    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                  array.array("i", [fd]))]
                    sent = self.sock.sendmsg([view], ancillary, socket.MSG_NOSIGNAL)
                else:
                    sent = self.sock.send(view, socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                return
            if fd is not None:          # the fd went with the first byte; it is theirs now
                _close_quietly(fd)
                item[1] = None
            self.out_bytes -= sent
            if sent == len(view):
                self.out.popleft()
            else:
                item[0] = view[sent:]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for _, fd in self.out:
            if fd is not None:
                _close_quietly(fd)
        self.out.clear()
        self.session.close()
        self.sock.close()


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class Server:
    def __init__(self, export, *, donate: bool = True, log=None):
        self.export = export
        self.donate = donate
        self.log = log
        self.selector = selectors.DefaultSelector()
        self.connections: set = set()

    def add_connection(self, sock: socket.socket) -> Connection:
        sock.setblocking(False)
        donate = self.donate and sock.family == socket.AF_UNIX
        conn = Connection(sock, Session(self.export, donate=donate, log=self.log),
                          self.export.max_msize)
        self.connections.add(conn)
        self.selector.register(sock, selectors.EVENT_READ, conn)
        return conn

    def add_listener(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, None)

    def serve(self, *, until_idle: bool) -> None:
        """Run until stopped; with until_idle, return once no connection is left open
        (the production socketpair case: the sentry went away)."""
        while not (until_idle and not self.connections):
            self.poll()

    def poll(self, timeout: float | None = None) -> None:
        """One turn of the loop: wait up to `timeout` and serve whatever is ready."""
        for key, events in self.selector.select(timeout):
            if key.data is None:
                self._accept(key.fileobj)
            elif not key.data.closed:
                self._service(key.data, events)

    def _service(self, conn: Connection, events: int) -> None:
        try:
            if events & selectors.EVENT_READ:
                data = conn.sock.recv(RECV_SIZE)
                if not data:
                    self._drop(conn)
                    return
                conn.decoder.feed(data)
            self._serve_buffered(conn)
            conn.flush()
            if conn.out_bytes <= HIGH_WATER and conn.decoder.buffered:
                self._serve_buffered(conn)      # frames held back at the high-water mark
                conn.flush()
        except FramingError as exc:
            self._note(f"dropping connection: {exc}")
            self._drop(conn)
            return
        except OSError as exc:
            self._note(f"connection error: {exc}")
            self._drop(conn)
            return
        except Exception:                   # a gofer bug: lose this connection, not all
            import traceback                # here: it costs ms at every gofer start otherwise
            self._note(f"dropping connection after internal error:\n{traceback.format_exc()}")
            self._drop(conn)
            return
        events = selectors.EVENT_READ if conn.out_bytes <= HIGH_WATER else 0
        if conn.out:
            events |= selectors.EVENT_WRITE
        if events != conn.events:
            self.selector.modify(conn.sock, events, conn)
            conn.events = events

    def _serve_buffered(self, conn: Connection) -> None:
        """Answer every whole request buffered, stopping at the high-water mark."""
        while conn.out_bytes <= HIGH_WATER:
            try:
                msg = conn.decoder.next_message()
            except UnknownMessage as exc:
                self._answer_malformed(conn, exc, errno.EOPNOTSUPP)
                continue
            except MalformedMessage as exc:
                self._answer_malformed(conn, exc, errno.EINVAL)
                continue
            if msg is None:
                return
            reply, fd = conn.session.handle(msg)
            if isinstance(msg, m.Tversion) and conn.session.msize:
                conn.decoder.max_size = conn.session.msize
            try:
                frame = codec.encode(reply)
            except EncodeError as exc:      # e.g. a host name too long for a 9P string
                self._note(f"cannot encode reply: {exc}")
                if fd is not None:
                    _close_quietly(fd)
                frame, fd = codec.encode(m.Rlerror(msg.tag, errno.EIO)), None
            conn.queue(frame, fd)

    def _answer_malformed(self, conn: Connection, exc: MalformedMessage, code: int) -> None:
        self._note(f"malformed request: {exc}")
        if exc.tag is not None:
            conn.queue(codec.encode(m.Rlerror(exc.tag, code)), None)

    def _accept(self, listener) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        self.add_connection(sock)

    def _drop(self, conn: Connection) -> None:
        if conn.closed:
            return
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self.connections.discard(conn)
        conn.close()

    def _note(self, text: str) -> None:
        if self.log is not None:
            print(f"gofer: {text}", file=self.log, flush=True)
