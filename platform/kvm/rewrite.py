"""Rewriting trapped syscall sites into direct exits (docs/kvm.md, "Rewritten syscall sites").

A `syscall` on this host is a #PF at LSTAR, the ring-0 stub and an `iretq`; PVM emulates
ring-0 code, so that costs about twice a ring-3 MMIO exit. A site that trapped as the
7 bytes `mov $N,%eax; syscall` (b8 imm32 0f 05) is rewritten, in the address space's own
copy of its page, into `mov PK_SYSCALL_WINDOW+4*N,%ecx` (8b 0c 25 disp32): a load from the
window, which exits from ring 3 and which the vCPU thread decodes as "syscall N" with the
registers a `syscall` leaves (native/kvm_vm.c, decode_window).

The disp32 is 0xffccxxxx, so the byte where the old `syscall` began (+5) is an int3. A jump
to that `syscall` (with eax set by the jumper) and a restart (the kernel sets rip back by
2 and rax to the number) both trap there; `syscall_at_int3` turns that trap back into the
syscall. Sites are recognised by their bytes, not remembered: a fork child inherits the
rewritten page and its sites work there too, and an exec starts from the file again.
"""
import struct

from pysentry.native._kvm import lib
from pysentry.sentry.kernel.errors import SysError

SITE_LEN = 7
PAGE = 4096
WINDOW = lib.PK_SYSCALL_WINDOW
WINDOW_NR = lib.PK_SYSCALL_WINDOW_NR
EFLAGS_TF, EFLAGS_RF = 0x100, 0x10000
ENOSYS = 38
# Traps of one site before it is rewritten. A rewrite costs 60-100 µs (mostly the page copy's
# guest page-table change) and each later call through the site saves ~16 µs, so a site must
# be used some more times to repay it; start-up code calls most of its sites once or twice
# (2 made /bin/true rewrite 5 sites for 7 calls through them; 8 leaves it 1).
REWRITE_AFTER = 8
# Sites an address space keeps counts for; past that the counts start again.
MAX_TRACKED = 4096
DONE = -1                   # the site was rewritten or refused: never look at it again


def original(nr: int) -> bytes:
    """`mov $nr,%eax; syscall`."""
    return b"\xb8" + struct.pack("<I", nr) + b"\x0f\x05"


def rewritten(nr: int) -> bytes:
    """`mov PK_SYSCALL_WINDOW+4*nr,%ecx` (absolute disp32, sign-extended)."""
    return b"\x8b\x0c\x25" + struct.pack("<I", (WINDOW + 4 * nr) & 0xFFFFFFFF)


def nr_of_rewritten(code: bytes) -> int | None:
    """The syscall number a rewritten site encodes, or None when code is not one."""
    if len(code) != SITE_LEN or code[:3] != b"\x8b\x0c\x25":
        return None
    slot = (struct.unpack_from("<I", code, 3)[0] | 0xFFFFFFFF00000000) - WINDOW
    if 0 <= slot < 4 * WINDOW_NR and slot % 4 == 0:
        return slot // 4
    return None


def note_syscall(task, traps: dict, regs) -> bool:
    """After a `syscall` trap of task: count its site in traps (site -> count) and rewrite
    it once it has trapped REWRITE_AFTER times, if that is sound. Returns whether it did."""
    site = regs.rip - SITE_LEN
    n = traps.get(site, 0)
    if n == DONE:
        return False
    if n + 1 < REWRITE_AFTER:
        if len(traps) >= MAX_TRACKED:
            traps.clear()
        traps[site] = n + 1
        return False
    traps[site] = DONE
    return _rewrite(task, site, regs)


def _rewrite(task, site: int, regs) -> bool:
    nr = regs.orig_rax
    mm = task.mm
    # Not under --strace (the trace shows what the program does, keep it the program's
    # own), nor for a program single-stepping itself. Only while this task is the sole user
    # of the address space: no other vCPU can be executing the bytes as they change.
    if (task.kernel.strace is not None or regs.eflags & EFLAGS_TF or mm.users != 1
            or nr >= WINDOW_NR or site < 0
            or site // PAGE != (site + SITE_LEN - 1) // PAGE):
        return False
    want = original(nr)
    try:
        if mm.read(site, SITE_LEN) != want:
            return False
        frame = mm.private_code_frame(site)
    except (SysError, OSError, MemoryError):
        return False
    if frame is None:
        return False
    code = mm.memfile.view[frame + site % PAGE:frame + site % PAGE + SITE_LEN]
    if code != want:            # the page changed under us (it is read again here)
        return False
    code[:] = rewritten(nr)
    return True


def syscall_at_int3(mm, regs) -> bool:
    """An int3 trap (rip after it) at byte +5 of a rewritten site is the site's original
    `syscall`, reached by a jump or a restart: give regs the view of that syscall stop
    (number from rax, as the instruction takes it). False when it is any other int3."""
    site = regs.rip - 6
    try:
        code = mm.read(site, SITE_LEN)
    except SysError:
        return False
    if nr_of_rewritten(code) is None:
        return False
    regs.orig_rax = regs.rax
    regs.rip = site + SITE_LEN
    regs.rcx = regs.rip
    regs.r11 = regs.eflags & ~EFLAGS_RF
    regs.rax = -ENOSYS & 0xFFFFFFFFFFFFFFFF
    return True
