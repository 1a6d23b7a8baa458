"""Signals: actions, masks, sending, sigreturn, alternate stacks, suspend."""
import errno
import struct

from ..kernel import signals as S
from ..kernel.caps import CAP_KILL, has_cap
from ..kernel.errors import SysError
from ..kernel.sigframe import pack_siginfo
from ..kernel.wait import Block, INTERRUPTED
from .table import syscall

SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2


def _signum(sig):
    if not 1 <= sig <= S.NSIG:
        raise SysError(errno.EINVAL)
    return sig


@syscall("rt_sigaction", ("signal", "ptr", "ptr", "size"))
def sys_rt_sigaction(t, sig, act, oact, size, *_):
    if size != 8:
        raise SysError(errno.EINVAL)
    sig = _signum(sig)
    cur = t.tg.handlers.actions[sig]
    new = None
    if act:
        handler, flags, restorer, mask = struct.unpack("<QQQQ", t.mm.read(act, 32))
        if sig in (S.SIGKILL, S.SIGSTOP):
            raise SysError(errno.EINVAL)
        new = (handler, flags, restorer, mask & ~S.UNBLOCKABLE)
    if oact:
        t.mm.write(oact, struct.pack("<QQQQ", cur.handler, cur.flags, cur.restorer, cur.mask))
    if new:
        cur.handler, cur.flags, cur.restorer, cur.mask = new
        if cur.handler == S.SIG_IGN or (cur.handler == S.SIG_DFL and
                                       S.default_action(sig) == S.IGNORE):
            t.tg.pending.discard(S.bit(sig))
            for th in t.tg.tasks:
                th.pending.discard(S.bit(sig))
    return 0


@syscall("rt_sigprocmask", ("int", "ptr", "ptr", "size"))
def sys_rt_sigprocmask(t, how, set_, oset, size, *_):
    if size != 8:
        raise SysError(errno.EINVAL)
    old = t.sigmask
    if set_:
        new = struct.unpack("<Q", t.mm.read(set_, 8))[0]
        if how == SIG_BLOCK:
            mask = old | new
        elif how == SIG_UNBLOCK:
            mask = old & ~new
        elif how == SIG_SETMASK:
            mask = new
        else:
            raise SysError(errno.EINVAL)
        t.sigmask = mask & ~S.UNBLOCKABLE
    if oset:
        t.mm.write(oset, struct.pack("<Q", old))
    return 0


@syscall("rt_sigpending", ("ptr", "size"))
def sys_rt_sigpending(t, addr, size, *_):
    t.mm.write(addr, struct.pack("<Q", (t.pending.mask | t.tg.pending.mask) & t.sigmask))
    return 0


@syscall("rt_sigreturn")
def sys_rt_sigreturn(t, *_):
    return t.kernel.sigreturn(t)


@syscall("sigaltstack", ("ptr", "ptr"))
def sys_sigaltstack(t, ss, oss, *_):
    sp, flags, size = t.altstack
    on = sp <= t.ctx.regs.rsp < sp + size and not flags & 2
    if oss:
        t.mm.write(oss, struct.pack("<Qi4xQ", sp, (1 if on else 0) | (flags & 2 if not on else 0)
                                    | (flags & (1 << 31)), size))
    if ss:
        nsp, nflags, nsize = struct.unpack("<Qi4xQ", t.mm.read(ss, 24))
        if on:
            raise SysError(errno.EPERM)
        mode = nflags & ~(1 << 31)
        if mode not in (0, 1, 2):
            raise SysError(errno.EINVAL)
        if mode == 2:
            t.altstack = (0, 2, 0)
        else:
            if nsize < 2048:
                raise SysError(errno.ENOMEM)
            t.altstack = (nsp, nflags & (1 << 31), nsize)
    return 0


@syscall("rt_sigsuspend", ("ptr", "size"))
def sys_rt_sigsuspend(t, mask, size, *_):
    if size != 8:
        raise SysError(errno.EINVAL)
    new = struct.unpack("<Q", t.mm.read(mask, 8))[0] & ~S.UNBLOCKABLE
    t.saved_sigmask = t.sigmask
    t.sigmask = new
    while True:
        reason = yield Block([])
        if reason == INTERRUPTED:
            return -errno.EINTR


@syscall("pause")
def sys_pause(t, *_):
    while True:
        reason = yield Block([])
        if reason == INTERRUPTED:
            return -514          # ERESTARTNOHAND


def _sender_info(t, sig, code=S.SI_USER):
    return pack_siginfo(sig, code, pid=t.tg.tgid, uid=t.tg.uid)


def _can_signal(t, target_tg):
    """kill_ok_by_cred: the sender's real or effective uid is the target's real or saved
    one, or the sender holds CAP_KILL."""
    tg = t.tg
    return (tg is target_tg or not {tg.uid, tg.euid}.isdisjoint((target_tg.uid, target_tg.suid))
            or has_cap(t, CAP_KILL))


@syscall("kill", ("int", "signal"))
def sys_kill(t, pid, sig, *_):
    k = t.kernel
    pid = pid - (1 << 64) if pid >> 63 else pid
    pid = pid - (1 << 32) if (pid >> 31) & 1 and pid < (1 << 32) else pid
    if not 0 <= sig <= S.NSIG:
        raise SysError(errno.EINVAL)
    if pid > 0:
        tg = k.groups.get(pid)
        if tg is None or tg.exit_status is not None:
            raise SysError(errno.ESRCH)
        targets = [tg]
    elif pid == 0 or pid < -1:
        pg = k.pgroups.get(-pid if pid else t.tg.pgrp.pgid)
        if pg is None:
            raise SysError(errno.ESRCH)
        targets = [g for g in pg.members if g.exit_status is None]
    else:
        targets = [g for g in k.groups.values() if g is not k.init and g is not t.tg
                   and g.exit_status is None]
    if not targets:
        raise SysError(errno.ESRCH)
    sent = False
    for tg in targets:
        if not _can_signal(t, tg):
            continue
        sent = True
        if tg is k.init and sig in (S.SIGKILL, S.SIGSTOP) and t.tg is not k.init:
            continue       # init is protected from these, as in a pid namespace
        if tg is k.init and tg.handlers.actions[sig].handler == S.SIG_DFL and sig and t.tg is not tg:
            continue       # init only gets signals it has handlers for
        k.send_signal(tg, sig, _sender_info(t, sig))
    if not sent:
        raise SysError(errno.EPERM)
    return 0


def _tkill(t, tgid, tid, sig):
    k = t.kernel
    target = k.tasks.get(tid)
    if target is None or target.dead or (tgid is not None and target.tg.tgid != tgid):
        raise SysError(errno.ESRCH)
    if not 0 <= sig <= S.NSIG:
        raise SysError(errno.EINVAL)
    if not _can_signal(t, target.tg):
        raise SysError(errno.EPERM)
    if sig:
        k.send_signal(target.tg, sig, _sender_info(t, sig, S.SI_TKILL), task=target)
    return 0


@syscall("tgkill", ("int", "int", "signal"))
def sys_tgkill(t, tgid, tid, sig, *_):
    if tgid >> 31 or tid >> 31:
        raise SysError(errno.EINVAL)
    return _tkill(t, tgid, tid, sig)


@syscall("tkill", ("int", "signal"))
def sys_tkill(t, tid, sig, *_):
    if tid >> 31:
        raise SysError(errno.EINVAL)
    return _tkill(t, None, tid, sig)


@syscall("rt_sigqueueinfo", ("int", "signal", "ptr"))
def sys_rt_sigqueueinfo(t, pid, sig, info, *_):
    data = t.mm.read(info, 128)
    code = struct.unpack_from("<i", data, 8)[0]
    if (code >= 0 or code == S.SI_TKILL) and t.kernel.groups.get(pid) is not t.tg:
        raise SysError(errno.EPERM)
    tg = t.kernel.groups.get(pid)
    if tg is None:
        raise SysError(errno.ESRCH)
    data = struct.pack("<i", sig) + data[4:]
    t.kernel.send_signal(tg, _signum(sig), data)
    return 0


@syscall("rt_sigtimedwait", ("ptr", "ptr", "ptr", "size"))
def sys_rt_sigtimedwait(t, set_, info, ts, size, *_):
    import time as _time
    want = struct.unpack("<Q", t.mm.read(set_, 8))[0] & ~S.UNBLOCKABLE
    deadline = None
    if ts:
        sec, nsec = struct.unpack("<qq", t.mm.read(ts, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SysError(errno.EINVAL)
        deadline = _time.monotonic() + sec + nsec / 1e9
    def take():
        item = t.pending.take(~want) or t.tg.pending.take(~want)
        if item is not None and info:
            t.copy_out(info, item[1])
        return item

    while True:
        item = take()
        if item is not None:
            return item[0]
        old = t.sigmask
        t.sigmask &= ~want
        reason = yield Block([], deadline=deadline)
        t.sigmask = old
        if reason == "timeout":
            return -errno.EAGAIN
        if reason == INTERRUPTED:
            item = take()
            return item[0] if item is not None else -errno.EINTR
