"""The ptrace platform: application threads are threads of stub processes under PTRACE_SYSEMU.

Layout of host processes:
- one *template* stub, spawned from the sentry (native/ptrace_core.c): one page of code,
  nothing else mapped, no capabilities, its own session, dies with the sentry;
- per application address space, a stub process forked from the template by an injected
  fork(). Its first thread is the *control thread*: it never runs application code and is
  always stopped, so the kernel can inject mmap/munmap/mprotect at any time;
- per application thread, a host thread of that stub process, cloned from the control
  thread. It runs application code under PTRACE_SYSEMU: its syscalls stop before they run
  and are served by the sentry.
All ptrace requests come from the sentry's loop thread (the tracer).
"""
import errno
import os
import signal

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


class PtraceAddressSpace(PlatformAddressSpace):
    def __init__(self, platform: "PtracePlatform"):
        self.platform = platform
        new = ffi.new("int*")
        r = _check_inject(lib.ps_inject(platform.template, platform.scratch, SYS_FORK,
                                        0, 0, 0, 0, 0, 0, new), "fork")
        if r < 0 or new[0] <= 0:
            raise StubError(f"stub fork failed: {r}")
        self.pid = new[0]            # host pid of the stub process = its control thread
        self.threads = 0

    def _inject(self, nr, *args) -> int:
        args = list(args) + [0] * (6 - len(args))
        return _check_inject(lib.ps_inject(self.pid, self.platform.scratch, nr, *args, ffi.NULL),
                             f"syscall {nr}")

    def map_memfile(self, addr, length, offset, prot):
        r = self._inject(SYS_MMAP, addr, length, prot, MAP_SHARED | MAP_FIXED,
                         lib.PS_STUB_MEMFD, offset)
        if r != addr:
            raise StubError(f"stub mmap({addr:#x}, {length:#x}) -> {r}")

    def unmap(self, addr, length):
        self._inject(SYS_MUNMAP, addr, length)

    def protect(self, addr, length, prot):
        r = self._inject(SYS_MPROTECT, addr, length, prot)
        if r < 0:
            raise StubError(f"stub mprotect({addr:#x}, {length:#x}) -> {r}")

    def new_thread(self) -> int:
        new = ffi.new("int*")
        r = _check_inject(lib.ps_inject(self.pid, self.platform.scratch, SYS_CLONE,
                                        CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0, new), "clone")
        if r < 0 or new[0] <= 0:
            raise StubError(f"stub clone failed: {r}")
        self.threads += 1
        return new[0]

    def release(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.pid = 0


class PtraceContext(PlatformContext):
    __slots__ = ("platform", "aspace", "tid", "regs", "running", "task")

    def __init__(self, platform, aspace: PtraceAddressSpace):
        self.platform = platform
        self.aspace = aspace
        self.tid = aspace.new_thread()
        self.regs = ffi.new("struct user_regs_struct*")
        lib.ps_getregs(self.tid, self.regs)
        self.running = False
        self.task = None
        platform.contexts[self.tid] = self

    def resume(self):
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
            with open(f"/proc/{self.tid}/schedstat", "rb") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

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

    def release(self):
        """The host thread leaves: it runs exit(0) in the stub. A thread that is running
        application code is first stopped (kicked); the exit happens at that stop."""
        if self.platform.contexts.pop(self.tid, None) is None:
            return
        self.task = None
        self.aspace.threads -= 1
        if not self.aspace.pid:
            return                       # the whole stub process is gone already
        if self.running:
            self.platform.leaving[self.tid] = self
            lib.ps_kick(self.aspace.pid, self.tid)
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
        self.scratch = ffi.new("struct user_regs_struct*")
        self.contexts: dict[int, PtraceContext] = {}
        self.leaving: dict[int, PtraceContext] = {}   # released while running: exit at next stop
        # SIGCHLD (a tracee stopped) is blocked and read from a signalfd the loop polls.
        # Threads created later inherit the mask; children get it reset by the stub.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        self._wake_r = lib.ps_sigchld_fd()
        if self._wake_r < 0:
            raise StubError("cannot create the SIGCHLD signalfd")
        pid = lib.ps_stub_spawn(memfile.fd)
        if pid < 0:
            raise StubError(f"cannot start the stub: {os.strerror(-pid)}")
        self.template = pid
        self._status = ffi.new("int*")
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

    def spin_for_event(self) -> bool:
        if not self.resumed or self.SPIN_USEC <= 0:
            return False
        self.resumed = False
        return lib.ps_spin_wait(self.SPIN_USEC) == 1

    def poll_events(self):
        try:
            while os.read(self._wake_r, 128 * 16):
                pass
        except BlockingIOError:
            pass
        status = self._status
        while True:
            tid = lib.ps_wait_any(status)
            if tid <= 0:
                return
            st = status[0]
            ctx = self.contexts.get(tid)
            if ctx is None:
                gone = self.leaving.pop(tid, None)
                if gone is not None and os.WIFSTOPPED(st) and gone.aspace.pid:
                    gone._exit_now()
                continue                  # a released thread or stub: nothing to do
            if os.WIFEXITED(st) or os.WIFSIGNALED(st):
                ctx.running = False
                del self.contexts[tid]
                yield ctx, Event(EV_GONE)
                continue
            ctx.running = False
            sig = os.WSTOPSIG(st)
            if sig == SYSCALL_STOP:
                lib.ps_getregs(tid, ctx.regs)
                yield ctx, Event(EV_SYSCALL)
            elif sig == signal.SIGSTOP:
                lib.ps_getregs(tid, ctx.regs)
                yield ctx, Event(EV_INTERRUPT)
            else:
                lib.ps_getregs(tid, ctx.regs)
                info = ffi.new("char[128]")
                lib.ps_getsiginfo(tid, info)
                raw = bytes(ffi.buffer(info))
                code = int.from_bytes(raw[8:12], "little", signed=True)
                addr = int.from_bytes(raw[16:24], "little")
                yield ctx, Event(EV_FAULT, signo=sig, code=code, addr=addr, siginfo=raw)

    def shutdown(self):
        for ctx in list(self.contexts.values()):
            ctx.aspace.release()
        try:
            os.kill(self.template, signal.SIGKILL)
        except ProcessLookupError:
            pass
