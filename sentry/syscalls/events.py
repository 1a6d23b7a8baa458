"""Event files and their syscalls: eventfd, epoll, timerfd, signalfd; and the timers that
signal a process: POSIX timers (timer_create...) and setitimer/getitimer.

The files live in sentry/vfs (eventfd.py, epoll.py, timerfd.py, signalfd.py); this module
decodes arguments, checks them in the order Linux does (which decides the errno when
several are wrong) and installs the new descriptions. Reads, writes and polls of these
files go through the generic file syscalls.
"""
import errno
import struct
import time
import weakref

from ..kernel import signals as S
from ..kernel.caps import CAP_BLOCK_SUSPEND, has_cap
from ..kernel.errors import SysError
from ..kernel.sigframe import SI_TIMER, pack_siginfo
from ..kernel.wait import Block, INTERRUPTED, POLLIN
from ..vfs.epoll import EPOLL_CTL_DEL, EPOLLWAKEUP, EpollFile, check_watchable
from ..vfs.eventfd import EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, EventFD
from ..vfs.file import O_PATH
from ..vfs.signalfd import SFD_CLOEXEC, SFD_NONBLOCK, SignalFD
from ..vfs.timerfd import (CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM, CLOCK_MONOTONIC,
                           CLOCK_REALTIME, CLOCK_REALTIME_ALARM, HOST_CLOCKS, NSEC,
                           TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET, IntervalTimer,
                           TimerFD, ns_timespec, timespec_ns)
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
    if events & EPOLLWAKEUP and not has_cap(t, CAP_BLOCK_SUSPEND):
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


# ---- POSIX timers -----------------------------------------------------------------------
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
SIGEVENT_SIZE = 64
TIMER_ABSTIME = 1
INT_MAX = 0x7fffffff
# Clocks a POSIX timer may use -> host clock. The CPU-time clocks (2, 3 and per-process
# or per-thread clock ids) cannot be measured for the application here: EINVAL; the raw
# and coarse clocks have no timers in Linux either: EOPNOTSUPP.
POSIX_TIMER_CLOCKS = dict(HOST_CLOCKS)
POSIX_TIMER_CLOCKS[11] = time.CLOCK_TAI
NO_TIMER_CLOCKS = (4, 5, 6)


class PosixTimer:
    """One timer_create() timer. Like Linux, it never has more than one signal queued:
    expirations while its signal is still pending are folded into that signal's
    si_overrun (the queued siginfo is rewritten in place); timer_getoverrun() reports the
    overrun of the last signal that left the queue."""

    def __init__(self, t, timer_id, host_clock, notify, signo, value, target):
        self.kernel = t.kernel
        self.tg = t.tg
        self.mm = t.mm               # exec replaces the address space, ending the timer
        self.id = timer_id
        self.notify = notify
        self.signo = signo
        self.value = value           # sigev_value, delivered as si_value
        self.target = target         # a Task for SIGEV_THREAD_ID, else None (the process)
        self.timer = IntervalTimer(t.kernel, host_clock, self._expired)
        self._queued = None          # the siginfo bytes we queued, while maybe pending
        self._folded = 0             # expirations the queued signal stands for
        self._last_overrun = 0

    def _pending_set(self):
        return self.target.pending if self.target is not None else self.tg.pending

    def _queued_index(self):
        """Where our signal sits in the pending queue, or None once it has left."""
        if self._queued is None:
            return None
        for i, (_, info) in enumerate(self._pending_set().queue):
            if info is self._queued:
                return i
        # Delivered (or taken by sigwaitinfo/signalfd): its overrun is now the last one.
        self._last_overrun = min(self._folded - 1, INT_MAX)
        self._queued = None
        return None

    def _siginfo(self, overrun):
        return pack_siginfo(self.signo, SI_TIMER, tid=self.id, overrun=min(overrun, INT_MAX),
                            value=self.value)

    def owner_alive(self) -> bool:
        return any(not th.dead and th.mm is self.mm for th in self.tg.tasks)

    def _expired(self, count: int) -> None:
        if not self.owner_alive():
            self.timer.cancel()
            return
        if self.notify == SIGEV_NONE:
            return
        i = self._queued_index()
        if i is not None:
            self._folded += count
            self._queued = self._siginfo(self._folded - 1)
            self._pending_set().queue[i] = (self.signo, self._queued)
            return
        self._folded = count
        info = self._siginfo(count - 1)
        self.kernel.send_signal(self.tg, self.signo, info, task=self.target)
        self._queued = info
        self._queued_index()         # not queued at all (ignored, coalesced): forget it

    def getoverrun(self) -> int:
        self._queued_index()
        return self._last_overrun

    def gettime(self) -> bytes:
        self.timer.catch_up()
        return _pack_itimerspec(self.timer.remaining(), self.timer.interval)


class PosixTimers:
    """A process's timers. Ids count up from 0 and are not reused soon (Linux keeps a
    per-process next id); fork does not inherit timers, exec and exit delete them."""

    def __init__(self):
        self.timers: dict[int, PosixTimer] = {}
        self.next_id = 0

    def new_id(self) -> int:
        while self.next_id in self.timers:
            self.next_id = (self.next_id + 1) & INT_MAX
        timer_id = self.next_id
        self.next_id = (self.next_id + 1) & INT_MAX
        return timer_id

    def prune(self) -> None:
        for timer_id, timer in list(self.timers.items()):
            if not timer.owner_alive():
                timer.timer.cancel()
                del self.timers[timer_id]


_posix_timers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _timers_of(tg) -> PosixTimers:
    table = _posix_timers.get(tg)
    if table is None:
        table = _posix_timers[tg] = PosixTimers()
    table.prune()
    return table


def _posix_timer(t, timer_id) -> PosixTimer:
    timer = _timers_of(t.tg).timers.get(s32(timer_id))
    if timer is None:
        raise SysError(errno.EINVAL)
    return timer


@syscall("timer_create", ("int", "ptr", "ptr"), support=PARTIAL,
         note="wall clocks only: CPU-time clocks are EINVAL")
def sys_timer_create(t, clockid, sevp, timer_id_addr, *_):
    clockid = s32(clockid)
    if clockid in NO_TIMER_CLOCKS:
        raise SysError(errno.EOPNOTSUPP)
    host_clock = POSIX_TIMER_CLOCKS.get(clockid)
    if host_clock is None:
        raise SysError(errno.EINVAL)
    table = _timers_of(t.tg)
    target = None
    if sevp:
        value, signo, notify, tid = struct.unpack_from("<Qiii", t.copy_in(sevp, SIGEVENT_SIZE))
        if notify == SIGEV_THREAD_ID:
            target = t.kernel.tasks.get(tid)
            if target is None or target.dead or target.tg is not t.tg:
                raise SysError(errno.EINVAL)
        elif notify not in (SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_NONE):
            raise SysError(errno.EINVAL)
        if notify != SIGEV_NONE and not 1 <= signo <= S.NSIG:
            raise SysError(errno.EINVAL)
        timer_id = table.new_id()
    else:
        timer_id = table.new_id()
        value, signo, notify = timer_id, S.SIGALRM, SIGEV_SIGNAL
    t.copy_out(timer_id_addr, struct.pack("<i", timer_id))
    table.timers[timer_id] = PosixTimer(t, timer_id, host_clock, notify, signo, value, target)
    return 0


@syscall("timer_settime", ("int", "flags", "ptr", "ptr"))
def sys_timer_settime(t, timer_id, flags, new, old, *_):
    if not new:
        raise SysError(errno.EINVAL)
    isec, insec, vsec, vnsec = ITIMERSPEC.unpack(t.copy_in(new, ITIMERSPEC.size))
    interval, value = timespec_ns(isec, insec), timespec_ns(vsec, vnsec)
    timer = _posix_timer(t, timer_id)
    old_spec = timer.gettime()
    timer.timer.arm(value, interval if value else 0, absolute=bool(flags & TIMER_ABSTIME))
    if old:
        t.copy_out(old, old_spec)
    return 0


@syscall("timer_gettime", ("int", "ptr"))
def sys_timer_gettime(t, timer_id, cur, *_):
    t.copy_out(cur, _posix_timer(t, timer_id).gettime())
    return 0


@syscall("timer_getoverrun", ("int",))
def sys_timer_getoverrun(t, timer_id, *_):
    return _posix_timer(t, timer_id).getoverrun()


@syscall("timer_delete", ("int",))
def sys_timer_delete(t, timer_id, *_):
    timer = _posix_timer(t, timer_id)
    timer.timer.cancel()
    del _posix_timers[t.tg].timers[timer.id]
    return 0


# ---- setitimer / getitimer --------------------------------------------------------------
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
ITIMERVAL = struct.Struct("<qqqq")            # it_interval, then it_value (timevals)
USEC = 1000


class RealITimer(IntervalTimer):
    """A process's ITIMER_REAL: SIGALRM on expiry. alarm(2) (syscalls/time.py) is the same
    timer; the two meet in `tg.itimer_real`, which holds the kernel timer entry of the
    pending SIGALRM wake-up, whoever set it: alarm reads its deadline (entry[0]) and
    cancels it with Kernel.cancel_timer, so this class keeps that slot current."""

    def __init__(self, kernel, tg):
        super().__init__(kernel, time.CLOCK_MONOTONIC, self._send)
        self.tg = tg

    def _send(self, count: int) -> None:
        self.kernel.send_signal(self.tg, S.SIGALRM, pack_siginfo(S.SIGALRM, S.SI_KERNEL))

    def _schedule(self) -> None:
        super()._schedule()
        self.tg.itimer_real = self._wakeup

    def _fire(self) -> None:
        fired = self._wakeup
        super()._fire()
        if self.tg.itimer_real is fired:
            self.tg.itimer_real = self._wakeup

    def cancel(self) -> None:
        if self._wakeup is not None and self.tg.itimer_real is self._wakeup:
            self.tg.itimer_real = None
        super().cancel()

    def owns_slot(self) -> bool:
        entry = self._wakeup
        return entry is not None and entry[2] is not None and self.tg.itimer_real is entry


_real_itimers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# CPU time is not measured for the application, so ITIMER_VIRTUAL and ITIMER_PROF only
# keep their setting (tg -> {which: (value ns, interval ns)}) and never expire.
_cpu_itimers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _real_itimer(t) -> RealITimer:
    timer = _real_itimers.get(t.tg)
    if timer is None:
        timer = _real_itimers[t.tg] = RealITimer(t.kernel, t.tg)
    return timer


def _itimer_state(t, which) -> tuple[int, int]:
    """(remaining ns, interval ns). An armed ITIMER_REAL never shows 0 remaining: one that
    is due but not yet serviced shows 1 us, as Linux's itimer_get_remtime does."""
    if which != ITIMER_REAL:
        return _cpu_itimers.get(t.tg, {}).get(which, (0, 0))
    timer = _real_itimer(t)
    if timer.owns_slot():
        return max(USEC, timer.expiry - timer.now()), timer.interval
    entry = t.tg.itimer_real                      # a pending alarm(2)
    if entry is not None and entry[2] is not None:
        return max(USEC, int((entry[0] - time.monotonic()) * NSEC)), 0
    return 0, 0


def _pack_itimerval(value: int, interval: int) -> bytes:
    return ITIMERVAL.pack(interval // NSEC, interval % NSEC // USEC,
                          value // NSEC, value % NSEC // USEC)


def _check_which(which):
    which = s32(which)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        raise SysError(errno.EINVAL)
    return which


@syscall("getitimer", ("int", "ptr"), support=PARTIAL,
         note="ITIMER_VIRTUAL/ITIMER_PROF keep their setting but never expire")
def sys_getitimer(t, which, cur, *_):
    which = _check_which(which)
    t.copy_out(cur, _pack_itimerval(*_itimer_state(t, which)))
    return 0


@syscall("setitimer", ("int", "ptr", "ptr"), support=PARTIAL,
         note="ITIMER_VIRTUAL/ITIMER_PROF keep their setting but never expire")
def sys_setitimer(t, which, new, old, *_):
    value = interval = 0
    if new:
        isec, iusec, vsec, vusec = ITIMERVAL.unpack(t.copy_in(new, ITIMERVAL.size))
        if isec < 0 or vsec < 0 or not 0 <= iusec < 1_000_000 or not 0 <= vusec < 1_000_000:
            raise SysError(errno.EINVAL)
        interval, value = isec * NSEC + iusec * USEC, vsec * NSEC + vusec * USEC
    which = _check_which(which)
    old_state = _itimer_state(t, which)
    if value == 0:
        interval = 0                              # a disarmed timer has no interval
    if which == ITIMER_REAL:
        entry = t.tg.itimer_real
        if entry is not None:                     # ours or alarm's: either way replaced
            t.kernel.cancel_timer(entry)
            t.tg.itimer_real = None
        _real_itimer(t).arm(value, interval, absolute=False)
    else:
        _cpu_itimers.setdefault(t.tg, {})[which] = (value, interval)
    if old:
        t.copy_out(old, _pack_itimerval(*old_state))
    return 0
