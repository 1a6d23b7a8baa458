"""Processes and threads: clone/fork/vfork, execve, exit, wait, ids, sessions, limits."""
import errno
import os
import struct
import stat as _st
import time

from ..kernel import caps as C
from ..kernel import usage
from ..kernel import signals as S
from ..kernel.errors import SysError
from ..kernel.sigframe import pack_siginfo
from ..kernel.task import Task, FSContext, RLIM_INFINITY
from ..kernel.wait import Block
from .fs import s32
from .table import syscall, PARTIAL

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT = 0x1000, 0x2000, 0x4000, 0x8000
CLONE_THREAD, CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS = 0x10000, 0x20000, 0x40000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_DETACHED = 0x100000, 0x200000, 0x400000
CLONE_UNTRACED, CLONE_CHILD_SETTID, CLONE_IO = 0x800000, 0x1000000, 0x80000000
CLONE_NS_FLAGS = 0x7E020000 & ~CLONE_THREAD & ~CLONE_SETTLS & ~CLONE_PARENT_SETTID & ~CLONE_CHILD_CLEARTID & ~CLONE_DETACHED & ~CLONE_UNTRACED & ~CLONE_CHILD_SETTID
MAX_ARGS = 1 << 17


def do_clone(t, flags, stack, ptid, ctid, tls):
    k = t.kernel
    sig = flags & 0xff
    flags &= ~0xff
    if flags & CLONE_SIGHAND and not flags & CLONE_VM:
        raise SysError(errno.EINVAL)
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
        raise SysError(errno.EINVAL)
    if flags & (CLONE_NEWNS | 0x7C000000):
        raise SysError(errno.EPERM)       # namespaces inside the sandbox: not offered
    if flags & CLONE_PIDFD:
        raise SysError(errno.EINVAL)
    parent = t
    # The platform may run out of threads or address spaces (KVM: 511 vCPUs): that is
    # clone's EAGAIN (ENOMEM for an address space) with nothing changed, as on Linux.
    if flags & CLONE_VM:
        mm = t.mm
        try:
            ctx = k.platform.new_context(mm.pas)
        except (OSError, MemoryError):
            raise SysError(errno.EAGAIN) from None
        mm.users += 1
    else:
        try:
            pas = k.platform.new_address_space(k.memfile)
        except (OSError, MemoryError):
            raise SysError(errno.ENOMEM) from None
        mm = t.mm.fork(pas, sp=t.ctx.regs.rsp if not stack else None)
        try:
            ctx = k.platform.new_context(pas)
        except (OSError, MemoryError):
            mm.release()
            raise SysError(errno.EAGAIN) from None
    tid = k.alloc_pid()
    if flags & CLONE_THREAD:
        tg = t.tg
    else:
        ptg = t.tg.parent if flags & CLONE_PARENT else t.tg
        tg = k.new_group(ptg, tid)
        tg.exit_signal = sig
        tg.handlers = t.tg.handlers if flags & CLONE_SIGHAND else t.tg.handlers.copy()
        tg.rlimits = dict(t.tg.rlimits)
        for a in ("uid", "gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid", "groups",
                  "comm", "oom_score_adj", "oom_score_adj_min", "loginuid", "no_new_privs"):
            if hasattr(t.tg, a):
                setattr(tg, a, getattr(t.tg, a))
        k.set_pgrp(tg, t.tg.pgrp.pgid, t.tg.session)
    if flags & CLONE_FILES:
        fdt = t.fdtable
        fdt.users = getattr(fdt, "users", 1) + 1
    else:
        fdt = t.fdtable.fork()
        fdt.users = 1
    fs = t.fs if flags & CLONE_FS else t.fs.copy()
    child = Task(k, tid, tg, ctx, mm, fdt, fs)
    child.caps = C.of(t).copy()
    tg.tasks.append(child)
    if tg.leader is None:
        tg.leader = child
    k.tasks[tid] = child
    child.sigmask = t.sigmask
    child.comm = t.comm
    # Registers: the child returns 0 from the same syscall.
    src, dst = t.ctx.regs, ctx.regs
    for name in ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rcx",
                 "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss",
                 "fs_base", "gs_base", "ds", "es", "fs", "gs"):
        setattr(dst, name, getattr(src, name))
    dst.rax = 0
    if stack:
        dst.rsp = stack
    if flags & CLONE_SETTLS:
        dst.fs_base = tls
    try:
        fp = t.ctx.get_fpstate()
        ctx.set_fpstate(fp)
    except Exception:
        pass
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    if flags & CLONE_PARENT_SETTID:
        t.mm.write(ptid, struct.pack("<i", tid))
    if flags & CLONE_CHILD_SETTID:
        mm.write(ctid, struct.pack("<i", tid))
    if not flags & CLONE_VM:
        mm.map_all()          # after the stores above: their COW copies go in the same batch
    k.runq.append((k.resume, child))
    if flags & CLONE_VFORK:
        done = _VforkDone()
        child.vfork_child_done = done
        return _wait_vfork(done, tid)
    return tid


class _VforkDone:
    def __init__(self):
        from ..kernel.wait import WaitQueue
        self.wq = WaitQueue()
        self.done = False

    def notify(self):
        self.done = True
        self.wq.notify()


def _wait_vfork(done, tid):
    while not done.done:
        yield Block([done.wq], interruptible=False)
    return tid


@syscall("clone", ("flags:clone", "ptr", "ptr", "ptr", "hex"))
def sys_clone(t, flags, stack, ptid, ctid, tls, _a5):
    return do_clone(t, flags, stack, ptid, ctid, tls)


@syscall("clone3", ("ptr", "size"), support=PARTIAL, note="no CLONE_PIDFD, set_tid, cgroup")
def sys_clone3(t, uargs, size, *_):
    if size < 64:
        raise SysError(errno.EINVAL)
    data = t.mm.read(uargs, 64)
    flags, pidfd, ctid, ptid, exit_signal, stack, stack_size, tls = struct.unpack("<8Q", data)
    if exit_signal > 64:
        raise SysError(errno.EINVAL)
    return do_clone(t, flags | exit_signal, stack + stack_size if stack else 0, ptid, ctid, tls)


@syscall("fork")
def sys_fork(t, *_):
    return do_clone(t, S.SIGCHLD, 0, 0, 0, 0)


@syscall("vfork")
def sys_vfork(t, *_):
    return do_clone(t, CLONE_VM | CLONE_VFORK | S.SIGCHLD, 0, 0, 0, 0)


def _read_string_array(t, addr, limit=MAX_ARGS) -> list:
    out = []
    if not addr:
        return out
    while True:
        p = struct.unpack("<Q", t.mm.read(addr + 8 * len(out), 8))[0]
        if not p:
            return out
        out.append(t.mm.read_cstring(p, 1 << 17))
        if len(out) > limit:
            raise SysError(errno.E2BIG)


@syscall("execve", ("path", "ptr", "ptr"))
def sys_execve(t, path, argv, envp, *_):
    return do_execve(t, None, t.mm.read_cstring(path), _read_string_array(t, argv),
                     _read_string_array(t, envp), 0)


AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH = 0x100, 0x1000


@syscall("execveat", ("fd", "path", "ptr", "ptr", "flags"))
def sys_execveat(t, dirfd, path, argv, envp, flags, _a5):
    from .fs import _dir
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    p = t.mm.read_cstring(path)
    if not p:
        if not flags & AT_EMPTY_PATH:
            raise SysError(errno.ENOENT)
        # The file open at dirfd itself, under the name Linux gives it.
        fd = s32(dirfd)
        desc = t.fdtable.get(fd)
        if desc.location is None:
            raise SysError(errno.EACCES)
        return do_execve(t, None, b"/dev/fd/%d" % fd, _read_string_array(t, argv),
                         _read_string_array(t, envp), flags, location=desc.location)
    if flags & AT_SYMLINK_NOFOLLOW:
        loc = t.kernel.vfs.resolve(t.path_context(), None if p.startswith(b"/") else
                                   _dir(t, dirfd), p, follow=False)
        if _st.S_ISLNK(loc.dentry.inode.mode):
            raise SysError(errno.ELOOP)
    return do_execve(t, None if p.startswith(b"/") else _dir(t, dirfd), p,
                     _read_string_array(t, argv), _read_string_array(t, envp), flags)


def do_execve(t, dirfd, path, argv, envp, flags, location=None):
    from ..kernel.exec import load
    k = t.kernel
    img = load(k, t, path, argv, envp, dir=dirfd, location=location)
    # Point of no return: other threads die, the task takes the new image.
    tg = t.tg
    for th in list(tg.tasks):
        if th is not t:
            k._exit_thread(th)
    if t.tid != tg.tgid:
        # The exec'ing thread takes over the leader's pid.
        k.tasks.pop(t.tid, None)
        t.tid = tg.tgid
        k.tasks[t.tid] = t
    tg.tasks = [t]
    tg.leader = t
    old_mm, old_ctx = t.mm, t.ctx
    usage.context_replaced(t, old_ctx)
    usage.maxrss_kib(tg, old_mm)            # the peak survives the exec, as on Linux
    t.ctx = k.platform.new_context(img.mm.pas)
    t.ctx.task = t
    old_ctx.release()
    old_mm.users -= 1
    if old_mm.users <= 0:
        old_mm.release()
    t.mm = img.mm
    if t.vfork_child_done is not None:
        done, t.vfork_child_done = t.vfork_child_done, None
        done.notify()
    if getattr(t.fdtable, "users", 1) > 1:
        t.fdtable.users -= 1
        t.fdtable = t.fdtable.fork()
        t.fdtable.users = 1
    t.fdtable.on_exec()
    tg.handlers = tg.handlers.copy()
    tg.handlers.reset_for_exec()
    # The saved and fs ids take the effective ones (no set-user-ID bit is honoured).
    tg.suid = tg.fsuid = tg.euid
    tg.sgid = tg.fsgid = tg.egid
    C.of(t).on_exec(tg.uid, tg.euid)
    t.altstack = (0, 2, 0)
    t.clear_child_tid = 0
    t.robust_list = 0
    name = img.exe_path.rsplit(b"/", 1)[-1][:15]
    t.comm = tg.comm = name
    regs = t.ctx.regs
    for n in ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax",
              "rcx", "rdx", "rsi", "rdi"):
        setattr(regs, n, 0)
    regs.rip = img.entry
    regs.rsp = img.sp
    regs.fs_base = 0
    regs.gs_base = 0
    regs.eflags = 0x202
    regs.orig_rax = (1 << 64) - 1
    t.ctx.set_fpstate(_initial_fp())
    if k.strace is not None:
        from ..kernel.strace import leave
        leave(k, t, 0)
    k.return_to_user(t)
    return None


def _initial_fp():
    fp = bytearray(512)
    struct.pack_into("<H", fp, 0, 0x37F)
    struct.pack_into("<I", fp, 24, 0x1F80)
    struct.pack_into("<I", fp, 28, 0xFFFF)
    return bytes(fp)


@syscall("exit", ("int",))
def sys_exit(t, code, *_):
    if t.kernel.strace is not None:
        from ..kernel.strace import leave
        leave(t.kernel, t, None)
    t.kernel.exit_thread(t, code)
    return None


@syscall("exit_group", ("int",))
def sys_exit_group(t, code, *_):
    if t.kernel.strace is not None:
        from ..kernel.strace import leave
        leave(t.kernel, t, None)
    t.kernel.exit_group(t.tg, (code & 0xff) << 8)
    return None


# ---- wait ----------------------------------------------------------------------------
WNOHANG, WUNTRACED, WSTOPPED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 2, 4, 8, 0x01000000
WALL, WCLONE, WNOTHREAD = 0x40000000, 0x80000000, 0x20000000
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3


def _matches(t, child, idtype, ident):
    if idtype == P_PID:
        return child.tgid == ident
    if idtype == P_PGID:
        return child.pgrp is not None and child.pgrp.pgid == (ident or t.tg.pgrp.pgid)
    return True


def _find_waitable(t, idtype, ident, options):
    """(child, kind) where kind is 'exit', 'stop' or 'cont'; ECHILD when none could ever be."""
    candidates = [c for c in t.tg.children if _matches(t, c, idtype, ident)]
    if not candidates:
        raise SysError(errno.ECHILD)
    for c in candidates:
        if c.exit_status is not None and options & WEXITED:
            return c, "exit"
        rep = c.stop_report
        if rep is not None:
            if rep[0] == "stop" and options & WSTOPPED and c.stopped:
                return c, "stop"
            if rep[0] == "cont" and options & WCONTINUED:
                return c, "cont"
    return None, None


def _wait_loop(t, idtype, ident, options):
    while True:
        child, kind = _find_waitable(t, idtype, ident, options)
        if child is not None:
            return child, kind
        if options & WNOHANG:
            return None, None
        reason = yield Block([t.tg.child_wq])
        if reason == "interrupted":
            raise SysError(512)      # ERESTARTSYS


def _consume(t, child, kind, options):
    k = t.kernel
    if kind == "exit":
        status = child.exit_status
        if not options & WNOWAIT:
            usage.child_reaped(t.tg, child)
            k._reap(child)
        return status
    if kind == "stop":
        status = (child.stop_report[1] << 8) | 0x7f
    else:
        status = 0xffff
    if not options & WNOWAIT:
        child.stop_report = None
    return status


def _child_rusage(child) -> bytes:
    """wait4/waitid's rusage: the child's own usage and its reaped children's."""
    return _rusage(usage.group_cpu_ns(child) + child.child_cpu_ns,
                   max(child.maxrss_kib, child.child_maxrss_kib))


@syscall("wait4", ("int", "ptr", "flags:wait", "ptr"))
def sys_wait4(t, pid, wstatus, options, rusage, *_):
    pid = pid - (1 << 64) if pid >> 63 else pid
    pid = pid - (1 << 32) if pid >> 31 and pid < (1 << 32) else pid
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | WALL | WCLONE | WNOTHREAD):
        raise SysError(errno.EINVAL)
    if pid < -1:
        idtype, ident = P_PGID, -pid
    elif pid == -1:
        idtype, ident = P_ALL, 0
    elif pid == 0:
        idtype, ident = P_PGID, 0
    else:
        idtype, ident = P_PID, pid
    child, kind = yield from _wait_loop(t, idtype, ident, options | WEXITED)
    if child is None:
        return 0
    cpid = child.tgid
    status = _consume(t, child, kind, options)
    if wstatus:
        t.mm.write(wstatus, struct.pack("<i", status))
    if rusage:
        t.mm.write(rusage, _child_rusage(child))
    return cpid


@syscall("waitid", ("int", "int", "ptr", "flags:wait", "ptr"))
def sys_waitid(t, idtype, ident, infop, options, rusage, _a5):
    if idtype not in (P_ALL, P_PID, P_PGID) or not options & (WEXITED | WSTOPPED | WCONTINUED):
        raise SysError(errno.EINVAL)
    child, kind = yield from _wait_loop(t, idtype, ident & 0xffffffff, options)
    if child is None:
        if infop:
            t.mm.write(infop, bytes(128))
        return 0
    cpid, uid = child.tgid, child.uid
    status = _consume(t, child, kind, options)
    if kind == "exit":
        if status & 0x7f:
            code = S.CLD_DUMPED if status & 0x80 else S.CLD_KILLED
            st = status & 0x7f
        else:
            code, st = S.CLD_EXITED, (status >> 8) & 0xff
    elif kind == "stop":
        code, st = S.CLD_STOPPED, (status >> 8) & 0xff
    else:
        code, st = S.CLD_CONTINUED, S.SIGCONT
    if infop:
        t.mm.write(infop, pack_siginfo(S.SIGCHLD, code, pid=cpid, uid=uid, status=st,
                                       utime=usage.ticks(usage.group_cpu_ns(child)
                                                         + child.child_cpu_ns)))
    if rusage:
        t.mm.write(rusage, _child_rusage(child))
    return 0


# ---- ids -----------------------------------------------------------------------------
@syscall("getpid")
def sys_getpid(t, *_):
    return t.tg.tgid


@syscall("gettid")
def sys_gettid(t, *_):
    return t.tid


@syscall("getppid")
def sys_getppid(t, *_):
    p = t.tg.parent
    return p.tgid if p is not None and t.tg is not t.kernel.init else 0


@syscall("set_tid_address", ("ptr",))
def sys_set_tid_address(t, addr, *_):
    t.clear_child_tid = addr
    return t.tid


@syscall("set_robust_list", ("ptr", "size"))
def sys_set_robust_list(t, head, size, *_):
    if size != 24:
        raise SysError(errno.EINVAL)
    t.robust_list = head
    return 0


@syscall("get_robust_list", ("int", "ptr", "ptr"))
def sys_get_robust_list(t, pid, headp, lenp, *_):
    target = t if pid == 0 else t.kernel.tasks.get(pid)
    if target is None:
        raise SysError(errno.ESRCH)
    t.mm.write(headp, struct.pack("<Q", target.robust_list))
    t.mm.write(lenp, struct.pack("<Q", 24))
    return 0


def _idsyscall(name, attr):
    @syscall(name)
    def handler(t, *_):
        return getattr(t.tg, attr)
    return handler


_idsyscall("getuid", "uid")
_idsyscall("geteuid", "euid")
_idsyscall("getgid", "gid")
_idsyscall("getegid", "egid")


NO_ID = 0xffffffff        # -1: "leave unchanged"


class _IdSet:
    """The uid or gid triple of a thread group and its fs id, viewed by attribute names,
    and the capability that lets a thread set them freely (CAP_SETUID or CAP_SETGID).

    Ids are the group's here, as glibc makes them every thread's (its setxid broadcast),
    so every thread's capabilities follow a uid change."""

    def __init__(self, tg, kind):
        self.tg = tg
        self.kind = kind
        self.names = ("uid", "euid", "suid") if kind == "u" else ("gid", "egid", "sgid")
        self.fs_name = "fsuid" if kind == "u" else "fsgid"
        self.cap = C.CAP_SETUID if kind == "u" else C.CAP_SETGID

    def get(self):
        return tuple(getattr(self.tg, n) for n in self.names)

    def get_fs(self):
        return getattr(self.tg, self.fs_name)

    def set(self, r, e, s):
        old = self.get()
        for n, v in zip(self.names, (r, e, s)):
            setattr(self.tg, n, v)
        setattr(self.tg, self.fs_name, e)
        if self.kind == "u":
            for th in self.tg.alive_tasks():
                C.of(th).fix_setuid(old, (r, e, s))

    def set_fs(self, fs_id):
        old = self.get_fs()
        setattr(self.tg, self.fs_name, fs_id)
        if self.kind == "u":
            for th in self.tg.alive_tasks():
                C.of(th).fix_setfsuid(old, fs_id)


def _capable(t, ids):
    return C.has_cap(t, ids.cap)


def _ids(*vals):
    return [v & 0xffffffff for v in vals]


def do_setid(t, kind, uid):
    """setuid/setgid: privileged sets all three; otherwise only the effective id, and
    only to the real or saved one."""
    ids = _IdSet(t.tg, kind)
    (uid,) = _ids(uid)
    if uid == NO_ID:
        raise SysError(errno.EINVAL)
    r, e, s = ids.get()
    if _capable(t, ids):
        ids.set(uid, uid, uid)
    elif uid in (r, s):
        ids.set(r, uid, s)
    else:
        raise SysError(errno.EPERM)
    return 0


def do_setreid(t, kind, nr, ne):
    """setreuid/setregid, as Linux: the saved id becomes the new effective id when the
    real id is set, or the effective id is set to something other than the old real id."""
    ids = _IdSet(t.tg, kind)
    nr, ne = _ids(nr, ne)
    r, e, s = ids.get()
    cap = _capable(t, ids)
    new_r, new_e = r, e
    if nr != NO_ID:
        if not cap and nr not in (r, e):
            raise SysError(errno.EPERM)
        new_r = nr
    if ne != NO_ID:
        if not cap and ne not in (r, e, s):
            raise SysError(errno.EPERM)
        new_e = ne
    new_s = new_e if nr != NO_ID or (ne != NO_ID and ne != r) else s
    ids.set(new_r, new_e, new_s)
    return 0


def do_setresid(t, kind, nr, ne, ns):
    """setresuid/setresgid: unprivileged callers may only choose among their current
    real, effective and saved ids."""
    ids = _IdSet(t.tg, kind)
    new = _ids(nr, ne, ns)
    cur = ids.get()
    if not _capable(t, ids) and any(v != NO_ID and v not in cur for v in new):
        raise SysError(errno.EPERM)
    ids.set(*(c if v == NO_ID else v for v, c in zip(new, cur)))
    return 0


@syscall("setuid", ("int",))
def sys_setuid(t, uid, *_):
    return do_setid(t, "u", uid)


@syscall("setgid", ("int",))
def sys_setgid(t, gid, *_):
    return do_setid(t, "g", gid)


@syscall("setresuid", ("int", "int", "int"))
def sys_setresuid(t, r, e, s, *_):
    return do_setresid(t, "u", r, e, s)


@syscall("setresgid", ("int", "int", "int"))
def sys_setresgid(t, r, e, s, *_):
    return do_setresid(t, "g", r, e, s)


@syscall("setreuid", ("int", "int"))
def sys_setreuid(t, r, e, *_):
    return do_setreid(t, "u", r, e)


@syscall("setregid", ("int", "int"))
def sys_setregid(t, r, e, *_):
    return do_setreid(t, "g", r, e)


@syscall("getresuid", ("ptr", "ptr", "ptr"))
def sys_getresuid(t, r, e, s, *_):
    for addr, v in ((r, t.tg.uid), (e, t.tg.euid), (s, t.tg.suid)):
        t.mm.write(addr, struct.pack("<I", v))
    return 0


@syscall("getresgid", ("ptr", "ptr", "ptr"))
def sys_getresgid(t, r, e, s, *_):
    for addr, v in ((r, t.tg.gid), (e, t.tg.egid), (s, t.tg.sgid)):
        t.mm.write(addr, struct.pack("<I", v))
    return 0


@syscall("getgroups", ("int", "ptr"))
def sys_getgroups(t, size, addr, *_):
    groups = t.tg.groups
    size = s32(size)
    if size < 0:
        raise SysError(errno.EINVAL)
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise SysError(errno.EINVAL)
    t.mm.write(addr, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


@syscall("setgroups", ("int", "ptr"))
def sys_setgroups(t, size, addr, *_):
    if not C.has_cap(t, C.CAP_SETGID):
        raise SysError(errno.EPERM)
    if size > 65536:
        raise SysError(errno.EINVAL)
    t.tg.groups = struct.unpack(f"<{size}I", t.mm.read(addr, 4 * size)) if size else ()
    return 0


def do_setfsid(t, kind, fs_id):
    """setfsuid/setfsgid: any of the real, effective, saved or current fs ids, or
    anything with CAP_SETUID/CAP_SETGID. Returns the old fs id whether or not it changed
    (-1 only queries)."""
    ids = _IdSet(t.tg, kind)
    (fs_id,) = _ids(fs_id)
    old = ids.get_fs()
    if fs_id != NO_ID and fs_id != old and (fs_id in ids.get() or _capable(t, ids)):
        ids.set_fs(fs_id)
    return old


@syscall("setfsuid", ("int",))
def sys_setfsuid(t, uid, *_):
    return do_setfsid(t, "u", uid)


@syscall("setfsgid", ("int",))
def sys_setfsgid(t, gid, *_):
    return do_setfsid(t, "g", gid)


# ---- sessions and process groups -------------------------------------------------------
@syscall("getpgrp")
def sys_getpgrp(t, *_):
    return t.tg.pgrp.pgid


@syscall("getpgid", ("int",))
def sys_getpgid(t, pid, *_):
    tg = t.tg if pid == 0 else t.kernel.groups.get(pid)
    if tg is None:
        raise SysError(errno.ESRCH)
    return tg.pgrp.pgid


@syscall("setpgid", ("int", "int"))
def sys_setpgid(t, pid, pgid, *_):
    k = t.kernel
    tg = t.tg if pid == 0 else k.groups.get(pid)
    if tg is None or (tg is not t.tg and tg.parent is not t.tg):
        raise SysError(errno.ESRCH)
    if pgid >> 31:
        raise SysError(errno.EINVAL)
    pgid = pgid or tg.tgid
    if tg.session is not t.tg.session:
        raise SysError(errno.EPERM)
    if tg.session.sid == tg.tgid:
        raise SysError(errno.EPERM)
    pg = k.pgroups.get(pgid)
    if pgid != tg.tgid and (pg is None or pg.session is not tg.session):
        raise SysError(errno.EPERM)
    k.set_pgrp(tg, pgid, tg.session)
    return 0


@syscall("getsid", ("int",))
def sys_getsid(t, pid, *_):
    tg = t.tg if pid == 0 else t.kernel.groups.get(pid)
    if tg is None:
        raise SysError(errno.ESRCH)
    return tg.session.sid


@syscall("setsid")
def sys_setsid(t, *_):
    k = t.kernel
    if t.tg.tgid in k.pgroups:
        raise SysError(errno.EPERM)
    k.new_session(t.tg)
    return t.tg.tgid


# ---- limits --------------------------------------------------------------------------
RLIMIT_NLIMITS = 16


def _rlimit(t, pid, resource, new, old):
    if resource >= RLIMIT_NLIMITS:
        raise SysError(errno.EINVAL)
    tg = t.tg if pid == 0 else t.kernel.groups.get(pid)
    if tg is None:
        raise SysError(errno.ESRCH)
    cur = tg.rlimits[resource]
    if new:
        soft, hard = struct.unpack("<QQ", t.mm.read(new, 16))
        if soft > hard:
            raise SysError(errno.EINVAL)
        if hard > cur[1] and not C.has_cap(t, C.CAP_SYS_RESOURCE):
            raise SysError(errno.EPERM)
        if resource == 7 and hard > 1048576:
            raise SysError(errno.EPERM)
    if old:
        t.mm.write(old, struct.pack("<QQ", *cur))
    if new:
        tg.rlimits[resource] = (soft, hard)
        if resource == 7:
            t.fdtable.limit = soft
    return 0


@syscall("prlimit64", ("int", "int", "ptr", "ptr"))
def sys_prlimit64(t, pid, resource, new, old, *_):
    return _rlimit(t, pid, resource, new, old)


@syscall("getrlimit", ("int", "ptr"))
def sys_getrlimit(t, resource, old, *_):
    return _rlimit(t, 0, resource, 0, old)


@syscall("setrlimit", ("int", "ptr"))
def sys_setrlimit(t, resource, new, *_):
    return _rlimit(t, 0, resource, new, 0)


RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1


def _rusage(cpu_ns: int, maxrss_kib: int) -> bytes:
    """A struct rusage: user time, and the peak resident size (kernel/usage.py says what
    is counted); the other fields (faults, I/O, context switches) are 0."""
    ru = bytearray(144)
    struct.pack_into("<qq", ru, 0, cpu_ns // 1_000_000_000, cpu_ns // 1000 % 1_000_000)
    struct.pack_into("<q", ru, 32, maxrss_kib)
    return bytes(ru)


@syscall("getrusage", ("int", "ptr"), support=PARTIAL,
         note="user time and ru_maxrss; system time and the counters are 0")
def sys_getrusage(t, who, addr, *_):
    who = s32(who)
    if who == RUSAGE_SELF:
        data = _rusage(usage.group_cpu_ns(t.tg), usage.maxrss_kib(t.tg, t.mm))
    elif who == RUSAGE_CHILDREN:
        data = _rusage(t.tg.child_cpu_ns, t.tg.child_maxrss_kib)
    elif who == RUSAGE_THREAD:
        data = _rusage(usage.task_cpu_ns(t), usage.maxrss_kib(t.tg, t.mm))
    else:
        raise SysError(errno.EINVAL)
    t.mm.write(addr, data)
    return 0


@syscall("times", ("ptr",))
def sys_times(t, addr, *_):
    if addr:
        t.mm.write(addr, struct.pack("<4q", usage.ticks(usage.group_cpu_ns(t.tg)), 0,
                                     usage.ticks(t.tg.child_cpu_ns), 0))
    return int((time.monotonic() - t.kernel.boot_time) * 100) + 1


@syscall("sched_yield")
def sys_sched_yield(t, *_):
    return 0


@syscall("getcpu", ("ptr", "ptr", "ptr"))
def sys_getcpu(t, cpu, node, _c, *_):
    if cpu:
        t.mm.write(cpu, b"\0\0\0\0")
    if node:
        t.mm.write(node, b"\0\0\0\0")
    return 0


ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012


@syscall("arch_prctl", ("hex", "hex"), support=PARTIAL, note="FS/GS base only")
def sys_arch_prctl(t, code, addr, *_):
    regs = t.ctx.regs
    if code == ARCH_SET_FS:
        if addr >= 0x800000000000:
            raise SysError(errno.EPERM)
        regs.fs_base = addr
    elif code == ARCH_SET_GS:
        if addr >= 0x800000000000:
            raise SysError(errno.EPERM)
        regs.gs_base = addr
    elif code == ARCH_GET_FS:
        t.mm.write(addr, struct.pack("<Q", regs.fs_base))
    elif code == ARCH_GET_GS:
        t.mm.write(addr, struct.pack("<Q", regs.gs_base))
    else:
        raise SysError(errno.EINVAL)
    return 0


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_SET_NAME, PR_GET_NAME = 1, 2, 15, 16
PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 3, 4, 38, 39
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_CAPBSET_READ, PR_CAPBSET_DROP = 7, 8, 23, 24
PR_GET_SECUREBITS, PR_CAP_AMBIENT = 27, 47
PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER = 1, 2, 3
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _prctl_caps(t, op, a2, a3, a4, a5):
    """The capability options of prctl, as commoncap.c's cap_task_prctl."""
    caps = C.of(t)
    if op == PR_GET_KEEPCAPS:
        return int(caps.keep_caps)
    if op == PR_SET_KEEPCAPS:
        if a2 > 1:
            raise SysError(errno.EINVAL)
        caps.keep_caps = bool(a2)
        return 0
    if op == PR_GET_SECUREBITS:
        return C.SECBIT_KEEP_CAPS if caps.keep_caps else 0
    if op == PR_CAPBSET_READ:
        if not C.valid_cap(a2):
            raise SysError(errno.EINVAL)
        return caps.bounding >> a2 & 1
    if op == PR_CAPBSET_DROP:
        if not caps.has(C.CAP_SETPCAP):
            raise SysError(errno.EPERM)
        if not C.valid_cap(a2):
            raise SysError(errno.EINVAL)
        caps.bounding &= ~(1 << a2)
        return 0
    # PR_CAP_AMBIENT
    if a2 == PR_CAP_AMBIENT_CLEAR_ALL:
        if a3 | a4 | a5:
            raise SysError(errno.EINVAL)
        caps.ambient = 0
        return 0
    if not C.valid_cap(a3) or a4 | a5:
        raise SysError(errno.EINVAL)
    bit = 1 << a3
    if a2 == PR_CAP_AMBIENT_IS_SET:
        return int(bool(caps.ambient & bit))
    if a2 == PR_CAP_AMBIENT_RAISE:
        if not caps.permitted & caps.inheritable & bit:
            raise SysError(errno.EPERM)
        caps.ambient |= bit
        return 0
    if a2 == PR_CAP_AMBIENT_LOWER:
        caps.ambient &= ~bit
        return 0
    raise SysError(errno.EINVAL)


_PRCTL_CAP_OPS = frozenset((PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_GET_SECUREBITS,
                            PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_CAP_AMBIENT))


@syscall("prctl", ("int", "hex", "hex", "hex", "hex"), support=PARTIAL,
         note="names, pdeathsig, dumpable, no_new_privs, subreaper, capabilities")
def sys_prctl(t, op, a2, a3, a4, a5, _a6):
    if op in _PRCTL_CAP_OPS:
        return _prctl_caps(t, op, a2, a3, a4, a5)
    if op == PR_SET_NAME:
        t.comm = t.mm.read_cstring(a2, 4096)[:15]
        return 0
    if op == PR_GET_NAME:
        t.mm.write(a2, t.comm[:15] + b"\0")
        return 0
    if op == PR_SET_PDEATHSIG:
        if a2 > 64:
            raise SysError(errno.EINVAL)
        t.pdeathsig = a2
        return 0
    if op == PR_GET_PDEATHSIG:
        t.mm.write(a2, struct.pack("<i", getattr(t, "pdeathsig", 0)))
        return 0
    if op == PR_GET_DUMPABLE:
        return 1
    if op == PR_SET_DUMPABLE:
        return 0 if a2 in (0, 1) else -errno.EINVAL
    if op == PR_SET_NO_NEW_PRIVS:
        t.tg.no_new_privs = True
        return 0
    if op == PR_GET_NO_NEW_PRIVS:
        return int(getattr(t.tg, "no_new_privs", False))
    if op == PR_SET_CHILD_SUBREAPER:
        t.tg.subreaper = bool(a2)
        return 0
    if op == PR_GET_CHILD_SUBREAPER:
        t.mm.write(a2, struct.pack("<i", int(t.tg.subreaper)))
        return 0
    raise SysError(errno.EINVAL)


@syscall("uname", ("ptr",))
def sys_uname(t, addr, *_):
    k = t.kernel
    fields = [b"Linux", k.hostname, k.release, b"#1 SMP pysentry", b"x86_64", k.domainname]
    t.mm.write(addr, b"".join(f[:64].ljust(65, b"\0") for f in fields))
    return 0


@syscall("sethostname", ("str", "size"))
def sys_sethostname(t, addr, n, *_):
    if not C.has_cap(t, C.CAP_SYS_ADMIN):
        raise SysError(errno.EPERM)
    if n > 64:
        raise SysError(errno.EINVAL)
    t.kernel.hostname = t.mm.read(addr, n)
    return 0


@syscall("umask", ("mode",))
def sys_umask(t, mask, *_):
    old = t.fs.umask
    t.fs.umask = mask & 0o777
    return old


_CAP_VERSION_1, _CAP_VERSION_2, _CAP_VERSION_3 = 0x19980330, 0x20071026, 0x20080522
_CAP_WORDS = {_CAP_VERSION_1: 1, _CAP_VERSION_2: 2, _CAP_VERSION_3: 2}
_CAP_DATA = struct.Struct("<III")        # effective, permitted, inheritable: one word


def _cap_header(t, hdr) -> tuple:
    """(words, pid) of a capability header; an unknown version is answered with the
    preferred one, written back, and EINVAL (cap_validate_magic)."""
    version, pid = struct.unpack("<Ii", t.copy_in(hdr, 8))
    words = _CAP_WORDS.get(version)
    if words is None:
        t.copy_out(hdr, struct.pack("<I", _CAP_VERSION_3))
        raise SysError(errno.EINVAL)
    return words, pid


@syscall("capget", ("ptr", "ptr"))
def sys_capget(t, hdr, data, *_):
    try:
        words, pid = _cap_header(t, hdr)
    except SysError as e:
        # Probing the version with a NULL data pointer is not an error.
        if e.errno == errno.EINVAL and not data:
            return 0
        raise
    if not data:
        return 0
    if pid < 0:
        raise SysError(errno.EINVAL)
    target = t if pid in (0, t.tid) else t.kernel.tasks.get(pid)
    if target is None or target.dead:
        raise SysError(errno.ESRCH)
    caps = C.of(target)
    t.copy_out(data, b"".join(
        _CAP_DATA.pack(caps.effective >> 32 * i & 0xffffffff,
                       caps.permitted >> 32 * i & 0xffffffff,
                       caps.inheritable >> 32 * i & 0xffffffff) for i in range(words)))
    return 0


@syscall("capset", ("ptr", "ptr"))
def sys_capset(t, hdr, data, *_):
    """Changes the calling thread's sets only (cap_capset); words a v1 header leaves
    out are 0, and bits past CAP_LAST_CAP are ignored."""
    words, pid = _cap_header(t, hdr)
    if pid not in (0, t.tid):
        raise SysError(errno.EPERM)
    raw = t.copy_in(data, words * _CAP_DATA.size)
    effective = permitted = inheritable = 0
    for i in range(words):
        e, p, inh = _CAP_DATA.unpack_from(raw, i * _CAP_DATA.size)
        effective |= e << 32 * i
        permitted |= p << 32 * i
        inheritable |= inh << 32 * i
    C.of(t).capset(effective & C.ALL_CAPS, permitted & C.ALL_CAPS, inheritable & C.ALL_CAPS)
    return 0
