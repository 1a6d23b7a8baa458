"""Pipes and FIFOs: one `Pipe` buffer, read and written through `PipeEnd` descriptions.

Semantics (pipe(7)):
  - capacity 64 KiB (16 page slots) by default, changed with F_SETPIPE_SZ;
  - a write of at most PIPE_BUF (4096) bytes is atomic: all of it or WouldBlock; a larger
    write takes what fits (whole free slots, plus its tail merged into the last slot)
    and returns that count. A *blocking* writer must therefore
    loop until everything is written (the syscall layer does that, returning the partial
    count if a signal interrupts the loop), exactly as Linux's pipe_write does inside;
  - reading an empty pipe is WouldBlock while a writer exists, else 0 (EOF);
  - writing with no reader is EPIPE (the syscall layer sends SIGPIPE);
  - readiness: POLLIN data, POLLHUP no writer left, POLLOUT a free slot,
    POLLERR no reader left.
Both ends share the pipe's WaitQueue: every write notifies POLLIN (as Linux wakes readers
on each write once a pipe is polled, which edge-triggered epoll users rely on); a read
notifies POLLOUT only when it frees a slot of a full pipe, the only time a writer or a
POLLOUT poller can have been waiting.

Named FIFOs opened through any filesystem share one Pipe per inode (FifoTable). Opening
a FIFO read-only or write-only without O_NONBLOCK waits for the other side: `openat`
returns the description at once (already counted as reader/writer, so the peer can see
it), and its `open_wait()` raises WouldBlock until a peer has opened; the open syscall
calls open_wait() in its wait loop before installing the fd. O_WRONLY|O_NONBLOCK with
no reader is ENXIO; O_RDWR never waits.
"""
from __future__ import annotations

import errno
import os
import stat as _st
import weakref
from collections import deque

from ..kernel.errors import SysError, WouldBlock
from ..kernel.wait import (POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM,
                           WaitQueue)
from . import iov
from .anon import PIPEFS, AnonInode
from .file import FIONREAD, O_ACCMODE, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, FileDescription

PIPE_BUF = 4096
DEFAULT_CAPACITY = 65536
PIPE_MAX_SIZE = 1048576      # /proc/sys/fs/pipe-max-size: the unprivileged ceiling
PAGE = 4096


class Pipe:
    """The buffer: a byte ring, accounted in page-sized slots as Linux's pipe_buffer ring.

    Capacity counts slots (capacity // PAGE), not bytes, which is what makes Linux's
    behaviour observable: a small write merges into the last slot when it fits there,
    otherwise it needs a free slot; POLLOUT means a slot is free. The slots only count
    (bytes held, page offset of the first); the bytes themselves sit in `ring`, oldest
    at `head`, so a read or write is one copy per piece of the user buffer (two where it
    wraps), not one per page. Invariants: nbytes == the sum of the slots' byte counts
    <= len(ring) <= capacity. The ring grows with its content, not with the capacity
    (F_SETPIPE_SZ may ask for 2 GiB, as Linux, which allocates pages only for data), and
    a ring larger than the default goes once the pipe is empty.
    """

    def __init__(self, inode):
        self.inode = inode
        self.ring = None                 # memoryview of a bytearray, or None (no data)
        self.head = 0
        self.slots: deque = deque()      # [bytes held, page offset of its first byte]
        self.nbytes = 0
        self.capacity = DEFAULT_CAPACITY
        self.readers = 0
        self.writers = 0
        # How many times each side was ever opened: a waiting FIFO opener needs to see
        # that a peer came, even if the peer has already gone again.
        self.r_counter = 0
        self.w_counter = 0
        self.waitqueue = WaitQueue()

    @property
    def max_slots(self) -> int:
        return self.capacity // PAGE

    def full(self) -> bool:
        return len(self.slots) >= self.max_slots

    def clear(self) -> None:
        self.slots.clear()
        self.ring = None
        self.head = self.nbytes = 0

    def resize(self, capacity: int) -> None:
        """New capacity (the content must fit in it)."""
        self.capacity = capacity
        if self.ring is not None and len(self.ring) > capacity:
            self._move_to_ring(capacity)

    def _move_to_ring(self, size: int) -> None:
        ring = memoryview(bytearray(size))
        if self.nbytes:
            _ring_copy_out(self.ring, self.head, [ring], self.nbytes)
        self.ring = ring
        self.head = 0

    def _make_room(self, need: int) -> None:
        """A ring of at least `need` (<= capacity) bytes, doubling as the content grows."""
        size = len(self.ring) if self.ring is not None else 0
        if need > size:
            self._move_to_ring(min(max(need, 2 * size, DEFAULT_CAPACITY), self.capacity))

    def take(self, dst, want: int) -> int:
        """Move up to `want` bytes (the length of the views `dst`) out of the pipe."""
        n = min(want, self.nbytes)
        _ring_copy_out(self.ring, self.head, dst, n)
        self.nbytes -= n
        slots = self.slots
        if not self.nbytes:
            slots.clear()
            self.head = 0
            if len(self.ring) > DEFAULT_CAPACITY:
                self.ring = None
            return n
        self.head = (self.head + n) % len(self.ring)
        left = n
        while left:
            slot = slots[0]
            if slot[0] > left:
                slot[0] -= left
                slot[1] += left
                break
            left -= slot[0]
            slots.popleft()
        return n

    def merges(self, total: int) -> bool:
        """Does a `total`-byte write start by filling up the last slot? (Linux merges the
        write's first total % PAGE bytes into it when they fit behind its data.)"""
        tail = total % PAGE
        if not tail or not self.slots:
            return False
        last = self.slots[-1]
        return last[1] + last[0] + tail <= PAGE

    def put(self, src, total: int) -> int:
        """Append as much of the `total`-byte write in the views `src` as Linux's
        pipe_write would before blocking; returns that count."""
        done = 0
        slots = self.slots
        if self.merges(total):
            done = total % PAGE
            slots[-1][0] += done
        rest = total - done
        free = self.max_slots - len(slots)
        if rest and free:
            # Whole pages into fresh slots, the last one maybe partly filled.
            k = min(free, (rest + PAGE - 1) // PAGE)
            slots.extend([[PAGE, 0] for _ in range(k - 1)])
            last = min(PAGE, rest - (k - 1) * PAGE)
            slots.append([last, 0])
            done += (k - 1) * PAGE + last
        if not done:
            return 0
        self._make_room(self.nbytes + done)
        _ring_copy_in(self.ring, (self.head + self.nbytes) % len(self.ring), src, done)
        self.nbytes += done
        return done


def _ring_copy_out(ring, pos: int, dst, n: int) -> None:
    """Copy n bytes of `ring` from `pos` on (wrapping at its end) into the views `dst`."""
    size = len(ring)
    for v in dst:
        if n <= 0:
            return
        k = min(len(v), n)
        first = min(k, size - pos)
        v[:first] = ring[pos:pos + first]
        if first < k:
            v[first:k] = ring[:k - first]
        pos = (pos + k) % size
        n -= k


def _ring_copy_in(ring, pos: int, src, n: int) -> None:
    """Copy the first n bytes of the views `src` into `ring` from `pos` on (wrapping)."""
    size = len(ring)
    for v in src:
        if n <= 0:
            return
        k = min(len(v), n)
        first = min(k, size - pos)
        ring[pos:pos + first] = v[:first]
        if first < k:
            ring[:k - first] = v[first:k]
        pos = (pos + k) % size
        n -= k


def round_pipe_size(size: int) -> int:
    """Linux rounds a requested size up to a power-of-two number of pages."""
    pages = max((size + PAGE - 1) // PAGE, 1)
    return (1 << (pages - 1).bit_length()) * PAGE


class PipeEnd(FileDescription):
    stream = True

    def __init__(self, pipe: Pipe, flags: int, location=None):
        super().__init__(location, flags, inode=pipe.inode)
        self.pipe = pipe
        self.waitqueue = pipe.waitqueue
        self._w_seen = None       # see readiness(): POLLHUP only after a writer came
        self._wait_counter = None  # FIFO open: the partner counter to see change
        self._released = False
        acc = flags & O_ACCMODE
        self._reads = acc in (O_RDONLY, O_RDWR)
        self._writes = acc in (O_WRONLY, O_RDWR)

    # -- I/O ----------------------------------------------------------------------------
    def _read(self, dst, offset) -> int:
        pipe = self.pipe
        want = iov.total(dst)
        if want == 0:
            return 0
        if not pipe.nbytes:
            if pipe.writers == 0:
                return 0
            raise WouldBlock(POLLIN)
        was_full = pipe.full()
        n = pipe.take(dst, want)
        # Writers (and POLLOUT pollers) wait only while every slot is taken; a read that
        # frees none changes nothing for them, so waking them would only make them look
        # again (and re-resolve their buffers) to go back to sleep.
        if was_full and not pipe.full():
            pipe.waitqueue.notify(POLLOUT | POLLWRNORM)
        return n

    def _write(self, src, offset, advance) -> int:
        pipe = self.pipe
        count = iov.total(src)
        if count == 0:
            return 0
        if pipe.readers == 0:
            raise SysError(errno.EPIPE)
        if count <= PIPE_BUF:
            # Atomic: all of it or nothing (put() of <= one page either merges into
            # the last slot or takes one free slot).
            if pipe.full() and not pipe.merges(count):
                raise WouldBlock(POLLOUT)
        n = pipe.put(src, count)
        if n == 0:
            raise WouldBlock(POLLOUT)
        pipe.waitqueue.notify(POLLIN | POLLRDNORM)
        return n

    def readiness(self, mask: int) -> int:
        pipe = self.pipe
        r = 0
        if self._reads:
            if pipe.nbytes:
                r |= POLLIN | POLLRDNORM
            if pipe.writers == 0 and self._w_seen != pipe.w_counter:
                r |= POLLHUP
        if self._writes:
            if not pipe.full():
                r |= POLLOUT | POLLWRNORM
            if pipe.readers == 0:
                r |= POLLERR
        return r & (mask | POLLHUP | POLLERR)

    def ioctl(self, task, cmd: int, arg: int) -> int:
        if cmd == FIONREAD:
            task.copy_out(arg, self.pipe.nbytes.to_bytes(4, "little"))
            return 0
        return super().ioctl(task, cmd, arg)

    # -- F_GETPIPE_SZ / F_SETPIPE_SZ ----------------------------------------------------
    def get_pipe_size(self) -> int:
        return self.pipe.capacity

    def set_pipe_size(self, size: int, privileged: bool = False) -> int:
        if size <= 0 or size > (1 << 31):
            raise SysError(errno.EINVAL)
        new = round_pipe_size(size)
        if new > PIPE_MAX_SIZE and not privileged:
            raise SysError(errno.EPERM)
        if new // PAGE < len(self.pipe.slots):
            raise SysError(errno.EBUSY)
        self.pipe.resize(new)
        self.pipe.waitqueue.notify(POLLOUT | POLLWRNORM)
        return new

    # -- FIFO open ----------------------------------------------------------------------
    def open_wait(self) -> None:
        if self._wait_counter is None:
            return
        side, seen = self._wait_counter
        now = self.pipe.w_counter if side == "w" else self.pipe.r_counter
        if now == seen:
            raise WouldBlock(POLLIN if side == "w" else POLLOUT)
        self._wait_counter = None

    # -- lifetime -----------------------------------------------------------------------
    def release(self) -> None:
        if self._released:
            return
        self._released = True
        pipe = self.pipe
        if self._reads:
            pipe.readers -= 1
        if self._writes:
            pipe.writers -= 1
        if pipe.readers == 0 and pipe.writers == 0:
            pipe.clear()            # Linux frees a pipe's pages with its last opener
        pipe.waitqueue.notify(POLLIN | POLLOUT | POLLHUP | POLLERR | POLLRDNORM | POLLWRNORM)

    def readlink_name(self) -> bytes:
        if self.location is not None:
            return super().readlink_name()
        return b"pipe:[%d]" % self.pipe.inode.ino


def make_pipe(flags: int = 0, uid: int = 0, gid: int = 0):
    """pipe2(): (read end, write end). `flags` may hold O_NONBLOCK (O_CLOEXEC is the fd
    table's business; O_DIRECT packet mode is accepted but behaves as a byte stream)."""
    if flags & ~(O_NONBLOCK | os.O_CLOEXEC | os.O_DIRECT):
        raise SysError(errno.EINVAL)
    inode = AnonInode(PIPEFS, _st.S_IFIFO | 0o600, uid, gid)
    pipe = Pipe(inode)
    status = flags & O_NONBLOCK
    pipe.readers = pipe.writers = 1
    pipe.r_counter = pipe.w_counter = 1
    reader = PipeEnd(pipe, O_RDONLY | status)
    writer = PipeEnd(pipe, O_WRONLY | status)
    return reader, writer


class FifoTable:
    """The Pipe behind each FIFO inode, alive while any end is open."""

    def __init__(self):
        self._pipes = weakref.WeakKeyDictionary()

    def open(self, inode, location, flags: int) -> PipeEnd:
        pipe = self._pipes.get(inode)
        if pipe is None or (pipe.readers == 0 and pipe.writers == 0):
            pipe = self._pipes[inode] = Pipe(inode)
        acc = flags & O_ACCMODE
        nonblock = flags & O_NONBLOCK
        if acc == O_RDONLY:
            pipe.r_counter += 1
            pipe.readers += 1
            end = PipeEnd(pipe, flags, location)
            if pipe.writers == 0:
                if nonblock:
                    end._w_seen = pipe.w_counter
                else:
                    end._wait_counter = ("w", pipe.w_counter)
        elif acc == O_WRONLY:
            if nonblock and pipe.readers == 0:
                raise SysError(errno.ENXIO)
            pipe.w_counter += 1
            pipe.writers += 1
            end = PipeEnd(pipe, flags, location)
            if pipe.readers == 0:
                end._wait_counter = ("r", pipe.r_counter)
        elif acc == O_RDWR:
            pipe.r_counter += 1
            pipe.w_counter += 1
            pipe.readers += 1
            pipe.writers += 1
            end = PipeEnd(pipe, flags, location)
        else:
            raise SysError(errno.EINVAL)
        pipe.waitqueue.notify()     # wake openers waiting for this side
        return end
