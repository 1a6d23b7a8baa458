"""The legacy vsyscall page at 0xffffffffff600000, served as Linux's default
`vsyscall=xonly` serves it.

A call to one of its three entry points (gettimeofday at +0x000, time at +0x400, getcpu
at +0x800) is performed as that syscall, then returns to the caller; a call anywhere else
in the page, or a pointer argument outside user space, or one the syscall cannot write,
is a SIGSEGV with no return (Linux's `emulate_vsyscall`). Old static binaries still call
it, so it must work, and it must be the sentry that answers: on the host the stub's
kernel would serve it without any stop.

The platforms bring such a call here differently:
- ptrace: the stubs run a seccomp filter (native/ptrace_core.c) that turns the host
  kernel's own emulation into a SIGSYS stop (SYS_SECCOMP, si_call_addr = the entry). By
  then the host has popped the return address: rip is the caller's and rsp is 8 higher.
- KVM: the page is not mapped for ring 3, so the call is an instruction fetch fault at
  the entry (rip == the faulting address), with the return address still on the stack.
"""
import errno
import struct

from . import signals as S
from ..mm.addrspace import USER_PTR_MAX
from .sigframe import pack_siginfo

VSYSCALL_PAGE = 0xffffffffff600000
SYS_SECCOMP = 1                      # si_code of a seccomp SIGSYS
SEGV_MAPERR = 1

# Entry offset -> (syscall number, how many of rdi, rsi are pointers it writes through)
_ENTRIES = {
    0x000: (96, 2),                  # gettimeofday(struct timeval *, struct timezone *)
    0x400: (201, 1),                 # time(time_t *)
    0x800: (309, 2),                 # getcpu(unsigned *cpu, unsigned *node, cache)
}


def call_address(ev, regs):
    """The vsyscall address a fault event is a call to, with whether the return has
    already been taken (ptrace); None when the event is something else."""
    addr = ev.addr
    if addr & ~0xfff != VSYSCALL_PAGE:
        return None
    if ev.signo == S.SIGSYS and ev.code == SYS_SECCOMP:
        return addr, True
    if ev.signo == S.SIGSEGV and regs.rip == addr:
        return addr, False
    return None


def serve(kernel, t, addr: int, returned: bool) -> None:
    """Perform the vsyscall at `addr` for task t and return to it (or deliver SIGSEGV)."""
    regs = t.ctx.regs
    if returned:
        # Back to the state at the call, as Linux has it when it emulates.
        regs.rsp = (regs.rsp - 8) & 0xffffffffffffffff
        regs.rip = addr
    entry = _ENTRIES.get(addr - VSYSCALL_PAGE)
    caller = _caller(t, regs.rsp)
    if entry is None or caller is None:
        _segv(kernel, t, None)
        return
    nr, nptrs = entry
    for ptr in (regs.rdi, regs.rsi)[:nptrs]:
        if ptr > USER_PTR_MAX:
            # Linux's write_ok_or_segv: a pointer access_ok refuses is a SIGSEGV at it.
            # Since 6.x access_ok looks at the address alone for writes this small (the
            # guard page below the top catches the rest), so only a pointer past user
            # space is refused here; one that faults is the EFAULT case below.
            _segv(kernel, t, ptr)
            return
    from .errors import SysError
    try:
        result = kernel.table.get(nr).handler(t, regs.rdi, regs.rsi, regs.rdx, 0, 0, 0)
    except SysError as e:
        result = -e.errno
    if result == -errno.EFAULT:
        _segv(kernel, t, None)       # "vsyscall fault": SIGSEGV, the call not returned
        return
    regs.rax = result & 0xffffffffffffffff
    regs.rip = caller
    regs.rsp = (regs.rsp + 8) & 0xffffffffffffffff
    kernel.return_to_user(t)


def _caller(t, rsp: int):
    from .errors import SysError
    try:
        return struct.unpack("<Q", t.copy_in(rsp, 8))[0]
    except SysError:
        return None


def _segv(kernel, t, addr) -> None:
    if addr is None:
        info = pack_siginfo(S.SIGSEGV, S.SI_KERNEL)
    else:
        info = pack_siginfo(S.SIGSEGV, SEGV_MAPERR, addr=addr)
    kernel.force_signal(t, S.SIGSEGV, info)
    kernel.return_to_user(t)
