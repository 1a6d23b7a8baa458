"""Pipes and FIFOs. Where Linux is observable from here (a native pipe in this process),
the same sequence runs on both and the results are compared."""
import errno
import fcntl
import os
import stat

import pytest

from pysentry.sentry.kernel.errors import SysError, WouldBlock
from pipe_pair import (F_GETPIPE_SZ, F_SETPIPE_SZ, POLL_MASK, both, native_poll,  # noqa: F401
                       native_read, native_write)
from pysentry.sentry.kernel.wait import POLLHUP, POLLIN
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.pipe import PIPE_BUF, make_pipe
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

FIONREAD = 0x541B


class FakeTask:
    """Stands in for a task: records what an ioctl copies out to user memory."""

    def __init__(self):
        self.mem = {}

    def copy_out(self, addr, data):
        self.mem[addr] = bytes(data)


def w(end, data):
    try:
        return end.write([memoryview(data)])
    except WouldBlock:
        return "EAGAIN"
    except SysError as e:
        return errno.errorcode[e.errno]


def r(end, n):
    buf = bytearray(n)
    try:
        got = end.read([memoryview(buf)])
    except WouldBlock:
        return "EAGAIN"
    return bytes(buf[:got])


def test_write_sizes_and_atomicity_match_linux(both):
    rd, wr, nrd, nwr = both
    # A mix of sizes around PIPE_BUF and the page boundary, with reads in between,
    # exercises slot merging, partial large writes and all-or-nothing small writes.
    steps = [("w", 65436), ("w", PIPE_BUF), ("w", 50), ("w", 5000), ("w", 1), ("r", 10000),
             ("w", 5000), ("w", 4097), ("w", 8192), ("w", 3000), ("r", 1), ("w", 4095),
             ("r", 70000), ("w", 100000), ("w", 1), ("r", 3), ("w", 4096), ("w", 4093)]
    for i, (kind, n) in enumerate(steps):
        data = bytes((i + k) % 251 for k in range(n)) if kind == "w" else None
        if kind == "w":
            assert w(wr, data) == native_write(nwr, data), f"step {i}: write {n}"
        else:
            assert r(rd, n) == native_read(nrd, n), f"step {i}: read {n}"
        assert rd.readiness(POLL_MASK) == native_poll(nrd), f"step {i}: reader poll"
        assert wr.readiness(POLL_MASK) == native_poll(nwr), f"step {i}: writer poll"


def test_small_write_is_all_or_nothing():
    rd, wr = make_pipe(os.O_NONBLOCK)
    assert w(wr, b"a" * (65536 - 100)) == 65436
    # 100 bytes are free in the last slot; a 101..4096-byte write must not be split.
    assert w(wr, b"b" * 101) == "EAGAIN"
    assert w(wr, b"b" * 100) == 100
    assert r(rd, 65536) == b"a" * 65436 + b"b" * 100


def test_eof_when_all_writers_are_gone(both):
    rd, wr, nrd, nwr = both
    wr2 = wr
    wr2.incref()                     # a dup of the write end
    assert w(wr, b"xy") == native_write(nwr, b"xy") == 2
    wr.decref()
    assert rd.readiness(POLL_MASK) & POLLHUP == 0     # one writer left
    wr2.decref()
    os.close(nwr)
    assert rd.readiness(POLL_MASK) == native_poll(nrd) == POLLIN | POLLHUP
    assert r(rd, 10) == native_read(nrd, 10) == b"xy"
    assert r(rd, 10) == native_read(nrd, 10) == b""           # EOF, not EAGAIN
    assert rd.readiness(POLL_MASK) == native_poll(nrd) == POLLHUP


def test_epipe_without_readers(both):
    rd, wr, nrd, nwr = both
    rd.decref()
    os.close(nrd)
    assert wr.readiness(POLL_MASK) == native_poll(nwr)
    assert w(wr, b"") == 0
    assert w(wr, b"x") == native_write(nwr, b"x") == "EPIPE"


def test_empty_read_would_block_with_writer():
    rd, wr = make_pipe()
    with pytest.raises(WouldBlock) as e:
        rd.read([memoryview(bytearray(1))])
    assert e.value.events & POLLIN
    assert r(rd, 0) == b""


def test_waitqueue_notified_on_readiness_changes():
    rd, wr = make_pipe(os.O_NONBLOCK)

    class Waiter:
        def __init__(self):
            self.events = []

        def notify(self, events):
            self.events.append(events)

    waiter = Waiter()
    rd.waitqueue.add(waiter, POLLIN | POLLHUP)
    w(wr, b"hello")
    assert waiter.events and waiter.events[-1] & POLLIN
    waiter.events.clear()
    wr.decref()
    assert waiter.events and waiter.events[-1] & POLLHUP


def test_no_position():
    rd, wr = make_pipe()
    for call in (lambda: rd.seek(0, 0), lambda: rd.read([memoryview(bytearray(1))], 0),
                 lambda: wr.write([memoryview(b"x")], 0)):
        with pytest.raises(SysError) as e:
            call()
        assert e.value.errno == errno.ESPIPE


def test_wrong_end_is_ebadf():
    rd, wr = make_pipe()
    with pytest.raises(SysError) as e:
        rd.write([memoryview(b"x")])
    assert e.value.errno == errno.EBADF
    with pytest.raises(SysError) as e:
        wr.read([memoryview(bytearray(1))])
    assert e.value.errno == errno.EBADF


def test_fionread(both):
    rd, wr, nrd, nwr = both
    task = FakeTask()
    w(wr, b"12345")
    native_write(nwr, b"12345")
    assert rd.ioctl(task, FIONREAD, 0x1000) == 0
    native = bytearray(4)
    fcntl.ioctl(nrd, FIONREAD, native)
    assert task.mem[0x1000] == bytes(native) == (5).to_bytes(4, "little")


@pytest.mark.parametrize("size", [1, 4096, 4097, 65536, 100000, 1048576])
def test_set_pipe_size_rounding_matches_linux(both, size):
    rd, wr, nrd, nwr = both
    assert wr.set_pipe_size(size) == fcntl.fcntl(nwr, F_SETPIPE_SZ, size)
    assert rd.get_pipe_size() == fcntl.fcntl(nrd, F_GETPIPE_SZ)


def test_set_pipe_size_limits(both):
    rd, wr, nrd, nwr = both
    w(wr, b"x" * 3 * 4096)
    native_write(nwr, b"x" * 3 * 4096)
    with pytest.raises(SysError) as e:
        wr.set_pipe_size(8192)
    with pytest.raises(OSError) as ne:
        fcntl.fcntl(nwr, F_SETPIPE_SZ, 8192)
    assert e.value.errno == ne.value.errno == errno.EBUSY
    with pytest.raises(SysError) as e:
        wr.set_pipe_size(4 << 20, privileged=False)
    assert e.value.errno == errno.EPERM
    assert wr.set_pipe_size(4 << 20, privileged=True) == 4 << 20


def test_pipe_stat_and_name():
    rd, wr = make_pipe(0, uid=1000, gid=100)
    s = rd.stat()
    assert stat.S_ISFIFO(s.mode) and s.uid == 1000 and s.gid == 100
    assert s.ino == wr.stat().ino
    assert rd.readlink_name() == b"pipe:[%d]" % s.ino
    assert make_pipe()[0].stat().ino != s.ino


def test_pipe2_flags():
    rd, wr = make_pipe(os.O_NONBLOCK | os.O_CLOEXEC)
    assert rd.flags == os.O_RDONLY | os.O_NONBLOCK
    assert wr.flags == os.O_WRONLY | os.O_NONBLOCK
    with pytest.raises(SysError):
        make_pipe(os.O_APPEND)


# == named FIFOs =================================================================
@pytest.fixture
def fifo_vfs():
    v = VirtualFS(TmpFS())
    ctx = v.root_context(Creds())
    v.mknod(ctx, None, b"/fifo", stat.S_IFIFO | 0o666)
    return v, ctx


def test_fifo_nonblocking_opens(fifo_vfs):
    v, ctx = fifo_vfs
    with pytest.raises(SysError) as e:
        v.openat(ctx, None, b"/fifo", os.O_WRONLY | os.O_NONBLOCK)
    assert e.value.errno == errno.ENXIO
    rd = v.openat(ctx, None, b"/fifo", os.O_RDONLY | os.O_NONBLOCK)
    rd.open_wait()                               # non-blocking: never waits
    assert r(rd, 10) == b""                      # no writer: EOF, as Linux
    assert rd.readiness(POLL_MASK) == 0          # ... but no POLLHUP before a writer came
    wr = v.openat(ctx, None, b"/fifo", os.O_WRONLY | os.O_NONBLOCK)
    assert w(wr, b"via fifo") == 8
    assert r(rd, 100) == b"via fifo"
    wr.decref()
    assert rd.readiness(POLL_MASK) == POLLHUP


def test_fifo_blocking_open_waits_for_peer(fifo_vfs):
    v, ctx = fifo_vfs
    rd = v.openat(ctx, None, b"/fifo", os.O_RDONLY)
    with pytest.raises(WouldBlock):
        rd.open_wait()
    # The waiting reader already counts: a non-blocking writer may open now.
    wr = v.openat(ctx, None, b"/fifo", os.O_WRONLY | os.O_NONBLOCK)
    rd.open_wait()
    assert w(wr, b"x") == 1 and r(rd, 1) == b"x"


def test_fifo_blocking_writer_waits_and_peer_that_left_still_counts(fifo_vfs):
    v, ctx = fifo_vfs
    wr = v.openat(ctx, None, b"/fifo", os.O_WRONLY)
    with pytest.raises(WouldBlock):
        wr.open_wait()
    rd = v.openat(ctx, None, b"/fifo", os.O_RDONLY | os.O_NONBLOCK)
    rd.decref()
    wr.open_wait()          # a reader came (and went): the open completes, as in Linux


def test_fifo_rdwr_never_waits_and_shares_the_pipe(fifo_vfs):
    v, ctx = fifo_vfs
    a = v.openat(ctx, None, b"/fifo", os.O_RDWR | os.O_NONBLOCK)
    b = v.openat(ctx, None, b"/fifo", os.O_RDWR)
    a.open_wait()
    b.open_wait()
    assert w(a, b"shared") == 6
    assert r(b, 6) == b"shared"
    assert stat.S_ISFIFO(a.stat().mode)
    assert a.readlink_name() == b"/fifo"
    with pytest.raises(SysError) as e:
        a.seek(0, 0)
    assert e.value.errno == errno.ESPIPE


def test_fifo_data_dropped_when_last_end_closes(fifo_vfs):
    v, ctx = fifo_vfs
    a = v.openat(ctx, None, b"/fifo", os.O_RDWR | os.O_NONBLOCK)
    w(a, b"lost")
    a.decref()
    b = v.openat(ctx, None, b"/fifo", os.O_RDWR | os.O_NONBLOCK)
    assert r(b, 10) == "EAGAIN"
