"""timerfd(2), and the interval timer it shares with POSIX timers and setitimer.

`IntervalTimer` keeps a timer as Linux's hrtimer-based timers do: the next expiry as an
absolute time on the timer's own clock (ns), and an interval (0 = one-shot). Expirations
are counted, never queued: catching up at time `now` counts every expiry <= now at once
(1 + the whole intervals missed) and moves the expiry past `now`. The kernel loop only
provides wake-ups (`Kernel.add_timer`, CLOCK_MONOTONIC seconds); each wake-up re-reads the
timer's clock, so a wake-up that comes early (float rounding, a clock that moved) simply
re-arms.

Known divergence: absolute CLOCK_REALTIME timers are converted to a monotonic wake-up when
armed; the sandbox cannot set the clock, so they are never cancelled or moved by a clock
change (TFD_TIMER_CANCEL_ON_SET is accepted and never fires).
"""
from __future__ import annotations

import errno
import struct
import time

from ..kernel.errors import SysError, WouldBlock
from ..kernel.wait import POLLIN, POLLRDNORM
from . import iov
from .eventfd import AnonFile

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 8, 9
# The host clock each timer clock reads (the *_ALARM clocks differ only in waking a
# suspended machine, which a sandbox never is).
HOST_CLOCKS = {CLOCK_REALTIME: time.CLOCK_REALTIME, CLOCK_MONOTONIC: time.CLOCK_MONOTONIC,
               CLOCK_BOOTTIME: time.CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM: time.CLOCK_REALTIME,
               CLOCK_BOOTTIME_ALARM: time.CLOCK_BOOTTIME}

TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2
TFD_IOC_SET_TICKS = 0x40085400
NSEC = 1_000_000_000
U64_MAX = (1 << 64) - 1
_U64 = struct.Struct("<Q")


class IntervalTimer:
    """A timer on one host clock that calls `on_expire(count)` when it expires."""

    def __init__(self, kernel, host_clock: int, on_expire):
        self.kernel = kernel
        self.host_clock = host_clock
        self.on_expire = on_expire
        self.expiry: int | None = None     # absolute ns on host_clock; None = disarmed
        self.interval = 0                  # ns; kept even while disarmed (gettime shows it)
        self._wakeup = None                # the kernel timer entry, if one is pending

    def now(self) -> int:
        return time.clock_gettime_ns(self.host_clock)

    @property
    def armed(self) -> bool:
        return self.expiry is not None

    def arm(self, value: int, interval: int, absolute: bool) -> None:
        """Set the timer: `value` ns from now (or at `value` when absolute); 0 disarms.
        Expirations not yet reported by the owner are the owner's to discard."""
        self.cancel()
        self.interval = interval
        if value == 0:
            return
        self.expiry = value if absolute else self.now() + value
        self._schedule()

    def cancel(self) -> None:
        self.expiry = None
        self.kernel.cancel_timer(self._wakeup)
        self._wakeup = None

    def catch_up(self) -> int:
        """Count (and move past) the expiries that are due; the count is returned, not
        reported through on_expire."""
        if self.expiry is None:
            return 0
        now = self.now()
        if now < self.expiry:
            return 0
        if self.interval:
            count = 1 + (now - self.expiry) // self.interval
            self.expiry += count * self.interval
        else:
            count = 1
            self.expiry = None
        return count

    def remaining(self) -> int:
        """ns until the next expiry after catching up (0 when disarmed); callers that
        count expirations must catch up first themselves."""
        if self.expiry is None:
            return 0
        return max(0, self.expiry - self.now())

    def _schedule(self) -> None:
        delay = max(0, self.expiry - self.now()) / NSEC
        self._wakeup = self.kernel.add_timer(time.monotonic() + delay, self._fire)

    def _fire(self) -> None:
        self._wakeup = None
        count = self.catch_up()
        if self.expiry is not None:
            self._schedule()
        if count:
            self.on_expire(count)


def timespec_ns(sec: int, nsec: int) -> int:
    """A struct timespec as ns; EINVAL unless 0 <= sec and 0 <= nsec < 1e9."""
    if sec < 0 or not 0 <= nsec < NSEC:
        raise SysError(errno.EINVAL)
    return sec * NSEC + nsec


def ns_timespec(ns: int) -> tuple[int, int]:
    return divmod(ns, NSEC)


class TimerFD(AnonFile):
    anon_name = b"timerfd"

    def __init__(self, kernel, clockid: int, flags: int):
        super().__init__(flags)
        self.clockid = clockid
        self.ticks = 0            # expirations not yet read
        self.timer = IntervalTimer(kernel, HOST_CLOCKS[clockid], self._expired)

    def _expired(self, count: int) -> None:
        self.ticks += count
        self.waitqueue.notify(POLLIN | POLLRDNORM)

    def _update(self) -> None:
        self.ticks += self.timer.catch_up()

    # -- timerfd_settime / timerfd_gettime ----------------------------------------------
    def gettime(self) -> tuple[int, int]:
        """(ns until the next expiry, interval ns)."""
        self._update()
        return self.timer.remaining(), self.timer.interval

    def settime(self, flags: int, value: int, interval: int) -> tuple[int, int]:
        """Arm (or with value 0 disarm) the timer; returns the old gettime() pair.
        Pending expirations are discarded."""
        old = self.gettime()
        self.ticks = 0
        self.timer.arm(value, interval, absolute=bool(flags & TFD_TIMER_ABSTIME))
        return old

    # -- I/O ----------------------------------------------------------------------------
    def _read(self, dst, offset) -> int:
        if iov.total(dst) < 8:
            raise SysError(errno.EINVAL)
        self._update()
        if not self.ticks:
            raise WouldBlock(POLLIN)
        iov.copy_into(dst, _U64.pack(min(self.ticks, U64_MAX)))
        self.ticks = 0
        return 8

    def _write(self, src, offset, advance: bool) -> int:
        raise SysError(errno.EINVAL)

    def readiness(self, mask: int) -> int:
        self._update()
        return (POLLIN | POLLRDNORM) & mask if self.ticks else 0

    def ioctl(self, task, cmd: int, arg: int) -> int:
        if cmd == TFD_IOC_SET_TICKS:
            ticks = _U64.unpack(task.copy_in(arg, 8))[0]
            if ticks == 0:
                raise SysError(errno.EINVAL)
            self.ticks = ticks
            self.waitqueue.notify(POLLIN | POLLRDNORM)
            return 0
        return super().ioctl(task, cmd, arg)

    def release(self) -> None:
        self.timer.cancel()
