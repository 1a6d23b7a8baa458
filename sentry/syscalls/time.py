"""Clocks, sleeps and randomness. No vDSO is given to the application: every clock read
is a syscall served here."""
import errno
import os
import struct
import time

from ..kernel.errors import SysError
from ..kernel.wait import Block, INTERRUPTED, TIMEOUT
from .table import syscall

CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC, 2: time.CLOCK_PROCESS_CPUTIME_ID,
          3: time.CLOCK_THREAD_CPUTIME_ID, 4: time.CLOCK_MONOTONIC_RAW,
          5: time.CLOCK_REALTIME, 6: time.CLOCK_MONOTONIC, 7: time.CLOCK_BOOTTIME,
          8: time.CLOCK_REALTIME, 9: time.CLOCK_BOOTTIME, 11: time.CLOCK_TAI}


def _clock(clk):
    c = CLOCKS.get(clk)
    if c is None:
        raise SysError(errno.EINVAL)
    return c


def _read_ts(t, addr):
    sec, nsec = struct.unpack("<qq", t.mm.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SysError(errno.EINVAL)
    return sec, nsec


@syscall("clock_gettime", ("int", "ptr"))
def sys_clock_gettime(t, clk, addr, *_):
    ns = time.clock_gettime_ns(_clock(clk))
    t.mm.write(addr, struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000))
    return 0


@syscall("clock_getres", ("int", "ptr"))
def sys_clock_getres(t, clk, addr, *_):
    _clock(clk)
    if addr:
        t.mm.write(addr, struct.pack("<qq", 0, 1 if clk not in (5, 6) else 4_000_000))
    return 0


@syscall("gettimeofday", ("ptr", "ptr"))
def sys_gettimeofday(t, tv, tz, *_):
    ns = time.time_ns()
    if tv:
        t.mm.write(tv, struct.pack("<qq", ns // 1_000_000_000, (ns // 1000) % 1_000_000))
    if tz:
        t.mm.write(tz, bytes(8))
    return 0


@syscall("time", ("ptr",))
def sys_time(t, addr, *_):
    now = int(time.time())
    if addr:
        t.mm.write(addr, struct.pack("<q", now))
    return now


def _sleep(t, deadline, clock_real, rem_addr):
    """Sleep until a CLOCK_MONOTONIC deadline; on a signal, write the remainder."""
    while True:
        reason = yield Block([], deadline=deadline)
        if reason == TIMEOUT or time.monotonic() >= deadline:
            return 0
        if reason == INTERRUPTED:
            if rem_addr:
                left = max(0.0, deadline - time.monotonic())
                t.mm.write(rem_addr, struct.pack("<qq", int(left), int(left % 1 * 1e9)))
            return -516          # ERESTART_RESTARTBLOCK: EINTR if a handler runs


@syscall("nanosleep", ("ptr", "ptr"))
def sys_nanosleep(t, req, rem, *_):
    sec, nsec = _read_ts(t, req)
    return _sleep(t, time.monotonic() + sec + nsec / 1e9, False, rem)


TIMER_ABSTIME = 1


@syscall("clock_nanosleep", ("int", "flags", "ptr", "ptr"))
def sys_clock_nanosleep(t, clk, flags, req, rem, *_):
    c = _clock(clk)
    if clk in (2, 3):
        raise SysError(errno.EINVAL)
    sec, nsec = _read_ts(t, req)
    if flags & TIMER_ABSTIME:
        delta = sec + nsec / 1e9 - time.clock_gettime(c)
        return _sleep(t, time.monotonic() + max(0.0, delta), False, 0)
    return _sleep(t, time.monotonic() + sec + nsec / 1e9, False, rem)


GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


@syscall("getrandom", ("ptr", "size", "flags"))
def sys_getrandom(t, buf, n, flags, *_):
    if flags & ~7 or (flags & GRND_RANDOM and flags & GRND_INSECURE):
        raise SysError(errno.EINVAL)
    n = min(n, 33554431)
    done = 0
    while done < n:
        chunk = min(n - done, 1 << 16)
        t.mm.write(buf + done, os.urandom(chunk))
        done += chunk
    return n


@syscall("alarm", ("int",))
def sys_alarm(t, seconds, *_):
    from ..kernel import signals as S
    from ..kernel.sigframe import pack_siginfo
    k = t.kernel
    tg = t.tg
    old = tg.itimer_real
    left = 0
    if old is not None:
        k.cancel_timer(old)
        left = max(0, int(old[0] - time.monotonic() + 0.999999))
        tg.itimer_real = None
    if seconds:
        tg.itimer_real = k.add_timer(time.monotonic() + seconds, lambda: (
            setattr(tg, "itimer_real", None),
            k.send_signal(tg, S.SIGALRM, pack_siginfo(S.SIGALRM, S.SI_KERNEL))))
    return left
