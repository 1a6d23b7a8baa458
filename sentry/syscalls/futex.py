"""futex: wait queues keyed by the futex word.

Private futexes are keyed by (address space, address); shared ones by the memory-file
frame of the word, so processes sharing memory (MAP_SHARED, or a parent and a vfork child)
meet on the same key.
"""
import errno
import struct
import time

from ..kernel.errors import SysError
from ..kernel.wait import Block, INTERRUPTED, TIMEOUT, WaitQueue
from .table import syscall, PARTIAL

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE, FUTEX_CLOCK_REALTIME = 128, 256


def _key(t, addr, private):
    if addr % 4:
        raise SysError(errno.EINVAL)
    if private:
        return ("p", id(t.mm), addr)
    v = t.mm.find(addr)
    if v is None:
        raise SysError(errno.EFAULT)
    if v.shared:
        return ("s", v.frame(addr & ~4095) + (addr & 4095))
    return ("p", id(t.mm), addr)


class _Waiter:
    """One task waiting on a futex key; `woken` distinguishes a wake from a signal."""
    __slots__ = ("task", "bitset", "woken", "queue")

    def __init__(self, task, bitset):
        self.task, self.bitset, self.woken, self.queue = task, bitset, False, None


def _queue(k, key):
    q = k.futexes.get(key)
    if q is None:
        q = k.futexes[key] = []
    return q


def futex_wake(k, t, addr, n, bitset=0xffffffff, private=False):
    try:
        key = _key(t, addr, private)
    except SysError:
        return 0
    woken = 0
    for key in {key, ("p", id(t.mm), addr)}:
        q = k.futexes.get(key)
        if not q:
            continue
        for w in list(q):
            if woken >= n:
                break
            if w.bitset & bitset:
                q.remove(w)
                w.woken = True
                w.queue.notify()
                woken += 1
        if not q:
            k.futexes.pop(key, None)
    return woken


def _wait(t, addr, val, deadline, bitset, private):
    k = t.kernel
    key = _key(t, addr, private)
    cur = struct.unpack("<I", t.mm.read(addr, 4))[0]
    if cur != val & 0xffffffff:
        return -errno.EAGAIN
    w = _Waiter(t, bitset)
    w.queue = WaitQueue()
    q = _queue(k, key)
    q.append(w)
    while not w.woken:
        reason = yield Block([w.queue], deadline=deadline)
        if w.woken:
            break
        if reason in (TIMEOUT, INTERRUPTED):
            if w in q:
                q.remove(w)
            if not q:
                k.futexes.pop(key, None)
            return -errno.ETIMEDOUT if reason == TIMEOUT else -512
    return 0


def _timeout(t, ts, absolute, realtime):
    if not ts:
        return None
    sec, nsec = struct.unpack("<qq", t.mm.read(ts, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SysError(errno.EINVAL)
    if absolute:
        now = time.time() if realtime else time.monotonic()
        return time.monotonic() + (sec + nsec / 1e9 - now)
    return time.monotonic() + sec + nsec / 1e9


@syscall("futex", ("ptr", "int", "int", "ptr", "ptr", "int"), support=PARTIAL,
         note="WAIT, WAKE, (CMP_)REQUEUE, WAKE_OP, BITSET; no PI futexes")
def sys_futex(t, addr, op, val, ts, addr2, val3):
    k = t.kernel
    cmd = op & 0x7f
    private = bool(op & FUTEX_PRIVATE)
    realtime = bool(op & FUTEX_CLOCK_REALTIME)
    if cmd == FUTEX_WAIT:
        return _wait(t, addr, val, _timeout(t, ts, False, realtime), 0xffffffff, private)
    if cmd == FUTEX_WAIT_BITSET:
        if val3 & 0xffffffff == 0:
            raise SysError(errno.EINVAL)
        return _wait(t, addr, val, _timeout(t, ts, True, realtime), val3, private)
    # The wake family checks its futex words as Linux's get_futex_key does, before
    # anything else (EINVAL unaligned, EFAULT for a shared one not mapped); futex_wake
    # itself stays silent about them for the kernel's own wakes (clear_child_tid).
    if cmd == FUTEX_WAKE:
        _key(t, addr, private)
        return futex_wake(k, t, addr, val & 0x7fffffff, 0xffffffff, private)
    if cmd == FUTEX_WAKE_BITSET:
        if val3 & 0xffffffff == 0:
            raise SysError(errno.EINVAL)
        _key(t, addr, private)
        return futex_wake(k, t, addr, val & 0x7fffffff, val3, private)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP):
        _key(t, addr, private)
        _key(t, addr2, private)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE:
            cur = struct.unpack("<I", t.mm.read(addr, 4))[0]
            if cur != val3 & 0xffffffff:
                return -errno.EAGAIN
        woken = futex_wake(k, t, addr, val & 0x7fffffff, 0xffffffff, private)
        src, dst = _key(t, addr, private), _key(t, addr2, private)
        q = k.futexes.get(src, [])
        moved = 0
        limit = ts & 0x7fffffff
        while q and moved < limit:
            w = q.pop(0)
            _queue(k, dst).append(w)
            moved += 1
        if not q:
            k.futexes.pop(src, None)
        return woken + moved
    if cmd == FUTEX_WAKE_OP:
        opnum, cmparg = (val3 >> 28) & 0xf, val3 & 0xfff
        oparg, cmp_ = (val3 >> 12) & 0xfff, (val3 >> 24) & 0xf
        if opnum & 8:
            oparg = 1 << (oparg & 31)
            opnum &= 7
        old = struct.unpack("<I", t.mm.read(addr2, 4))[0]
        new = [oparg, old + oparg, old | oparg, old & ~oparg, old ^ oparg][opnum] if opnum < 5 else None
        if new is None:
            raise SysError(errno.ENOSYS)
        t.mm.write(addr2, struct.pack("<I", new & 0xffffffff))
        woken = futex_wake(k, t, addr, val & 0x7fffffff, 0xffffffff, private)
        sold = old - (1 << 32) if old >> 31 else old
        ok = [sold == cmparg, sold != cmparg, sold < cmparg, sold <= cmparg, sold > cmparg,
              sold >= cmparg][cmp_] if cmp_ < 6 else False
        if ok:
            woken += futex_wake(k, t, addr2, ts & 0x7fffffff, 0xffffffff, private)
        return woken
    raise SysError(errno.ENOSYS)
