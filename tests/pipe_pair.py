"""A sentry pipe beside a native Linux pipe, both non-blocking, and the native side's
operations in the form the pipe tests compare with ours (a count or bytes, or the errno's
name)."""
import errno
import os
import select

import pytest

from pysentry.sentry.kernel.wait import POLLERR, POLLHUP, POLLIN, POLLOUT
from pysentry.sentry.vfs.pipe import make_pipe

F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032
POLL_MASK = POLLIN | POLLOUT | POLLHUP | POLLERR


def native_write(fd, data):
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return "EAGAIN"
    except OSError as e:
        return errno.errorcode[e.errno]


def native_read(fd, n):
    try:
        return os.read(fd, n)
    except BlockingIOError:
        return "EAGAIN"


def native_poll(fd):
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLOUT)
    ev = p.poll(0)
    return ev[0][1] & POLL_MASK if ev else 0


@pytest.fixture
def both():
    """(our reader, our writer, native reader fd, native writer fd), non-blocking."""
    rd, wr = make_pipe(os.O_NONBLOCK)
    nrd, nwr = os.pipe2(os.O_NONBLOCK)
    yield rd, wr, nrd, nwr
    for fd in (nrd, nwr):
        try:
            os.close(fd)
        except OSError:
            pass
