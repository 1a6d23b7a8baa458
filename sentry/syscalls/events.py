"""Event files and their syscalls: eventfd, epoll, timerfd, signalfd.

The files live in sentry/vfs (eventfd.py, epoll.py, timerfd.py, signalfd.py); this module
decodes arguments, checks them in the order Linux does (which decides the errno when
several are wrong) and installs the new descriptions. Reads, writes and polls of these
files go through the generic file syscalls.
"""
import errno
import struct
import time

from ..kernel import signals as S
from ..kernel.errors import SysError
from ..kernel.wait import Block, INTERRUPTED, POLLIN
from ..vfs.epoll import (EPOLL_CTL_DEL, EPOLLWAKEUP, EpollFile, check_watchable)
from ..vfs.file import O_PATH
from ..vfs.eventfd import EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, EventFD
from ..vfs.signalfd import SFD_CLOEXEC, SFD_NONBLOCK, SignalFD
from ..vfs.timerfd import (CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM, CLOCK_MONOTONIC,
                           CLOCK_REALTIME, CLOCK_REALTIME_ALARM, TFD_TIMER_ABSTIME,
                           TFD_TIMER_CANCEL_ON_SET, TimerFD, ns_timespec, timespec_ns)
from .table import PARTIAL, syscall

O_CLOEXEC = 0o2000000
EPOLL_CLOEXEC = O_CLOEXEC
EPOLL_EVENT = struct.Struct("<IQ")            # struct epoll_event is packed on x86-64
EP_MAX_EVENTS = 0x7fffffff // EPOLL_EVENT.size
TASK_SIZE = 0x7ffffffff000                   # user addresses end here (access_ok)
TFD_CLOEXEC, TFD_NONBLOCK = O_CLOEXEC, EFD_NONBLOCK
TIMERFD_CLOCKS = (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM,
                  CLOCK_BOOTTIME_ALARM)
ITIMERSPEC = struct.Struct("<qqqq")           # it_interval, then it_value
SIGSET_SIZE = 8


def s32(v: int) -> int:
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v


def _install(t, desc, cloexec: bool) -> int:
    try:
        return t.fdtable.install(desc, cloexec=cloexec)
    finally:
        desc.decref()


def _file_of_type(t, fd, cls):
    """The description at `fd`: EBADF if none, EINVAL if it is not a `cls`."""
    desc = t.fdtable.get(s32(fd))
    if not isinstance(desc, cls):
        raise SysError(errno.EINVAL)
    return desc


# ---- eventfd ----------------------------------------------------------------------------
@syscall("eventfd2", ("int", "flags"), ret="fd")
def sys_eventfd2(t, initval, flags, *_):
    if flags & ~(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK):
        raise SysError(errno.EINVAL)
    return _install(t, EventFD(initval & 0xffffffff, flags), bool(flags & EFD_CLOEXEC))


@syscall("eventfd", ("int",), ret="fd")
def sys_eventfd(t, initval, *_):
    return sys_eventfd2(t, initval, 0)


# ---- epoll ------------------------------------------------------------------------------
@syscall("epoll_create1", ("flags",), ret="fd")
def sys_epoll_create1(t, flags, *_):
    if flags & ~EPOLL_CLOEXEC:
        raise SysError(errno.EINVAL)
    return _install(t, EpollFile(), bool(flags & EPOLL_CLOEXEC))


@syscall("epoll_create", ("int",), ret="fd")
def sys_epoll_create(t, size, *_):
    if s32(size) <= 0:
        raise SysError(errno.EINVAL)
    return sys_epoll_create1(t, 0)


@syscall("epoll_ctl", ("fd", "int", "fd", "ptr"))
def sys_epoll_ctl(t, epfd, op, fd, event, *_):
    op = s32(op)
    events = data = 0
    if op != EPOLL_CTL_DEL:
        events, data = EPOLL_EVENT.unpack(t.copy_in(event, EPOLL_EVENT.size))
    ep = t.fdtable.get(s32(epfd))
    target = t.fdtable.get(s32(fd))
    if ep.flags & O_PATH:
        raise SysError(errno.EBADF)
    check_watchable(target)
    if events & EPOLLWAKEUP and t.tg.euid != 0:
        events &= ~EPOLLWAKEUP        # needs CAP_BLOCK_SUSPEND; silently dropped
    if not isinstance(ep, EpollFile):
        raise SysError(errno.EINVAL)
    ep.ctl(op, target, s32(fd), events, data)
    return 0


def _epoll_wait(t, epfd, events_addr, maxevents, deadline):
    maxevents = s32(maxevents)
    if maxevents <= 0 or maxevents > EP_MAX_EVENTS:
        raise SysError(errno.EINVAL)
    if events_addr + maxevents * EPOLL_EVENT.size > TASK_SIZE:
        raise SysError(errno.EFAULT)
    ep = _file_of_type(t, epfd, EpollFile)
    while True:
        reports = ep.collect(maxevents)
        if reports:
            t.copy_out(events_addr, b"".join(EPOLL_EVENT.pack(revents, item.data)
                                             for item, revents in reports))
            ep.consume(reports)
            return len(reports)
        if deadline is not None and time.monotonic() >= deadline:
            return 0
        reason = yield Block([ep.waitqueue], mask=POLLIN, deadline=deadline)
        if reason == INTERRUPTED:
            return -errno.EINTR       # epoll_wait is never restarted (signal(7))


def _ms_deadline(timeout):
    timeout = s32(timeout)
    return None if timeout < 0 else time.monotonic() + timeout / 1000


def _with_sigmask(t, sigmask, sigsetsize):
    """The temporary signal mask of epoll_pwait(2): restored on return, or after the
    signal handler runs when the wait was interrupted (kernel.return_to_user)."""
    if not sigmask:
        return
    if sigsetsize != SIGSET_SIZE:
        raise SysError(errno.EINVAL)
    mask = struct.unpack("<Q", t.copy_in(sigmask, SIGSET_SIZE))[0]
    t.saved_sigmask = t.sigmask
    t.sigmask = mask & ~S.UNBLOCKABLE


def _wait_with_sigmask(t, epfd, events, maxevents, deadline, sigmask, sigsetsize):
    _with_sigmask(t, sigmask, sigsetsize)
    try:
        r = yield from _epoll_wait(t, epfd, events, maxevents, deadline)
    except SysError as e:
        r = -e.errno
    if r != -errno.EINTR and t.saved_sigmask is not None:
        t.sigmask, t.saved_sigmask = t.saved_sigmask, None
    return r


@syscall("epoll_wait", ("fd", "ptr", "int", "int"))
def sys_epoll_wait(t, epfd, events, maxevents, timeout, *_):
    return _epoll_wait(t, epfd, events, maxevents, _ms_deadline(timeout))


@syscall("epoll_pwait", ("fd", "ptr", "int", "int", "ptr", "size"))
def sys_epoll_pwait(t, epfd, events, maxevents, timeout, sigmask, sigsetsize):
    return _wait_with_sigmask(t, epfd, events, maxevents, _ms_deadline(timeout),
                              sigmask, sigsetsize)


@syscall("epoll_pwait2", ("fd", "ptr", "int", "ptr", "ptr", "size"))
def sys_epoll_pwait2(t, epfd, events, maxevents, timeout, sigmask, sigsetsize):
    deadline = None
    if timeout:
        sec, nsec = struct.unpack("<qq", t.copy_in(timeout, 16))
        deadline = time.monotonic() + timespec_ns(sec, nsec) / 1e9
    return _wait_with_sigmask(t, epfd, events, maxevents, deadline, sigmask, sigsetsize)


# ---- timerfd ----------------------------------------------------------------------------
@syscall("timerfd_create", ("int", "flags"), ret="fd", support=PARTIAL,
         note="CLOCK_REALTIME timers do not follow clock changes (the sandbox cannot set "
              "the clock); TFD_TIMER_CANCEL_ON_SET never fires")
def sys_timerfd_create(t, clockid, flags, *_):
    clockid = s32(clockid)
    if flags & ~(TFD_CLOEXEC | TFD_NONBLOCK) or clockid not in TIMERFD_CLOCKS:
        raise SysError(errno.EINVAL)
    return _install(t, TimerFD(t.kernel, clockid, flags), bool(flags & TFD_CLOEXEC))


def _pack_itimerspec(value: int, interval: int) -> bytes:
    return ITIMERSPEC.pack(*ns_timespec(interval), *ns_timespec(value))


@syscall("timerfd_settime", ("fd", "flags", "ptr", "ptr"))
def sys_timerfd_settime(t, fd, flags, new, old, *_):
    isec, insec, vsec, vnsec = ITIMERSPEC.unpack(t.copy_in(new, ITIMERSPEC.size))
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        raise SysError(errno.EINVAL)
    interval, value = timespec_ns(isec, insec), timespec_ns(vsec, vnsec)
    tfd = _file_of_type(t, fd, TimerFD)
    old_value, old_interval = tfd.settime(flags, value, interval)
    if old:
        t.copy_out(old, _pack_itimerspec(old_value, old_interval))
    return 0


@syscall("timerfd_gettime", ("fd", "ptr"))
def sys_timerfd_gettime(t, fd, cur, *_):
    tfd = _file_of_type(t, fd, TimerFD)
    t.copy_out(cur, _pack_itimerspec(*tfd.gettime()))
    return 0


# ---- signalfd ---------------------------------------------------------------------------
@syscall("signalfd4", ("fd", "ptr", "size", "flags"), ret="fd", support=PARTIAL,
         note="reads the signals of the creating thread (Linux: of the reading thread)")
def sys_signalfd4(t, fd, mask_addr, sizemask, flags, *_):
    if sizemask != SIGSET_SIZE:
        raise SysError(errno.EINVAL)
    mask = struct.unpack("<Q", t.copy_in(mask_addr, SIGSET_SIZE))[0]
    if flags & ~(SFD_CLOEXEC | SFD_NONBLOCK):
        raise SysError(errno.EINVAL)
    fd = s32(fd)
    if fd != -1:
        _file_of_type(t, fd, SignalFD).set_mask(mask)
        return fd
    return _install(t, SignalFD(t, mask, flags), bool(flags & SFD_CLOEXEC))


@syscall("signalfd", ("fd", "ptr", "size"), ret="fd", support=PARTIAL,
         note="reads the signals of the creating thread (Linux: of the reading thread)")
def sys_signalfd(t, fd, mask_addr, sizemask, *_):
    return sys_signalfd4(t, fd, mask_addr, sizemask, 0)
