"""Small calls that belong to no family: sysinfo, scheduling queries, membarrier..."""
import errno
import os
import struct
import time

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


@syscall("sched_getaffinity", ("int", "size", "ptr"))
def sys_sched_getaffinity(t, pid, size, addr, *_):
    if size < 8 or size % 8:
        raise SysError(errno.EINVAL)
    n = os.cpu_count() or 1
    t.mm.write(addr, ((1 << n) - 1).to_bytes(8, "little"))
    return 8


@syscall("sched_setaffinity", ("int", "size", "ptr"))
def sys_sched_setaffinity(t, pid, size, addr, *_):
    return 0


@syscall("sched_getparam", ("int", "ptr"))
def sys_sched_getparam(t, pid, addr, *_):
    t.mm.write(addr, b"\0\0\0\0")
    return 0


@syscall("sched_getscheduler", ("int",))
def sys_sched_getscheduler(t, pid, *_):
    return 0


@syscall("sched_get_priority_max", ("int",))
def sys_sched_get_priority_max(t, policy, *_):
    return 99 if policy in (1, 2) else 0


@syscall("sched_get_priority_min", ("int",))
def sys_sched_get_priority_min(t, policy, *_):
    return 1 if policy in (1, 2) else 0


@syscall("getpriority", ("int", "int"))
def sys_getpriority(t, which, who, *_):
    return 20


@syscall("setpriority", ("int", "int", "int"))
def sys_setpriority(t, which, who, prio, *_):
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


@syscall("personality", ("hex",))
def sys_personality(t, persona, *_):
    return 0


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
