"""x86-64 signal frames: what Linux pushes on the user stack to run a handler, and how
rt_sigreturn reads it back (arch/x86/kernel/signal.c, signal_64.c, fpu/signal.c).

The frame, at the handler's rsp (so rsp + 8 is 16-byte aligned, as after a call):

    rt_sigframe {                       offset
        pretcode        (sa_restorer)      0
        ucontext {                         8
            uc_flags, uc_link,             8, 16
            uc_stack {sp, flags, size},   24
            uc_mcontext = sigcontext,     48   (256 bytes; fpstate pointer inside)
            uc_sigmask                   304   (8 bytes: the kernel's sigset)
        }
        siginfo                          312   (128 bytes)
    }                                    440
    ... padding ...
    fpstate: FXSAVE (512) or XSAVE area + FP_XSTATE_MAGIC2, 64-byte aligned

Pure functions: the caller writes the bytes to user memory, sets the registers and, on
sigreturn, reads the frame and the fpstate it points to. A frame handed to rt_sigreturn is
forged by the application as far as we are concerned: nothing in it may give the task a
kernel code segment, a non-canonical rip or privileged flags. A frame that cannot be used
raises SysError(EFAULT); the caller then kills the task with SIGSEGV, like Linux's
"badframe" path.

Also here: siginfo packing and unpacking (the 128-byte siginfo_t).
"""
from __future__ import annotations

import errno
import struct
from typing import NamedTuple

from .errors import SysError
from .record import FrozenRecord

MASK64 = (1 << 64) - 1

# --- ABI constants ---------------------------------------------------------------------

USER_CS = 0x33          # __USER_CS: 64-bit user code segment
USER_DS = 0x2B          # __USER_DS: user data/stack segment
USER32_CS = 0x23

UC_FP_XSTATE = 0x1
UC_SIGCONTEXT_SS = 0x2
UC_STRICT_RESTORE_SS = 0x4

SS_ONSTACK = 1
SS_DISABLE = 2
SS_AUTODISARM = 1 << 31

FP_XSTATE_MAGIC1 = 0x46505853
FP_XSTATE_MAGIC2 = 0x46505845
FP_XSTATE_MAGIC2_SIZE = 4
FXSAVE_SIZE = 512
XSAVE_HEADER_SIZE = 64
MIN_XSTATE_SIZE = FXSAVE_SIZE + XSAVE_HEADER_SIZE
SW_BYTES_OFFSET = 464                   # struct _fpx_sw_bytes inside the FXSAVE area
MXCSR_OFFSET = 24
XFEATURE_MASK_FPSSE = 0x3

REDZONE = 128

X86_EFLAGS_CF = 0x1
X86_EFLAGS_PF = 0x4
X86_EFLAGS_AF = 0x10
X86_EFLAGS_ZF = 0x40
X86_EFLAGS_SF = 0x80
X86_EFLAGS_TF = 0x100
X86_EFLAGS_IF = 0x200
X86_EFLAGS_DF = 0x400
X86_EFLAGS_OF = 0x800
X86_EFLAGS_RF = 0x10000
X86_EFLAGS_AC = 0x40000
# The only flags sigreturn takes from the frame (Linux FIX_EFLAGS); IF, IOPL, VM, NT and
# the rest keep their current values.
FIX_EFLAGS = (X86_EFLAGS_AC | X86_EFLAGS_OF | X86_EFLAGS_DF | X86_EFLAGS_TF | X86_EFLAGS_SF
              | X86_EFLAGS_ZF | X86_EFLAGS_AF | X86_EFLAGS_PF | X86_EFLAGS_CF | X86_EFLAGS_RF)
USER_EFLAGS_DEFAULT = X86_EFLAGS_IF | 0x2

# Highest canonical user address + 1: rip at or beyond this cannot be returned to.
USER_CANONICAL_END = 1 << 47

# --- layout --------------------------------------------------------------------------

SIGINFO_SIZE = 128
SIGCONTEXT_SIZE = 256
UCONTEXT_SIZE = 8 + 8 + 24 + SIGCONTEXT_SIZE + 8         # kernel struct ucontext: 304
RT_SIGFRAME_SIZE = 8 + UCONTEXT_SIZE + SIGINFO_SIZE        # 440

# Offsets inside struct ucontext (glibc's ucontext_t shares them; test_sigframe checks).
UC_FLAGS = 0
UC_LINK = 8
UC_STACK = 16                   # stack_t {void *ss_sp; int ss_flags; size_t ss_size}
UC_MCONTEXT = 40
UC_SIGMASK = UC_MCONTEXT + SIGCONTEXT_SIZE  # 296
# Offsets inside the frame.
FRAME_UC = 8
FRAME_INFO = FRAME_UC + UCONTEXT_SIZE       # 312

# struct sigcontext (64-bit): the general registers in this order, then the rest.
SIGCONTEXT_GREGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi",
                    "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags")
_SIGCONTEXT = struct.Struct("<18Q4H5Q64x")      # gregs, cs gs fs ss, err trapno oldmask
assert _SIGCONTEXT.size == SIGCONTEXT_SIZE      # cr2 fpstate, reserved1[8]
SC_OFFSETS = {name: 8 * i for i, name in enumerate(SIGCONTEXT_GREGS)}
SC_OFFSETS.update(cs=144, gs=146, fs=148, ss=150, err=152, trapno=160, oldmask=168,
                  cr2=176, fpstate=184)
_STACK_T = struct.Struct("<Qi4xQ")
_SW_BYTES = struct.Struct("<IIQI")

# Registers build_rt_sigframe needs (names as in struct user_regs_struct).
REQUIRED_REGS = SIGCONTEXT_GREGS + ("cs", "ss")


class SigFrame(NamedTuple):
    """Unpacks as (frame_addr, frame_bytes, regs)."""
    frame_addr: int     # the handler's rsp; frame_bytes are written here
    frame_bytes: bytes  # rt_sigframe, padding, then fpstate (and magic2) up to its end
    regs: dict          # registers to change for the handler (rip too if handler given)


class SigReturn(FrozenRecord):
    """Unpacks as (regs, fpstate, sigmask); the rest is for the caller's bookkeeping."""
    _fields = ("regs", "fpstate", "sigmask", "uc_flags", "altstack")

    def __init__(self, regs: dict, fpstate: int, sigmask: int, uc_flags: int, altstack: tuple):
        init = object.__setattr__
        init(self, "regs", regs)        # complete user-register values (no fs/gs bases)
        init(self, "fpstate", fpstate)  # user address of the saved FPU state, 0 for none
        init(self, "sigmask", sigmask)  # blocked set to restore (caller drops KILL/STOP)
        init(self, "uc_flags", uc_flags)
        init(self, "altstack", altstack)    # (ss_sp, ss_flags, ss_size) from uc_stack

    def __iter__(self):
        return iter((self.regs, self.fpstate, self.sigmask))


def _u64(value, what: str) -> int:
    value = int(value)
    if not 0 <= value <= MASK64:
        if -(1 << 63) <= value < 0:
            return value & MASK64
        raise ValueError(f"{what} does not fit in 64 bits")
    return value


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _fpstate_frame_size(fpstate: bytes) -> tuple[int, bool]:
    """(bytes reserved for the FPU state, whether it is an XSAVE area)."""
    if len(fpstate) == FXSAVE_SIZE:
        return FXSAVE_SIZE, False
    if len(fpstate) < MIN_XSTATE_SIZE:     # CPUID's XSAVE size need not be 64-aligned
        raise ValueError("fpstate must be a 512-byte FXSAVE area or an XSAVE area")
    return len(fpstate) + FP_XSTATE_MAGIC2_SIZE, True


def build_rt_sigframe(regs: dict, fpstate: bytes, siginfo: bytes, sigmask: int,
                      altstack, sp: int | None, restorer: int | None, *,
                      sa_onstack: bool = False, handler: int | None = None,
                      xfeatures: int | None = None) -> SigFrame:
    """Build the frame Linux pushes to run a handler.

    regs: the interrupted user registers (user_regs_struct names; "err", "trapno", "cr2"
      optional, 0 if absent). sp: where the stack is (default regs["rsp"]).
    fpstate: the task's FXSAVE area (512 bytes) or full XSAVE area (standard format, as
      big as CPUID reports); for XSAVE the software bytes and magic2 are written here with
      `xfeatures` (the user XCR0 features; default: the area's XSTATE_BV | x87 | SSE).
    siginfo: 128 bytes (see pack_siginfo); its si_signo becomes the handler's rdi.
    altstack: the task's sigaltstack as stored (ss_sp, ss_flags, ss_size), or None for a
      task that never called sigaltstack (Linux stores (0, 0, 0) then, and (0,
      SS_DISABLE, 0) after an explicit disable; uc_stack gets these values verbatim).
    sa_onstack: the action has SA_ONSTACK (switch to the alternate stack if not on it).
    restorer: sa_restorer; x86-64 requires SA_RESTORER, so None is EFAULT as in Linux.

    Raises SysError(EFAULT) when Linux would fail delivery and force SIGSEGV (no restorer,
    frame would overflow the alternate stack or leave user space). The caller must, as
    Linux does after this: disarm the alternate stack if it has SS_AUTODISARM, give the
    handler a fresh FPU state, and block the action's mask.
    The padding between the frame and the fpstate is written as zeros (Linux leaves
    whatever the stack held); so are the frame's unused words.
    """
    missing = [r for r in REQUIRED_REGS if r not in regs]
    if missing:
        raise ValueError(f"missing registers: {', '.join(missing)}")
    if len(siginfo) != SIGINFO_SIZE:
        raise ValueError("siginfo must be 128 bytes")
    if restorer is None:
        raise SysError(errno.EFAULT, "x86-64 signal delivery needs SA_RESTORER")
    math_size, is_xsave = _fpstate_frame_size(fpstate)
    orig_sp = _u64(regs["rsp"] if sp is None else sp, "sp")

    ss_sp, ss_flags, ss_size = (0, 0, 0) if altstack is None else altstack
    ss_flags &= 0xFFFFFFFF
    if ss_flags & SS_DISABLE:
        ss_sp, ss_size = 0, 0
    autodisarm = bool(ss_flags & SS_AUTODISARM)

    def within_altstack(addr: int) -> bool:
        return ss_sp < addr and addr - ss_sp <= ss_size

    def on_altstack(addr: int) -> bool:
        # With SS_AUTODISARM the task is by construction never "on" it.
        return not autodisarm and within_altstack(addr)

    def altstack_flags(addr: int) -> int:
        if not ss_size:
            return SS_DISABLE
        return SS_ONSTACK if on_altstack(addr) else 0

    nested = on_altstack(orig_sp)
    entering = False
    frame_sp = orig_sp - REDZONE
    if sa_onstack and altstack_flags(frame_sp) == 0:
        frame_sp = ss_sp + ss_size
        entering = True
    fp_addr = (frame_sp - math_size) & ~63
    frame_addr = ((fp_addr - RT_SIGFRAME_SIZE) & ~15) - 8
    if (nested or entering) and not within_altstack(frame_addr):
        raise SysError(errno.EFAULT, "signal frame overflows the alternate stack")
    if frame_addr < 0 or fp_addr + math_size > USER_CANONICAL_END:
        raise SysError(errno.EFAULT, "signal frame outside user space")

    out = bytearray(fp_addr + math_size - frame_addr)
    uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | (UC_FP_XSTATE if is_xsave else 0)
    struct.pack_into("<QQQ", out, 0, _u64(restorer, "restorer"), uc_flags, 0)
    # Linux saves the task's sigaltstack settings as stored, not whether it is on the
    # stack (SS_AUTODISARM stays set, so sigreturn, which re-applies uc_stack, re-arms).
    _STACK_T.pack_into(out, FRAME_UC + UC_STACK, _u64(ss_sp, "ss_sp"), _s32(ss_flags),
                       _u64(ss_size, "ss_size"))
    gregs = [_u64(regs[name], name) for name in SIGCONTEXT_GREGS]
    # The fs/gs selector slots are written as 0 on 64-bit; ss is saved for sigreturn.
    _SIGCONTEXT.pack_into(out, FRAME_UC + UC_MCONTEXT, *gregs,
                          int(regs["cs"]) & 0xFFFF, 0, 0, int(regs["ss"]) & 0xFFFF,
                          _u64(regs.get("err", 0), "err"),
                          _u64(regs.get("trapno", 0), "trapno"),
                          _u64(sigmask, "sigmask"), _u64(regs.get("cr2", 0), "cr2"), fp_addr)
    struct.pack_into("<Q", out, FRAME_UC + UC_SIGMASK, _u64(sigmask, "sigmask"))
    out[FRAME_INFO:FRAME_INFO + SIGINFO_SIZE] = siginfo

    fp_off = fp_addr - frame_addr
    fp = bytearray(fpstate)
    if is_xsave:
        if xfeatures is None:
            xfeatures = struct.unpack_from("<Q", fp, FXSAVE_SIZE)[0] | XFEATURE_MASK_FPSSE
        fp[SW_BYTES_OFFSET:FXSAVE_SIZE] = bytes(FXSAVE_SIZE - SW_BYTES_OFFSET)
        _SW_BYTES.pack_into(fp, SW_BYTES_OFFSET, FP_XSTATE_MAGIC1, math_size,
                            _u64(xfeatures, "xfeatures"), len(fpstate))
        fp += struct.pack("<I", FP_XSTATE_MAGIC2)
    else:
        # FXSAVE's software-available bytes must not look like an XSAVE marker.
        fp[SW_BYTES_OFFSET:FXSAVE_SIZE] = bytes(FXSAVE_SIZE - SW_BYTES_OFFSET)
    out[fp_off:fp_off + len(fp)] = fp

    signo = struct.unpack_from("<i", siginfo, 0)[0]
    eflags = _u64(regs["eflags"], "eflags")
    new_regs = {
        "rsp": frame_addr,
        "rdi": signo & MASK64,
        "rsi": frame_addr + FRAME_INFO,
        "rdx": frame_addr + FRAME_UC,
        "rax": 0,               # for handlers declared without a prototype (varargs)
        "cs": USER_CS,
        "ss": USER_DS,
        "eflags": eflags & ~(X86_EFLAGS_DF | X86_EFLAGS_RF | X86_EFLAGS_TF),
    }
    if handler is not None:
        new_regs["rip"] = _u64(handler, "handler")
    return SigFrame(frame_addr, bytes(out), new_regs)


def parse_rt_sigframe(frame: bytes, *, current_eflags: int = USER_EFLAGS_DEFAULT) -> SigReturn:
    """Read the frame rt_sigreturn finds at (rsp - 8): the first RT_SIGFRAME_SIZE bytes
    (only the first FRAME_INFO are used; the siginfo is ignored, as Linux does).

    `current_eflags` is the task's eflags now; only FIX_EFLAGS bits come from the frame.
    cs must be the 64-bit user code segment (after forcing RPL 3, as Linux does); ss must
    be the user data segment, except that frames without UC_STRICT_RESTORE_SS get it
    repaired, as Linux's force_valid_ss does. rip must be a canonical user address.
    Anything else raises SysError(EFAULT): the caller then forces SIGSEGV with si_code
    SI_KERNEL, which is what a native task gets when its iret to such a state faults.
    The result's regs has orig_rax = -1 so no syscall restart follows; fs_base, gs_base
    and the fs/gs selectors are not part of a 64-bit frame and keep their current values.
    The caller also re-applies `altstack` as sigaltstack() would (Linux ignores every
    error but EFAULT there) and loads the FPU state via fpstate_read_size and
    sanitize_fpstate (fpstate == 0: reset the FPU to its initial state).
    """
    if len(frame) < FRAME_INFO:
        raise ValueError(f"need at least {FRAME_INFO} frame bytes")
    frame = bytes(frame)
    uc_flags = struct.unpack_from("<Q", frame, FRAME_UC + UC_FLAGS)[0]
    ss_sp, ss_flags, ss_size = _STACK_T.unpack_from(frame, FRAME_UC + UC_STACK)
    fields = _SIGCONTEXT.unpack_from(frame, FRAME_UC + UC_MCONTEXT)
    regs = dict(zip(SIGCONTEXT_GREGS, fields[:18]))
    cs, _gs, _fs, ss = fields[18:22]
    fp_addr = fields[26]
    sigmask = struct.unpack_from("<Q", frame, FRAME_UC + UC_SIGMASK)[0]

    cs |= 3
    ss |= 3
    if cs != USER_CS:
        raise SysError(errno.EFAULT, f"sigreturn to code segment {cs:#x}")
    if ss != USER_DS:
        if uc_flags & UC_STRICT_RESTORE_SS:
            raise SysError(errno.EFAULT, f"sigreturn to stack segment {ss:#x}")
        ss = USER_DS
    if regs["rip"] >= USER_CANONICAL_END:
        raise SysError(errno.EFAULT, f"sigreturn to non-user rip {regs['rip']:#x}")
    if fp_addr:
        if fp_addr % 64 or fp_addr >= USER_CANONICAL_END:
            raise SysError(errno.EFAULT, f"misplaced fpstate {fp_addr:#x}")
    regs["eflags"] = (current_eflags & ~FIX_EFLAGS) | (regs["eflags"] & FIX_EFLAGS)
    regs["cs"] = cs
    regs["ss"] = ss
    regs["orig_rax"] = MASK64
    return SigReturn(regs, fp_addr, sigmask, uc_flags, (ss_sp, ss_flags, ss_size))


def fpstate_read_size(head: bytes, max_xstate_size: int) -> int:
    """How many bytes of saved FPU state sigreturn must read, given its first 512.

    An XSAVE area is announced by the software bytes (magic1, sizes) and confirmed by
    magic2 right after it, so the answer includes those 4 bytes. Anything that does not
    look like a valid XSAVE marker is a plain FXSAVE area, as in Linux.
    `max_xstate_size` is the XSAVE size of the features this machine gives user space.
    """
    if len(head) < FXSAVE_SIZE:
        raise ValueError("need the first 512 bytes of the fpstate")
    magic1, extended_size, _xfeatures, xstate_size = _SW_BYTES.unpack_from(
        head, SW_BYTES_OFFSET)
    if (magic1 != FP_XSTATE_MAGIC1 or xstate_size < MIN_XSTATE_SIZE
            or xstate_size > max_xstate_size or xstate_size > extended_size):
        return FXSAVE_SIZE
    return xstate_size + FP_XSTATE_MAGIC2_SIZE


def sanitize_fpstate(data: bytes, *, max_xstate_size: int, user_xfeatures: int,
                     mxcsr_mask: int = 0xFFFF) -> bytes:
    """Turn the user's saved FPU state (fpstate_read_size bytes) into one safe to load.

    Returns either 512 bytes (FXSAVE format: load with fxrstor / set x87+SSE, and reset
    every other XSAVE component) or an XSAVE area in standard format whose XSTATE_BV only
    names features in both the frame's xfeatures and `user_xfeatures`. MXCSR reserved bits
    are cleared (fxrstor would fault on them). A header that xrstor would reject
    (compacted format, reserved bytes, features the machine lacks) is a bad frame:
    SysError(EFAULT).
    """
    if len(data) < FXSAVE_SIZE:
        raise ValueError("fpstate shorter than an FXSAVE area")
    size = fpstate_read_size(data[:FXSAVE_SIZE], max_xstate_size)
    xsave = size > FXSAVE_SIZE
    if xsave:
        if len(data) < size:
            raise ValueError(f"need {size} bytes of fpstate")
        xstate_size = size - FP_XSTATE_MAGIC2_SIZE
        if struct.unpack_from("<I", data, xstate_size)[0] != FP_XSTATE_MAGIC2:
            xsave = False
    if not xsave:
        out = bytearray(data[:FXSAVE_SIZE])
    else:
        out = bytearray(data[:xstate_size])
        frame_xfeatures = _SW_BYTES.unpack_from(out, SW_BYTES_OFFSET)[2]
        xstate_bv, xcomp_bv = struct.unpack_from("<QQ", out, FXSAVE_SIZE)
        reserved = out[FXSAVE_SIZE + 16:FXSAVE_SIZE + XSAVE_HEADER_SIZE]
        if xstate_bv & ~user_xfeatures or xcomp_bv or any(reserved):
            raise SysError(errno.EFAULT, "invalid XSAVE header in signal frame")
        struct.pack_into("<Q", out, FXSAVE_SIZE,
                         xstate_bv & (frame_xfeatures | XFEATURE_MASK_FPSSE) & user_xfeatures)
    mxcsr = struct.unpack_from("<I", out, MXCSR_OFFSET)[0]
    struct.pack_into("<I", out, MXCSR_OFFSET, mxcsr & mxcsr_mask)
    return bytes(out)


# --- siginfo -------------------------------------------------------------------------

SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGCHLD, SIGPOLL, SIGSYS = 4, 5, 7, 8, 11, 17, 29, 31

SI_USER = 0
SI_KERNEL = 0x80
SI_QUEUE = -1
SI_TIMER = -2
SI_MESGQ = -3
SI_ASYNCIO = -4
SI_SIGIO = -5
SI_TKILL = -6
SI_DETHREAD = -7
SI_ASYNCNL = -60

CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED = range(1, 7)
SEGV_MAPERR, SEGV_ACCERR, SEGV_BNDERR, SEGV_PKUERR = 1, 2, 3, 4
BUS_ADRALN, BUS_ADRERR, BUS_OBJERR, BUS_MCEERR_AR, BUS_MCEERR_AO = 1, 2, 3, 4, 5
TRAP_PERF = 6

# Highest si_code with a signal-specific meaning (uapi asm-generic/siginfo.h).
_SIG_SPECIFIC_LIMIT = {SIGILL: 11, SIGFPE: 15, SIGSEGV: 10, SIGBUS: 5, SIGTRAP: 6,
                       SIGCHLD: 6, SIGPOLL: 6, SIGSYS: 2}
NSIGPOLL = 6

# Layouts of the union after si_signo, si_errno, si_code (and 4 bytes of padding):
# name -> (field, struct format, offset from the start of siginfo).
LAYOUTS = {
    "kill": (("pid", "i", 16), ("uid", "I", 20)),
    "timer": (("tid", "i", 16), ("overrun", "i", 20), ("value", "Q", 24)),
    "rt": (("pid", "i", 16), ("uid", "I", 20), ("value", "Q", 24)),
    "chld": (("pid", "i", 16), ("uid", "I", 20), ("status", "i", 24), ("utime", "q", 32),
             ("stime", "q", 40)),
    "fault": (("addr", "Q", 16),),
    "fault_mceerr": (("addr", "Q", 16), ("addr_lsb", "h", 24)),
    "fault_bnderr": (("addr", "Q", 16), ("lower", "Q", 32), ("upper", "Q", 40)),
    "fault_pkuerr": (("addr", "Q", 16), ("pkey", "I", 32)),
    "fault_perf": (("addr", "Q", 16), ("perf_data", "Q", 32), ("perf_type", "I", 40),
                   ("perf_flags", "I", 44)),
    "poll": (("band", "q", 16), ("fd", "i", 24)),
    "sys": (("call_addr", "Q", 16), ("syscall", "i", 24), ("arch", "I", 28)),
}
# The kernel keeps (and copies between processes) only this much of a siginfo.
KERNEL_SIGINFO_SIZE = 48
_HEAD = struct.Struct("<iii")

_SPECIFIC_LAYOUT = {SIGILL: "fault", SIGFPE: "fault", SIGSEGV: "fault", SIGBUS: "fault",
                    SIGTRAP: "fault", SIGCHLD: "chld", SIGPOLL: "poll", SIGSYS: "sys"}


def siginfo_layout(signo: int, code: int) -> str:
    """Which union member a (signo, si_code) pair uses, as Linux's siginfo_layout()."""
    if SI_USER < code < SI_KERNEL:
        if signo in _SIG_SPECIFIC_LIMIT and code <= _SIG_SPECIFIC_LIMIT[signo]:
            layout = _SPECIFIC_LAYOUT[signo]
            if signo == SIGBUS and code in (BUS_MCEERR_AR, BUS_MCEERR_AO):
                return "fault_mceerr"
            if signo == SIGSEGV and code == SEGV_BNDERR:
                return "fault_bnderr"
            if signo == SIGSEGV and code == SEGV_PKUERR:
                return "fault_pkuerr"
            if signo == SIGTRAP and code == TRAP_PERF:
                return "fault_perf"
            return layout
        if code <= NSIGPOLL:
            return "poll"
        return "kill"
    if code == SI_TIMER:
        return "timer"
    if code == SI_SIGIO:
        return "poll"
    if code < 0:
        return "rt"
    return "kill"


def known_siginfo_layout(signo: int, code: int) -> bool:
    if code == SI_KERNEL:
        return True
    if code > SI_USER:
        if signo in _SIG_SPECIFIC_LIMIT:
            return code <= _SIG_SPECIFIC_LIMIT[signo]
        return code <= NSIGPOLL
    return code >= SI_DETHREAD or code == SI_ASYNCNL


def pack_siginfo(signo: int, code: int, errno: int = 0, **fields) -> bytes:
    """A 128-byte siginfo_t. `fields` are those of the layout siginfo_layout() picks:
    SI_USER/SI_TKILL/SI_KERNEL: pid, uid; SI_QUEUE (and other negative codes): pid, uid,
    value; SI_TIMER: tid, overrun, value; SIGCHLD: pid, uid, status, utime, stime (clock
    ticks); SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP: addr (+ addr_lsb, lower/upper, pkey);
    SIGPOLL: band, fd; SIGSYS: call_addr, syscall, arch. Missing fields are 0; a field the
    layout does not have is a ValueError.
    """
    layout = LAYOUTS[siginfo_layout(signo, code)]
    known = {name for name, _, _ in layout}
    extra = set(fields) - known
    if extra:
        raise ValueError(f"siginfo for signal {signo} code {code} has no {sorted(extra)}")
    out = bytearray(SIGINFO_SIZE)
    try:
        _HEAD.pack_into(out, 0, signo, errno, code)
        for name, fmt, offset in layout:
            value = int(fields.get(name, 0))
            if fmt in "QI" and value < 0:       # pointers and ids given as negatives
                value &= (1 << (8 * struct.calcsize(fmt))) - 1
            struct.pack_into("<" + fmt, out, offset, value)
    except struct.error as e:
        raise ValueError(f"siginfo field out of range: {e}") from None
    return bytes(out)


class SigInfo(NamedTuple):
    signo: int
    errno: int
    code: int
    layout: str
    fields: dict
    raw: bytes      # the 48 bytes the kernel keeps, passed through unchanged

    def to_bytes(self, signo: int | None = None) -> bytes:
        """The 128 bytes a receiver sees (optionally with si_signo replaced, as
        rt_sigqueueinfo does): the kept bytes, then zeros."""
        raw = bytearray(self.raw)
        if signo is not None:
            struct.pack_into("<i", raw, 0, signo)
        return bytes(raw).ljust(SIGINFO_SIZE, b"\0")


def unpack_siginfo(data: bytes) -> SigInfo:
    """Decode a siginfo_t from user space (rt_sigqueueinfo, rt_tgsigqueueinfo,
    pidfd_send_signal). As in Linux, bytes past the first 48 are dropped, but for a
    (signo, code) pair with no known layout they must be zero: otherwise SysError(E2BIG).
    Whether the caller may use that code at all (EPERM for si_code >= 0 or SI_TKILL
    towards another process) is the syscall's decision.
    """
    if len(data) < SIGINFO_SIZE:
        raise ValueError("siginfo_t is 128 bytes")
    data = bytes(data[:SIGINFO_SIZE])
    signo, err, code = _HEAD.unpack_from(data, 0)
    if not known_siginfo_layout(signo, code) and any(data[KERNEL_SIGINFO_SIZE:]):
        raise SysError(errno.E2BIG, "unknown siginfo layout with trailing data")
    layout = siginfo_layout(signo, code)
    fields = {name: struct.unpack_from("<" + fmt, data, offset)[0]
              for name, fmt, offset in LAYOUTS[layout]}
    return SigInfo(signo, err, code, layout, fields, data[:KERNEL_SIGINFO_SIZE])
