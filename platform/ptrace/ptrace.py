"""The ptrace platform: application threads are threads of stub processes under PTRACE_SYSEMU.

Layout of host processes:
- one *template* stub, spawned from the sentry (native/ptrace_core.c): one page of code,
  nothing else mapped, no capabilities, its own session, dies with the sentry;
- per application address space, a stub process forked from the template by an injected
  fork(). Its first thread is the *control thread*: it never runs application code and is
  always stopped, so the kernel can inject mmap/munmap/mprotect at any time. Each stub
  also maps one page of the memory file read-only at PS_STUB_BATCH: the sentry writes a
  list of syscalls there and the control thread runs them all in one round trip
  (`batch()`);
- a released address space's stub, once no thread of it runs, is kept in a small pool
  (with its stopped threads, parked for reuse) for the next address space: forking a stub,
  mapping its batch page and cloning a thread cost three round trips and a host fork.
  Its old mappings are removed (one munmap of everything below the stub page) by the
  first batch of its next user, which always comes before any of its threads runs again:
  until then nothing executes in the stub, so the stale mappings reach nobody;
- per application thread, a host thread of that stub process, cloned from the control
  thread. It runs application code under PTRACE_SYSEMU: its syscalls stop before they run
  and are served by the sentry.
All ptrace requests come from the sentry's loop thread (the tracer).
"""
import contextlib
import errno
import os
import signal
import struct

from pysentry.native._ptrace import ffi, lib
from pysentry.sentry.platform import (EV_FAULT, EV_GONE, EV_INTERRUPT, EV_SYSCALL, Event,
                                      Platform, PlatformAddressSpace, PlatformContext)

WALL = 0x40000000
SYS_MMAP, SYS_MPROTECT, SYS_MUNMAP, SYS_CLONE, SYS_EXIT, SYS_FORK = 9, 10, 11, 56, 60, 57
MAP_SHARED, MAP_FIXED = 0x01, 0x10
CLONE_THREAD_FLAGS = 0x00000100 | 0x00000200 | 0x00000400 | 0x00000800 | 0x00010000 | 0x00040000
SYSCALL_STOP = signal.SIGTRAP | 0x80
FAULT_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP}


class StubError(Exception):
    """The host side of a stub failed: this is a sentry/host problem, not an application one."""


def _check_inject(result: int, what: str) -> int:
    if result <= -100000:
        raise StubError(f"injecting {what} failed ({result})")
    return result


def _check_result(call, r: int) -> None:
    """A failed mmap/munmap/mprotect in a stub is the stub's failure. A munmap above all:
    the model has already given the memory back, and a mapping left behind would alias
    whatever the memory file hands that run to next (it fails with ENOMEM when a split
    would pass the host's vm.max_map_count)."""
    nr, a0, a1 = call[:3]
    if nr == SYS_MMAP and r != a0 or nr in (SYS_MPROTECT, SYS_MUNMAP) and r < 0:
        raise StubError(f"stub syscall {nr}({a0:#x}, {a1:#x}, ...) -> {r}")


def _host_max_map_count() -> int:
    """The host's vm.max_map_count: the most VMAs a stub process can have."""
    try:
        with open("/proc/sys/vm/max_map_count", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65530                  # Linux's default


# Host VMAs a stub keeps for itself: its code and batch pages, and room for the one more
# VMA that an unmap or mprotect in the middle of a mapping makes for a moment.
STUB_OWN_MAPS = 8

PROT_READ = 1
ENTRY = struct.Struct("<7Q")                 # one batch entry: nr, a0..a5
BATCH_MAX = 4096 // ENTRY.size               # entries per round trip (one page)
POOL_MAX = 8                                 # released stubs kept for reuse


class PtraceAddressSpace(PlatformAddressSpace):
    map_ahead = True                 # host mmaps are lazy: the round trip is the cost

    def __init__(self, platform: "PtracePlatform"):
        self.platform = platform
        self.threads = 0             # host threads serving application threads
        # Host threads of released contexts, kept stopped for the next new_thread(): a
        # thread holds nothing of its last task once its registers and FPU state are
        # replaced (application code cannot change host state without a syscall).
        self.parked: list[int] = []
        self._queue = None           # deferred calls while inside batch(), else None
        self._depth = 0
        self._reset = False          # a reused stub: its old mappings are still there
        self.broken = False          # a host call failed: never reuse this stub
        # Host VMAs the model may use in this stub (the model keeps its VMAs and private
        # copies within it: sentry/mm/addrspace.py), and the ranges the host refused to
        # map (ENOMEM) and that were unmapped instead (`_finish`).
        self.host_map_limit = platform.host_map_limit
        self.dropped_ranges = 0
        if platform.spare:
            self.pid, self.batch_off, self.parked = platform.spare.pop()
            self._reset = True
            return
        new = ffi.new("int*")
        r = _check_inject(lib.ps_inject(platform.template, platform.scratch, SYS_FORK,
                                        0, 0, 0, 0, 0, 0, new), "fork")
        if r < 0 or new[0] <= 0:
            raise StubError(f"stub fork failed: {r}")
        self.pid = new[0]            # host pid of the stub process = its control thread
        self.batch_off = platform.memfile.alloc(1)
        try:
            r = self._inject(SYS_MMAP, lib.PS_STUB_BATCH, 4096, PROT_READ,
                             MAP_SHARED | MAP_FIXED, lib.PS_STUB_MEMFD, self.batch_off)
            if r != lib.PS_STUB_BATCH:
                raise StubError(f"stub batch page mmap -> {r}")
        except StubError:
            self._kill()
            raise

    def _inject(self, nr, *args) -> int:
        args = list(args) + [0] * (6 - len(args))
        return _check_inject(lib.ps_inject(self.pid, self.platform.scratch, nr, *args, ffi.NULL),
                             f"syscall {nr}")

    def _call(self, nr, *args) -> None:
        """Run one call now, or queue it inside batch() (a failure raises at the flush)."""
        call = (nr,) + args + (0,) * (6 - len(args))
        if self._queue is not None:
            self._queue.append(call)
        else:
            self._execute([call])

    def _execute(self, calls):
        if self._reset:
            self._reset = False
            calls = [(SYS_MUNMAP, 0, lib.PS_STUB_BASE, 0, 0, 0, 0)] + calls
        if calls:
            try:
                self._run_batch(calls)
            except StubError:
                # Its mappings no longer match the model: it dies with its process.
                self.broken = True
                raise

    def settle(self):
        """Before any thread of the stub runs: the pending reset of a reused stub."""
        if self._reset:
            self._execute([])

    def map_memfile(self, addr, length, offset, prot):
        self._call(SYS_MMAP, addr, length, prot, MAP_SHARED | MAP_FIXED, lib.PS_STUB_MEMFD,
                   offset)

    def unmap(self, addr, length):
        self._call(SYS_MUNMAP, addr, length)

    def protect(self, addr, length, prot):
        self._call(SYS_MPROTECT, addr, length, prot)

    @contextlib.contextmanager
    def batch(self):
        if self._depth == 0:
            self._queue = []
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                queue, self._queue = self._queue, None
                if queue and self.pid:
                    self._execute(queue)

    def _run_batch(self, calls):
        """Run the calls in order in the control thread, BATCH_MAX per round trip."""
        if len(calls) == 1:
            self._finish(calls[0], self._inject(*calls[0]))
            return
        view = self.platform.memfile.view
        base = self.batch_off
        scratch = self.platform.scratch
        i = 0
        while i < len(calls):
            chunk = calls[i:i + BATCH_MAX]
            view[base:base + len(chunk) * ENTRY.size] = b"".join(ENTRY.pack(*c) for c in chunk)
            done = _check_inject(lib.ps_inject_batch(self.pid, scratch, lib.PS_STUB_BATCH,
                                                     len(chunk)), "batch")
            i += done
            if done < len(chunk):        # calls[i] failed: the stub stopped there
                view[base:base + len(chunk) * ENTRY.size] = bytes(len(chunk) * ENTRY.size)
                self._finish(calls[i], scratch.rax - (1 << 64))
                i += 1
            # The page is readable by the application (it shares the address space with
            # the stub): leave no trace of the calls, which a reused stub's next process
            # could otherwise read (other processes' layouts).
            view[base:base + len(chunk) * ENTRY.size] = bytes(len(chunk) * ENTRY.size)

    def _finish(self, call, r: int) -> None:
        """Check one call's host result. A mmap or mprotect the host refused for want of
        memory (ENOMEM, which includes passing its vm.max_map_count: the model keeps clear
        of that) leaves its range unmapped instead, and the calls after it still run: the
        host's mappings are a cache of the model, so a range missing there is safe (its
        next fault maps it again, or fails as SIGSEGV), where an old mapping or wider
        permissions left in place would not be. Only if that munmap fails too is the stub
        lost (StubError)."""
        nr, a0, a1 = call[:3]
        if r == -errno.ENOMEM and nr in (SYS_MMAP, SYS_MPROTECT):
            unmap = (SYS_MUNMAP, a0, a1, 0, 0, 0, 0)
            _check_result(unmap, self._inject(*unmap))
            self.dropped_ranges += 1
            return
        _check_result(call, r)

    def new_thread(self) -> int:
        self.threads += 1
        if self.parked:
            return self.parked.pop()
        new = ffi.new("int*")
        r = _check_inject(lib.ps_inject(self.pid, self.platform.scratch, SYS_CLONE,
                                        CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0, new), "clone")
        if r < 0 or new[0] <= 0:
            self.threads -= 1
            raise StubError(f"stub clone failed: {r}")
        return new[0]

    def release(self):
        if not self.pid:
            return
        self._queue = None
        platform = self.platform
        reusable = (not self.broken and self.threads == 0 and len(platform.spare) < POOL_MAX
                    and not any(c.aspace is self for c in platform.leaving.values()))
        if reusable:
            # Once emptied (by its next user), the stub is as the template left it: code
            # and batch pages only (an application thread changes nothing else without a
            # syscall, and its parked threads get new registers and FPU state).
            platform.spare.append((self.pid, self.batch_off, self.parked))
            self.parked = []
            self.pid = 0
            return
        self._kill()

    def _kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pid = 0
        self.platform.memfile.release(self.batch_off, 1)


class PtraceContext(PlatformContext):
    __slots__ = ("platform", "aspace", "tid", "regs", "running", "task", "cpu_base")

    def __init__(self, platform, aspace: PtraceAddressSpace):
        self.platform = platform
        self.aspace = aspace
        self.tid = aspace.new_thread()
        # A parked host thread has run other tasks before: their CPU time is not ours.
        self.cpu_base = 0
        self.cpu_base = self.cpu_time_ns()
        self.regs = ffi.new("struct user_regs_struct*")
        lib.ps_getregs(self.tid, self.regs)
        self.running = False
        self.task = None
        platform.contexts[self.tid] = self

    def resume(self):
        if self.aspace._reset:
            self.aspace.settle()
        r = lib.ps_resume(self.tid, self.regs, 1, 0)
        if r < 0:
            raise StubError(f"resume tid {self.tid}: {os.strerror(-r)}")
        self.running = True
        self.platform.resumed = True

    def interrupt(self):
        if self.running:
            lib.ps_kick(self.aspace.pid, self.tid)

    def cpu_time_ns(self) -> int:
        """The host thread's time on CPU (the application's, not the sentry's). Linux lets
        a thread read only its own group's per-thread CPU clocks, so this comes from the
        scheduler statistics of our stub thread (a host kernel query about our own child,
        not a file of the application)."""
        try:
            fd = os.open(f"/proc/{self.tid}/schedstat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return 0
        try:
            # Raw fd, not open(): a buffered file object costs twice the syscalls' time,
            # and this runs at every exec and thread exit.
            return int(os.read(fd, 128).split(None, 1)[0]) - self.cpu_base
        except (OSError, ValueError, IndexError):
            return 0
        finally:
            os.close(fd)

    def get_fpstate(self) -> bytes:
        """The thread's whole XSAVE area (standard format)."""
        size = self.platform.xstate_size
        buf = ffi.new("char[]", size)
        n = lib.ps_getxstate(self.tid, buf, size)
        if n < 0:
            raise StubError(f"GETREGSET xstate: {os.strerror(-n)}")
        return bytes(ffi.buffer(buf, n))

    def set_fpstate(self, data: bytes):
        """Load an XSAVE area, or a 512-byte FXSAVE image (other components reset)."""
        size = self.platform.xstate_size
        area = bytearray(size)
        area[:min(len(data), size)] = data[:size]
        if len(data) <= 512:
            area[512:520] = (3).to_bytes(8, "little")       # XSTATE_BV: x87 | SSE
        buf = ffi.new("char[]", bytes(area))
        r = lib.ps_setxstate(self.tid, buf, size)
        if r < 0:
            raise StubError(f"SETREGSET xstate: {os.strerror(-r)}")

    PARK_MAX = 2                      # parked host threads kept per stub

    def release(self):
        """The host thread leaves: a stopped one is parked in its stub for reuse, or runs
        exit(0) there. A thread that is running application code is first stopped
        (kicked); the exit happens at that stop."""
        if self.platform.contexts.pop(self.tid, None) is None:
            return
        self.task = None
        aspace = self.aspace
        aspace.threads -= 1
        if not aspace.pid:
            return                       # the whole stub process is gone already
        if self.running:
            self.platform.leaving[self.tid] = self
            lib.ps_kick(aspace.pid, self.tid)
        elif len(aspace.parked) < self.PARK_MAX:
            aspace.parked.append(self.tid)
        else:
            self._exit_now()

    def _exit_now(self):
        self.regs.rip = lib.ps_stub_syscall_addr()
        self.regs.rax = SYS_EXIT
        self.regs.rdi = 0
        self.regs.orig_rax = 2**64 - 1
        lib.ps_resume(self.tid, self.regs, 0, 0)
        self.running = False


class PtracePlatform(Platform):
    name = "ptrace"
    max_user_address = lib.PS_STUB_BASE

    def __init__(self, memfile):
        self.memfile = memfile
        self.host_map_limit = _host_max_map_count() - STUB_OWN_MAPS
        self.scratch = ffi.new("struct user_regs_struct*")
        self.contexts: dict[int, PtraceContext] = {}
        # Released stubs awaiting reuse: (pid, batch page offset, parked threads). Their old
        # mappings go with the first batch of their next user (PtraceAddressSpace._reset).
        self.spare: list[tuple[int, int, list]] = []
        self.leaving: dict[int, PtraceContext] = {}   # released while running: exit at next stop
        # SIGCHLD (a tracee stopped) is blocked and read from a signalfd the loop polls.
        # Threads created later inherit the mask; children get it reset by the stub. The
        # last platform of the process to shut down restores the mask it found, so that
        # host programs started later from this process (tests) do not inherit it.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        if PtracePlatform._live == 0:
            PtracePlatform._sigchld_was_blocked = signal.SIGCHLD in old
        PtracePlatform._live += 1
        self._counted = True
        self._wake_r = lib.ps_sigchld_fd()
        if self._wake_r < 0:
            raise StubError("cannot create the SIGCHLD signalfd")
        pid = lib.ps_stub_spawn(memfile.fd)
        if pid < 0:
            raise StubError(f"cannot start the stub: {os.strerror(-pid)}")
        self.template = pid
        self._status = ffi.new("int*")
        self._ready = None            # (tid, wait status) collected by spin_for_event
        self.resumed = False
        self.xcr0 = lib.ps_xcr0()
        probe = ffi.new("char[]", 16384)
        n = lib.ps_getxstate(pid, probe, 16384)
        if n < 576:
            raise StubError(f"cannot read the XSAVE area: {n}")
        self.xstate_size = n

    def new_address_space(self, memfile=None):
        return PtraceAddressSpace(self)

    def new_context(self, aspace):
        return PtraceContext(self, aspace)

    def event_fd(self):
        return self._wake_r

    # Right after a resume the loop busy-waits this long (µs) for the next stop before
    # sleeping in epoll: measured in bench/results/io.md (getppid round trip).
    SPIN_USEC = int(os.environ.get("PYSENTRY_SPIN_USEC", "30"))

    # The stop events carry nothing but their kind: one shared instance each (the kernel
    # only reads events), so a round trip allocates none.
    _SYSCALL_EVENT = Event(EV_SYSCALL)
    _INTERRUPT_EVENT = Event(EV_INTERRUPT)
    _NO_IA32_EVENT = Event(EV_FAULT, signo=signal.SIGSEGV, code=0x80)     # SI_KERNEL

    def spin_for_event(self) -> bool:
        """Called by the loop before it sleeps. Collects the next stop (busy-waiting a few
        µs right after a resume) into `_ready` for the next poll_events(). Only when none
        came is the SIGCHLD signalfd drained, and waitpid asked once more: a stop after
        that drain raises SIGCHLD again, so the epoll sleep cannot miss it, and the
        signalfd costs nothing on the round trips the spin catches."""
        usec = self.SPIN_USEC if self.resumed else 0
        self.resumed = False
        status = self._status
        tid = lib.ps_spin_collect(usec, status)
        if tid <= 0:
            try:
                while os.read(self._wake_r, 128 * 16):
                    pass
            except BlockingIOError:
                pass
            tid = lib.ps_spin_collect(0, status)
            if tid <= 0:
                return False
        self._ready = (tid, status[0])
        return True

    def poll_events(self):
        """Yields every stop waitpid has, starting with the one spin_for_event() collected.
        Often the tracee stops again while its event is handled (it preempts the loop in
        the resume): the next waitpid here then takes it at once, with no trip round the
        loop. The signalfd is left to spin_for_event(), just before the loop sleeps."""
        status = self._status
        ready, self._ready = self._ready, None
        while True:
            if ready is not None:
                tid, st = ready
                ready = None
            else:
                tid = lib.ps_spin_collect(0, status)
                if tid <= 0:
                    return
                st = status[0]
            ctx = self.contexts.get(tid)
            if ctx is None:
                gone = self.leaving.pop(tid, None)
                if gone is not None and os.WIFSTOPPED(st) and gone.aspace.pid:
                    gone._exit_now()
                continue                  # a released thread or stub: nothing to do
            if st & 0xff != 0x7f:         # exited or killed (not WIFSTOPPED)
                ctx.running = False
                del self.contexts[tid]
                yield ctx, Event(EV_GONE)
                continue
            ctx.running = False
            sig = (st >> 8) & 0xff
            if sig == SYSCALL_STOP:
                if lib.ps_getregs_at_syscall(tid, ctx.regs) != 1:
                    yield ctx, self._SYSCALL_EVENT
                    continue
                # int 0x80 (or sysenter) from 64-bit code: the i386 syscall ABI, which the
                # sandbox's Linux does not have (no IA32 emulation). There the instruction
                # is a general-protection fault: SIGSEGV at it, nothing performed.
                ctx.regs.rip -= 2
                ctx.regs.orig_rax = (1 << 64) - 1
                yield ctx, self._NO_IA32_EVENT
                continue
            lib.ps_getregs(tid, ctx.regs)
            if sig == signal.SIGSTOP:
                yield ctx, self._INTERRUPT_EVENT
            else:
                info = ffi.new("char[128]")
                lib.ps_getsiginfo(tid, info)
                raw = bytes(ffi.buffer(info))
                code = int.from_bytes(raw[8:12], "little", signed=True)
                addr = int.from_bytes(raw[16:24], "little")
                yield ctx, Event(EV_FAULT, signo=sig, code=code, addr=addr, siginfo=raw)

    _live = 0                         # platforms of this process not yet shut down
    _sigchld_was_blocked = False

    def shutdown(self):
        if self.__dict__.pop("_counted", False):
            PtracePlatform._live -= 1
            if PtracePlatform._live == 0 and not PtracePlatform._sigchld_was_blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        for ctx in list(self.contexts.values()):
            ctx.aspace.release()
        for pid, _, _ in self.spare:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.spare = []
        try:
            os.kill(self.template, signal.SIGKILL)
        except ProcessLookupError:
            pass
