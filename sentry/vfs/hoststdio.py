"""pysentry's own stdin/stdout/stderr as sandbox files: the only host fds the kernel imports.

Reads never block the loop: a read first polls the host fd and raises WouldBlock when
nothing is there; while a task waits, the kernel's epoll watches the host fd and wakes the
file's wait queue. Writes are plain host writes (a consumer that stops reading stalls the
sentry; noted in docs/architecture.md). A terminal is served as the sandbox's controlling
tty: termios and window size go to the host terminal, the foreground process group is the
sandbox's own.
"""
import errno
import fcntl
import os
import select
import stat as _stat
import struct

from ..kernel.errors import SysError, WouldBlock
from ..kernel.wait import WaitQueue, POLLIN, POLLOUT, POLLHUP, POLLERR
from .file import FileDescription
from .stat import Stat

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TIOCGPGRP, TIOCSPGRP, TIOCGWINSZ, TIOCSWINSZ = 0x540F, 0x5410, 0x5413, 0x5414
TIOCSCTTY, TIOCNOTTY, TIOCGSID, FIONREAD, TCFLSH, TCXONC, TCSBRK = 0x540E, 0x5422, 0x5429, 0x541B, 0x540B, 0x540A, 0x5409
TIOCGPTN = 0x80045430
# The kernel's struct termios (what TCGETS/TCSETS move): 4 flag words, c_line, 19 c_cc.
# glibc's tcgetattr passes exactly this on its stack: never copy more.
KERNEL_TERMIOS_SIZE = 36


class _WatchedQueue(WaitQueue):
    """A wait queue that asks the kernel to watch the host fd while anyone waits."""
    __slots__ = ("_file",)

    def __init__(self, file):
        super().__init__()
        self._file = file

    def add(self, waiter, mask=0xFFFFFFFF):
        super().add(waiter, mask)
        self._file._watch(self._wanted())

    def remove(self, waiter):
        super().remove(waiter)
        if len(self):
            self._file._watch(self._wanted())
        else:
            self._file._unwatch()

    def _wanted(self) -> int:
        """The epoll mask for what the waiters wait for: a reader must not be woken by
        the terminal being writable (that would spin the loop)."""
        mask = 0
        for m in self._waiters.values():
            if m & (POLLIN | POLLHUP | POLLERR):
                mask |= select.EPOLLIN
            if m & POLLOUT:
                mask |= select.EPOLLOUT
        return mask or select.EPOLLIN


class HostTerminal:
    """The sandbox's view of the host terminal: its foreground process group."""

    def __init__(self, fd):
        self.fd = fd
        self.fg_pgid = 1
        self.session = None


class HostStdio(FileDescription):
    stream = True

    def __init__(self, kernel, hostfd: int, flags: int, tty: HostTerminal | None):
        super().__init__(None, flags)
        self.kernel = kernel
        self.hostfd = hostfd
        self.tty = tty
        self.waitqueue = _WatchedQueue(self)
        self._watching = False
        st = os.fstat(hostfd)
        self._stat = Stat(dev=st.st_dev, ino=st.st_ino, mode=st.st_mode, nlink=st.st_nlink,
                          uid=st.st_uid, gid=st.st_gid, rdev=st.st_rdev, size=0,
                          blksize=4096, blocks=0, atime=st.st_atime_ns, mtime=st.st_mtime_ns,
                          ctime=st.st_ctime_ns)
        self.regular = _stat.S_ISREG(st.st_mode)

    def _watch(self, mask):
        if self._watching == mask:
            return
        try:
            self.kernel.watch_fd(self.hostfd, mask, lambda ev: self.waitqueue.notify())
            self._watching = mask
        except (OSError, ValueError):
            self._watching = False   # regular files cannot be epolled: always ready

    def _unwatch(self):
        if self._watching:
            self._watching = False
            self.kernel.unwatch_fd(self.hostfd)

    def _poll(self, mask):
        p = select.poll()
        p.register(self.hostfd, mask)
        r = p.poll(0)
        return r[0][1] if r else 0

    def readiness(self, mask):
        if self.regular:
            return mask & (POLLIN | POLLOUT)
        return self._poll(mask) & (mask | POLLHUP | POLLERR)

    def _read(self, dst, offset):
        if not self.regular and not self._poll(POLLIN) & (POLLIN | POLLHUP | POLLERR):
            raise WouldBlock(POLLIN)
        try:
            return os.readv(self.hostfd, dst) if dst else 0
        except BlockingIOError:
            raise WouldBlock(POLLIN)
        except OSError as e:
            raise SysError(e.errno)

    def _write(self, src, offset, advance=True):
        total = 0
        try:
            for v in src:
                view = v
                while len(view):
                    n = os.write(self.hostfd, view)
                    total += n
                    view = view[n:]
        except BlockingIOError:
            if total:
                return total
            raise WouldBlock(POLLOUT)
        except OSError as e:
            if total:
                return total
            raise SysError(e.errno)
        return total

    def stat(self):
        return self._stat

    def readlink_name(self):
        try:
            return os.readlink(f"/proc/self/fd/{self.hostfd}").encode()
        except OSError:
            return b"pipe:[0]"

    def ioctl(self, task, cmd, arg):
        if cmd == FIONREAD:
            n = struct.unpack("<i", fcntl.ioctl(self.hostfd, FIONREAD, b"\0" * 4))[0]
            task.copy_out(arg, struct.pack("<i", n))
            return 0
        if self.tty is None:
            raise SysError(errno.ENOTTY)
        if cmd == TCGETS:
            task.copy_out(arg, fcntl.ioctl(self.hostfd, TCGETS, b"\0" * KERNEL_TERMIOS_SIZE))
            return 0
        if cmd in (TCSETS, TCSETSW, TCSETSF):
            fcntl.ioctl(self.hostfd, cmd, task.copy_in(arg, KERNEL_TERMIOS_SIZE))
            return 0
        if cmd == TIOCGWINSZ:
            task.copy_out(arg, fcntl.ioctl(self.hostfd, TIOCGWINSZ, b"\0" * 8))
            return 0
        if cmd == TIOCSWINSZ:
            fcntl.ioctl(self.hostfd, TIOCSWINSZ, task.copy_in(arg, 8))
            return 0
        if cmd == TIOCGPGRP:
            task.copy_out(arg, struct.pack("<i", self.tty.fg_pgid))
            return 0
        if cmd == TIOCSPGRP:
            pgid = struct.unpack("<i", task.copy_in(arg, 4))[0]
            pg = task.kernel.pgroups.get(pgid)
            if pg is None:
                raise SysError(errno.ESRCH)
            if pg.session is not task.tg.session:
                raise SysError(errno.EPERM)
            self.tty.fg_pgid = pgid
            return 0
        if cmd == TIOCGSID:
            task.copy_out(arg, struct.pack("<i", task.tg.session.sid))
            return 0
        if cmd in (TIOCSCTTY, TIOCNOTTY):
            return 0
        if cmd in (TCFLSH, TCXONC, TCSBRK):
            try:
                fcntl.ioctl(self.hostfd, cmd, arg)
            except OSError as e:
                raise SysError(e.errno)
            return 0
        raise SysError(errno.ENOTTY)

