"""The one way the sentry reports a failed operation: raise SysError(errno).

Every layer below the syscall table (VFS, mm, kernel objects) raises SysError; the
dispatcher turns it into -errno in rax. Any *other* exception escaping a handler is a sentry
bug: the dispatcher logs its traceback and kills only the offending task.
"""
import errno as _errno


class SysError(Exception):
    __slots__ = ("errno",)

    def __init__(self, err: int, msg: str | None = None):
        super().__init__(msg or _errno.errorcode.get(err, str(err)))
        self.errno = err


class WouldBlock(Exception):
    """Raised by a non-blocking file operation that cannot make progress now.

    `events` is the poll mask the caller should wait for (POLLIN/POLLOUT); the syscall layer
    waits on the file's WaitQueue for it (or returns EAGAIN for O_NONBLOCK files) and retries.
    """
    __slots__ = ("events",)

    def __init__(self, events: int):
        super().__init__(events)
        self.events = events
