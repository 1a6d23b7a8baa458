"""eventfd, epoll, timerfd, signalfd, POSIX timers and setitimer.

The differential tests run tests/progs/events_*.c natively and under pysentry and compare
everything the program prints (each program prints only what is deterministic: counts,
orders, errnos, and timing facts such as "ticks >= 1"). The unit tests below them pin down
rules that a native run cannot show from one kernel (the nesting-depth rule, the
siginfo conversion) or that need a controlled clock (expiry counting).
"""
import errno
import struct

import pytest

from conftest import assert_same, compile_c, run_native, run_sandbox
from pysentry.sentry.kernel import signals as S
from pysentry.sentry.kernel.errors import SysError, WouldBlock
from pysentry.sentry.kernel.sigframe import pack_siginfo
from pysentry.sentry.kernel.wait import POLLIN, POLLOUT
from pysentry.sentry.vfs.epoll import (EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLET,
                                       EPOLLONESHOT, EpollFile)
from pysentry.sentry.vfs.eventfd import EFD_SEMAPHORE, MAX_COUNT, EventFD
from pysentry.sentry.vfs.pipe import make_pipe
from pysentry.sentry.vfs.signalfd import signalfd_siginfo
from pysentry.sentry.vfs.timerfd import IntervalTimer


# ---- differential: the same program natively and in the sandbox -------------------------
@pytest.mark.parametrize("prog", ["events_eventfd", "events_epoll", "events_timerfd",
                                  "events_signalfd", "events_timers"])
def test_program_matches_linux(prog):
    assert_same([compile_c(prog)])


def test_signalfd_collects_blocked_sigchld():
    # A blocked SIGCHLD stays pending although its default action ignores it.
    prog = compile_c("events_signalfd_chld")
    nat = run_native([prog])
    box = run_sandbox([prog])
    assert box.stdout == nat.stdout and box.returncode == nat.returncode


# ---- unit: files driven directly --------------------------------------------------------
def _read_u64(f):
    buf = bytearray(8)
    try:
        f.read([memoryview(buf)])
    except WouldBlock:
        return "EAGAIN"
    return struct.unpack("<Q", buf)[0]


def _write_u64(f, value):
    try:
        return f.write([memoryview(struct.pack("<Q", value))])
    except WouldBlock:
        return "EAGAIN"


def test_eventfd_counter_limits_and_semaphore():
    f = EventFD(0, 0)
    assert f.readiness(POLLIN | POLLOUT) == POLLOUT
    assert _write_u64(f, MAX_COUNT) == 8
    assert f.readiness(POLLIN | POLLOUT) == POLLIN
    assert _write_u64(f, 1) == "EAGAIN"
    assert _read_u64(f) == MAX_COUNT
    assert _read_u64(f) == "EAGAIN"
    s = EventFD(2, EFD_SEMAPHORE)
    assert [_read_u64(s), _read_u64(s), _read_u64(s)] == [1, 1, "EAGAIN"]


class Recorder:
    """A waiter that records the events it is notified of."""

    def __init__(self):
        self.seen = []

    def notify(self, events):
        self.seen.append(events)


def _reports(ep, maxevents=8):
    got = ep.collect(maxevents)
    ep.consume(got)
    return [(item.data, revents) for item, revents in got]


def test_epoll_level_edge_oneshot_on_a_pipe():
    r, w = make_pipe()
    ep = EpollFile()
    ep.ctl(EPOLL_CTL_ADD, r, 3, POLLIN, 1)
    assert _reports(ep) == []
    w.write([memoryview(b"x")])
    assert _reports(ep) == [(1, POLLIN)]
    assert _reports(ep) == [(1, POLLIN)]            # level-triggered: still there
    ep.ctl(EPOLL_CTL_MOD, r, 3, POLLIN | EPOLLET, 2)
    assert _reports(ep) == [(2, POLLIN)]            # MOD re-polls the file
    assert _reports(ep) == []                       # edge-triggered: once per change
    w.write([memoryview(b"y")])
    assert _reports(ep) == [(2, POLLIN)]
    ep.ctl(EPOLL_CTL_MOD, r, 3, POLLIN | EPOLLONESHOT, 3)
    assert _reports(ep) == [(3, POLLIN)]
    w.write([memoryview(b"z")])
    assert _reports(ep) == []                       # disarmed until the next MOD
    ep.ctl(EPOLL_CTL_DEL, r, 3)
    assert len(r.waitqueue) == 0


def test_epoll_notifies_its_own_waiters_and_unhooks_on_release():
    r, w = make_pipe()
    ep = EpollFile()
    ep.ctl(EPOLL_CTL_ADD, r, 3, POLLIN, 0)
    watcher = Recorder()
    ep.waitqueue.add(watcher, POLLIN)
    w.write([memoryview(b"x")])
    assert watcher.seen and watcher.seen[-1] & POLLIN
    assert ep.readiness(POLLIN) == POLLIN
    ep.decref()                                     # last reference: release()
    assert len(r.waitqueue) == 0


def test_epoll_forgets_a_released_file():
    r, w = make_pipe()
    ep = EpollFile()
    ep.ctl(EPOLL_CTL_ADD, r, 3, POLLIN, 0)
    w.write([memoryview(b"x")])
    r.decref()                                      # the file is gone; no fd refers to it
    assert _reports(ep) == []
    assert ep.readiness(POLLIN) == 0


def _epoll_error(fn):
    try:
        fn()
    except SysError as e:
        return errno.errorcode[e.errno]
    return "ok"


def test_epoll_nesting_depth_limit_both_directions():
    """At most 4 epoll-in-epoll links in any chain, whichever end grows (what Linux 6.18
    does: built bottom-up, adding the 5th level fails; top-down likewise)."""
    up = [EpollFile() for _ in range(6)]
    results = [_epoll_error(lambda i=i: up[i + 1].ctl(EPOLL_CTL_ADD, up[i], i, POLLIN))
               for i in range(5)]
    assert results == ["ok", "ok", "ok", "ok", "ELOOP"]
    down = [EpollFile() for _ in range(6)]
    results = [_epoll_error(lambda i=i: down[i].ctl(EPOLL_CTL_ADD, down[i + 1], i, POLLIN))
               for i in range(5)]
    assert results == ["ok", "ok", "ok", "ok", "ELOOP"]
    a, b, c = EpollFile(), EpollFile(), EpollFile()
    a.ctl(EPOLL_CTL_ADD, b, 1, POLLIN)
    b.ctl(EPOLL_CTL_ADD, c, 2, POLLIN)
    assert _epoll_error(lambda: c.ctl(EPOLL_CTL_ADD, a, 3, POLLIN)) == "ELOOP"
    assert _epoll_error(lambda: a.ctl(EPOLL_CTL_ADD, a, 4, POLLIN)) == "EINVAL"


class FakeKernel:
    """Collects timer wake-ups instead of running a loop."""

    def __init__(self):
        self.timers = []

    def add_timer(self, deadline, callback):
        entry = [deadline, len(self.timers), callback]
        self.timers.append(entry)
        return entry

    @staticmethod
    def cancel_timer(entry):
        if entry is not None:
            entry[2] = None


class ClockedTimer(IntervalTimer):
    """An IntervalTimer on a clock the test moves by hand."""
    clock = 0

    def now(self):
        return self.clock


def test_interval_timer_counts_missed_expirations():
    fired = []
    timer = ClockedTimer(FakeKernel(), 0, fired.append)
    timer.clock = 1000
    timer.arm(500, 100, absolute=False)             # expiries at 1500, 1600, ...
    assert timer.catch_up() == 0
    timer.clock = 1500
    assert timer.catch_up() == 1
    timer.clock = 1849
    assert timer.catch_up() == 3                    # 1600, 1700, 1800
    assert timer.remaining() == 51
    timer.clock = 1900
    timer._fire()                                   # a wake-up reports through on_expire
    assert fired == [1]
    timer.arm(2000, 0, absolute=True)               # one-shot, absolute
    timer.clock = 5000
    assert timer.catch_up() == 1 and not timer.armed and timer.remaining() == 0


def test_interval_timer_early_wakeup_rearms_without_reporting():
    kernel = FakeKernel()
    fired = []
    timer = ClockedTimer(kernel, 0, fired.append)
    timer.arm(100, 0, absolute=False)
    timer._fire()                                   # clock has not reached the expiry
    assert fired == [] and timer.armed
    assert kernel.timers[-1][2] is not None         # a fresh wake-up is pending


def test_signalfd_siginfo_fields_follow_the_siginfo_layout():
    def fields(info):
        raw = signalfd_siginfo(info)
        assert len(raw) == 128
        (signo, err, code, pid, uid, fd, tid, band, overrun, trapno, status, int_,
         ptr, utime, stime, addr, addr_lsb, _pad, syscall, call_addr, arch) = struct.unpack_from(
            "<IiiIIiIIIIiiQQQQHHiQI", raw)
        return dict(signo=signo, code=code, pid=pid, uid=uid, fd=fd, tid=tid, band=band,
                    overrun=overrun, status=status, int=int_, ptr=ptr, utime=utime,
                    stime=stime, addr=addr, syscall=syscall, call_addr=call_addr, arch=arch)

    kill = fields(pack_siginfo(10, S.SI_USER, pid=42, uid=1000))         # SIGUSR1
    assert (kill["signo"], kill["code"], kill["pid"], kill["uid"]) == (10, 0, 42, 1000)
    queued = fields(pack_siginfo(34, S.SI_QUEUE, pid=7, uid=0, value=(1 << 40) | 0xFFFFFFFE))
    assert queued["ptr"] == (1 << 40) | 0xFFFFFFFE and queued["int"] == -2
    chld = fields(pack_siginfo(S.SIGCHLD, S.CLD_EXITED, pid=9, uid=5, status=3, utime=11,
                               stime=12))
    assert (chld["pid"], chld["status"], chld["utime"], chld["stime"]) == (9, 3, 11, 12)
    timer = fields(pack_siginfo(14, -2, tid=4, overrun=6, value=99))
    assert (timer["tid"], timer["overrun"], timer["int"], timer["pid"]) == (4, 6, 99, 0)
    fault = fields(pack_siginfo(S.SIGSEGV, 1, addr=0xdead000))
    assert fault["addr"] == 0xdead000 and fault["pid"] == 0
    poll = fields(pack_siginfo(29, 1, band=0x41, fd=5))
    assert (poll["band"], poll["fd"]) == (0x41, 5)
    sys_ = fields(pack_siginfo(S.SIGSYS, 1, call_addr=0x401000, syscall=59, arch=0xC000003E))
    assert (sys_["call_addr"], sys_["syscall"], sys_["arch"]) == (0x401000, 59, 0xC000003E)
