"""The kernel object and its event loop.

One loop serves every task. A task is, at any moment, either running application code
(its platform context resumed), parked inside a syscall on wait queues (`task.block`), in
the run queue (woken, its syscall generator to be stepped), stopped by job control, or dead.
Invariant: the loop never blocks except in its own epoll wait; everything that can take
time is a wait queue, a timer or a host fd watched by that epoll.
"""
import collections
import errno
import heapq
import os
import select
import struct
import time

from ..logger import log, traceback     # both import logging/traceback on first use
from ..platform import EV_FAULT, EV_GONE, EV_INTERRUPT, EV_SYSCALL
from . import signals as S
from .errors import SysError
from .sigframe import (build_rt_sigframe, fpstate_read_size, pack_siginfo,
                       parse_rt_sigframe, sanitize_fpstate)
from .task import ProcessGroup, Session, Task, ThreadGroup
from .wait import INTERRUPTED, TIMEOUT, WOKEN, Block
from ..vfs.signalfd import notify_signal
from . import usage, vsyscall

MASK64 = (1 << 64) - 1
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
RESTART_CODES = (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK)
# rax values (unsigned) that may hold one of those codes: -516 .. -512.
RESTART_LOW, RESTART_HIGH = (1 << 64) - ERESTART_RESTARTBLOCK, (1 << 64) - ERESTARTSYS
REGNAMES = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
            "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
            "gs_base", "ds", "es", "fs", "gs")


def _is_int80(t, rip: int) -> bool:
    """Whether the instruction at rip is `int $0x80` (the i386 syscall gate)."""
    try:
        return t.copy_in(rip, 2) == b"\xcd\x80"
    except SysError:
        return False


class Kernel:
    def __init__(self, platform, memfile, vfs, strace=None, release=b"6.1.0-pysentry"):
        from ..syscalls.table import load_all
        self.platform = platform
        self.memfile = memfile
        self.vfs = vfs
        self.table = load_all()
        self.strace = strace            # a file to print syscalls to, or None
        self.release = release
        self.hostname = b"pysentry"
        self.domainname = b"(none)"
        self.tasks: dict[int, Task] = {}
        self.groups: dict[int, ThreadGroup] = {}
        self.pgroups: dict[int, ProcessGroup] = {}
        self._next_pid = 1
        self.runq = collections.deque()
        self._timers = []             # heap of (deadline, seq, callback)
        self._seq = 0
        self.epoll = select.epoll()
        self._fd_watch: dict[int, object] = {}
        self.epoll.register(platform.event_fd(), select.EPOLLIN)
        self.init = None
        self.unsupported_counts = collections.Counter()
        self.boot_time = time.monotonic()
        self.current_task = None       # the task whose syscall is being served
        self.host_signals = []         # host signals to forward (appended by handlers)
        self.futexes = {}             # futex key -> WaitQueue (see syscalls/futex)

    # ---- ids and timers ----------------------------------------------------------------
    def alloc_pid(self) -> int:
        while self._next_pid in self.tasks or self._next_pid in self.groups \
                or self._next_pid in self.pgroups:
            self._next_pid += 1
            if self._next_pid >= 4194304:
                self._next_pid = 2
        pid = self._next_pid
        self._next_pid += 1
        return pid

    def add_timer(self, deadline: float, callback):
        self._seq += 1
        entry = [deadline, self._seq, callback]
        heapq.heappush(self._timers, entry)
        return entry

    @staticmethod
    def cancel_timer(entry):
        if entry is not None:
            entry[2] = None

    def watch_fd(self, fd: int, events: int, callback):
        """callback(events) when host fd is ready; one watcher per fd."""
        if fd in self._fd_watch:
            self.epoll.modify(fd, events)
        else:
            self.epoll.register(fd, events)
        self._fd_watch[fd] = callback

    def unwatch_fd(self, fd: int):
        if self._fd_watch.pop(fd, None) is not None:
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> int:
        pfd = self.platform.event_fd()
        while self.init is not None and not self.init.exiting:
            if self.runq:
                self._drain_runq()
                if self.init.exiting:
                    break
            if self.host_signals:
                from ..sandbox import forward_host_signals
                forward_host_signals(self)
            for ctx, ev in self.platform.poll_events():
                self._on_event(ctx, ev)
            if self.runq:
                self._drain_runq()
            timeout = -1
            if self._timers:
                now = time.monotonic()
            while self._timers:
                deadline, _, cb = self._timers[0]
                if cb is None:
                    heapq.heappop(self._timers)
                    continue
                if deadline <= now:
                    heapq.heappop(self._timers)
                    cb()
                    continue
                timeout = deadline - now
                break
            if self.runq:
                continue
            if self.init.exiting:
                break           # nothing may wake us once init is gone: do not sleep
            if timeout != 0 and self.platform.spin_for_event():
                continue
            try:
                ready = self.epoll.poll(timeout)
            except InterruptedError:
                continue
            for fd, evs in ready:
                if fd == pfd:
                    continue
                cb = self._fd_watch.get(fd)
                if cb is not None:
                    cb(evs)
        return self.init_status()

    def init_status(self) -> int:
        st = self.init.group_exit_status if self.init else 0
        if st is None:
            return 0
        if st & 0x7f:
            return 128 + (st & 0x7f)
        return (st >> 8) & 0xff

    def _drain_runq(self):
        while self.runq:
            fn, *args = self.runq.popleft()
            fn(*args)

    # ---- platform events -----------------------------------------------------------
    def _on_event(self, ctx, ev):
        t = ctx.task
        if t is None or t.dead:
            return
        t.in_app = False
        try:
            if ev.kind == EV_SYSCALL:
                self._syscall(t)
            elif ev.kind == EV_INTERRUPT:
                self.return_to_user(t)
            elif ev.kind == EV_FAULT:
                self._fault(t, ev)
            elif ev.kind == EV_GONE:
                log.error("host thread of task %d vanished", t.tid)
                self.exit_group(t.tg, S.SIGKILL)
        except Exception:
            self._internal_error(t)

    def _internal_error(self, t):
        log.error("internal error in task %d (syscall %d); killing it:\n%s", t.tid,
                  t.syscall_nr, traceback.format_exc())
        t.gen = None
        self.exit_group(t.tg, S.SIGSYS | 0x80)

    def _fault(self, t, ev):
        from ..mm.addrspace import SEGV_ACCERR, SEGV_MAPERR
        if ev.addr & ~0xfff == vsyscall.VSYSCALL_PAGE:
            call = vsyscall.call_address(ev, t.ctx.regs)
            if call is not None:
                vsyscall.serve(self, t, *call)
                return
        signo = ev.signo
        if signo == S.SIGSEGV and ev.code in (SEGV_MAPERR, SEGV_ACCERR):
            if t.mm.handle_fault(ev.addr, ev.code):
                self.resume(t)
                return
            # The code comes from the model, not the host: a PROT_NONE page is never mapped
            # in the platform (the host says MAPERR) but Linux calls it an access error.
            code = SEGV_ACCERR if t.mm.find(ev.addr) is not None else SEGV_MAPERR
            info = pack_siginfo(S.SIGSEGV, code, addr=ev.addr)
        elif signo == S.SIGSEGV and ev.code == S.SI_KERNEL or (
                # int 0x80 with no IA32 emulation is a #GP on Linux; a platform may see
                # #UD there (KVM under PVM). The same SIGSEGV either way.
                signo == S.SIGILL and _is_int80(t, ev.addr)):
            # #GP (e.g. a privileged instruction): Linux reports si_addr 0.
            signo, info = S.SIGSEGV, pack_siginfo(S.SIGSEGV, S.SI_KERNEL)
        else:
            info = ev.siginfo[:128]
        self.force_signal(t, signo, info)
        self.return_to_user(t)

    # ---- syscalls --------------------------------------------------------------------
    def _syscall(self, t):
        self.current_task = t
        regs = t.ctx.regs
        nr = regs.orig_rax
        t.syscall_nr = nr
        entry = self.table.get(nr)
        if self.strace is not None:
            from .strace import enter
            enter(self, t, entry, nr)
        if entry is None or entry.handler is None:
            if entry is None or entry.support == "unsupported":
                self.unsupported_counts[entry.name if entry else str(nr)] += 1
                if self.unsupported_counts[entry.name if entry else str(nr)] == 1:
                    log.info("unsupported syscall %s -> %s",
                                entry.name if entry else nr,
                                errno.errorcode.get(entry.errno if entry else errno.ENOSYS))
            self.complete(t, -(entry.errno if entry else errno.ENOSYS))
            return
        try:
            r = entry.handler(t, regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8,
                              regs.r9)
        except SysError as e:
            r = -e.errno
        if r is None:       # the handler took care of the task (exit, execve failure kill)
            return
        if type(r) is int:
            if self.strace is None and not t.dead:
                # complete() without its strace hook; t.ctx afresh: execve replaces it
                t.ctx.regs.rax = r & MASK64
                self.return_to_user(t)
            else:
                self.complete(t, r)
        else:
            t.gen = r
            self.step(t, None)

    def step(self, t, value):
        if t.dead:
            return
        self.current_task = t
        try:
            blk = t.gen.send(value)
        except StopIteration as stop:
            t.gen = None
            if stop.value is not None:
                self.complete(t, stop.value)
            return
        except SysError as e:
            t.gen = None
            self.complete(t, -e.errno)
            return
        except Exception:
            self._internal_error(t)
            return
        self.park(t, blk)

    def park(self, t, blk: Block):
        t.block = blk
        t.block_token += 1
        for q in blk.queues:
            q.add(t, blk.mask)
        if blk.deadline is not None:
            token = t.block_token
            t.block_timer = self.add_timer(blk.deadline,
                                           lambda: self._timeout(t, token))
        else:
            t.block_timer = None
        if blk.interruptible and self.signal_pending(t):
            self.wake(t, INTERRUPTED)

    def _timeout(self, t, token):
        if t.block is not None and t.block_token == token:
            self.wake(t, TIMEOUT)

    def wake(self, t, reason=WOKEN):
        blk = t.block
        if blk is None:
            return
        for q in blk.queues:
            q.remove(t)
        self.cancel_timer(getattr(t, "block_timer", None))
        t.block = None
        self.runq.append((self.step, t, reason))

    def complete(self, t, result: int):
        """The syscall is over: store its result and return to the application."""
        if t.dead:
            return
        if self.strace is not None:
            from .strace import leave
            leave(self, t, result)
        t.ctx.regs.rax = result & MASK64
        self.return_to_user(t)

    def resume(self, t):
        if t.dead or t.in_app:
            return
        t.in_app = True
        t.ctx.resume()

    # ---- signals ---------------------------------------------------------------------
    def signal_pending(self, t) -> bool:
        return bool((t.pending.mask | t.tg.pending.mask) & ~t.sigmask) or t.tg.exiting

    def force_signal(self, t, sig, info):
        """A synchronous signal (fault): unblock and un-ignore it, as Linux does."""
        act = t.tg.handlers.actions[sig]
        if t.sigmask & S.bit(sig) or act.handler == S.SIG_IGN:
            act.handler = S.SIG_DFL
            t.sigmask &= ~S.bit(sig)
        t.pending.add(sig, info)

    def send_signal(self, tg, sig, info, task=None):
        """Generate a signal for a process (or one thread when `task` is given)."""
        if sig == 0 or tg.exiting and sig != S.SIGKILL:
            return
        if sig == S.SIGKILL:
            self.exit_group(tg, S.SIGKILL)
            return
        stops = S.bit(S.SIGSTOP) | S.bit(S.SIGTSTP) | S.bit(S.SIGTTIN) | S.bit(S.SIGTTOU)
        if sig == S.SIGCONT:
            tg.pending.discard(stops)
            for th in tg.tasks:
                th.pending.discard(stops)
            self.continue_group(tg)
        elif S.bit(sig) & stops:
            tg.pending.discard(S.bit(S.SIGCONT))
        if self._ignored(tg, sig, task):
            return
        if task is not None:
            task.pending.add(sig, info)
            self._poke(task, sig)
        else:
            tg.pending.add(sig, info)
            for th in tg.tasks:
                if not th.dead and not th.sigmask & S.bit(sig):
                    self._poke(th, sig)
                    break
        notify_signal(tg)

    @staticmethod
    def _ignored(tg, sig, task):
        """Linux discards an ignored signal at generation, unless it is blocked (then it
        stays pending for sigwaitinfo/signalfd, and for a later change of disposition)."""
        act = tg.handlers.actions[sig]
        ignored = act.handler == S.SIG_IGN or (
            act.handler == S.SIG_DFL and S.default_action(sig) in (S.IGNORE, S.CONT))
        if not ignored:
            return False
        targets = [task] if task is not None else [th for th in tg.tasks if not th.dead]
        return not any(th.sigmask & S.bit(sig) for th in targets)

    def signal_pgrp(self, pgid, sig):
        """A terminal's signal (SIGINT, SIGTSTP, SIGWINCH, SIGHUP...) to a process group."""
        pg = self.pgroups.get(pgid)
        if pg is None:
            return
        info = pack_siginfo(sig, S.SI_KERNEL)
        for tg in list(pg.members):
            self.send_signal(tg, sig, info)

    def signal_session_leader(self, sid, sig):
        tg = self.groups.get(sid)
        if tg is not None and tg.exit_status is None:
            self.send_signal(tg, sig, pack_siginfo(sig, S.SI_KERNEL))

    def _poke(self, t, sig):
        """Make `t` notice a new pending signal soon."""
        if t.dead or t.sigmask & S.bit(sig):
            return
        if t.block is not None and t.block.interruptible:
            self.wake(t, INTERRUPTED)
        elif t.in_app:
            t.ctx.interrupt()
        elif t.stopped and sig == S.SIGCONT:
            pass

    def return_to_user(self, t):
        """Handle syscall restarts and deliver pending signals, then resume the task."""
        if t.dead:
            return
        regs = t.ctx.regs
        tg = t.tg
        # The common case first: nothing to deliver, no stop or exit under way, no restart
        # code to turn into a restart, no sigmask to restore. Then the slow path below
        # would only resume the task.
        rax = regs.rax
        if not (tg.exiting or tg.stopped or t.saved_sigmask is not None
                or (t.pending.mask | tg.pending.mask) & ~t.sigmask
                or RESTART_LOW <= rax <= RESTART_HIGH):
            if not t.in_app:
                t.in_app = True
                t.ctx.resume()
            return
        while True:
            if t.tg.exiting:
                self._exit_thread(t)
                return
            if t.tg.stopped:
                t.stopped = True
                return
            item = t.pending.take(t.sigmask) or t.tg.pending.take(t.sigmask)
            if item is None:
                break
            sig, info = item
            act = t.tg.handlers.actions[sig]
            if act.handler == S.SIG_IGN:
                continue
            if act.handler == S.SIG_DFL:
                what = S.default_action(sig)
                if what in (S.IGNORE, S.CONT):
                    continue
                if what == S.STOP:
                    self.stop_group(t.tg, sig)
                    continue
                status = sig | (0x80 if what == S.CORE else 0)
                self.exit_group(t.tg, status)
                return
            self._restart_for_handler(t, act)
            self._deliver_handler(t, sig, info, act)
            break
        else:
            pass
        self._restart_without_handler(t)
        if t.saved_sigmask is not None:
            t.sigmask = t.saved_sigmask
            t.saved_sigmask = None
        self.resume(t)

    def _restart_for_handler(self, t, act):
        regs = t.ctx.regs
        r = regs.rax - (1 << 64) if regs.rax >> 63 else regs.rax
        if -r in RESTART_CODES:
            if -r == ERESTARTNOINTR or (-r == ERESTARTSYS and act.flags & S.SA_RESTART):
                regs.rax = regs.orig_rax
                regs.rip -= 2
            else:
                regs.rax = (-errno.EINTR) & MASK64

    def _restart_without_handler(self, t):
        regs = t.ctx.regs
        r = regs.rax - (1 << 64) if regs.rax >> 63 else regs.rax
        if -r in RESTART_CODES and regs.orig_rax != MASK64:
            regs.rax = regs.orig_rax
            regs.rip -= 2

    def _deliver_handler(self, t, sig, info, act):
        regs = t.ctx.regs
        rd = {n: getattr(regs, n) for n in REGNAMES}
        mask = t.saved_sigmask if t.saved_sigmask is not None else t.sigmask
        t.saved_sigmask = None
        try:
            fp = t.ctx.get_fpstate()
            frame = build_rt_sigframe(rd, fp, info, mask, t.altstack, None,
                                      act.restorer if act.flags & S.SA_RESTORER else None,
                                      sa_onstack=bool(act.flags & S.SA_ONSTACK),
                                      handler=act.handler, xfeatures=self.platform.xcr0)
            t.mm.write(frame.frame_addr, frame.frame_bytes)
        except SysError:
            self.exit_group(t.tg, S.SIGSEGV | 0x80)
            return
        for name, value in frame.regs.items():
            setattr(regs, name, value)
        regs.orig_rax = MASK64
        if t.altstack[1] & (1 << 31):       # SS_AUTODISARM
            t.altstack = (0, 2, 0)
        t.ctx.set_fpstate(_fresh_fpstate(fp))
        blocked = act.mask
        if not act.flags & S.SA_NODEFER:
            blocked |= S.bit(sig)
        t.sigmask = (t.sigmask | blocked) & ~S.UNBLOCKABLE
        if act.flags & S.SA_RESETHAND:
            act.handler, act.flags = S.SIG_DFL, act.flags & ~S.SA_SIGINFO

    def sigreturn(self, t):
        regs = t.ctx.regs
        from .sigframe import RT_SIGFRAME_SIZE
        try:
            frame = t.mm.read(regs.rsp - 8, RT_SIGFRAME_SIZE)
            ret = parse_rt_sigframe(frame, current_eflags=regs.eflags)
            if ret.fpstate:
                head = t.mm.read(ret.fpstate, 512)
                size = fpstate_read_size(head, self.platform.xstate_size)
                data = t.mm.read(ret.fpstate, size) if size > 512 else head
                mxcsr_mask = struct.unpack_from("<I", t.ctx.get_fpstate(), 28)[0] or 0xFFBF
                t.ctx.set_fpstate(sanitize_fpstate(data, max_xstate_size=self.platform.xstate_size,
                                                   user_xfeatures=self.platform.xcr0,
                                                   mxcsr_mask=mxcsr_mask))
            else:
                t.ctx.set_fpstate(_fresh_fpstate(t.ctx.get_fpstate()))
        except SysError:
            self.exit_group(t.tg, S.SIGSEGV | 0x80)
            return None
        for name, value in ret.regs.items():
            setattr(regs, name, value)
        t.sigmask = ret.sigmask & ~S.UNBLOCKABLE
        sp, flags, size = ret.altstack
        if not (t.altstack[0] <= regs.rsp < t.altstack[0] + t.altstack[2]):
            t.altstack = (sp, flags & ~1, size)
        self.return_to_user(t)
        return None

    # ---- job control -----------------------------------------------------------------
    def stop_group(self, tg, sig):
        if tg.stopped or tg.exiting:
            return
        tg.stopped = True
        tg.stop_report = ("stop", sig)
        for th in tg.tasks:
            if th.in_app:
                th.ctx.interrupt()
        self._notify_parent_stop(tg, S.CLD_STOPPED, sig)

    def continue_group(self, tg):
        if not tg.stopped:
            return
        tg.stopped = False
        tg.stop_report = ("cont",)
        for th in tg.tasks:
            if th.stopped and not th.dead:
                th.stopped = False
                self.runq.append((self.return_to_user, th))
        self._notify_parent_stop(tg, S.CLD_CONTINUED, S.SIGCONT)

    def _notify_parent_stop(self, tg, code, sig):
        parent = tg.parent
        if parent is None:
            return
        if not parent.handlers.actions[S.SIGCHLD].flags & S.SA_NOCLDSTOP:
            info = pack_siginfo(S.SIGCHLD, code, pid=tg.tgid, uid=tg.uid, status=sig)
            self.send_signal(parent, S.SIGCHLD, info)
        parent.child_wq.notify()

    # ---- exit ------------------------------------------------------------------------
    def exit_group(self, tg, status):
        """The whole thread group dies with wait status `status`."""
        if tg.exiting:
            return
        tg.exiting = True
        tg.group_exit_status = status
        for th in list(tg.tasks):
            self._exit_thread(th)

    def exit_thread(self, t, code):
        """exit(2) of one thread; the last one out ends the group."""
        alive = [th for th in t.tg.tasks if not th.dead and th is not t]
        if not alive:
            t.tg.exiting = True
            t.tg.group_exit_status = (code & 0xff) << 8
        self._exit_thread(t)

    def _exit_thread(self, t):
        if t.dead:
            return
        t.dead = True
        t.gen = None
        if t.block is not None:
            for q in t.block.queues:
                q.remove(t)
            self.cancel_timer(getattr(t, "block_timer", None))
            t.block = None
        t.in_app = False
        if t.clear_child_tid:
            try:
                t.mm.write(t.clear_child_tid, b"\0\0\0\0")
                from ..syscalls.futex import futex_wake
                futex_wake(self, t, t.clear_child_tid, 1)
            except SysError:
                pass
        if t.vfork_child_done is not None:
            done, t.vfork_child_done = t.vfork_child_done, None
            done.notify()
        self.tasks.pop(t.tid, None)
        usage.thread_exiting(t)
        t.ctx.release()
        t.mm.users -= 1
        if t.mm.users <= 0:
            t.mm.release()
        t.fdtable_release()
        tg = t.tg
        if all(th.dead for th in tg.tasks):
            self._group_dead(tg)

    def _group_dead(self, tg):
        tg.exiting = True
        status = tg.group_exit_status if tg.group_exit_status is not None else 0
        tg.exit_status = status
        if tg.pgrp is not None and tg.session.sid == tg.tgid:
            from ..vfs.pty import session_leader_exit
            session_leader_exit(tg.session)
        if tg is self.init:
            return
        # Orphans go to init (or the nearest subreaper).
        reaper = self.init
        for child in list(tg.children):
            child.parent = reaper
            reaper.children.add(child)
            if child.exit_status is not None:
                reaper.child_wq.notify()
        tg.children.clear()
        parent = tg.parent
        if tg.pgrp is not None:
            tg.pgrp.members.discard(tg)
        if parent is None:
            self._reap(tg)
            return
        act = parent.handlers.actions[S.SIGCHLD]
        if tg.exit_signal == S.SIGCHLD and (act.handler == S.SIG_IGN or act.flags & S.SA_NOCLDWAIT):
            self._reap(tg)          # auto-reaped: nobody will wait for it
            parent.child_wq.notify()
            return
        if tg.exit_signal:
            if status & 0x7f:
                code, st = (S.CLD_DUMPED if status & 0x80 else S.CLD_KILLED), status & 0x7f
            else:
                code, st = S.CLD_EXITED, (status >> 8) & 0xff
            times = {}
            if tg.exit_signal == S.SIGCHLD:     # its layout has the child's times
                times["utime"] = usage.ticks(usage.group_cpu_ns(tg) + tg.child_cpu_ns)
            info = pack_siginfo(tg.exit_signal, code, pid=tg.tgid, uid=tg.uid, status=st,
                                **times)
            self.send_signal(parent, tg.exit_signal, info)
        parent.child_wq.notify()

    def _reap(self, tg):
        if tg.parent is not None:
            tg.parent.children.discard(tg)
        self.groups.pop(tg.tgid, None)
        for th in tg.tasks:
            self.tasks.pop(th.tid, None)
        if tg.pgrp is not None:
            tg.pgrp.members.discard(tg)
            if not tg.pgrp.members:
                self.pgroups.pop(tg.pgrp.pgid, None)

    # ---- process creation ------------------------------------------------------------
    def new_group(self, parent, pid):
        tg = ThreadGroup(self, pid, parent)
        self.groups[pid] = tg
        tg.start_time = time.monotonic()
        if parent is not None:
            parent.children.add(tg)
        return tg

    def set_pgrp(self, tg, pgid, session=None):
        if tg.pgrp is not None:
            tg.pgrp.members.discard(tg)
            if not tg.pgrp.members and tg.pgrp.pgid != pgid:
                self.pgroups.pop(tg.pgrp.pgid, None)
        pg = self.pgroups.get(pgid)
        if pg is None:
            pg = ProcessGroup(pgid, session or tg.pgrp.session)
            self.pgroups[pgid] = pg
        pg.members.add(tg)
        tg.pgrp = pg

    def new_session(self, tg):
        sess = Session(tg.tgid)
        self.set_pgrp(tg, tg.tgid, sess)
        return sess


def _fresh_fpstate(current: bytes) -> bytes:
    """What a handler starts with: the initial FPU state (fcw 0x37f, mxcsr 0x1f80)."""
    fp = bytearray(512)
    struct.pack_into("<H", fp, 0, 0x37F)
    struct.pack_into("<II", fp, 24, 0x1F80, struct.unpack_from("<I", current, 28)[0])
    return bytes(fp)
