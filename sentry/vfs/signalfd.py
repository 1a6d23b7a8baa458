"""signalfd(2): reading a file takes pending signals out of a task's pending sets.

A read consumes signals in the file's mask from the owner thread's pending set first, then
from its process's (as dequeue_signal does), each returned as a 128-byte
`struct signalfd_siginfo`. It waits while none is pending (EAGAIN when non-blocking) and
returns as many as fit once at least one is there.

Waking readers: generating a signal must notify the signalfds of the receiving process.
The kernel has no hook for that yet, so `watch_signals()` wraps the kernel's
`send_signal` (once per kernel) to notify them afterwards; a one-line call of
`notify_signal(tg)` inside Kernel.send_signal can replace the wrapper.

Known divergence: Linux reads the signals of whichever thread reads (or polls) the file;
here a signalfd reads those of the thread that created it and its process, because file
reads are not told the calling task. Within one single-threaded process that is the
same thing; it differs for a signalfd inherited over fork or read by another thread.
"""
from __future__ import annotations

import errno
import struct
import weakref

from ..kernel import signals as S
from ..kernel.errors import SysError, WouldBlock
from ..kernel.sigframe import LAYOUTS, siginfo_layout
from ..kernel.wait import POLLIN, POLLRDNORM
from . import iov
from .eventfd import AnonFile
from .file import O_NONBLOCK

SFD_NONBLOCK = O_NONBLOCK
SFD_CLOEXEC = 0o2000000
SIGNALFD_SIGINFO_SIZE = 128

# struct signalfd_siginfo: field -> (offset, struct format).
SSI_FIELDS = {
    "signo": (0, "I"), "errno": (4, "i"), "code": (8, "i"), "pid": (12, "I"),
    "uid": (16, "I"), "fd": (20, "i"), "tid": (24, "I"), "band": (28, "I"),
    "overrun": (32, "I"), "trapno": (36, "I"), "status": (40, "i"), "int": (44, "i"),
    "ptr": (48, "Q"), "utime": (56, "Q"), "stime": (64, "Q"), "addr": (72, "Q"),
    "addr_lsb": (80, "H"), "syscall": (84, "i"), "call_addr": (88, "Q"), "arch": (96, "I"),
}
# siginfo_t union member field -> the signalfd_siginfo fields it fills
# (fs/signalfd.c signalfd_copyinfo; the sigval fills both ssi_ptr and ssi_int).
_FROM_SIGINFO = {
    "pid": ("pid",), "uid": ("uid",), "tid": ("tid",), "overrun": ("overrun",),
    "value": ("ptr", "int"), "band": ("band",), "fd": ("fd",), "addr": ("addr",),
    "addr_lsb": ("addr_lsb",), "status": ("status",), "utime": ("utime",),
    "stime": ("stime",), "call_addr": ("call_addr",), "syscall": ("syscall",),
    "arch": ("arch",),
}
# Fault layouts with extra fields (bounds, pkey, perf data) report only the address.
_ADDR_ONLY = {"fault_bnderr", "fault_pkuerr", "fault_perf"}


def signalfd_siginfo(info: bytes) -> bytes:
    """The struct signalfd_siginfo for a kernel siginfo_t (128 bytes each)."""
    info = bytes(info).ljust(SIGNALFD_SIGINFO_SIZE, b"\0")
    signo, err, code = struct.unpack_from("<iii", info, 0)
    out = bytearray(SIGNALFD_SIGINFO_SIZE)
    struct.pack_into("<Iii", out, 0, signo & 0xffffffff, err, code)
    layout = siginfo_layout(signo, code)
    for name, fmt, offset in LAYOUTS[layout]:
        if layout in _ADDR_ONLY and name != "addr":
            continue
        value = struct.unpack_from("<" + fmt, info, offset)[0]
        for target in _FROM_SIGINFO.get(name, ()):
            toff, tfmt = SSI_FIELDS[target]
            bits = 8 * struct.calcsize(tfmt)
            value_t = value & ((1 << bits) - 1)
            if tfmt.islower() and value_t >> (bits - 1):
                value_t -= 1 << bits
            struct.pack_into("<" + tfmt, out, toff, value_t)
    return bytes(out)


# Thread group -> its signalfds, to notify when a signal is generated for it.
_by_group: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def notify_signal(tg) -> None:
    """A signal was generated for (a thread of) `tg`: wake its signalfd readers/pollers."""
    files = _by_group.get(tg)
    if files:
        for f in list(files):
            f.waitqueue.notify(POLLIN | POLLRDNORM)


def watch_signals(kernel) -> None:
    """Make `kernel.send_signal` call notify_signal() (idempotent)."""
    send = kernel.send_signal
    if getattr(send, "notifies_signalfd", False):
        return

    def send_and_notify(tg, sig, info, task=None):
        send(tg, sig, info, task)
        notify_signal(task.tg if task is not None else tg)

    send_and_notify.notifies_signalfd = True
    kernel.send_signal = send_and_notify


class SignalFD(AnonFile):
    anon_name = b"signalfd"

    def __init__(self, task, mask: int, flags: int):
        super().__init__(flags)
        self.task = task        # whose pending signals it reads (see the module comment)
        self.mask = 0
        self.set_mask(mask)
        _by_group.setdefault(task.tg, weakref.WeakSet()).add(self)

    def set_mask(self, mask: int) -> None:
        self.mask = mask & ((1 << S.NSIG) - 1) & ~S.UNBLOCKABLE
        self.waitqueue.notify(POLLIN | POLLRDNORM)

    def _take(self):
        not_wanted = ~self.mask
        t = self.task
        return t.pending.take(not_wanted) or t.tg.pending.take(not_wanted)

    def _read(self, dst, offset) -> int:
        room = iov.total(dst) // SIGNALFD_SIGINFO_SIZE
        if room == 0:
            raise SysError(errno.EINVAL)
        out = []
        while len(out) < room:
            item = self._take()
            if item is None:
                break
            out.append(signalfd_siginfo(item[1]))
        if not out:
            raise WouldBlock(POLLIN)
        return iov.copy_into(dst, b"".join(out))

    def _write(self, src, offset, advance: bool) -> int:
        raise SysError(errno.EINVAL)

    def readiness(self, mask: int) -> int:
        t = self.task
        if (t.pending.mask | t.tg.pending.mask) & self.mask:
            return (POLLIN | POLLRDNORM) & mask
        return 0

    def release(self) -> None:
        files = _by_group.get(self.task.tg)
        if files is not None:
            files.discard(self)
