"""The pipe's ring buffer and its wake-ups, against a native Linux pipe in this process.

Random sequences of reads and writes (sizes around PIPE_BUF and the page size, scattered
user buffers, capacity changes) make the ring wrap at every offset; after each step the
counts, the bytes and the readiness must be what Linux gives."""
import errno
import fcntl
import os
import random

import pytest

from pysentry.sentry.kernel.errors import SysError, WouldBlock
from pipe_pair import (F_SETPIPE_SZ, POLL_MASK, both, native_poll,  # noqa: F401 (fixture)
                       native_read, native_write)
from pysentry.sentry.kernel.wait import POLLIN, POLLOUT
from pysentry.sentry.vfs.pipe import PIPE_BUF, make_pipe

SIZES = [1, 7, 100, PIPE_BUF - 1, PIPE_BUF, PIPE_BUF + 1, 5000, 8192, 12289, 65536, 70000]


def stream(pos: int, n: int) -> bytes:
    """Bytes [pos, pos+n) of the stream the tests write: byte i is i % 251."""
    return (bytes(range(251)) * (n // 251 + 2))[pos % 251:pos % 251 + n]


def scattered(buf: bytearray, pieces: int) -> list:
    """`buf` as `pieces` views of uneven lengths (a user buffer split at page frames)."""
    mv = memoryview(buf)
    cuts = sorted({0, len(buf), *(random.randrange(len(buf) + 1) for _ in range(pieces - 1))})
    return [mv[a:b] for a, b in zip(cuts, cuts[1:])]


def ours_write(end, data: bytes, pieces: int):
    try:
        return end.write(scattered(bytearray(data), pieces))
    except WouldBlock:
        return "EAGAIN"


def ours_read(end, n: int, pieces: int):
    buf = bytearray(n)
    try:
        got = end.read(scattered(buf, pieces))
    except WouldBlock:
        return "EAGAIN"
    return bytes(buf[:got])


@pytest.mark.parametrize("seed", range(6))
def test_random_reads_and_writes_match_linux(both, seed):
    rd, wr, nrd, nwr = both
    random.seed(seed)
    counter = 0
    for step in range(400):
        what = random.random()
        if what < 0.03:
            size = random.choice([4096, 8192, 65536, 131072])
            try:
                ours = wr.set_pipe_size(size)
            except SysError as e:
                ours = errno.errorcode[e.errno]
            try:
                native = fcntl.fcntl(nwr, F_SETPIPE_SZ, size)
            except OSError as e:
                native = errno.errorcode[e.errno]
            assert ours == native, f"step {step}: F_SETPIPE_SZ {size}"
        elif what < 0.55:
            n = random.choice(SIZES)
            data = stream(counter, n)
            got = ours_write(wr, data, random.randint(1, 5))
            assert got == native_write(nwr, data), f"step {step}: write {n}"
            if isinstance(got, int):
                counter += got
        else:
            n = random.choice(SIZES)
            assert ours_read(rd, n, random.randint(1, 5)) == native_read(nrd, n), \
                f"step {step}: read {n}"
        assert rd.readiness(POLL_MASK) == native_poll(nrd), f"step {step}: reader poll"
        assert wr.readiness(POLL_MASK) == native_poll(nwr), f"step {step}: writer poll"


def test_capacity_change_keeps_the_bytes_in_order(both):
    rd, wr, nrd, nwr = both
    # Wrap the ring first, so the content the resize moves is in two pieces.
    assert ours_write(wr, b"a" * 60000, 1) == 60000
    assert ours_read(rd, 50000, 1) == b"a" * 50000
    assert ours_write(wr, bytes(range(256)) * 100, 3) == 25600
    native_write(nwr, b"a" * 60000)
    native_read(nrd, 50000)
    native_write(nwr, bytes(range(256)) * 100)
    assert wr.set_pipe_size(262144) == fcntl.fcntl(nwr, F_SETPIPE_SZ, 262144)
    assert ours_read(rd, 1 << 20, 2) == native_read(nrd, 1 << 20) == \
        b"a" * 10000 + bytes(range(256)) * 100


class Waiter:
    def __init__(self):
        self.events = []

    def notify(self, events):
        self.events.append(events)


def test_writers_are_woken_when_a_slot_frees(both):
    rd, wr, nrd, nwr = both
    waiter = Waiter()
    wr.waitqueue.add(waiter, POLLOUT)
    assert ours_write(wr, b"x" * 65536, 1) == 65536
    native_write(nwr, b"x" * 65536)
    assert wr.readiness(POLL_MASK) == native_poll(nwr) == 0        # full
    waiter.events.clear()
    # Part of a page read: no slot is free yet, on Linux as here, so POLLOUT stays off.
    assert ours_read(rd, 100, 1) == native_read(nrd, 100)
    assert wr.readiness(POLL_MASK) == native_poll(nwr) == 0
    # The rest of that page: the slot frees and a writer waiting for it must hear so.
    assert ours_read(rd, 3996, 1) == native_read(nrd, 3996)
    assert wr.readiness(POLL_MASK) == native_poll(nwr) == POLLOUT
    assert any(ev & POLLOUT for ev in waiter.events)


def test_readers_are_woken_by_every_write(both):
    # Edge-triggered epoll users rely on a wake-up for each write, not only the first
    # into an empty pipe (Linux wakes readers on every write once the pipe is polled).
    rd, wr, _, _ = both
    waiter = Waiter()
    rd.waitqueue.add(waiter, POLLIN)
    for n in (1, 10, 5000):
        waiter.events.clear()
        assert ours_write(wr, b"y" * n, 1) == n
        assert any(ev & POLLIN for ev in waiter.events)


def test_a_large_pipe_grows_its_ring_with_the_data_only(both):
    rd, wr, nrd, nwr = both
    assert wr.set_pipe_size(1 << 20) == fcntl.fcntl(nwr, F_SETPIPE_SZ, 1 << 20)
    sent = 0
    for n in (70000, 5000, 300000, 4096, 600000, 100000):
        data = stream(sent, n)
        got = ours_write(wr, data, 3)
        assert got == native_write(nwr, data), f"write {n}"
        sent += got
        if n == 5000:       # let the ring wrap before it grows
            assert ours_read(rd, 60000, 2) == native_read(nrd, 60000)
        assert wr.readiness(POLL_MASK) == native_poll(nwr)
    assert ours_read(rd, 2 << 20, 4) == native_read(nrd, 2 << 20)
    # Empty again: the big ring is given back (Linux frees a pipe's pages as they empty).
    assert rd.pipe.ring is None


def test_a_huge_capacity_costs_nothing_until_data_comes():
    rd, wr = make_pipe(os.O_NONBLOCK)
    assert wr.set_pipe_size(1 << 31, privileged=True) == 1 << 31
    assert ours_write(wr, b"z" * 10, 1) == 10
    assert len(wr.pipe.ring) <= 65536
    assert ours_read(rd, 100, 1) == b"z" * 10
