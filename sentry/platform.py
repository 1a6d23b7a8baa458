"""The platform seam: how application code runs and traps back to the kernel.

Nothing above this interface knows whether ptrace or KVM is underneath. A platform offers
address spaces (ranges of the memory file mapped at application addresses) and contexts
(threads of application execution). Contexts run concurrently; their events are collected
by the kernel's event loop through `event_fd()` + `poll_events()`.
"""
import contextlib

from .kernel.record import Record

# Event kinds a context reports.
EV_SYSCALL = 1      # the application made a system call; regs hold it
EV_FAULT = 2        # a CPU fault: signo (SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP), code, addr
EV_INTERRUPT = 3    # the context stopped because the kernel asked it to (interrupt())
EV_GONE = 4         # the host side of the context died (killed from outside, OOM)


class Event(Record):
    __slots__ = _fields = ("kind", "signo", "code", "addr", "siginfo")

    def __init__(self, kind: int, signo: int = 0, code: int = 0, addr: int = 0,
                 siginfo: bytes = b""):
        self.kind = kind
        self.signo = signo
        self.code = code
        self.addr = addr
        self.siginfo = siginfo


class PlatformAddressSpace:
    """Application address space. Ranges map offsets of the memory file (MAP_SHARED)."""

    # True when mapping a range costs about the same whatever its size and however many
    # ranges go in one batch() (ptrace: host mmaps are lazy, the round trip is the cost):
    # the kernel then maps every VMA at once instead of one per fault. Optional.
    map_ahead = False

    # True when map_memfile makes no round trip to a host (KVM: the sentry writes the guest
    # page-table entries itself; ptrace injects a host mmap into the stub): a fresh writable
    # mapping is then entered when it is made, sparing the fault of its first store
    # (AddressSpace.map_anon). Optional.
    maps_locally = False

    # The most host VMAs the model may use in this address space, when the platform's host
    # has a per-process limit (ptrace: every model VMA is a host VMA of the stub); None
    # means no limit of the host's to respect. The model keeps its VMAs and private copies
    # under it (sentry/mm/addrspace.py, "The VMA count"). Optional.
    host_map_limit = None
    # How many ranges the host refused to map (and which were left unmapped instead, to be
    # mapped again by their next fault). Optional: a count for tests and diagnostics.
    dropped_ranges = 0

    def map_memfile(self, addr: int, length: int, offset: int, prot: int) -> None:
        raise NotImplementedError

    def unmap(self, addr: int, length: int) -> None:
        raise NotImplementedError

    def protect(self, addr: int, length: int, prot: int) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def batch(self):
        """A context manager: map/unmap/protect calls made inside may be deferred and
        carried out together, in order, when the outermost block ends (before it returns).
        Use it only around a sequence of changes that the kernel makes without handing
        control to anything else. Optional: the default carries each call out at once."""
        return contextlib.nullcontext()


class PlatformContext:
    """One thread of application execution, bound to one address space at a time.

    `regs` is a platform-owned register block with the attribute names of
    `struct user_regs_struct`; the kernel edits it between events.
    """
    regs = None

    def resume(self) -> None:
        """Run the application with `regs` until its next event (reported via the loop)."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Make a running context stop soon with EV_INTERRUPT."""
        raise NotImplementedError

    def get_fpstate(self) -> bytes:
        raise NotImplementedError

    def set_fpstate(self, data: bytes) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def cpu_time_ns(self) -> int:
        """CPU time this context has spent running application code."""
        return 0


class Platform:
    name = "?"
    xcr0 = 3              # user-visible XSAVE features
    xstate_size = 512     # bytes of a thread's XSAVE area
    # Highest application address + 1: the platform owns everything from here up.
    max_user_address = 0

    def new_address_space(self, memfile) -> PlatformAddressSpace:
        raise NotImplementedError

    def new_context(self, aspace: PlatformAddressSpace) -> PlatformContext:
        raise NotImplementedError

    def move_context(self, ctx: PlatformContext, aspace: PlatformAddressSpace) -> PlatformContext:
        """execve: the task's thread now runs in a fresh address space."""
        raise NotImplementedError

    def event_fd(self) -> int:
        """An fd that becomes readable when poll_events() may return something."""
        raise NotImplementedError

    def spin_for_event(self) -> bool:
        """May wait a few microseconds for an event before the loop sleeps; True means
        poll_events() has something now."""
        return False

    def poll_events(self):
        """Yield (context, Event) for every context that stopped since the last call."""
        raise NotImplementedError
