"""AF_UNIX sockets: endpoints, their queues and names, and the socket file description.

The model follows Linux's net/unix/af_unix.c; where the two could differ, the behaviour
was checked against a native 6.x kernel (tests/test_unix_sockets.py keeps those checks).

Objects
  - `UnixEndpoint` is one socket's kernel state (Linux's struct unix_sock): type, state,
    peer, receive queue, bound name, shutdown bits, pending error, send-buffer accounting.
  - `UnixSocketFile` is the open file description over an endpoint. The server side of a
    connection is created by connect() as an "embryo" endpoint with no file; accept()
    gives it one.
  - `UnixDomain` is the per-kernel state of the family: the abstract namespace, the
    autobind counter, and the count of sockets in flight inside SCM_RIGHTS messages,
    which its garbage collector uses to free unreachable cycles of sockets.

Invariants
  - Stream and seqpacket endpoints connect in pairs (`a.peer is b` and `b.peer is a`); a
    datagram endpoint's `peer` is one-way (the default destination). A dead peer stays
    referenced by the survivor (getpeername still answers), as on Linux.
  - A listener's queue holds embryos; every other queue holds `Message`s. A message owns
    one reference on each description it carries (SCM_RIGHTS) until it is received or
    discarded.
  - Flow control is the sender's: each queued message charges its `truesize` to the
    sending endpoint's `wmem`, returned when the receiver consumes it. A sender may queue
    while wmem < SO_SNDBUF and is woken ("writable") once wmem <= SO_SNDBUF / 4. A
    datagram receiver also refuses more than MAX_DGRAM_QLEN + 1 queued messages from
    senders that are not its own peer.

This module never touches user memory or tasks: the syscall layer (syscalls/socket.py)
decodes addresses, iovecs and control messages and hands over Python values; a caller's
identity arrives as a `SocketCaller`.
"""
from __future__ import annotations

import errno
import itertools
import stat as _st
from collections import deque
from typing import NamedTuple

from ..kernel.errors import SysError, WouldBlock
from ..kernel.wait import (ALL_EVENTS, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP,
                           POLLRDNORM, POLLWRBAND, POLLWRNORM, WaitQueue)
from . import iov
from .anon import AnonFS, AnonInode
from .file import FIONREAD, O_NONBLOCK, O_RDWR, FileDescription

AF_UNSPEC, AF_UNIX = 0, 1
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET = 1, 2, 3, 5
SOL_SOCKET = 1
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2

MSG_OOB, MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT = 0x1, 0x2, 0x20, 0x40
MSG_EOR, MSG_WAITALL, MSG_NOSIGNAL, MSG_CMSG_CLOEXEC = 0x80, 0x100, 0x4000, 0x40000000
MSG_CTRUNC = 0x8

RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK = 1, 2, 3

SOCKFS_MAGIC = 0x534F434B
SOCKFS = AnonFS("sockfs", SOCKFS_MAGIC)

SUN_PATH_MAX = 108
SOCKADDR_UN_SIZE = 2 + SUN_PATH_MAX

# Sizes a Linux kernel uses by default (net.core.{w,r}mem_default/_max, net.unix.*).
# They are fixed here rather than read from the host, so a sandbox behaves the same
# everywhere.
WMEM_DEFAULT = RMEM_DEFAULT = 212992
WMEM_MAX = RMEM_MAX = 212992
SOCK_MIN_SNDBUF = 4608
SOCK_MIN_RCVBUF = 2304
MAX_DGRAM_QLEN = 10
SOMAXCONN = 4096
SCM_MAX_FD = 253
# A stream write is cut into messages of at most this many bytes (Linux: one page of
# linear data plus 32 KiB of fragments), each also at most half the send buffer.
STREAM_CHUNK = 36544
# Bookkeeping charged per message on top of its data, rounded like skb truesize; with
# it, the number of small messages that fit in a default send buffer matches Linux (278).
SKB_OVERHEAD = 704
# Bound on descriptions travelling in SCM_RIGHTS messages in one sandbox at a time, so a
# program cannot grow the sentry without limit (Linux bounds it per user).
MAX_INFLIGHT = 1 << 16

EV_IN = POLLIN | POLLRDNORM
EV_OUT = POLLOUT | POLLWRNORM | POLLWRBAND

CLOSED, LISTENING, CONNECTED = "closed", "listening", "connected"


def truesize(n: int) -> int:
    return SKB_OVERHEAD + ((n + 63) & ~63)


class WaitOn(WouldBlock):
    """WouldBlock whose wake-up comes from another queue than the file's own (a connect
    waiting for room in a listener's backlog, a datagram for room in a receiver's queue)."""
    __slots__ = ("queue",)

    def __init__(self, events: int, queue: WaitQueue):
        super().__init__(events)
        self.queue = queue


class SocketCaller(NamedTuple):
    """Who performs a socket operation: the path context for names in the file system,
    the thread group id, and the real and effective ids."""
    ctx: object
    pid: int
    uid: int
    gid: int
    euid: int
    egid: int

    @property
    def scm_creds(self) -> tuple:
        """What SCM_CREDENTIALS says about a message that names no credentials: Linux
        uses the real ids."""
        return (self.pid, self.uid, self.gid)

    @property
    def peer_creds(self) -> tuple:
        """What SO_PEERCRED reports (the effective ids)."""
        return (self.pid, self.euid, self.egid)


class Control(NamedTuple):
    """Ancillary data of one send: descriptions to pass and the credentials to claim
    (already validated by the syscall layer), or None for the sender's own."""
    rights: tuple = ()
    creds: tuple | None = None


NO_PEER_CREDS = (0, 0xFFFFFFFF, 0xFFFFFFFF)     # SO_PEERCRED of a socket without a peer


# -- addresses ------------------------------------------------------------------------
def parse_address(raw: bytes, for_bind: bool = False):
    """A sockaddr_un from user space -> the name: a path (no NUL), or an abstract name
    (starting with NUL, every byte significant). For bind, a bare family means "autobind"
    and is returned as None."""
    if len(raw) < 2 or len(raw) > SOCKADDR_UN_SIZE:
        raise SysError(errno.EINVAL)
    if int.from_bytes(raw[:2], "little") != AF_UNIX:
        raise SysError(errno.EINVAL)
    path = raw[2:]
    if not path:
        if for_bind:
            return None
        raise SysError(errno.EINVAL)
    if path[0] == 0:
        return bytes(path)
    return bytes(path).split(b"\0", 1)[0]


def pack_address(name: bytes | None) -> bytes:
    """The sockaddr_un getsockname/accept/recvfrom report: a path name comes back with its
    terminating NUL (even one that filled sun_path), an abstract name exactly as bound."""
    family = AF_UNIX.to_bytes(2, "little")
    if name is None:
        return family
    if name[:1] == b"\0":
        return family + name
    return family + name + b"\0"


# -- messages ---------------------------------------------------------------------------
class Message:
    """One queued send (Linux: one skb). `off` is how much of a stream message the reader
    has already consumed; `sender` is charged `charge` bytes until the message goes."""
    __slots__ = ("data", "off", "rights", "creds", "sender", "charge")

    def __init__(self, data: bytes, rights, creds: tuple, sender, charge: int):
        self.data = data
        self.off = 0
        self.rights = list(rights) if rights else None
        self.creds = creds
        self.sender = sender
        self.charge = charge

    @property
    def remaining(self) -> int:
        return len(self.data) - self.off


class RecvState:
    """What one receive collected besides the bytes: the descriptions (each with a
    reference the caller must drop), the credentials and sender name of the data, the
    msg_flags to report, the full length of a datagram, and whether a stream read must
    stop here (a credentials or SCM_RIGHTS boundary)."""
    __slots__ = ("rights", "creds", "addr", "msg_flags", "full_length", "stop")

    def __init__(self):
        self.rights = []
        self.creds = None
        self.addr = None
        self.msg_flags = 0
        self.full_length = 0
        self.stop = False

    def drop_rights(self) -> None:
        rights, self.rights = self.rights, []
        for desc in rights:
            drop(desc)


# -- the per-kernel family state ----------------------------------------------------------
class UnixDomain:
    """The abstract namespace ((name, type) -> endpoint: Linux hashes the type into the
    key, so a stream and a datagram socket may share an abstract name), path names (held
    by the VFS), the autobind counter and the in-flight socket count for the GC."""

    def __init__(self, vfs):
        self.vfs = vfs
        self.abstract: dict = {}
        self._autobind = itertools.count(0)
        self.inflight: dict = {}      # UnixSocketFile -> number of messages carrying it
        self.inflight_total = 0       # every description in flight, sockets or not
        self._collecting = False
        self._again = False

    # -- names ------------------------------------------------------------------------
    def bind(self, caller: SocketCaller, ep: "UnixEndpoint", name: bytes | None) -> None:
        if ep.name is not None:
            if name and name[:1] != b"\0":
                # Linux creates the node before it notices the socket is already named:
                # a taken path is EADDRINUSE (and a bad one its walk error) first.
                try:
                    self.vfs.stat(caller.ctx, None, name, follow=False)
                except SysError as e:
                    if e.errno != errno.ENOENT:
                        raise
                else:
                    raise SysError(errno.EADDRINUSE)
            raise SysError(errno.EINVAL)
        if name is None:
            self.autobind(ep)
            return
        if name[:1] == b"\0":
            key = (name, ep.type)
            if key in self.abstract:
                raise SysError(errno.EADDRINUSE)
            self.abstract[key] = ep
        else:
            ep.bound_at = self.vfs.bind_socket(caller.ctx, None, name, 0o777, ep)
        ep.name = name

    def autobind(self, ep: "UnixEndpoint") -> None:
        """A fresh abstract name of five hex digits, as Linux gives unnamed sockets that
        need one (SO_PASSCRED senders, bind with only a family)."""
        for _ in range(0x100000):
            name = b"\0%05x" % (next(self._autobind) & 0xFFFFF)
            if (name, ep.type) not in self.abstract:
                self.abstract[(name, ep.type)] = ep
                ep.name = name
                return
        raise SysError(errno.ENOSPC)

    def unbind(self, ep: "UnixEndpoint") -> None:
        if ep.name is None:
            return
        key = (ep.name, ep.type)
        if self.abstract.get(key) is ep:
            del self.abstract[key]
        if ep.bound_at is not None:
            self.vfs.unbind_socket(ep.bound_at)
            ep.bound_at = None

    def lookup(self, caller: SocketCaller, name: bytes, sock_type: int) -> "UnixEndpoint":
        if name[:1] == b"\0":
            ep = self.abstract.get((name, sock_type))
            if ep is None or ep.dead:
                raise SysError(errno.ECONNREFUSED)
            return ep
        ep = self.vfs.connect_socket(caller.ctx, None, name)
        if ep.dead:
            raise SysError(errno.ECONNREFUSED)
        if ep.type != sock_type:
            raise SysError(errno.EPROTOTYPE)
        return ep

    # -- descriptions in flight --------------------------------------------------------
    def reserve_inflight(self, count: int) -> None:
        if self.inflight_total + count > MAX_INFLIGHT:
            raise SysError(errno.ETOOMANYREFS)

    def add_inflight(self, rights) -> None:
        self.inflight_total += len(rights)
        for desc in rights:
            if isinstance(desc, UnixSocketFile):
                self.inflight[desc] = self.inflight.get(desc, 0) + 1

    def remove_inflight(self, rights) -> None:
        self.inflight_total -= len(rights)
        for desc in rights:
            if isinstance(desc, UnixSocketFile):
                n = self.inflight.get(desc, 0) - 1
                if n > 0:
                    self.inflight[desc] = n
                else:
                    self.inflight.pop(desc, None)

    def collect(self) -> None:
        """Free sockets that only messages in unreachable sockets still refer to.

        Candidates are in-flight sockets all of whose references are in-flight ones.
        A candidate referred to from outside the candidates (a file descriptor, a message
        in a live socket) is alive, and so is everything in its queue. What remains is
        a closed world referring only to itself: its queues are emptied, which drops the
        references and lets the sockets be released."""
        if self._collecting:
            self._again = True
            return
        self._collecting = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._collect_once()
        finally:
            self._collecting = False

    def _collect_once(self) -> None:
        cands = {f for f, n in self.inflight.items() if f.refs == n}
        if not cands:
            return
        internal: dict = {}
        for f in cands:
            for g in f.ep.queued_rights():
                if g in cands:
                    internal[g] = internal.get(g, 0) + 1
        alive = [f for f in cands if f.refs > internal.get(f, 0)]
        seen = set(alive)
        while alive:
            for g in alive.pop().ep.queued_rights():
                if g in cands and g not in seen:
                    seen.add(g)
                    alive.append(g)
        garbage = cands - seen
        doomed = []
        for f in garbage:
            doomed += f.ep.take_queue()
        for item in doomed:
            discard(item)


def discard(item) -> None:
    """Throw away a queued message (or a never-accepted embryo)."""
    if isinstance(item, UnixEndpoint):
        item.release(embryo=True)
        return
    item.sender.uncharge(item.charge)
    rights, item.rights = item.rights, None
    if rights:
        item.sender.domain.remove_inflight(rights)
        for desc in rights:
            drop(desc)


_to_drop: deque = deque()
_to_collect: set = set()
_dropping = False


def drop(desc) -> None:
    """decref() a description that came out of a message. A socket released here may
    hold messages carrying further sockets, and so on: the work list keeps that chain
    from becoming a recursion as deep as a program cares to make it. Collections asked
    for meanwhile run once the list is empty."""
    global _dropping
    _to_drop.append(desc)
    if _dropping:
        return
    _dropping = True
    try:
        while _to_drop or _to_collect:
            if _to_drop:
                _to_drop.popleft().decref()
            else:
                _to_collect.pop().collect()
    finally:
        _dropping = False


# -- the endpoint ---------------------------------------------------------------------------
class UnixEndpoint:
    def __init__(self, domain: UnixDomain, sock_type: int):
        self.domain = domain
        self.type = sock_type
        self.state = CLOSED
        self.peer: UnixEndpoint | None = None
        self.queue: deque = deque()
        self.name: bytes | None = None
        self.bound_at = None           # Location of the socket node of a path name
        self.shutdown = 0
        self.err = 0
        self.backlog = 0
        self.wmem = 0
        self.sndbuf = WMEM_DEFAULT
        self.rcvbuf = RMEM_DEFAULT
        self.passcred = False
        self.peercred: tuple | None = None
        self.dead = False
        self.waitqueue = WaitQueue()   # readiness of this socket (its file's queue)
        self.peer_wait = WaitQueue()   # senders/connectors waiting for room in our queue
        # Datagram senders whose poll found our queue full: told when it drains.
        self.full_watchers: set = set()

    @property
    def connection_based(self) -> bool:
        return self.type != SOCK_DGRAM

    # -- accounting --------------------------------------------------------------------
    def writable(self) -> bool:
        return self.state != LISTENING and self.wmem * 4 <= self.sndbuf

    def charge(self, n: int) -> None:
        self.wmem += n

    def uncharge(self, n: int) -> None:
        was = self.writable()
        self.wmem -= n
        if not was and self.writable():
            self.waitqueue.notify(EV_OUT)

    def set_sndbuf(self, size: int) -> None:
        self.sndbuf = size
        if self.writable():
            self.waitqueue.notify(EV_OUT)

    def recvq_full(self) -> bool:
        return len(self.queue) > (self.backlog if self.state == LISTENING else MAX_DGRAM_QLEN)

    def queued_rights(self):
        """The sockets of this domain carried by queued messages (for a listener, by the
        messages already sent to its embryos)."""
        for item in self.queue:
            msgs = item.queue if isinstance(item, UnixEndpoint) else (item,)
            for msg in msgs:
                if isinstance(msg, Message) and msg.rights:
                    for desc in msg.rights:
                        if isinstance(desc, UnixSocketFile):
                            yield desc

    def take_queue(self) -> list:
        """Empty the queue (a listener's embryos are emptied, not released)."""
        out = []
        for item in self.queue:
            if isinstance(item, UnixEndpoint):
                out += item.take_queue()
            else:
                out.append(item)
        if self.state != LISTENING:
            self.queue.clear()
        return out

    def _consumed(self, msg: Message) -> None:
        """A message left the queue by being read."""
        msg.sender.uncharge(msg.charge)
        self._queue_shrank()

    def _queue_shrank(self) -> None:
        self.peer_wait.notify(EV_OUT)
        if self.full_watchers:
            watchers, self.full_watchers = self.full_watchers, set()
            for w in watchers:
                w.waitqueue.notify(EV_OUT)

    def _enqueue(self, msg: Message) -> None:
        if msg.rights:
            self.domain.add_inflight(msg.rights)
            for desc in msg.rights:
                desc.incref()
        msg.sender.charge(msg.charge)
        self.queue.append(msg)

    # -- readiness ---------------------------------------------------------------------
    def readiness(self) -> int:
        r = 0
        if self.err:
            r |= POLLERR
        if self.shutdown == SHUTDOWN_MASK:
            r |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            r |= POLLRDHUP | EV_IN
        if self.queue:
            r |= EV_IN
        if self.connection_based and self.state == CLOSED:
            r |= POLLHUP
        writable = self.writable()
        if writable and self.type != SOCK_STREAM:
            other = self.peer
            if other is not None and other.peer is not self and not other.dead \
                    and other.recvq_full():
                other.full_watchers.add(self)
                writable = False
        if writable:
            r |= EV_OUT
        return r

    # -- connection management ------------------------------------------------------------
    def listen(self, caller: SocketCaller, backlog: int) -> None:
        if self.type == SOCK_DGRAM:
            raise SysError(errno.EOPNOTSUPP)
        if self.name is None or self.state not in (CLOSED, LISTENING):
            raise SysError(errno.EINVAL)
        if backlog > self.backlog:
            self.peer_wait.notify(EV_OUT)
        self.backlog = backlog
        self.state = LISTENING
        self.peercred = caller.peer_creds
        self.waitqueue.notify(ALL_EVENTS)

    def connect_stream(self, caller: SocketCaller, name: bytes) -> None:
        """connect() of a stream/seqpacket socket. Raises WaitOn the listener's peer_wait
        while its backlog is full (the syscall layer retries the whole call)."""
        if self.passcred and self.name is None:
            self.domain.autobind(self)
        other = self.domain.lookup(caller, name, self.type)
        if other.state != LISTENING or other.shutdown & RCV_SHUTDOWN:
            raise SysError(errno.ECONNREFUSED)
        if other.recvq_full():
            raise WaitOn(POLLOUT, other.peer_wait)
        if self.state == CONNECTED:
            raise SysError(errno.EISCONN)
        if self.state != CLOSED:
            raise SysError(errno.EINVAL)
        embryo = UnixEndpoint(self.domain, self.type)
        embryo.state = CONNECTED
        embryo.peer = self
        embryo.name = other.name           # reported by getsockname, not owned
        embryo.peercred = caller.peer_creds
        self.peer = embryo
        self.state = CONNECTED
        self.peercred = other.peercred
        other.queue.append(embryo)
        other.waitqueue.notify(EV_IN)
        self.waitqueue.notify(ALL_EVENTS)

    def accept(self) -> "UnixEndpoint":
        if self.type == SOCK_DGRAM:
            raise SysError(errno.EOPNOTSUPP)
        if self.state != LISTENING:
            raise SysError(errno.EINVAL)
        if not self.queue:
            raise WouldBlock(POLLIN)
        embryo = self.queue.popleft()
        embryo.passcred = self.passcred
        self.peer_wait.notify(EV_OUT)
        return embryo

    def connect_dgram(self, caller: SocketCaller, name: bytes | None) -> None:
        """connect() of a datagram socket: set (or, with name None, clear) the default
        destination. Messages queued for us are lost when the old peer goes."""
        other = None
        if name is not None:
            if self.passcred and self.name is None:
                self.domain.autobind(self)
            other = self.domain.lookup(caller, name, self.type)
            if other.peer is not None and other.peer is not self:
                raise SysError(errno.EPERM)
        old = self.peer
        self.peer = other
        self.state = CONNECTED if other is not None else CLOSED
        if old is not None and old is not other:
            self._dgram_disconnected(old)
        self.waitqueue.notify(ALL_EVENTS)

    def _dgram_disconnected(self, old: "UnixEndpoint") -> None:
        if self.queue:
            for item in self.take_queue():
                discard(item)
            self._queue_shrank()
            if not old.dead and old.peer is self:
                old.err = errno.ECONNRESET
                old.waitqueue.notify(POLLERR)

    def do_shutdown(self, how: int) -> None:
        mode = how + 1                       # SHUT_RD/WR/RDWR -> RCV/SEND/both
        self.shutdown |= mode
        self.waitqueue.notify(ALL_EVENTS)
        peer = self.peer
        if peer is not None and self.connection_based:
            mirrored = (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0) | \
                       (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0)
            peer.shutdown |= mirrored
            peer.waitqueue.notify(ALL_EVENTS)

    def release(self, embryo: bool = False) -> None:
        """The socket is gone (its file's last reference, or an embryo never accepted)."""
        if self.dead:
            return
        self.dead = True
        self.domain.unbind(self)
        was_listening = self.state == LISTENING
        self.state = CLOSED
        self.shutdown = SHUTDOWN_MASK
        peer, self.peer = self.peer, None
        queue = list(self.queue)
        self.queue.clear()
        if peer is not None and self.connection_based:
            peer.shutdown = SHUTDOWN_MASK
            if queue or embryo:
                peer.err = errno.ECONNRESET
            peer.waitqueue.notify(ALL_EVENTS)
        self.waitqueue.notify(ALL_EVENTS)
        self._queue_shrank()
        for item in queue:
            if was_listening:
                item.release(embryo=True)
            else:
                discard(item)

    def pop_error(self) -> int:
        err, self.err = self.err, 0
        return err

    # -- sending -------------------------------------------------------------------------
    def send_stream(self, caller: SocketCaller, views, control: Control | None) -> int:
        """Queue as much of the data as the send buffer allows, in messages of at most
        STREAM_CHUNK bytes; the descriptions and credentials go with the first. Returns
        the count queued (less than asked when the buffer filled); WouldBlock if nothing
        fits."""
        peer = self.peer
        if peer is None:
            raise SysError(errno.ENOTCONN)
        if self.shutdown & SEND_SHUTDOWN:
            raise SysError(errno.EPIPE)
        if peer.dead or peer.shutdown & RCV_SHUTDOWN:
            raise SysError(errno.EPIPE)
        total = iov.total(views)
        sizes = []
        budget = self.wmem
        planned = 0
        limit = min(max(self.sndbuf // 2 - 64, 1), STREAM_CHUNK)
        while planned < total and budget < self.sndbuf:
            n = min(total - planned, limit)
            sizes.append(n)
            budget += truesize(n)
            planned += n
        if total and not sizes:
            raise WouldBlock(POLLOUT)
        if not sizes:
            return 0
        rights = control.rights if control else ()
        creds = control.creds if control and control.creds else caller.scm_creds
        if rights:
            self.domain.reserve_inflight(len(rights))
        data = iov.gather(views, planned)
        off = 0
        for i, n in enumerate(sizes):
            peer._enqueue(Message(data[off:off + n], rights if i == 0 else (), creds, self,
                                  truesize(n)))
            off += n
        peer.waitqueue.notify(EV_IN)
        return planned

    def send_dgram(self, caller: SocketCaller, views, name: bytes | None,
                   control: Control | None) -> int:
        """One datagram (or seqpacket record), to `name` or to the connected peer."""
        if self.type == SOCK_SEQPACKET:
            if self.state != CONNECTED:
                raise SysError(errno.ENOTCONN)
            name = None                      # Linux ignores a seqpacket destination
        other = None
        if name is None:
            other = self.peer
            if other is None:
                raise SysError(errno.ENOTCONN)
        if self.passcred and self.name is None:
            self.domain.autobind(self)
        total = iov.total(views)
        if total > self.sndbuf - 32:
            raise SysError(errno.EMSGSIZE)
        err = self.pop_error()
        if err:
            raise SysError(err)
        if self.shutdown & SEND_SHUTDOWN:
            raise SysError(errno.EPIPE)
        if self.wmem >= self.sndbuf:
            raise WouldBlock(POLLOUT)
        if other is None:
            other = self.domain.lookup(caller, name, self.type)
        if other.peer is not None and other.peer is not self:
            raise SysError(errno.EPERM)
        if other.dead:
            if self.type == SOCK_SEQPACKET:
                raise SysError(errno.EPIPE)
            if self.peer is other:
                self.peer = None
                self.state = CLOSED
                self._dgram_disconnected(other)
                raise SysError(errno.ECONNREFUSED)
            raise SysError(errno.ECONNREFUSED)
        if other.shutdown & RCV_SHUTDOWN:
            raise SysError(errno.EPIPE)
        if other is not self and other.peer is not self and other.recvq_full():
            # Also told through our own queue: write(2) waits there, not on peer_wait.
            other.full_watchers.add(self)
            raise WaitOn(POLLOUT, other.peer_wait)
        rights = control.rights if control else ()
        creds = control.creds if control and control.creds else caller.scm_creds
        if rights:
            self.domain.reserve_inflight(len(rights))
        other._enqueue(Message(iov.gather(views, total), rights, creds, self, truesize(total)))
        other.waitqueue.notify(EV_IN)
        return total

    # -- receiving -----------------------------------------------------------------------
    def recv_stream(self, want: int, flags: int, st: RecvState) -> bytes:
        """Up to `want` bytes. Stops after a message that carried descriptions and, when
        SO_PASSCRED is on, before data from other credentials (st.stop). Empty bytes
        means end of file; WouldBlock when there is nothing yet."""
        if self.state != CONNECTED:
            raise SysError(errno.EINVAL)
        q = self.queue
        if not q or want == 0:
            if q:
                return b""
            err = self.pop_error()
            if err:
                raise SysError(err)
            if self.shutdown & RCV_SHUTDOWN:
                return b""
            raise WouldBlock(POLLIN)
        peek = flags & MSG_PEEK
        chunks = []
        got = 0
        idx = 0
        while idx < len(q) and got < want:
            msg = q[idx]
            if self.passcred:
                if st.creds is None:
                    st.creds = msg.creds
                elif msg.creds != st.creds:
                    st.stop = True
                    break
            st.addr = msg.sender.name
            n = min(msg.remaining, want - got)
            chunks.append(msg.data[msg.off:msg.off + n])
            got += n
            if peek:
                idx += 1
                if msg.rights:
                    for desc in msg.rights:
                        desc.incref()
                    st.rights += msg.rights
                    st.stop = True
                    break
                continue
            msg.off += n
            carried = msg.rights
            if carried:
                msg.rights = None
                self.domain.remove_inflight(carried)
                st.rights += carried
            if msg.remaining == 0:
                q.popleft()
                self._consumed(msg)
            if carried:
                st.stop = True
                break
        return b"".join(chunks)

    def recv_dgram(self, want: int, flags: int, st: RecvState) -> bytes:
        """The next datagram, cut to `want` bytes (st.full_length has its size)."""
        if self.type == SOCK_SEQPACKET and self.state != CONNECTED:
            raise SysError(errno.ENOTCONN)
        err = self.pop_error()
        if err:
            raise SysError(err)
        if not self.queue:
            if self.shutdown & RCV_SHUTDOWN and (
                    self.type == SOCK_SEQPACKET or not flags & MSG_DONTWAIT):
                return b""
            raise WouldBlock(POLLIN)
        msg = self.queue[0]
        st.full_length = len(msg.data)
        if len(msg.data) > want:
            st.msg_flags |= MSG_TRUNC
        st.addr = msg.sender.name
        st.creds = msg.creds
        if flags & MSG_PEEK:
            if msg.rights:
                for desc in msg.rights:
                    desc.incref()
                st.rights += msg.rights
        else:
            self.queue.popleft()
            if msg.rights:
                self.domain.remove_inflight(msg.rights)
                st.rights += msg.rights
                msg.rights = None
            self._consumed(msg)
        return msg.data[:want]

    def bytes_queued(self) -> int:
        """FIONREAD: unread stream bytes, or the size of the next datagram."""
        if self.state == LISTENING:
            raise SysError(errno.EINVAL)
        if self.type == SOCK_DGRAM:
            return len(self.queue[0].data) if self.queue else 0
        return sum(m.remaining for m in self.queue)


# -- file descriptions --------------------------------------------------------------------
_INT_OPTIONS = {       # SOL_SOCKET options a socket stores and reports as given (default)
    1: 0,    # SO_DEBUG
    2: 0,    # SO_REUSEADDR
    5: 0,    # SO_DONTROUTE
    6: 0,    # SO_BROADCAST
    9: 0,    # SO_KEEPALIVE
    10: 0,   # SO_OOBINLINE
    11: 0,   # SO_NO_CHECK
    12: 0,   # SO_PRIORITY
    14: 0,   # SO_BSDCOMPAT
    15: 0,   # SO_REUSEPORT
    29: 0,   # SO_TIMESTAMP_OLD
    34: 0,   # SO_PASSSEC
    35: 0,   # SO_TIMESTAMPNS_OLD
    36: 0,   # SO_MARK
    40: 0,   # SO_RXQ_OVFL
    41: 0,   # SO_WIFI_STATUS
    43: 0,   # SO_NOFCS
    44: 0,   # SO_LOCK_FILTER
    45: 0,   # SO_SELECT_ERR_QUEUE
    46: 0,   # SO_BUSY_POLL
    49: -1,  # SO_INCOMING_CPU
    56: 0,   # SO_INCOMING_NAPI_ID
    60: 0,   # SO_ZEROCOPY
    62: 0,   # SO_BINDTOIFINDEX
    63: 0,   # SO_TIMESTAMP_NEW
    64: 0,   # SO_TIMESTAMPNS_NEW
}
_BOOL_OPTIONS = {1, 2, 5, 6, 9, 10, 11, 14, 15, 29, 34, 35, 40, 41, 43, 44, 45, 60, 63, 64}
SO_TYPE, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_LINGER = 3, 4, 7, 8, 13
SO_PASSCRED, SO_PEERCRED, SO_RCVLOWAT, SO_SNDLOWAT = 16, 17, 18, 19
SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD, SO_ACCEPTCONN = 20, 21, 30
SO_SNDBUFFORCE, SO_RCVBUFFORCE, SO_PROTOCOL, SO_DOMAIN = 32, 33, 38, 39
SO_PEEK_OFF, SO_COOKIE, SO_RCVTIMEO_NEW, SO_SNDTIMEO_NEW = 42, 57, 66, 67
INT_MAX = (1 << 31) - 1
SIOCOUTQ = 0x5411
HZ = 250                          # timeouts are kept in jiffies, as Linux reports them


def _int(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "little")


class SocketFile(FileDescription):
    """What every socket description offers the syscall layer (socket.py). The generic
    SOL_SOCKET options live here; a family implements the operations below.

      bind(caller, raw_addr)          listen(caller, backlog)
      connect(caller, raw_addr)       accept(caller, flags) -> SocketFile
      sendmsg(caller, views, raw_addr | None, Control | None, flags) -> int
      recvmsg(want, flags, RecvState) -> bytes
      shutdown(how)                   sockname() / peername() -> raw address bytes
      source_address(RecvState) -> raw address bytes (b"" for none)
      received_creds(RecvState) -> (pid, uid, gid) to report, or None
    Operations that must wait raise WouldBlock (or WaitOn another queue) and are retried.
    """
    stream = True
    family = AF_UNSPEC
    sigpipe_on_epipe = False      # stream sockets raise SIGPIPE on EPIPE; others do not

    def __init__(self, sock_type: int, flags: int, inode, creator: SocketCaller):
        super().__init__(None, O_RDWR | (flags & O_NONBLOCK), inode=inode)
        self.creator = creator
        self.sock_type = sock_type
        self.protocol = 0
        self.rcvtimeo = 0              # jiffies; 0 = wait forever
        self.sndtimeo = 0
        self.linger = (0, 0)
        self.int_options = dict(_INT_OPTIONS)

    # -- options ---------------------------------------------------------------------
    def getsockopt(self, level: int, name: int) -> bytes:
        if level != SOL_SOCKET:
            return self.protocol_getsockopt(level, name)
        if name in self.int_options:
            return _int(self.int_options[name])
        if name == SO_TYPE:
            return _int(self.sock_type)
        if name == SO_PROTOCOL:
            return _int(self.protocol)
        if name == SO_DOMAIN:
            return _int(self.family)
        if name == SO_ERROR:
            return _int(self.pop_error())
        if name == SO_SNDBUF:
            return _int(self.sndbuf)
        if name == SO_RCVBUF:
            return _int(self.rcvbuf)
        if name in (SO_RCVLOWAT, SO_SNDLOWAT):
            return _int(1)
        if name == SO_LINGER:
            return _int(self.linger[0]) + _int(self.linger[1])
        if name in (SO_RCVTIMEO_OLD, SO_RCVTIMEO_NEW):
            return _timeval(self.rcvtimeo)
        if name in (SO_SNDTIMEO_OLD, SO_SNDTIMEO_NEW):
            return _timeval(self.sndtimeo)
        if name == SO_ACCEPTCONN:
            return _int(1 if self.listening else 0)
        if name == SO_PASSCRED:
            return _int(1 if self.passcred else 0)
        if name == SO_PEERCRED:
            pid, uid, gid = self.peer_credentials()
            return _int(pid) + _int(uid) + _int(gid)
        if name == SO_PEEK_OFF:
            return _int(-1)            # peeking always starts at the front (not settable)
        if name == SO_COOKIE:
            return self.inode.ino.to_bytes(8, "little")
        raise SysError(errno.ENOPROTOOPT)

    def setsockopt(self, level: int, name: int, value: bytes, privileged: bool = False) -> None:
        if level != SOL_SOCKET:
            self.protocol_setsockopt(level, name, value)
            return
        if len(value) < 4:
            raise SysError(errno.EINVAL)
        val = int.from_bytes(value[:4], "little", signed=True)
        if name in self.int_options:
            self.int_options[name] = (1 if val else 0) if name in _BOOL_OPTIONS else val
        elif name in (SO_SNDBUF, SO_SNDBUFFORCE):
            if name == SO_SNDBUFFORCE and not privileged:
                raise SysError(errno.EPERM)
            self.set_sndbuf(_buffer_size(val, WMEM_MAX, SOCK_MIN_SNDBUF,
                                         name == SO_SNDBUFFORCE))
        elif name in (SO_RCVBUF, SO_RCVBUFFORCE):
            if name == SO_RCVBUFFORCE and not privileged:
                raise SysError(errno.EPERM)
            self.rcvbuf = _buffer_size(val, RMEM_MAX, SOCK_MIN_RCVBUF,
                                       name == SO_RCVBUFFORCE)
        elif name == SO_LINGER:
            if len(value) < 8:
                raise SysError(errno.EINVAL)
            self.linger = (1 if val else 0,
                           int.from_bytes(value[4:8], "little", signed=True))
        elif name in (SO_RCVTIMEO_OLD, SO_RCVTIMEO_NEW):
            self.rcvtimeo = _timeout_from(value)
        elif name in (SO_SNDTIMEO_OLD, SO_SNDTIMEO_NEW):
            self.sndtimeo = _timeout_from(value)
        elif name in (SO_RCVLOWAT, SO_SNDLOWAT):
            pass                       # accepted; a byte-granular low mark is not modelled
        elif name == SO_PASSCRED:
            self.passcred = bool(val)
        else:
            raise SysError(errno.ENOPROTOOPT)

    def protocol_getsockopt(self, level: int, name: int) -> bytes:
        raise SysError(errno.EOPNOTSUPP)

    def protocol_setsockopt(self, level: int, name: int, value: bytes) -> None:
        raise SysError(errno.EOPNOTSUPP)

    # Hooks with neutral defaults for a family without the notion.
    listening = False
    passcred = False
    sndbuf = WMEM_DEFAULT
    rcvbuf = RMEM_DEFAULT

    def set_sndbuf(self, size: int) -> None:
        self.sndbuf = size

    def pop_error(self) -> int:
        return 0

    def peer_credentials(self) -> tuple:
        return NO_PEER_CREDS

    def readlink_name(self) -> bytes:
        return b"socket:[%d]" % self.inode.ino


def _buffer_size(val: int, cap: int, floor: int, force: bool) -> int:
    """SO_SNDBUF/SO_RCVBUF: Linux doubles the request (for bookkeeping overhead) after
    capping it at the sysctl maximum (read as unsigned, so a negative value is the cap)."""
    if not force:
        val = min(val & 0xFFFFFFFF, cap)
    val = min(max(val, 0), INT_MAX // 2)
    return max(val * 2, floor)


def _timeout_from(value: bytes) -> int:
    """A struct timeval -> jiffies, rounded up like Linux. 0 means no timeout; a negative
    time means "do not wait at all" (Linux stores it as a zero timeout), kept as -1."""
    if len(value) < 16:
        raise SysError(errno.EINVAL)
    sec = int.from_bytes(value[:8], "little", signed=True)
    usec = int.from_bytes(value[8:16], "little", signed=True)
    if not 0 <= usec < 1_000_000:
        raise SysError(errno.EDOM)
    if sec < 0:
        return -1
    if sec == 0 and usec == 0:
        return 0
    return sec * HZ + -(-usec // (1_000_000 // HZ))


def _timeval(jiffies: int) -> bytes:
    if jiffies <= 0:
        return bytes(16)
    sec, rest = divmod(jiffies, HZ)
    usec = rest * (1_000_000 // HZ)
    return sec.to_bytes(8, "little", signed=True) + usec.to_bytes(8, "little", signed=True)


def timeout_seconds(jiffies: int) -> float | None:
    """A stored SO_RCVTIMEO/SO_SNDTIMEO as seconds to wait: None forever, 0 not at all."""
    if jiffies == 0:
        return None
    if jiffies < 0:
        return 0.0
    return jiffies / HZ


class UnixSocketFile(SocketFile):
    family = AF_UNIX

    def __init__(self, ep: UnixEndpoint, flags: int, creator: SocketCaller):
        inode = AnonInode(SOCKFS, _st.S_IFSOCK | 0o777, creator.euid, creator.egid)
        super().__init__(ep.type, flags, inode, creator)
        self.ep = ep
        self.waitqueue = ep.waitqueue
        self.sigpipe_on_epipe = ep.type == SOCK_STREAM

    # -- state the generic options read ---------------------------------------------------
    @property
    def listening(self) -> bool:
        return self.ep.state == LISTENING

    @property
    def passcred(self) -> bool:
        return self.ep.passcred

    @passcred.setter
    def passcred(self, on: bool) -> None:
        self.ep.passcred = on

    @property
    def sndbuf(self) -> int:
        return self.ep.sndbuf

    def set_sndbuf(self, size: int) -> None:
        self.ep.set_sndbuf(size)

    @property
    def rcvbuf(self) -> int:
        return self.ep.rcvbuf

    @rcvbuf.setter
    def rcvbuf(self, size: int) -> None:
        self.ep.rcvbuf = size

    def pop_error(self) -> int:
        return self.ep.pop_error()

    def peer_credentials(self) -> tuple:
        return self.ep.peercred or NO_PEER_CREDS

    # -- socket operations ------------------------------------------------------------------
    def bind(self, caller: SocketCaller, raw: bytes) -> None:
        self.ep.domain.bind(caller, self.ep, parse_address(raw, for_bind=True))

    def listen(self, caller: SocketCaller, backlog: int) -> None:
        self.ep.listen(caller, backlog)

    def connect(self, caller: SocketCaller, raw: bytes) -> None:
        ep = self.ep
        if ep.type == SOCK_DGRAM:
            if len(raw) >= 2 and int.from_bytes(raw[:2], "little") == AF_UNSPEC:
                ep.connect_dgram(caller, None)
                return
            ep.connect_dgram(caller, parse_address(raw))
            return
        ep.connect_stream(caller, parse_address(raw))

    def accept(self, caller: SocketCaller, flags: int) -> "UnixSocketFile":
        """The next connection as a new description with `flags` (O_NONBLOCK)."""
        return UnixSocketFile(self.ep.accept(), flags, caller)

    def sendmsg(self, caller: SocketCaller, views, raw_addr: bytes | None,
                control: Control | None, flags: int) -> int:
        ep = self.ep
        if ep.type == SOCK_STREAM:
            if flags & MSG_OOB:
                raise SysError(errno.EOPNOTSUPP)
            if raw_addr:
                raise SysError(errno.EISCONN if ep.state == CONNECTED else errno.EOPNOTSUPP)
            return ep.send_stream(caller, views, control)
        if flags & MSG_OOB:
            raise SysError(errno.EOPNOTSUPP)
        name = parse_address(raw_addr) if raw_addr and ep.type == SOCK_DGRAM else None
        return ep.send_dgram(caller, views, name, control)

    def recvmsg(self, want: int, flags: int, st: RecvState) -> bytes:
        if flags & MSG_OOB:
            raise SysError(errno.EOPNOTSUPP if self.ep.type != SOCK_STREAM else errno.EINVAL)
        if self.ep.type == SOCK_STREAM:
            return self.ep.recv_stream(want, flags, st)
        return self.ep.recv_dgram(want, flags, st)

    def shutdown(self, how: int) -> None:
        self.ep.do_shutdown(how)

    def source_address(self, st: RecvState) -> bytes:
        """recvfrom's address: the sender's name; nothing at all for an unnamed sender."""
        return pack_address(st.addr) if st.addr is not None else b""

    def received_creds(self, st: RecvState):
        """SCM_CREDENTIALS to report with a receive (None unless SO_PASSCRED is on; a
        receive that read nothing reports zeros, as Linux does)."""
        if not self.ep.passcred:
            return None
        return st.creds or (0, 0, 0)

    def sockname(self) -> bytes:
        return pack_address(self.ep.name)

    def peername(self) -> bytes:
        peer = self.ep.peer
        if peer is None:
            raise SysError(errno.ENOTCONN)
        return pack_address(peer.name)

    # -- the file interface (read/write/poll/ioctl on a socket) -----------------------------
    def _read(self, dst, offset) -> int:
        want = iov.total(dst)
        if want == 0:
            return 0                   # read(2) of nothing returns at once (recv does not)
        st = RecvState()
        flags = MSG_DONTWAIT if self.flags & O_NONBLOCK else 0
        data = self.recvmsg(want, flags, st)
        st.drop_rights()               # read(2) has nowhere to put descriptions
        return iov.copy_into(dst, data)

    def _write(self, src, offset, advance) -> int:
        # write(2) reaches a file without the calling task, so its message carries the
        # credentials of the task that created this socket (sendmsg uses the caller's).
        return self.sendmsg(self.creator, src, None, None, 0)

    def readiness(self, mask: int) -> int:
        return self.ep.readiness() & (mask | POLLERR | POLLHUP)

    def ioctl(self, task, cmd: int, arg: int) -> int:
        if cmd == FIONREAD:
            task.copy_out(arg, _int(self.ep.bytes_queued()))
            return 0
        if cmd == SIOCOUTQ:
            task.copy_out(arg, _int(self.ep.wmem))
            return 0
        return super().ioctl(task, cmd, arg)

    # -- lifetime --------------------------------------------------------------------------
    def decref(self) -> None:
        super().decref()
        # Only a socket that is itself in flight can be what kept a cycle reachable.
        if self.refs > 0 and self in self.ep.domain.inflight:
            if _dropping:
                _to_collect.add(self.ep.domain)
            else:
                self.ep.domain.collect()

    def release(self) -> None:
        self.ep.release()


def create_socket(domain: UnixDomain, caller: SocketCaller, sock_type: int,
                  flags: int) -> UnixSocketFile:
    """socket(AF_UNIX, type, 0). SOCK_RAW is a datagram socket, as on Linux."""
    if sock_type == SOCK_RAW:
        sock_type = SOCK_DGRAM
    if sock_type not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):
        raise SysError(errno.ESOCKTNOSUPPORT)
    return UnixSocketFile(UnixEndpoint(domain, sock_type), flags, caller)


def make_socketpair(domain: UnixDomain, caller: SocketCaller, sock_type: int, flags: int):
    """socketpair(AF_UNIX, ...): two connected sockets whose SO_PEERCRED is the creator."""
    a = create_socket(domain, caller, sock_type, flags)
    b = create_socket(domain, caller, sock_type, flags)
    for x, y in ((a.ep, b.ep), (b.ep, a.ep)):
        x.peer = y
        x.state = CONNECTED
        x.peercred = caller.peer_creds
    return a, b
