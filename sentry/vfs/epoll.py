"""epoll(7): an interest list of (file, fd) pairs and a ready list, as fs/eventpoll.c.

How readiness flows: every watched file gets an `Interest` registered as a waiter on its
wait queue. When the file notifies events the interest cares about, the interest joins the
ready list (once; a second notification keeps its place) and the epoll's own wait queue is
notified, which wakes epoll_wait sleepers and anyone polling the epoll file itself (poll,
select, an outer epoll).

Invariant: the ready list is a superset of what will be reported. Every report re-asks the
file for its current readiness, so a stale entry (readiness gone again, file released) is
dropped silently, and level-triggered reports are exact. After a report:
  - level-triggered entries go back to the *tail* of the ready list (Linux re-queues them,
    which is what makes repeated epoll_wait calls round-robin over ready files);
  - edge-triggered entries leave the list until the file notifies again;
  - EPOLLONESHOT entries are disarmed (only their private flag bits remain) until
    EPOLL_CTL_MOD re-arms them.
Entries that were not reached because `maxevents` ran out keep their place at the front.

Lifetime: like Linux, an epoll holds no reference on the files it watches. An interest
whose file has been released (no references left) is dead: it is dropped when reached on
the ready list and swept from the interest list from time to time.

Nesting: an epoll file may watch another epoll file. Adding one that can already reach
this epoll is ELOOP, and so is an addition that would make a chain of more than
MAX_NESTS epoll-in-epoll links, counted both below the added file and above this one
(what current kernels enforce; it also bounds the recursion of readiness checks).
"""
from __future__ import annotations

import errno
from collections import OrderedDict

from ..kernel.errors import SysError
from ..kernel.wait import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM
from .eventfd import AnonFile
from .file import FileDescription, O_PATH

EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = POLLIN, POLLOUT, POLLERR, POLLHUP
EPOLLRDHUP = 0x2000
EPOLLEXCLUSIVE = 1 << 28
EPOLLWAKEUP = 1 << 29
EPOLLONESHOT = 1 << 30
EPOLLET = 1 << 31
PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
EXCLUSIVE_OK_BITS = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
MAX_NESTS = 4
_SWEEP_MIN = 64


class Interest:
    """One (file, fd) entry of an interest list: Linux's epitem. It is the waiter that
    sits on the watched file's wait queue."""
    __slots__ = ("ep", "file", "fd", "events", "data", "live")

    def __init__(self, ep: "EpollFile", file, fd: int, events: int, data: int):
        self.ep = ep
        self.file = file
        self.fd = fd
        self.events = events        # requested events incl. EPOLLERR|EPOLLHUP and flag bits
        self.data = data
        self.live = True            # False once removed (a notify may still be in flight)

    @property
    def poll_mask(self) -> int:
        return self.events & ~PRIVATE_BITS

    def notify(self, events: int) -> None:
        if self.live and self.poll_mask & events:
            self.ep._became_ready(self)


def is_pollable(file) -> bool:
    """Linux refuses to watch a file without a poll method (regular files, directories,
    /dev/null...). Here that is a file that keeps the always-ready default."""
    return type(file).readiness is not FileDescription.readiness


def check_watchable(file) -> None:
    """May `file` be added to an epoll? EBADF for an O_PATH descriptor, EPERM for a file
    that cannot be polled."""
    if file.flags & O_PATH:
        raise SysError(errno.EBADF)
    if not is_pollable(file):
        raise SysError(errno.EPERM)


class EpollFile(AnonFile):
    anon_name = b"eventpoll"

    def __init__(self):
        super().__init__(0)
        self.interests: dict[tuple, Interest] = {}
        self.ready: OrderedDict[Interest, None] = OrderedDict()
        # Interests of other epolls that watch this one (for the nesting-depth rule).
        self.watched_by: set[Interest] = set()
        self._sweep_at = _SWEEP_MIN

    # -- the interest list (epoll_ctl) ---------------------------------------------------
    def ctl(self, op: int, file, fd: int, events: int = 0, data: int = 0) -> None:
        """EPOLL_CTL_ADD/MOD/DEL for (file, fd), with Linux's checks in Linux's order.
        `file` is the description `fd` referred to when the caller looked it up."""
        check_watchable(file)
        if file is self:
            raise SysError(errno.EINVAL)
        if op != EPOLL_CTL_DEL and events & EPOLLEXCLUSIVE:
            if op == EPOLL_CTL_MOD:
                raise SysError(errno.EINVAL)
            if op == EPOLL_CTL_ADD and (isinstance(file, EpollFile)
                                        or events & ~EXCLUSIVE_OK_BITS):
                raise SysError(errno.EINVAL)
        if op == EPOLL_CTL_ADD and isinstance(file, EpollFile):
            self._check_nesting(file)
        key = (file, fd)
        item = self.interests.get(key)
        if op == EPOLL_CTL_ADD:
            if item is not None:
                raise SysError(errno.EEXIST)
            self._insert(key, events | EPOLLERR | EPOLLHUP, data)
        elif op == EPOLL_CTL_DEL:
            if item is None:
                raise SysError(errno.ENOENT)
            self._remove(key)
        elif op == EPOLL_CTL_MOD:
            if item is None:
                raise SysError(errno.ENOENT)
            if item.events & EPOLLEXCLUSIVE:
                raise SysError(errno.EINVAL)
            self._modify(item, events | EPOLLERR | EPOLLHUP, data)
        else:
            raise SysError(errno.EINVAL)

    def _insert(self, key, events: int, data: int) -> None:
        if len(self.interests) >= self._sweep_at:
            self._sweep()
        file, fd = key
        item = Interest(self, file, fd, events, data)
        self.interests[key] = item
        if isinstance(file, EpollFile):
            file.watched_by.add(item)
        file.waitqueue.add(item, item.poll_mask)
        self._poll_now(item)

    def _modify(self, item: Interest, events: int, data: int) -> None:
        item.events = events
        item.data = data
        item.file.waitqueue.add(item, item.poll_mask)     # re-registers with the new mask
        self._poll_now(item)

    def _remove(self, key) -> None:
        item = self.interests.pop(key)
        self._unhook(item)

    def _unhook(self, item: Interest) -> None:
        item.live = False
        item.file.waitqueue.remove(item)
        self.ready.pop(item, None)
        if isinstance(item.file, EpollFile):
            item.file.watched_by.discard(item)

    def _poll_now(self, item: Interest) -> None:
        """After ADD/MOD: a file that is ready already goes on the ready list."""
        mask = item.poll_mask
        if item.file.readiness(mask) & mask:
            self._became_ready(item)

    def _sweep(self) -> None:
        """Forget interests whose file was released; amortized over insertions."""
        for key, item in list(self.interests.items()):
            if item.file.refs <= 0:
                del self.interests[key]
                self._unhook(item)
        self._sweep_at = max(_SWEEP_MIN, 2 * len(self.interests))

    # -- nesting -------------------------------------------------------------------------
    def _check_nesting(self, target: "EpollFile") -> None:
        below = _depth_below(target, self, {})
        if below is None or _depth_above(self, {}) + 1 + below > MAX_NESTS:
            raise SysError(errno.ELOOP)

    # -- readiness -----------------------------------------------------------------------
    def _became_ready(self, item: Interest) -> None:
        if item not in self.ready:
            self.ready[item] = None
        self.waitqueue.notify(POLLIN | POLLRDNORM)

    def _current_events(self, item: Interest) -> int:
        """What the file reports now, or 0 for a dead/disarmed entry."""
        if not item.live or item.file.refs <= 0:
            return 0
        mask = item.poll_mask
        return item.file.readiness(mask) & mask if mask else 0

    def collect(self, maxevents: int) -> list:
        """The next reports, [(interest, revents)], at most `maxevents`. Only drops stale
        entries from the ready list; `consume()` commits the rest once the caller has
        delivered the reports (so a fault writing them loses nothing)."""
        out = []
        for item in list(self.ready):
            if len(out) >= maxevents:
                break
            revents = self._current_events(item)
            if revents:
                out.append((item, revents))
            else:
                self.ready.pop(item, None)
        return out

    def consume(self, reports) -> None:
        for item, _ in reports:
            if item.events & EPOLLONESHOT:
                item.events &= PRIVATE_BITS
                self.ready.pop(item, None)
            elif item.events & EPOLLET:
                self.ready.pop(item, None)
            else:
                self.ready.move_to_end(item)

    def readiness(self, mask: int) -> int:
        for item in list(self.ready):
            if self._current_events(item):
                return (POLLIN | POLLRDNORM) & mask
            self.ready.pop(item, None)
        return 0

    # -- lifetime ------------------------------------------------------------------------
    def release(self) -> None:
        for item in self.interests.values():
            self._unhook(item)
        self.interests.clear()
        for item in list(self.watched_by):
            item.live = False
        self.watched_by.clear()


def _depth_below(ep: EpollFile, forbidden: EpollFile, memo: dict) -> int | None:
    """Longest chain of epoll links under `ep`; None if `forbidden` is reachable."""
    if ep in memo:
        return memo[ep]
    memo[ep] = 0          # a cycle cannot exist below (ELOOP kept it out); stops revisits
    deepest = 0
    for item in ep.interests.values():
        child = item.file
        if not isinstance(child, EpollFile) or not item.live or child.refs <= 0:
            continue
        if child is forbidden:
            return None
        d = _depth_below(child, forbidden, memo)
        if d is None:
            return None
        deepest = max(deepest, d + 1)
    memo[ep] = deepest
    return deepest


def _depth_above(ep: EpollFile, memo: dict) -> int:
    """Longest chain of epoll links above `ep` (epolls watching it, transitively)."""
    if ep in memo:
        return memo[ep]
    memo[ep] = 0
    deepest = 0
    for item in ep.watched_by:
        parent = item.ep
        if item.live and parent.refs > 0:
            deepest = max(deepest, _depth_above(parent, memo) + 1)
    memo[ep] = deepest
    return deepest
