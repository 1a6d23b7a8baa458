"""The KVM platform: the application runs in guest ring 3 of one VM; the sentry is its VMM.

The native module (native/kvm_*.c) owns the VM: the ring-0 trap stub, the guest page tables
built from the mappings the kernel asks for, and one host thread per vCPU that runs
KVM_RUN and reports stops through an eventfd that this class hands to the event loop.
A context holds one vCPU (from a reusable pool) from its first use to its release, so its
registers and FPU/AVX state stay in that vCPU between events; preemption of a spinning
task is the host scheduler's job, since every vCPU is a host thread. See docs/kvm.md.
"""
import errno
import os
import select
import sys
import time

from pysentry.native._kvm import ffi, lib
from pysentry.sentry import logger
from pysentry.sentry.kernel.sigframe import pack_siginfo
from pysentry.sentry.platform import (EV_FAULT, EV_GONE, EV_INTERRUPT, EV_SYSCALL, Event,
                                      Platform, PlatformAddressSpace, PlatformContext)

from . import rewrite
from .faults import SI_KERNEL, translate

log = logger.log        # logging itself is imported only when something is logged
XSAVE_AREA = 4096                   # struct kvm_xsave
EXIT_NAMES = {8: "shutdown (triple fault)", 9: "entry failure", 17: "internal error"}

# Syscalls a vCPU thread answers by itself, in the order of the PK_ID_* slots: their answer is
# a value of the task that only the kernel changes (docs/kvm.md, "Syscalls served in C").
# getpid gettid getppid getuid geteuid getgid getegid, then getpgrp (also the answer of
# getpgid(0)) and getsid(0) (the handlers called with 0 arguments give the caller's own).
SERVED_IN_C = (39, 186, 110, 102, 107, 104, 108, 111, 124)
# Syscalls that may make the pushed values stale: the set*id family (credentials are per
# thread group here) and setpgid/setsid (which may change another process's group), so
# every context is refreshed before anyone runs on.
CRED_SYSCALLS = frozenset((105, 106, 113, 114, 117, 119, 122, 123, 109, 112))


def _env_usec(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


class KvmUnavailable(Exception):
    """The host cannot run the KVM platform; the message names the cause."""


class KvmAddressSpace(PlatformAddressSpace):
    # Enter every VMA on the first fault (the kernel's map_all): an entry costs 8 bytes of
    # page table and no memory until touched, and a fault round trip costs ~50-100 us here
    # (docs/kvm.md, "Page tables"). PYSENTRY_KVM_MAP_AHEAD=0: one VMA per fault.
    map_ahead = os.environ.get("PYSENTRY_KVM_MAP_AHEAD", "1") != "0"
    # Entries are written by the sentry (absent -> present needs no guest run): a new
    # writable mapping is entered at mmap/brk, so its first store does not fault.
    maps_locally = map_ahead

    def __init__(self, platform: "KvmPlatform"):
        self.platform = platform
        self.dropped_ranges = 0
        self.handle = lib.pk_as_create(platform.vm)
        self.site_traps: dict[int, int] = {}    # syscall site -> traps (rewrite.py)
        if self.handle == ffi.NULL:
            raise MemoryError("KVM: no page-table page left for a new address space")

    def _check(self, r: int, what: str):
        if r < 0:
            raise OSError(-r, f"KVM {what}: {os.strerror(-r)}")

    def map_memfile(self, addr, length, offset, prot):
        r = lib.pk_as_map(self.handle, addr, length, offset, prot)
        if r == -errno.ENOMEM:
            # The page-table pool is empty. As a host ENOMEM on ptrace: the range is left
            # with no entries (unmap needs no new table page, kvm_mmu.c apply) and counted
            # in dropped_ranges, so the model maps it again at its next fault or, when that
            # fails too, makes the access a SIGSEGV instead of a fault loop.
            self._check(lib.pk_as_unmap(self.handle, addr, length), "unmap after a failed map")
            self.dropped_ranges += 1
            return
        self._check(r, "map")

    def unmap(self, addr, length):
        top = lib.PK_USER_TOP
        if addr >= top:
            return
        self._check(lib.pk_as_unmap(self.handle, addr, min(length, top - addr)), "unmap")

    def protect(self, addr, length, prot):
        self._check(lib.pk_as_protect(self.handle, addr, length, prot), "protect")

    def lookup(self, addr) -> int:
        """The guest page-table entry for addr (tests)."""
        return lib.pk_as_lookup(self.handle, addr)

    def release(self):
        if self.handle is not None:
            lib.pk_as_release(self.handle)
            self.handle = None


class KvmContext(PlatformContext):
    __slots__ = ("platform", "aspace", "vcpu", "vcpu_id", "regs", "running", "task",
                 "leaving", "ids_for", "ids", "on_thread", "live")

    def __init__(self, platform: "KvmPlatform", aspace: KvmAddressSpace):
        if platform.live_contexts >= lib.PK_MAX_VCPUS - 1:     # vCPU 0 is the maintenance one
            raise OSError(errno.EAGAIN, "KVM: no vCPU for a new thread: "
                          + os.strerror(errno.EAGAIN))
        self.platform = platform
        self.aspace = aspace
        # The vCPU is taken from the pool at first use (_bound_vcpu): a context that never
        # runs, like the sandbox's first one that its execve replaces, costs no vCPU, no
        # host thread and no thread join at exit.
        self.vcpu = None
        self.vcpu_id = -1
        self.regs = ffi.new("struct user_regs_struct*")
        self.regs.cs, self.regs.ss, self.regs.eflags = 0x33, 0x2B, 0x202
        self.running = False
        self.on_thread = False      # running on its vCPU's own thread (not a direct run)
        self.task = None
        self.leaving = False
        self.ids_for = None         # the task whose ids the vCPU thread holds
        self.ids = None             # those ids (None: it serves nothing)
        self.live = True            # not released yet
        platform.live_contexts += 1

    def _bound_vcpu(self, clean_fpstate=True):
        """This context's vCPU, taken from the pool on first use; a vCPU from the pool
        carries its previous owner's FPU state, so it starts clean unless the caller is
        about to load a state of its own."""
        if self.vcpu is None:
            err = ffi.new("int*")
            vcpu = lib.pk_vcpu_get(self.platform.vm, err)
            if vcpu == ffi.NULL:
                raise OSError(-err[0], f"KVM: no vCPU for a new thread: {os.strerror(-err[0])}")
            self.vcpu = vcpu
            self.vcpu_id = lib.pk_vcpu_id(vcpu)
            self.cpu_start = lib.pk_vcpu_cpu_ns(vcpu)     # a pooled vCPU counted before us
            self.platform.contexts[self.vcpu_id] = self
            if clean_fpstate:
                self.set_fpstate(self.platform.initial_fpstate)
        return self.vcpu

    def cpu_time_ns(self) -> int:
        """The application's CPU time on this context: what its vCPU's thread spent in
        the guest and answering syscalls in C since the context took it (not its waits)."""
        if self.vcpu is None:
            return 0
        return lib.pk_vcpu_cpu_ns(self.vcpu) - self.cpu_start

    def resume(self):
        if self.aspace.handle is None:
            raise OSError(errno.ESRCH, "KVM: resume in a released address space")
        platform = self.platform
        self._bound_vcpu()
        if platform.serve_in_c:
            if self.regs.orig_rax in CRED_SYSCALLS:
                platform.ids_stale = True
            if platform.ids_stale or self.ids_for is not self.task:
                platform.push_ids()
        waiting = platform.direct_ctx
        if waiting is not None and lib.pk_vcpu_hand_to_thread(waiting.vcpu):
            # Two contexts to run: both on their vCPU threads (pk_vcpu_hand_to_thread).
            platform.direct_ctx = None
            waiting.on_thread = True
            platform.on_threads += 1
            platform.resumed = True
        if (platform.direct and platform.direct_ctx is None and platform.on_threads == 0
                and (platform.direct_always or lib.pk_vcpu_choose_direct(self.vcpu))):
            # Alone: the loop runs it itself when it has nothing else to do (spin_for_event).
            r = lib.pk_vcpu_prepare(self.vcpu, self.regs, self.aspace.handle)
            if r < 0:
                raise OSError(-r, f"KVM resume: {os.strerror(-r)}")
            platform.direct_ctx = self
        else:
            r = lib.pk_vcpu_resume(self.vcpu, self.regs, self.aspace.handle)
            if r < 0:
                raise OSError(-r, f"KVM resume: {os.strerror(-r)}")
            self.on_thread = True
            platform.on_threads += 1
            platform.resumed = True
        self.running = True

    def push_ids(self):
        """Give the vCPU thread the current answers of the SERVED_IN_C syscalls, computed by
        the kernel's own handlers; none under --strace (every call must be seen)."""
        t = self.task
        ids = None
        if (t is not None and not t.dead and self.platform.serve_in_c
                and t.kernel.strace is None):
            table = t.kernel.table
            ids = []
            for nr in SERVED_IN_C:
                entry = table.get(nr)
                value = entry.handler(t, 0, 0, 0, 0, 0, 0) if entry and entry.handler else None
                if type(value) is not int:
                    ids = None
                    break
                ids.append(value)
        self.ids_for = t
        if ids != self.ids:
            self.ids = ids
            lib.pk_vcpu_set_ids(self.vcpu, ids is not None, ids or self.platform.no_ids)

    def served_in_c(self) -> int:
        """Syscalls of this context the vCPU thread answered without the kernel."""
        return lib.pk_vcpu_served(self.vcpu) if self.vcpu is not None else 0

    def interrupt(self):
        if self.running:
            lib.pk_vcpu_kick(self.vcpu)

    def get_fpstate(self) -> bytes:
        buf = ffi.new("char[]", XSAVE_AREA)
        r = lib.pk_vcpu_get_xsave(self._bound_vcpu(), buf)
        if r < 0:
            raise OSError(-r, f"KVM_GET_XSAVE: {os.strerror(-r)}")
        return bytes(ffi.buffer(buf, self.platform.xstate_size))

    def set_fpstate(self, data: bytes):
        """Load an XSAVE area, or a 512-byte FXSAVE image (other components reset)."""
        area = bytearray(XSAVE_AREA)
        n = min(len(data), self.platform.xstate_size)
        area[:n] = data[:n]
        if len(data) <= 512:
            area[512:520] = (3).to_bytes(8, "little")       # XSTATE_BV: x87 | SSE
        area[520:576] = bytes(56)                            # XCOMP_BV and reserved: zero
        r = lib.pk_vcpu_set_xsave(self._bound_vcpu(clean_fpstate=False), ffi.from_buffer(area))
        if r < 0:
            raise OSError(-r, f"KVM_SET_XSAVE: {os.strerror(-r)}")

    def release(self):
        """Give the vCPU back to the pool; a running one first stops (kicked)."""
        if not self.live:
            return
        self.live = False
        self.platform.live_contexts -= 1
        if self.vcpu is None:                    # never ran: only the wakeup below is owed
            self.platform.ids_stale = True
            self.task = None
            lib.pk_vm_wake(self.platform.vm)
            return
        # A task leaving may orphan children (getppid) or end a thread (getpid after exec):
        # refresh every vCPU's ids before anything runs again (see KvmPlatform.push_ids).
        self.platform.ids_stale = True
        lib.pk_vcpu_set_ids(self.vcpu, 0, self.platform.no_ids)
        self.ids = None
        self.task = None
        if self.platform.direct_ctx is self:     # prepared, never ran: nothing to stop
            lib.pk_vcpu_cancel_direct(self.vcpu)
            self.platform.direct_ctx = None
            self.running = False
        if self.running:
            self.leaving = True
            lib.pk_vcpu_kick(self.vcpu)
        else:
            self._return_vcpu()

    def _return_vcpu(self):
        del self.platform.contexts[self.vcpu_id]
        lib.pk_vcpu_put(self.vcpu)
        # The loop re-checks whether the sandbox is over only after a wakeup; on ptrace the
        # exit of the host thread provides one (SIGCHLD). Provide the same here.
        lib.pk_vm_wake(self.platform.vm)


class KvmPlatform(Platform):
    name = "kvm"
    max_user_address = lib.PK_USER_TOP
    SPIN_USEC = 150
    VCPU_SPIN_USEC = 100
    SPIN_BACKOFF = 32
    DIRECT_SLICE_USEC = 10000
    SITE_PROBE_EVERY = 64

    def __init__(self, memfile, in_background: bool = False):
        """in_background: the VM is created on a thread of its own while the sandbox is put
        together (most of that is waiting for the gofer), and joined at its first use
        (ready()); a failure is then reported there, as open_platform reports it. Its
        teardown at shutdown() goes on a thread too (the command line's case, which exits
        right after)."""
        self.memfile = memfile
        self.vm = None
        self._creation = _VmCreation(memfile) if in_background else None
        self._teardown_aside = in_background    # shutdown() destroys the VM on a thread
        self.initial_fpstate = _initial_fxsave()
        self.contexts: dict[int, KvmContext] = {}      # by vCPU id: the contexts holding one
        self.live_contexts = 0                          # contexts not released, with a vCPU or not
        self._ids = ffi.new("int[]", lib.PK_MAX_VCPUS)
        # Busy-waits (µs) that spare the eventfd/epoll and futex wakeups of a round trip:
        # the loop waits this long for the next stop after a resume, a stopped vCPU thread
        # this long for its resume. Measured in docs/kvm.md; 0 turns either off.
        self.spin_usec = _env_usec("PYSENTRY_KVM_SPIN_USEC", self.SPIN_USEC)
        self.vcpu_spin_usec = _env_usec("PYSENTRY_KVM_VCPU_SPIN_USEC", self.VCPU_SPIN_USEC)
        self.spin_backoff = _env_usec("PYSENTRY_KVM_SPIN_BACKOFF", self.SPIN_BACKOFF)
        self.resumed = False
        # The id syscalls answered on the vCPU thread (PYSENTRY_KVM_SERVE_IN_C=0: never).
        self.serve_in_c = os.environ.get("PYSENTRY_KVM_SERVE_IN_C", "1") != "0"
        self.ids_stale = False
        self.no_ids = ffi.new("int64_t[]", lib.PK_ID_COUNT)
        # Direct runs (docs/kvm.md, "Direct runs"): a context resumed while no other runs on
        # a vCPU thread may be run by the loop thread itself, for at most the slice at a time.
        # By default only while its vCPU thread has given up waiting (pk_vcpu_choose_direct):
        # direct runs win where the threads' busy-waits miss and lose where they catch every
        # hand-off. PYSENTRY_KVM_DIRECT=1: whenever alone; 0: never.
        direct_mode = os.environ.get("PYSENTRY_KVM_DIRECT", "auto")
        self.direct = direct_mode != "0"
        self.direct_always = direct_mode == "1"
        # Trapped `mov $N,%eax; syscall` sites rewritten into ring-3 exits (rewrite.py,
        # docs/kvm.md "Rewritten syscall sites"); PYSENTRY_KVM_REWRITE=0/1 forces it.
        self.rewrite_sites = os.environ.get("PYSENTRY_KVM_REWRITE", "1") not in ("0", "")
        # Sites of the syscalls answered in C are learnt from one call in SITE_PROBE_EVERY
        # (stopped after its answer, as if kicked): see _attach.
        self.sites_rewritten = 0    # statistics
        self.site_int3 = 0
        self.direct_slice_usec = _env_usec("PYSENTRY_KVM_DIRECT_SLICE_USEC",
                                           self.DIRECT_SLICE_USEC) or self.DIRECT_SLICE_USEC
        self.direct_ctx = None      # the context prepared for a direct run
        self.on_threads = 0         # contexts running on their vCPU threads
        self._loop_fds = None       # poll object over the kernel's epoll fd
        self._fds_first = False     # the last direct run was put off for ready fds
        if self._creation is None:
            self._attach(_create_vm(memfile))

    def _attach(self, vm):
        """Take over a created VM and apply the settings that live in it."""
        self.vm = vm
        self.xcr0 = lib.pk_vm_xcr0(vm)
        self.xstate_size = lib.pk_vm_xstate_size(vm)
        self._efd = lib.pk_vm_event_fd(vm)
        lib.pk_vm_set_spin(vm, self.vcpu_spin_usec, self.spin_backoff)
        lib.pk_vm_set_site_probe(vm, self.SITE_PROBE_EVERY if self.rewrite_sites else 0)

    def ready(self):
        """Wait for a VM being created in the background. Its failure is the one-line
        SystemExit of open_platform, raised here, before anything of the sandbox ran."""
        creation, self._creation = self._creation, None
        if creation is not None:
            try:
                self._attach(creation.result())
            except KvmUnavailable as e:
                raise SystemExit(_unavailable(e)) from None

    def new_address_space(self, memfile=None):
        self.ready()
        return KvmAddressSpace(self)

    def new_context(self, aspace):
        return KvmContext(self, aspace)

    def move_context(self, ctx, aspace):
        ctx.release()
        return KvmContext(self, aspace)

    def event_fd(self):
        self.ready()
        return self._efd

    def stats(self) -> dict:
        self.ready()
        vm = self.vm
        return {"maintenance_runs": lib.pk_vm_stat(vm, 0), "guest_pte_writes": lib.pk_vm_stat(vm, 1),
                "tables_replaced": lib.pk_vm_stat(vm, 2), "vcpus": lib.pk_vm_stat(vm, 3),
                "served_in_c": lib.pk_vm_stat(vm, 4), "loop_wakeups": lib.pk_vm_stat(vm, 5),
                "vcpu_sleeps": lib.pk_vm_stat(vm, 6), "spin_hits": lib.pk_vm_stat(vm, 7),
                "direct_runs": lib.pk_vm_stat(vm, 8), "thread_probes": lib.pk_vm_stat(vm, 13),
                "entry_retries": lib.pk_vm_stat(vm, 14),
                "window_syscalls": lib.pk_vm_stat(vm, 12),
                "tables_kept": lib.pk_vm_stat(vm, 20), "tables_relinked": lib.pk_vm_stat(vm, 21),
                "sites_rewritten": self.sites_rewritten, "site_int3_syscalls": self.site_int3}

    def push_ids(self):
        """Refresh the answers every vCPU thread holds. Called at each resume while stale and
        once more at loop level, where the flag clears: a change (a reparent, an exec, a
        set*id) always happens in one synchronous step of the kernel after the event that
        marked it stale, so no vCPU runs again before it sees the new values."""
        for ctx in list(self.contexts.values()):
            if ctx.task is not None:
                ctx.push_ids()

    def _settle_ids(self):
        if self.ids_stale:
            self.push_ids()
            self.ids_stale = False

    def spin_for_event(self) -> bool:
        self._settle_ids()
        d = self.direct_ctx
        if d is not None:
            slice_usec = self._direct_slice(d)
            if slice_usec <= 0:
                return False                    # the loop has fds or a timer to serve first
            r = lib.pk_vcpu_run_here(d.vcpu, slice_usec)
            if r < 0:
                raise OSError(-r, f"KVM direct run: {os.strerror(-r)}")
            if r == 1:
                self.direct_ctx = None
            return True                         # a stop is on the ring
        if not self.resumed or self.spin_usec <= 0:
            return False
        self.resumed = False
        return lib.pk_vm_spin(self.vm, self.spin_usec) == 1

    def _direct_slice(self, ctx) -> int:
        """How long a direct run may last (µs): until the kernel's next timer, at most the
        slice; 0 when the loop's own fds are ready or a timer is due (serve those first).
        Reads the kernel's epoll fd and timer heap (Kernel.epoll, Kernel._timers)."""
        kernel = ctx.task.kernel if ctx.task is not None else None
        if kernel is None:
            return self.direct_slice_usec
        if self._loop_fds is None:
            self._loop_fds = select.poll()
            self._loop_fds.register(kernel.epoll.fileno(), select.POLLIN)
        # Ready fds go first, once: if the loop's pass over them leaves one ready (a level-
        # triggered fd nobody drains yet), the context runs anyway, so it cannot starve.
        if not self._fds_first and self._loop_fds.poll(0):
            self._fds_first = True
            return 0
        self._fds_first = False
        slice_usec = self.direct_slice_usec
        timers = getattr(kernel, "_timers", None)
        if timers:
            left = int((timers[0][0] - time.monotonic()) * 1e6)
            if left < slice_usec:
                slice_usec = left
        return slice_usec

    def poll_events(self):
        self._settle_ids()
        while True:
            n = lib.pk_vm_collect(self.vm, self._ids, lib.PK_MAX_VCPUS)
            if n == 0:
                return
            for i in range(n):
                ctx = self.contexts.get(self._ids[i])
                if ctx is None:
                    continue
                ctx.running = False
                if ctx.on_thread:
                    ctx.on_thread = False
                    self.on_threads -= 1
                if ctx.leaving:
                    ctx._return_vcpu()
                    continue
                yield ctx, self._event(ctx)

    def _event(self, ctx) -> Event:
        ev = lib.pk_vcpu_event(ctx.vcpu)
        kind = ev.kind
        if kind == lib.PK_EV_SYSCALL:
            if (self.rewrite_sites and ev.detail != lib.PK_VIA_WINDOW and ctx.task is not None
                    and rewrite.note_syscall(ctx.task, ctx.aspace.site_traps, ctx.regs)):
                self.sites_rewritten += 1
        elif (kind == lib.PK_EV_FAULT and ev.vector == 3 and ctx.task is not None
              and rewrite.syscall_at_int3(ctx.task.mm, ctx.regs)):
            kind = lib.PK_EV_SYSCALL        # the `syscall` of a rewritten site, jumped to
            self.site_int3 += 1
        if kind == lib.PK_EV_SYSCALL:
            if ctx.regs.orig_rax in CRED_SYSCALLS:
                # Stale from now on, before the kernel changes the credentials; the resume
                # of the caller marks it again (the change may have waited for something).
                self.ids_stale = True
            return Event(EV_SYSCALL)
        if kind == lib.PK_EV_INTERRUPT:
            if ev.detail == lib.PK_VIA_PROBE and self.rewrite_sites and ctx.task is not None:
                traps = ctx.aspace.site_traps
                if rewrite.note_syscall(ctx.task, traps, ctx.regs):
                    self.sites_rewritten += 1
                if traps.get(ctx.regs.rip - rewrite.SITE_LEN) == rewrite.DONE:
                    lib.pk_vcpu_mute_site(ctx.vcpu, ctx.regs.rip)     # decided: no more probes
            return Event(EV_INTERRUPT)
        if kind == lib.PK_EV_FAULT:
            fp = ctx.get_fpstate() if ev.vector in (16, 19) else None
            signo, code, addr = translate(ev.vector, ev.error, ev.cr2, ctx.regs.rip, fp)
            info = (pack_siginfo(signo, code) if code == SI_KERNEL
                    else pack_siginfo(signo, code, addr=addr))
            return Event(EV_FAULT, signo=signo, code=code, addr=addr, siginfo=info)
        reason = ev.exit_reason
        what = (f"KVM_RUN failed: {os.strerror(-reason)}" if reason < 0
                else f"exit {EXIT_NAMES.get(reason, reason)}")
        log.error("KVM vCPU %d stopped for good: %s at %#x", ctx.vcpu_id, what, ev.detail)
        return Event(EV_GONE)

    def shutdown(self):
        if self._creation is not None:          # never used: a failure is no news now
            creation, self._creation = self._creation, None
            try:
                self.vm = creation.result()
            except KvmUnavailable:
                pass
        if self.vm is not None:
            if _debug_logged():
                log.debug("KVM platform statistics: %s", self.stats())
            vm, self.vm = self.vm, None
            if self._teardown_aside:
                # Joining the vCPU threads and KVM freeing the VM take ~1 ms: on a thread of
                # their own they overlap the sandbox's last steps (shared files flushed,
                # gofers stopped) instead of delaying the exit status. Nothing uses the VM
                # after shutdown; a process that exits meanwhile has the kernel finish it.
                lib.pk_vm_destroy_aside(vm)
            else:
                lib.pk_vm_destroy(vm)


def _debug_logged() -> bool:
    """Whether a debug message would be printed, answered without importing logging when
    nothing has yet (an exit that imported it only to drop the message would pay ~6 ms)."""
    if "logging" in sys.modules:
        return log.isEnabledFor(10)
    return (logger._config or {}).get("level", 30) <= 10


def _create_vm(memfile, started=None):
    """A new VM on the memory file, or KvmUnavailable naming why not; with started, the
    creation begun in the background for it (pk_vm_create_start), joined here."""
    err = ffi.new("int*")
    msg = ffi.new("char[]", 256)
    if started is not None:
        vm = lib.pk_vm_create_finish(started, err, msg, 256)
    else:
        vm = lib.pk_vm_create(memfile.fd, memfile.size, err, msg, 256)
    if vm == ffi.NULL:
        raise KvmUnavailable(ffi.string(msg).decode(errors="replace") or os.strerror(-err[0]))
    return vm


class _VmCreation:
    """The VM created on a host thread of C only (pk_vm_create_start), which then does the
    VM's one-time work ahead (~0.5 ms of first runs, the first application vCPU and its
    thread) while the sandbox waits for its gofer; without the GIL it neither waits for the
    loop's Python nor interrupts it. Where no thread could be started, result() creates the
    VM itself."""

    def __init__(self, memfile):
        self._memfile = memfile
        started = lib.pk_vm_create_start(memfile.fd, memfile.size)
        self._started = None if started == ffi.NULL else started

    def result(self):
        """The VM, or KvmUnavailable; called once."""
        started, self._started = self._started, None
        return _create_vm(self._memfile, started)


def _unavailable(e) -> str:
    return f"pysentry: --platform=kvm unavailable: {e}; use --platform=ptrace"


def _initial_fxsave() -> bytes:
    """The FPU state of a fresh thread: fcw 0x37f, mxcsr 0x1f80 (and its mask)."""
    fp = bytearray(512)
    fp[0:2] = (0x37F).to_bytes(2, "little")
    fp[24:28] = (0x1F80).to_bytes(4, "little")
    fp[28:32] = (0xFFFF).to_bytes(4, "little")
    return bytes(fp)


# Where the host's KVM modules show what kind of paging they give the guest.
SYS_MODULE = "/sys/module"


def guest_paging(sys_module: str | None = None) -> str:
    """'shadow' when the host's KVM shadows the guest's page tables (kvm_pvm, or VMX/SVM
    with EPT/NPT off): KVM then sees every guest page-table write and flushes every vCPU's
    translations itself. 'tdp' when the guest's tables are walked by hardware (EPT/NPT):
    nothing flushes the other vCPUs' TLBs after the sentry's writes (docs/kvm.md, "Page
    tables"). 'unknown' when no KVM module says."""
    def param(module, name):
        try:
            with open(os.path.join(sys_module, module, "parameters", name)) as f:
                return f.read().strip()
        except OSError:
            return None
    sys_module = sys_module or SYS_MODULE
    if os.path.isdir(os.path.join(sys_module, "kvm_pvm")):
        return "shadow"
    for module, knob in (("kvm_intel", "ept"), ("kvm_amd", "npt")):
        value = param(module, knob)
        if value is not None:
            return "shadow" if value in ("N", "0") else "tdp"
    return "unknown"


def open_platform(memfile) -> KvmPlatform:
    """The platform, or SystemExit with a one-line reason that suggests the alternative.
    The VM itself is created in the background: a failure past the checks here (KVM too old,
    no VM, no memory) is the same SystemExit at the platform's first use (ready())."""
    if not os.path.exists("/dev/kvm"):
        raise SystemExit("pysentry: --platform=kvm needs /dev/kvm, which this host does not "
                         "have (no KVM support); use --platform=ptrace")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise SystemExit("pysentry: --platform=kvm: no permission to open /dev/kvm "
                         "(join the kvm group or run as root); use --platform=ptrace")
    paging = guest_paging()
    if paging != "shadow" and os.environ.get("PYSENTRY_KVM_ANY_HOST") != "1":
        # Refused rather than run with a known hole: with hardware-walked guest tables, a
        # thread on another vCPU keeps stale translations after a munmap until its TLB is
        # flushed, and no flush is sent (not built: no such host to test it on).
        raise SystemExit(f"pysentry: --platform=kvm is built for hosts whose KVM shadows guest "
                         f"page tables (kvm_pvm, or EPT/NPT off); this host's paging is "
                         f"{paging} (set PYSENTRY_KVM_ANY_HOST=1 to try it anyway, without "
                         f"TLB shootdown between vCPUs); use --platform=ptrace")
    return KvmPlatform(memfile, in_background=True)
