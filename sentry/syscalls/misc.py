"""Small calls that belong to no family: sysinfo, scheduling queries, membarrier..."""
import errno
import os
import struct
import time

from ..kernel.caps import CAP_SYS_NICE, has_cap
from ..kernel.errors import SysError
from .table import syscall, unsupported, PARTIAL


@syscall("sysinfo", ("ptr",))
def sys_sysinfo(t, addr, *_):
    up = int(time.monotonic() - t.kernel.boot_time)
    total = 4 << 30
    # struct sysinfo: uptime, loads[3], total/free/shared/buffer ram, total/free swap,
    # procs (u16) + pad, total/free high, mem_unit (u32), padding to 112 bytes.
    data = struct.pack("<q3Q6QH6xQQI", up, 0, 0, 0, total, total // 2, 0, 0, 0, 0,
                       len(t.kernel.groups), 0, 0, 1)
    t.copy_out(addr, data.ljust(112, b"\0"))
    return 0


SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE = 0, 1, 2, 3, 5
SCHED_RESET_ON_FORK = 0x40000000
RR_INTERVAL_NS = 100_000_000


def _sched_target(t, pid, negative=errno.EINVAL):
    """The task a sched_* call names: 0 is the caller. A negative pid is EINVAL for the
    policy calls and ESRCH for the affinity ones (no such process), as in Linux."""
    pid &= 0xffffffff
    if pid >> 31:
        raise SysError(negative)
    task = t if pid == 0 else t.kernel.tasks.get(pid)
    if task is None or task.dead:
        raise SysError(errno.ESRCH)
    return task


def _cpus():
    return os.cpu_count() or 1


@syscall("sched_getaffinity", ("int", "size", "ptr"))
def sys_sched_getaffinity(t, pid, size, addr, *_):
    if size < 8 or size % 8:
        raise SysError(errno.EINVAL)
    mask = getattr(_sched_target(t, pid, errno.ESRCH), "affinity", (1 << _cpus()) - 1)
    t.copy_out(addr, mask.to_bytes(8, "little"))
    return 8


@syscall("sched_setaffinity", ("int", "size", "ptr"), support=PARTIAL,
         note="the mask is kept and reported; placement is the host's")
def sys_sched_setaffinity(t, pid, size, addr, *_):
    task = _sched_target(t, pid, errno.ESRCH)
    raw = t.copy_in(addr, min(size, 128))
    mask = int.from_bytes(raw, "little") & ((1 << _cpus()) - 1)
    if not mask:
        raise SysError(errno.EINVAL)
    task.affinity = mask
    return 0


def _policy_limits(policy):
    if policy in (SCHED_FIFO, SCHED_RR):
        return 1, 99
    if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE):
        return 0, 0
    raise SysError(errno.EINVAL)


@syscall("sched_getscheduler", ("int",))
def sys_sched_getscheduler(t, pid, *_):
    return getattr(_sched_target(t, pid), "sched_policy", SCHED_OTHER)


@syscall("sched_getparam", ("int", "ptr"))
def sys_sched_getparam(t, pid, addr, *_):
    task = _sched_target(t, pid)
    if not addr:
        raise SysError(errno.EINVAL)
    t.copy_out(addr, struct.pack("<i", getattr(task, "sched_priority", 0)))
    return 0


def _set_sched(t, task, policy, addr):
    if not addr:
        raise SysError(errno.EINVAL)
    prio = struct.unpack("<i", t.copy_in(addr, 4))[0]
    lo, hi = _policy_limits(policy)
    if not lo <= prio <= hi:
        raise SysError(errno.EINVAL)
    if policy in (SCHED_FIFO, SCHED_RR) and not has_cap(t, CAP_SYS_NICE):
        raise SysError(errno.EPERM)
    task.sched_policy, task.sched_priority = policy, prio
    return 0


@syscall("sched_setscheduler", ("int", "int", "ptr"), support=PARTIAL,
         note="policy and priority are kept and reported; the host schedules")
def sys_sched_setscheduler(t, pid, policy, addr, *_):
    task = _sched_target(t, pid)
    policy &= 0xffffffff
    if policy >> 31:
        raise SysError(errno.EINVAL)
    return _set_sched(t, task, policy & ~SCHED_RESET_ON_FORK, addr)


@syscall("sched_setparam", ("int", "ptr"), support=PARTIAL, note="as sched_setscheduler")
def sys_sched_setparam(t, pid, addr, *_):
    task = _sched_target(t, pid)
    return _set_sched(t, task, getattr(task, "sched_policy", SCHED_OTHER), addr)


@syscall("sched_get_priority_max", ("int",))
def sys_sched_get_priority_max(t, policy, *_):
    return _policy_limits(policy & 0xffffffff if not (policy & 0xffffffff) >> 31 else -1)[1]


@syscall("sched_get_priority_min", ("int",))
def sys_sched_get_priority_min(t, policy, *_):
    return _policy_limits(policy & 0xffffffff if not (policy & 0xffffffff) >> 31 else -1)[0]


@syscall("sched_rr_get_interval", ("int", "ptr"))
def sys_sched_rr_get_interval(t, pid, addr, *_):
    task = _sched_target(t, pid)
    ns = RR_INTERVAL_NS if getattr(task, "sched_policy", 0) != SCHED_FIFO else 0
    t.copy_out(addr, struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000))
    return 0


PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2


def _prio_targets(t, which, who):
    k = t.kernel
    if which == PRIO_PROCESS:
        tg = t.tg if who == 0 else k.groups.get(who)
        return [tg] if tg is not None else []
    if which == PRIO_PGRP:
        pg = k.pgroups.get(who or t.tg.pgrp.pgid)
        return list(pg.members) if pg else []
    if which == PRIO_USER:
        uid = t.tg.uid if who == 0 else who
        return [g for g in k.groups.values() if g.uid == uid]
    raise SysError(errno.EINVAL)


@syscall("getpriority", ("int", "int"), note="returns 20 - nice, as the raw syscall does")
def sys_getpriority(t, which, who, *_):
    targets = _prio_targets(t, which, who & 0xffffffff)
    if not targets:
        raise SysError(errno.ESRCH)
    return max(20 - getattr(g, "nice", 0) for g in targets)


@syscall("setpriority", ("int", "int", "int"), support=PARTIAL,
         note="the nice value is kept and reported; it does not change scheduling")
def sys_setpriority(t, which, who, prio, *_):
    prio = prio - (1 << 64) if prio >> 63 else prio
    prio = prio - (1 << 32) if prio >> 31 and prio < 1 << 32 else prio
    targets = _prio_targets(t, which, who & 0xffffffff)
    if not targets:
        raise SysError(errno.ESRCH)
    nice = max(-20, min(19, prio))
    for g in targets:
        if nice < getattr(g, "nice", 0) and not has_cap(t, CAP_SYS_NICE):
            raise SysError(errno.EACCES)
        g.nice = nice
    return 0


@syscall("membarrier", ("int", "flags"), support=PARTIAL, note="QUERY and the global barrier")
def sys_membarrier(t, cmd, flags, *_):
    if cmd == 0:
        return 1
    if cmd == 1:
        return 0
    raise SysError(errno.EINVAL)


@syscall("rseq", ("ptr", "size", "flags", "hex"), support="unsupported")
def sys_rseq(t, *_):
    return -errno.ENOSYS


@syscall("personality", ("hex",), support=PARTIAL,
         note="the value is kept and reported; no flag changes behaviour")
def sys_personality(t, persona, *_):
    old = getattr(t.tg, "personality", 0)
    persona &= 0xffffffff
    if persona != 0xffffffff:
        t.tg.personality = persona
    return old


unsupported("io_uring_setup", errno.ENOSYS, "not offered")
unsupported("ptrace", errno.EPERM, "tracing inside the sandbox is not offered")
unsupported("bpf", errno.EPERM)
unsupported("perf_event_open", errno.ENODEV)
unsupported("kexec_load", errno.EPERM)
unsupported("reboot", errno.EPERM)
unsupported("init_module", errno.EPERM)
unsupported("mount", errno.EPERM, "mounting inside the sandbox is not offered yet")
unsupported("umount2", errno.EPERM)
unsupported("pivot_root", errno.EPERM)
unsupported("unshare", errno.EPERM)
unsupported("setns", errno.EPERM)
