"""x86 exceptions taken in guest ring 3, turned into the signals Linux sends for them.

Each rule follows arch/x86/kernel/traps.c: the signal, its si_code and what si_addr holds.
Pure functions of the trap (vector, error code, cr2, rip) and, for x87/SIMD errors, of the
thread's FPU state, so they are testable without a VM.
"""
import signal
import struct

SI_KERNEL = 0x80
SEGV_MAPERR, SEGV_ACCERR, SEGV_PKUERR = 1, 2, 4
ILL_ILLOPN = 2
FPE_INTDIV, FPE_FLTDIV, FPE_FLTOVF, FPE_FLTUND, FPE_FLTRES, FPE_FLTINV = 1, 3, 4, 5, 6, 7
TRAP_BRKPT, TRAP_TRACE = 1, 2
BUS_ADRALN = 1

PF_PRESENT, PF_PK = 0x1, 0x20


def fpe_code(status_bits: int) -> int:
    """si_code for the unmasked x87/SSE exception bits (IE ZE OE UE PE, DE counts as IE)."""
    if status_bits & 0x01:
        return FPE_FLTINV
    if status_bits & 0x04:
        return FPE_FLTDIV
    if status_bits & 0x08:
        return FPE_FLTOVF
    if status_bits & 0x12:
        return FPE_FLTUND
    if status_bits & 0x20:
        return FPE_FLTRES
    return 0


def translate(vector: int, error: int, cr2: int, rip: int, fpstate: bytes | None = None):
    """(signo, si_code, si_addr) for an exception; si_addr is what Linux reports."""
    if vector == 14:
        if error & PF_PK:
            return signal.SIGSEGV, SEGV_PKUERR, cr2
        return signal.SIGSEGV, (SEGV_ACCERR if error & PF_PRESENT else SEGV_MAPERR), cr2
    if vector == 0:
        return signal.SIGFPE, FPE_INTDIV, rip
    if vector == 6:
        return signal.SIGILL, ILL_ILLOPN, rip
    if vector == 3:
        return signal.SIGTRAP, SI_KERNEL, 0
    if vector == 1:
        return signal.SIGTRAP, TRAP_TRACE, rip
    if vector in (16, 19) and fpstate is not None and len(fpstate) >= 32:
        cwd, swd = struct.unpack_from("<HH", fpstate, 0)
        mxcsr = struct.unpack_from("<I", fpstate, 24)[0]
        if vector == 16:
            bits = swd & ~cwd & 0x3F
        else:
            bits = mxcsr & ~(mxcsr >> 7) & 0x3F
        return signal.SIGFPE, fpe_code(bits), rip
    if vector == 17:
        return signal.SIGBUS, BUS_ADRALN, 0
    if vector in (11, 12):             # segment not present, stack segment
        return signal.SIGBUS, SI_KERNEL, 0
    # #GP, #OF, #BR, #TS, #NM, anything else: SIGSEGV from the kernel, no address.
    return signal.SIGSEGV, SI_KERNEL, 0
