"""Clocks, sleeps and randomness. No vDSO is given to the application: every clock read
is a syscall served here."""
import errno
import os
import struct
import time

from ..kernel import usage
from ..kernel.errors import SysError
from ..kernel.wait import Block, INTERRUPTED, TIMEOUT
from .table import PARTIAL, syscall

# Wall and monotonic clocks are the host's. CPU-time clocks (2, 3 and the dynamic ones
# that encode a pid/tid) are the application's threads' CPU time, from the platform.
CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC, 4: time.CLOCK_MONOTONIC_RAW,
          5: time.CLOCK_REALTIME, 6: time.CLOCK_MONOTONIC, 7: time.CLOCK_BOOTTIME,
          8: time.CLOCK_REALTIME, 9: time.CLOCK_BOOTTIME, 11: time.CLOCK_TAI}
CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 2, 3


def _clock(clk):
    c = CLOCKS.get(clk)
    if c is None:
        raise SysError(errno.EINVAL)
    return c


def _cpu_clock(t, clk):
    """For a CPU-time clock id, a function giving its time in ns now; None if `clk` is
    not one. A process's clock counts its exited threads too (kernel/usage.py)."""
    if clk == CLOCK_PROCESS_CPUTIME_ID:
        tg = t.tg
        return lambda: usage.group_cpu_ns(tg)
    if clk == CLOCK_THREAD_CPUTIME_ID:
        return lambda: usage.task_cpu_ns(t)
    if clk >= 0:
        return None
    # Dynamic CPU clocks (clock_getcpuclockid, pthread_getcpuclockid): ~pid << 3 | type.
    pid = ~(clk >> 3)
    if clk & 3 == 3 or pid < 0:
        raise SysError(errno.EINVAL)
    k = t.kernel
    if clk & 4:                      # one thread
        th = k.tasks.get(pid) if pid else t
        if th is None or th.dead:
            raise SysError(errno.EINVAL)
        return lambda: usage.task_cpu_ns(th)
    tg = k.groups.get(pid) if pid else t.tg
    if tg is None or tg.exit_status is not None:
        raise SysError(errno.EINVAL)
    return lambda: usage.group_cpu_ns(tg)


def _read_ts(t, addr):
    sec, nsec = struct.unpack("<qq", t.mm.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SysError(errno.EINVAL)
    return sec, nsec


def _signed32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v


@syscall("clock_gettime", ("int", "ptr"))
def sys_clock_gettime(t, clk, addr, *_):
    clk = _signed32(clk)
    cpu = _cpu_clock(t, clk)
    ns = cpu() if cpu is not None else time.clock_gettime_ns(_clock(clk))
    t.mm.write(addr, struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000))
    return 0


@syscall("clock_getres", ("int", "ptr"))
def sys_clock_getres(t, clk, addr, *_):
    clk = _signed32(clk)
    if _cpu_clock(t, clk) is None:
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


@syscall("clock_nanosleep", ("int", "flags", "ptr", "ptr"), support=PARTIAL,
         note="a process CPU-time clock is EOPNOTSUPP (Linux sleeps on it)")
def sys_clock_nanosleep(t, clk, flags, req, rem, *_):
    clk = _signed32(clk)
    if clk in (CLOCK_THREAD_CPUTIME_ID, CLOCK_PROCESS_CPUTIME_ID):
        # Linux has no sleep on a thread's CPU clock (EOPNOTSUPP); it has one on a
        # process's, which the sentry does not (EOPNOTSUPP too: see the note).
        raise SysError(errno.EOPNOTSUPP)
    if clk < 0:
        raise SysError(errno.EINVAL)
    c = _clock(clk)
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


@syscall("clock_settime", ("int", "ptr"), note="the sandbox may not set the host's clocks")
def sys_clock_settime(t, clk, ts, *_):
    clk = _signed32(clk)
    if _cpu_clock(t, clk) is not None:
        raise SysError(errno.EPERM)      # a CPU-time clock cannot be set (EINVAL if invalid)
    if clk not in (0, 11):
        raise SysError(errno.EINVAL)
    _read_ts(t, ts)
    raise SysError(errno.EPERM)


@syscall("settimeofday", ("ptr", "ptr"), note="the sandbox may not set the host's clocks")
def sys_settimeofday(t, tv, tz, *_):
    # Linux validates what it was given (EFAULT, EINVAL) before the permission check,
    # which here always refuses (EPERM, as for a root without CAP_SYS_TIME).
    if tv:
        sec, usec = struct.unpack("<qq", t.copy_in(tv, 16))
        if not 0 <= usec < 1_000_000 or sec < 0:
            raise SysError(errno.EINVAL)
    if tz:
        t.copy_in(tz, 8)
    raise SysError(errno.EPERM)


@syscall("adjtimex", ("ptr",), support="partial", note="read-only: modes other than 0 are EPERM")
def sys_adjtimex(t, buf, *_):
    modes = struct.unpack("<I", t.copy_in(buf, 4))[0]
    if modes:
        raise SysError(errno.EPERM)
    out = bytearray(t.copy_in(buf, 208))
    ns = time.time_ns()
    struct.pack_into("<qq", out, 72, ns // 1_000_000_000, (ns // 1000) % 1_000_000)
    t.copy_out(buf, bytes(out))
    return 0      # TIME_OK
