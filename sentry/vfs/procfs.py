"""procfs: /proc, generated from the live kernel objects of one sandbox.

`ProcFS(kernel, cpuinfo=None)` is mounted once per sandbox. Nothing here is cached
beyond one open file: a file's text is generated when it is first read and again on every
read at offset 0 (as Linux's seq_file does), directories list what exists at the moment of
the getdents call, and a cached dentry is dropped as soon as the process, thread or fd it
names is gone (`revalidate = True`, see `ProcDir.revalidate_child`). Pids are the
sandbox's.

Who is asking
-------------
`/proc/self`, `/proc/thread-self` and the paths inside the magic links depend on the
caller. The caller is `ctx.task` of the PathContext the VFS passes (None: unknown). Links
of this filesystem therefore offer, besides the plain `readlink()` of every Inode:
  readlink(ctx=None) -> bytes              what readlink(2) returns for the caller;
  follow_link(ctx) -> bytes | Location     what a path walk continues with: text to walk
                                           (relative to the link's directory, like any
                                           symlink body), or a Location to jump to (Linux's
                                           nd_jump_link: /proc/PID/{cwd,root,fd/N} reach
                                           the very file, even a deleted one).
A walk that calls the plain `readlink()` still works for every link but self and
thread-self, which then fail with ENOENT (as on Linux for a caller outside the pid
namespace).

Owners and permissions
----------------------
Per-process entries belong to the process's euid/egid (re-read on every revalidation), so
the VFS's mode checks give the usual protection: environ, auxv and fd/ are readable by the
owner and root only. Reading or following another process's magic links (cwd, root, exe,
fd/N) also requires ptrace access (`may_access`) when the caller is known. Inode.open gets
no caller, so what Linux decides per opener (stat's address fields, writes that need a
capability) is decided from the target process instead; see the functions concerned.

Known deviations from Linux (deliberate; pysentry does not track these)
----------------------------------------------------------------------
- CPU times come from kernel/usage.py (all user time, in clock ticks); page-fault
  counters, context switches, load averages and /proc/stat's interrupt counters are 0.
- RSS counts every page of a VMA the application has touched at least once.
- /proc/PID/fd/N of a pipe, socket or anonymous file cannot be reopened through the link
  (Linux allows it for pipes).
- Only the common files exist: no ns/, net/, smaps, mem, pagemap, mountinfo.
- /proc/sys: hostname, domainname and overcommit_memory are writable (root), the other
  values are read-only.
- /proc/PID/stat's flags field is 0 and its address fields are shown to every reader.
"""
from __future__ import annotations

import errno
import itertools
import os
import re
import stat as _st
import time

from ..kernel import caps as C
from ..kernel import usage
from ..kernel.errors import SysError
from . import iov
from .file import FileDescription, O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY, SEEK_CUR, SEEK_SET
from .inode import Dirent, Filesystem, Inode
from .mount import Location
from .stat import DT_DIR, DT_LNK, DT_REG, PROC_SUPER_MAGIC, StatFS, major, minor

USER_HZ = usage.USER_HZ               # clock ticks of /proc (sysconf(_SC_CLK_TCK))
PAGE = 4096
RLIM_INFINITY = (1 << 64) - 1
PID_MAX = 4194304                   # kernel.alloc_pid wraps here
NGROUPS_MAX = 65536
TASK_COMM_LEN = 16
PROT_WRITE, PROT_EXEC = 2, 4
O_CLOEXEC = 0o2000000
OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX = -1000, 1000
DEFAULT_MEM_TOTAL = 4 << 30         # what sysinfo(2) reports (syscalls/misc.py)
AUDIT_UID_UNSET = 4294967295

# The filesystems /proc/filesystems names: those a sandbox can have mounted.
FILESYSTEMS = (("nodev", "tmpfs"), ("nodev", "proc"), ("nodev", "devtmpfs"),
               ("nodev", "devpts"), ("nodev", "pipefs"), ("nodev", "overlay"),
               ("nodev", "9p"))

# /proc/PID/limits: (title, unit) by RLIMIT_* number, in Linux's order.
LIMITS = (("Max cpu time", "seconds"), ("Max file size", "bytes"),
          ("Max data size", "bytes"), ("Max stack size", "bytes"),
          ("Max core file size", "bytes"), ("Max resident set", "bytes"),
          ("Max processes", "processes"), ("Max open files", "files"),
          ("Max locked memory", "bytes"), ("Max address space", "bytes"),
          ("Max file locks", "locks"), ("Max pending signals", "signals"),
          ("Max msgqueue size", "bytes"), ("Max nice priority", ""),
          ("Max realtime priority", ""), ("Max realtime timeout", "us"))
RLIMIT_RSS, RLIMIT_SIGPENDING = 5, 11

STATE_NAMES = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)",
               "T": "T (stopped)", "Z": "Z (zombie)", "X": "X (dead)"}


# == who is asking =========================================================================
def caller_of(ctx):
    """The Task on whose behalf a path operation runs, or None if the VFS did not say."""
    return getattr(ctx, "task", None) if ctx is not None else None


def may_access(ctx, tg) -> bool:
    """ptrace_may_access(PTRACE_MODE_READ_FSCREDS), reduced to what pysentry models: the
    same process, CAP_SYS_PTRACE, or fs ids equal to all of the target's real,
    effective and saved ids. An unknown caller is the sentry itself: allowed."""
    if ctx is None or ctx.creds is None:
        return True
    task = caller_of(ctx)
    if task is not None and task.tg is tg:
        return True
    c = ctx.creds
    if c.has_cap(C.CAP_SYS_PTRACE):
        return True
    return (c.fsuid == tg.uid == tg.euid == tg.suid
            and c.fsgid == tg.gid == tg.egid == tg.sgid)


def _require_access(ctx, tg) -> None:
    if not may_access(ctx, tg):
        raise SysError(errno.EACCES)


# == the process or thread a directory describes ============================================
class Subject:
    """A /proc/PID directory (whole process, `whole=True`) or /proc/PID/task/TID (one
    thread). `task` is the thread named by the directory: the leader for /proc/TGID, the
    thread itself for /proc/TID of a non-leader (Linux serves those too, unlisted)."""

    __slots__ = ("procfs", "tg", "task", "whole")

    def __init__(self, procfs: "ProcFS", tg, task, whole: bool):
        self.procfs, self.tg, self.task, self.whole = procfs, tg, task, whole

    @property
    def kernel(self):
        return self.procfs.kernel

    def alive(self) -> bool:
        """Still what the name refers to: not reaped, and a named thread not exited. A
        zombie process keeps its /proc/PID until it is reaped."""
        if self.kernel.groups.get(self.tg.tgid) is not self.tg:
            return False
        if self.whole and self.task is self.tg.leader:
            return True
        return self.task is not None and self.kernel.tasks.get(self.task.tid) is self.task

    def check(self) -> None:
        if not self.alive():
            raise SysError(errno.ESRCH)

    @property
    def pid(self) -> int:
        return self.task.tid if self.task is not None else self.tg.tgid

    def zombie(self) -> bool:
        return all(t.dead for t in self.tg.tasks)

    def live_task(self):
        """A thread whose mm/files/fs describe the process: the named one while it runs,
        else any live thread of the group (a leader that exited early leaves its threads
        running); None for a zombie."""
        if self.task is not None and not self.task.dead:
            return self.task
        if not self.whole:
            return None
        return next((t for t in self.tg.tasks if not t.dead), None)

    def mm(self):
        t = self.live_task()
        return t.mm if t is not None else None

    def fdtable(self):
        t = self.live_task()
        return t.fdtable if t is not None else None

    def fs_context(self):
        t = self.live_task()
        return t.fs if t is not None else None

    def comm(self) -> bytes:
        t = self.task
        name = t.comm if t is not None else self.tg.comm
        return bytes(name)[:TASK_COMM_LEN - 1]

    def threads(self) -> list:
        return [t for t in self.tg.tasks if not t.dead]

    def state(self) -> str:
        """One letter of Linux's task state (fs/proc/array.c's task_state_array)."""
        if self.zombie() and self.tg.exit_status is not None:
            return "Z"
        t = self.live_task() if self.whole else self.task
        if t is None or t.dead:
            return "X"
        if t.stopped or self.tg.stopped:
            return "T"
        if t.block is not None:
            return "S" if t.block.interruptible else "D"
        return "R"


# == inodes ===============================================================================
class ProcFS(Filesystem):
    fstype = "proc"
    revalidate = True

    def __init__(self, kernel, cpuinfo: bytes | None = None):
        super().__init__()
        self.kernel = kernel
        self.cpuinfo = bytes(cpuinfo) if cpuinfo is not None else None
        self.ncpus = _count_cpus(self.cpuinfo) or os.cpu_count() or 1
        self.overcommit_memory = 0
        self._inos = itertools.count(2)
        self._root = RootDir(self)

    def new_ino(self) -> int:
        return next(self._inos)

    def root(self) -> "RootDir":
        return self._root

    def statfs(self) -> StatFS:
        return StatFS(fstype_magic=PROC_SUPER_MAGIC, bsize=PAGE, namelen=255, dev=self.dev)


class ProcInode(Inode):
    """What every /proc inode shares: an optional Subject that owns it (its euid/egid are
    the inode's uid/gid) and that must still exist for the inode to be valid."""

    def __init__(self, fs: ProcFS, mode: int, subject: Subject | None = None):
        super().__init__(fs, fs.new_ino(), mode)
        self.subject = subject
        self.refresh()

    def refresh(self) -> None:
        if self.subject is not None:
            tg = self.subject.tg
            self.uid, self.gid = tg.euid, tg.egid

    def valid(self) -> bool:
        if self.subject is None:
            return True
        if not self.subject.alive():
            return False
        self.refresh()
        return True

    def stat(self):
        self.refresh()
        return super().stat()

    def blocks(self) -> int:
        return 0                        # nothing is stored: du and ls "total" count 0

    def setattr(self, *, mode=None, uid=None, gid=None, size=None, atime_ns=None,
                mtime_ns=None, ctime_ns=None) -> None:
        # proc_setattr: no chmod; a truncate (O_TRUNC of "echo x > file") is accepted and
        # changes nothing, since the content is generated.
        if mode is not None or uid is not None or gid is not None:
            raise SysError(errno.EPERM)
        if atime_ns is not None:
            self.atime_ns = atime_ns
        if mtime_ns is not None:
            self.mtime_ns = mtime_ns


class ProcFile(ProcInode):
    """A generated file: `render()` gives its whole text; `store()` takes a write."""

    def __init__(self, fs, mode: int, render, store=None, subject=None):
        super().__init__(fs, _st.S_IFREG | mode, subject)
        self._render = render
        self._store = store

    def render(self) -> bytes:
        if self.subject is not None:
            self.subject.check()
        return self._render()

    def store(self, data: bytes, offset: int) -> int:
        if self._store is None:
            raise SysError(errno.EINVAL)
        if self.subject is not None:
            self.subject.check()
        return self._store(data, offset)

    def set_size(self, size: int) -> None:
        pass

    def open(self, location, flags: int):
        return SeqFile(location, flags)


class SeqFile(FileDescription):
    """An open /proc file: a snapshot of the text, taken at the first read and again at
    every read from offset 0, so that one reader sees one consistent version."""

    MAX_WRITE = PAGE

    def __init__(self, location, flags: int):
        super().__init__(location, flags)
        self._snapshot: bytes | None = None

    def _read(self, dst, offset) -> int:
        if not iov.total(dst):
            return 0
        if self._snapshot is None or offset == 0:
            self._snapshot = self.inode.render()
        data = self._snapshot
        if offset >= len(data):
            return 0
        return iov.copy_into(dst, memoryview(data)[offset:])

    def _write(self, src, offset, advance: bool) -> int:
        count = iov.total(src)
        if count > self.MAX_WRITE:
            count = self.MAX_WRITE
        n = self.inode.store(iov.gather(src, count), offset)
        if advance:
            self.pos = offset + n
        return n

    def _seek(self, offset: int, whence: int) -> int:
        # seq_lseek: only SEEK_SET and SEEK_CUR.
        if whence not in (SEEK_SET, SEEK_CUR):
            raise SysError(errno.EINVAL)
        new = offset if whence == SEEK_SET else self.pos + offset
        if new < 0:
            raise SysError(errno.EINVAL)
        self.pos = new
        return new


class ProcLink(ProcInode):
    """A symlink whose target is computed. `target(ctx)` gives the text; `jump(ctx)`,
    when set, gives the Location a walk lands on (magic links)."""

    def __init__(self, fs, target, jump=None, subject=None, mode: int = 0o777,
                 size: int = 0):
        super().__init__(fs, _st.S_IFLNK | mode, subject)
        self._target = target
        self._jump = jump
        self.size = size

    def readlink(self, ctx=None) -> bytes:
        if self.subject is not None and not self.subject.alive():
            raise SysError(errno.ENOENT)
        return self._target(ctx)

    def follow_link(self, ctx):
        if self._jump is not None:
            if self.subject is not None and not self.subject.alive():
                raise SysError(errno.ENOENT)
            loc = self._jump(ctx)
            if loc is not None:
                return loc
        return self.readlink(ctx)


class ProcDir(ProcInode):
    """A directory whose entries are computed. Subclasses give `entries()`: the live
    (position, name, dtype) list in order, positions >= 2 that stay meaningful while
    other entries come and go; and `make(name)`: a new child Inode (ENOENT if none).
    Children are kept while valid, so a name maps to one Inode object."""

    def __init__(self, fs, mode: int = 0o555, subject=None):
        super().__init__(fs, _st.S_IFDIR | mode, subject)
        self._children: dict[bytes, ProcInode] = {}
        self._misses = 0

    def entries(self) -> list:
        raise NotImplementedError

    def make(self, name: bytes) -> ProcInode:
        raise SysError(errno.ENOENT)

    def lookup(self, name: bytes) -> ProcInode:
        if self.subject is not None and not self.subject.alive():
            raise SysError(errno.ENOENT)
        child = self._children.get(name)
        if child is not None and child.valid():
            return child
        # Entries of exited processes and closed fds are dropped now and then, so that a
        # long listing costs linear time.
        self._misses += 1
        if self._misses >= max(len(self._children), 16):
            self._misses = 0
            self._forget_stale()
        child = self.make(name)
        self._children[name] = child
        return child

    def _forget_stale(self) -> None:
        for name in [n for n, c in self._children.items() if not c.valid()]:
            del self._children[name]

    def revalidate_child(self, name: bytes, child) -> bool:
        return self._children.get(name) is child and child.valid()

    def iterdir(self, offset: int):
        if self.subject is not None and not self.subject.alive():
            return
        for pos, name, dtype in self.entries():
            if pos < offset:
                continue
            try:
                child = self.lookup(name)
            except SysError:
                continue            # gone between the listing and now
            yield Dirent(child.ino, pos + 1, dtype, name)

    def stat(self):
        st = super().stat()
        st.nlink = 2 + sum(1 for _, _, dtype in self.entries() if dtype == DT_DIR)
        return st


class TableDir(ProcDir):
    """A directory with a fixed set of entries: name -> (dtype, factory(dir) -> Inode)."""

    def __init__(self, fs, table, mode: int = 0o555, subject=None):
        super().__init__(fs, mode, subject)
        self._table = table
        self._positions = {name: 2 + i for i, name in enumerate(table)}

    def entries(self) -> list:
        return [(self._positions[name], name, dtype)
                for name, (dtype, _) in self._table.items()]

    def make(self, name: bytes) -> ProcInode:
        entry = self._table.get(name)
        if entry is None:
            raise SysError(errno.ENOENT)
        return entry[1](self)


# == helpers for generated text =============================================================
def _lines(*parts: str) -> bytes:
    return "".join(parts).encode("utf-8", "surrogateescape")


def _b(s) -> str:
    return bytes(s).decode("utf-8", "surrogateescape")


def _mangle(s: bytes) -> bytes:
    """/proc/mounts escaping of a field: space, tab, newline and backslash as \\ooo."""
    out = bytearray()
    for c in s:
        if c in b" \t\n\\":
            out += b"\\%03o" % c
        else:
            out.append(c)
    return bytes(out)


def _count_cpus(cpuinfo: bytes | None) -> int:
    if not cpuinfo:
        return 0
    return sum(1 for line in cpuinfo.splitlines() if line.split(b":")[0].strip() == b"processor")


def _cpu_list(n: int) -> str:
    return "0" if n == 1 else f"0-{n - 1}"


def _cpu_mask(n: int) -> str:
    """A cpumask as "%*pb" prints it: 32-bit hex groups separated by commas."""
    mask = (1 << n) - 1
    groups = []
    while True:
        groups.append(mask & 0xffffffff)
        mask >>= 32
        if not mask:
            break
    first = f"{groups[-1]:x}"
    return ",".join([first] + [f"{g:08x}" for g in reversed(groups[:-1])])


def _encode_dev(dev: int) -> int:
    """new_encode_dev(): the tty_nr of /proc/PID/stat."""
    ma, mi = major(dev), minor(dev)
    return (mi & 0xff) | (ma << 8) | ((mi & ~0xff) << 12)


def _ticks(seconds: float) -> int:
    return max(int(seconds * USER_HZ), 0)


def _uptime(kernel) -> float:
    return max(time.monotonic() - kernel.boot_time, 0.0)


def _sig_sets(tg):
    """(ignored, caught) signal masks from the dispositions: SIG_IGN = 1, SIG_DFL = 0."""
    ign = caught = 0
    for sig, act in enumerate(tg.handlers.actions[1:], start=1):
        if act.handler == 1:
            ign |= 1 << (sig - 1)
        elif act.handler != 0:
            caught |= 1 << (sig - 1)
    return ign, caught


def _fd_size(fdtable) -> int:
    """The size of the fd array Linux would have grown to (64, then doublings)."""
    size = 64
    if fdtable is not None:
        items = fdtable.items()
        top = items[-1][0] if items else 0
        while size <= top:
            size *= 2
    return size


class VmUsage:
    """The mm accounting of /proc/PID/status and statm, from the VMAs, in bytes."""

    def __init__(self, mm):
        self.size = self.rss_anon = self.rss_file = self.rss_shmem = 0
        self.data = self.stack = self.exec_ = 0
        for v in mm.vmas:
            n = v.end - v.start
            self.size += n
            is_stack = v.growsdown or v.name == b"[stack]"
            if v.mapped:
                if v.file:
                    self.rss_file += n
                elif v.shared:
                    self.rss_shmem += n
                else:
                    self.rss_anon += n
            if is_stack:
                self.stack += n
            elif v.prot & PROT_WRITE and not v.shared:
                self.data += n
            if v.prot & PROT_EXEC and not v.prot & PROT_WRITE and not is_stack:
                self.exec_ += n
        code = image_layout(mm)
        self.text = (_page_up(code["end_code"]) - (code["start_code"] & ~(PAGE - 1))
                     if code["end_code"] else 0)
        self.lib = max(self.exec_ - self.text, 0)

    @property
    def rss(self) -> int:
        return self.rss_anon + self.rss_file + self.rss_shmem


def _page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


def image_layout(mm) -> dict:
    """start/end of code and data and start_stack, as mm_struct records them at exec.
    Taken from the AddressSpace when it carries them; otherwise estimated from the VMAs of
    the executable (the lowest file mapping, which exec maps first and lowest)."""
    names = ("start_code", "end_code", "start_data", "end_data")
    out = {n: getattr(mm, n, None) for n in names}
    out["start_stack"] = getattr(mm, "start_stack", None) or mm.arg_start
    if all(out[n] is not None for n in names):
        return out
    files = [v for v in mm.vmas if v.file]
    if not files:
        return {**{n: 0 for n in names}, "start_stack": out["start_stack"]}
    exe = (files[0].dev, files[0].ino)
    image = [v for v in files if (v.dev, v.ino) == exe]
    code = [v for v in image if v.prot & PROT_EXEC]
    last = image[-1]
    est = {"start_code": code[0].start if code else 0,
           "end_code": code[-1].end if code else 0,
           "start_data": last.start, "end_data": last.end}
    return {n: out[n] if out[n] is not None else est[n] for n in names} | \
        {"start_stack": out["start_stack"]}


def _read_user(mm, start: int, end: int) -> bytes:
    """Bytes of [start, end) of an address space; empty if any of it is unmapped (the
    process may have unmapped its own argument area)."""
    if mm is None or end <= start:
        return b""
    try:
        return mm.read(start, end - start)
    except SysError:
        return b""


# == /proc/PID files ========================================================================
def stat_text(s: Subject) -> bytes:
    """/proc/PID/stat and /proc/PID/task/TID/stat: the 52 fields of proc(5). Linux hides
    the address fields from readers without ptrace access; the reader is not known when
    the file is opened, so they are always shown (mode bits still apply)."""
    tg, task, kernel = s.tg, s.task, s.kernel
    mm = s.mm()
    sess = tg.pgrp.session if tg.pgrp is not None else None
    tty = getattr(sess, "tty", None) if sess is not None else None
    tty_nr = _encode_dev(getattr(tty, "rdev", 0)) if tty is not None else 0
    tpgid = getattr(tty, "fg_pgid", -1) if tty is not None else -1
    threads = s.threads()
    ign, caught = _sig_sets(tg)
    t = s.live_task()
    pending = t.pending.mask if t is not None else 0
    blocked = t.sigmask if t is not None else 0
    state = s.state()
    if s.whole:
        utime = usage.ticks(usage.group_cpu_ns(tg))
    else:
        utime = usage.ticks(usage.task_cpu_ns(task)) if task is not None else 0
    stime = 0
    start = getattr(task, "start_time", None) if not s.whole else None
    start = tg.start_time if start is None else start
    rsslim = tg.rlimits.get(RLIMIT_RSS, (RLIM_INFINITY,))[0]
    if mm is not None:
        vm = VmUsage(mm)
        layout = image_layout(mm)
        vsize, rss = vm.size, vm.rss // PAGE
        code = (layout["start_code"], layout["end_code"])
        mmf = (layout["start_stack"], layout["start_data"], layout["end_data"],
               mm.brk_start, mm.arg_start, mm.arg_end, mm.env_start, mm.env_end)
    else:
        vsize = rss = 0
        code = (0, 0)
        mmf = (0,) * 8
    wchan = int(state in "SD") if not s.whole or len(threads) < 2 else 0
    if task is not None and task is not tg.leader:
        exit_signal = -1               # a CLONE_THREAD task signals nobody
    else:
        exit_signal = tg.exit_signal
    exit_code = tg.exit_status if s.zombie() and tg.exit_status else 0
    fields = [
        tg.parent.tgid if tg.parent is not None else 0,
        tg.pgrp.pgid if tg.pgrp is not None else 0,
        sess.sid if sess is not None else 0,
        tty_nr, tpgid,
        0,                                  # flags (PF_*)
        0, 0, 0, 0,                         # minflt cminflt majflt cmajflt
        utime, stime, usage.ticks(tg.child_cpu_ns), 0,
        20, 0,                              # priority, nice
        len(threads), 0,                    # num_threads, itrealvalue
        _ticks(start - kernel.boot_time),
        vsize, rss, rsslim,
        code[0], code[1], mmf[0],
        0, 0,                               # kstkesp, kstkeip
        pending & 0x7fffffff, blocked & 0x7fffffff, ign & 0x7fffffff, caught & 0x7fffffff,
        wchan, 0, 0,                        # wchan, nswap, cnswap
        exit_signal, 0, 0, 0,               # exit_signal processor rt_priority policy
        0, 0, 0,                            # delayacct_blkio_ticks guest_time cguest_time
        mmf[1], mmf[2], mmf[3], mmf[4], mmf[5], mmf[6], mmf[7],
        exit_code,
    ]
    head = b"%d (%s) %s " % (s.pid, s.comm(), state.encode())
    return head + " ".join(str(f) for f in fields).encode() + b"\n"


def _escape_comm(comm: bytes) -> bytes:
    return comm.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")


def status_text(s: Subject) -> bytes:
    """/proc/PID/status, field for field as Linux 6.1 prints it."""
    tg = s.tg
    t = s.live_task()
    fs = s.fs_context()
    mm = s.mm()
    ign, caught = _sig_sets(tg)
    pgid = tg.pgrp.pgid if tg.pgrp is not None else 0
    sid = tg.pgrp.session.sid if tg.pgrp is not None else 0
    groups = " ".join(str(g) for g in tg.groups)
    out = [f"Name:\t{_b(_escape_comm(s.comm()))}\n"]
    if fs is not None:                  # a zombie has no fs, and no Umask line
        out.append(f"Umask:\t{fs.umask:04o}\n")
    out += [
        f"State:\t{STATE_NAMES[s.state()]}\n",
        f"Tgid:\t{tg.tgid}\n",
        "Ngid:\t0\n",
        f"Pid:\t{s.pid}\n",
        f"PPid:\t{tg.parent.tgid if tg.parent is not None else 0}\n",
        "TracerPid:\t0\n",
        f"Uid:\t{tg.uid}\t{tg.euid}\t{tg.suid}\t{tg.fsuid}\n",
        f"Gid:\t{tg.gid}\t{tg.egid}\t{tg.sgid}\t{tg.fsgid}\n",
        f"FDSize:\t{_fd_size(s.fdtable())}\n",
        f"Groups:\t{groups} \n",
        f"NStgid:\t{tg.tgid}\n",
        f"NSpid:\t{s.pid}\n",
        f"NSpgid:\t{pgid}\n",
        f"NSsid:\t{sid}\n",
    ]
    if mm is not None:
        u = VmUsage(mm)
        kb = (("VmPeak", u.size), ("VmSize", u.size), ("VmLck", 0), ("VmPin", 0),
              ("VmHWM", u.rss), ("VmRSS", u.rss), ("RssAnon", u.rss_anon),
              ("RssFile", u.rss_file), ("RssShmem", u.rss_shmem), ("VmData", u.data),
              ("VmStk", u.stack), ("VmExe", u.text), ("VmLib", u.lib), ("VmPTE", 0),
              ("VmSwap", 0), ("HugetlbPages", 0))
        out += [f"{name}:\t{n // 1024:8d} kB\n" for name, n in kb]
        out += ["CoreDumping:\t0\n", "THP_enabled:\t1\n"]
    queued = sum(len(th.pending.queue) for th in tg.tasks if not th.dead) + len(tg.pending.queue)
    out += [
        f"Threads:\t{len(s.threads())}\n",
        f"SigQ:\t{queued}/{tg.rlimits.get(RLIMIT_SIGPENDING, (0,))[0]}\n",
        f"SigPnd:\t{(t.pending.mask if t is not None else 0):016x}\n",
        f"ShdPnd:\t{tg.pending.mask:016x}\n",
        f"SigBlk:\t{(t.sigmask if t is not None else 0):016x}\n",
        f"SigIgn:\t{ign:016x}\n",
        f"SigCgt:\t{caught:016x}\n",
    ]
    caps = C.of(t) if t is not None else C.CapSets(bounding=0)
    out += [
        f"CapInh:\t{caps.inheritable:016x}\n",
        f"CapPrm:\t{caps.permitted:016x}\n",
        f"CapEff:\t{caps.effective:016x}\n",
        f"CapBnd:\t{caps.bounding:016x}\n",
        f"CapAmb:\t{caps.ambient:016x}\n",
        f"NoNewPrivs:\t{int(bool(getattr(tg, 'no_new_privs', False)))}\n",
        "Seccomp:\t0\n",
        "Seccomp_filters:\t0\n",
        "Speculation_Store_Bypass:\tthread vulnerable\n",
        "SpeculationIndirectBranch:\tconditional enabled\n",
    ]
    ncpus = s.procfs.ncpus
    out += [
        f"Cpus_allowed:\t{_cpu_mask(ncpus)}\n",
        f"Cpus_allowed_list:\t{_cpu_list(ncpus)}\n",
        "Mems_allowed:\t" + ",".join(["00000000"] * 31 + ["00000001"]) + "\n",
        "Mems_allowed_list:\t0\n",
        "voluntary_ctxt_switches:\t0\n",
        "nonvoluntary_ctxt_switches:\t0\n",
    ]
    return _lines(*out)


def statm_text(s: Subject) -> bytes:
    mm = s.mm()
    if mm is None:
        return b"0 0 0 0 0 0 0\n"
    u = VmUsage(mm)
    pages = [u.size, u.rss, u.rss_file + u.rss_shmem, u.text, 0, u.data + u.stack, 0]
    return " ".join(str(n // PAGE) for n in pages).encode() + b"\n"


def cmdline_text(s: Subject) -> bytes:
    """The argument area; if the NUL that ends it was overwritten (setproctitle), the
    string that starts there instead, with its NUL, at most a page (get_mm_cmdline)."""
    mm = s.mm()
    if mm is None or mm.arg_end <= mm.arg_start:
        return b""
    if _read_user(mm, mm.arg_end - 1, mm.arg_end) not in (b"\0", b""):
        # The title may run on into the environment strings, never past them.
        env_end = mm.env_end if mm.env_start == mm.arg_end <= mm.env_end else mm.arg_end
        page = _read_user(mm, mm.arg_start, mm.arg_start + min(PAGE, env_end - mm.arg_start))
        nul = page.find(b"\0")
        return page if nul < 0 else page[:nul + 1]
    return _read_user(mm, mm.arg_start, mm.arg_end)


def environ_text(s: Subject) -> bytes:
    mm = s.mm()
    return _read_user(mm, mm.env_start, mm.env_end) if mm is not None else b""


def auxv_text(s: Subject) -> bytes:
    mm = s.mm()
    return bytes(mm.auxv) if mm is not None else b""


def maps_text(s: Subject) -> bytes:
    mm = s.mm()
    if mm is None:
        return b""
    # The vsyscall page ends every process's maps, as on Linux (vsyscall=xonly; it is
    # served by sentry/kernel/vsyscall.py, not a VMA of the model).
    return b"".join(maps_line(v) for v in mm.vmas) + VSYSCALL_MAPS_LINE


VSYSCALL_MAPS_LINE = (b"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
                      + b" " * 18 + b"[vsyscall]\n")


MAPS_NAME_COLUMN = 73       # seq_setwidth(25 + 6 * sizeof(void *) - 1), then one space


def maps_line(v) -> bytes:
    """One line of /proc/PID/maps (show_map_vma): the header always ends with a space;
    a name is padded out to column 73, a newline in it shown as \\012."""
    perms = (b"r" if v.prot & 1 else b"-") + (b"w" if v.prot & PROT_WRITE else b"-") + \
        (b"x" if v.prot & PROT_EXEC else b"-") + (b"s" if v.shared else b"p")
    dev = v.dev if v.file else 0
    head = b"%08x-%08x %s %08x %02x:%02x %d " % (
        v.start, v.end, perms, v.foff if v.file else 0, major(dev), minor(dev),
        v.ino if v.file else 0)
    name = bytes(v.name)
    if not name:
        return head + b"\n"
    pad = b" " * max(MAPS_NAME_COLUMN - len(head), 1)
    return head + pad + name.replace(b"\n", b"\\012") + b"\n"


def limits_text(s: Subject) -> bytes:
    out = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}\n"]
    for res, (title, unit) in enumerate(LIMITS):
        soft, hard = s.tg.rlimits.get(res, (RLIM_INFINITY, RLIM_INFINITY))
        soft = "unlimited" if soft >= RLIM_INFINITY else str(soft)
        hard = "unlimited" if hard >= RLIM_INFINITY else str(hard)
        out.append(f"{title:<25} {soft:<20} {hard:<20} " + (f"{unit:<10}" if unit else "")
                   + "\n")
    return _lines(*out)


def mounts_text(kernel, root: Location | None) -> bytes:
    out = bytearray()
    for source, path, fstype, options in kernel.vfs.mounts(root):
        out += b"%s %s %s %s 0 0\n" % (_mangle(_bytes(source)), _mangle(_bytes(path)),
                                      _mangle(_bytes(fstype)), _bytes(options))
    return bytes(out)


def _bytes(x) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode("utf-8", "surrogateescape")


def fdinfo_text(s: Subject, fd: int) -> bytes:
    table = s.fdtable()
    if table is None or fd not in table:
        raise SysError(errno.ENOENT)
    desc = table.get(fd)
    flags = desc.flags | (O_CLOEXEC if table.get_cloexec(fd) else 0)
    mnt_id = desc.location.mount.id if desc.location is not None else 0
    ino = desc.inode.ino if desc.inode is not None else 0
    text = b"pos:\t%d\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n" % (
        0 if desc.stream else desc.pos, flags, mnt_id, ino)
    extra = getattr(desc, "fdinfo_extra", None)
    return text + (extra() if extra is not None else b"")


def fd_link_text(s: Subject, fd: int, ctx) -> bytes:
    _require_access(ctx, s.tg)
    desc = _fd_desc(s, fd)
    if desc.location is not None and ctx is not None:
        return desc.path_from(ctx.root)
    return desc.readlink_name()


def _fd_desc(s: Subject, fd: int):
    table = s.fdtable()
    if table is None or fd not in table:
        raise SysError(errno.ENOENT)
    return table.get(fd)


def _fd_link_mode(desc) -> int:
    """lr-x------ / l-wx------ / lrwx------ by the description's access mode."""
    acc = desc.flags & O_ACCMODE
    mode = 0o100
    if not desc.flags & 0o10000000:           # O_PATH: neither readable nor writable
        if acc in (O_RDONLY, O_RDWR):
            mode |= 0o400
        if acc in (O_WRONLY, O_RDWR):
            mode |= 0o200
    return mode


def _location_path(loc: Location, ctx) -> bytes:
    if ctx is not None:
        path = loc.path_from(ctx.root)
    else:
        top = loc.mount
        while top.parent is not None:
            top = top.parent
        path = loc.path_from(Location(top, top.root))
    return path + b" (deleted)" if loc.dentry.dead else path


def _comm_store(s: Subject):
    def store(data: bytes, offset: int) -> int:
        # comm_write: at most TASK_COMM_LEN-1 bytes, the newline included (as Linux
        # does: "echo x > comm" names the task "x\n"), up to the first NUL.
        name = data[:TASK_COMM_LEN - 1].split(b"\0", 1)[0]
        task = s.task if s.task is not None else s.tg.leader
        task.comm = name
        if task is s.tg.leader:
            s.tg.comm = name
        return len(data)
    return store


def _target_has_cap(s: Subject, cap: int) -> bool:
    t = s.live_task()
    return t is not None and C.has_cap(t, cap)


def _oom_score_adj_store(s: Subject):
    def store(data: bytes, offset: int) -> int:
        # Accepted and remembered; pysentry has no OOM killer. Going below the floor
        # needs CAP_SYS_RESOURCE, which a privileged process holds and then sets the
        # floor itself. The writer is not known here, so the target's capabilities
        # stand in for the writer's (the usual writer is the process itself).
        value = _parse_int(data)
        if not OOM_SCORE_ADJ_MIN <= value <= OOM_SCORE_ADJ_MAX:
            raise SysError(errno.EINVAL)
        tg = s.tg
        if _target_has_cap(s, C.CAP_SYS_RESOURCE):
            tg.oom_score_adj_min = value
        elif value < getattr(tg, "oom_score_adj_min", 0):
            raise SysError(errno.EACCES)
        tg.oom_score_adj = value
        return len(data)
    return store


_KSTRTOINT = re.compile(rb"[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def _parse_int(data: bytes) -> int:
    """strstrip + kstrtoint(base 0) of a /proc write: optional sign, then decimal, 0x hex
    or 0 octal; EINVAL for anything else, ERANGE beyond a C int."""
    text = data.split(b"\0", 1)[0].strip(b" \t\n\v\f\r")
    if not _KSTRTOINT.fullmatch(text):
        raise SysError(errno.EINVAL)
    value = int(text, 0) if not re.fullmatch(rb"[+-]?0[0-7]+", text) else int(text, 8)
    if not -(1 << 31) <= value < (1 << 31):
        raise SysError(errno.ERANGE)
    return value


# == per-process directories ================================================================
def _file(render, mode=0o444, store=None):
    """A table entry for a per-process file: render(subject) -> bytes."""
    def factory(d: "ProcessDir"):
        s = d.subject
        return ProcFile(d.fs, mode, lambda: render(s),
                        store(s) if store is not None else None, s)
    return (DT_REG, factory)


def _magic_link(path_of):
    """cwd, root, exe: path_of(subject) -> Location | bytes | None (ENOENT)."""
    def factory(d: "ProcessDir"):
        s = d.subject

        def where():
            it = path_of(s)
            if it is None:
                raise SysError(errno.ENOENT)
            return it

        def target(ctx):
            _require_access(ctx, s.tg)
            it = where()
            return _location_path(it, ctx) if isinstance(it, Location) else it

        def jump(ctx):
            _require_access(ctx, s.tg)
            it = where()
            return it if isinstance(it, Location) else None
        return ProcLink(d.fs, target, jump, s)
    return (DT_LNK, factory)


def _cwd(s: Subject):
    fs = s.fs_context()
    return fs.cwd if fs is not None else None


def _root(s: Subject):
    fs = s.fs_context()
    return fs.root if fs is not None else None


def _exe(s: Subject):
    mm = s.mm()
    if mm is None:
        return None
    return getattr(mm, "exe_location", None) or (mm.exe_name or None)


def _loginuid(s: Subject) -> bytes:
    return b"%d" % getattr(s.tg, "loginuid", AUDIT_UID_UNSET)


def _loginuid_store(s: Subject):
    def store(data: bytes, offset: int) -> int:
        # loginuid_write: one decimal write from offset 0; setting it takes
        # CAP_AUDIT_CONTROL, the target's standing in for the writer's (see oom_score_adj).
        if offset != 0:
            raise SysError(errno.EINVAL)
        if not re.fullmatch(rb"\+?[0-9]+\n?", data):
            raise SysError(errno.EINVAL)
        value = int(data.rstrip(b"\n"))
        if value >= 1 << 32:
            raise SysError(errno.ERANGE)
        if not _target_has_cap(s, C.CAP_AUDIT_CONTROL):
            raise SysError(errno.EPERM)
        s.tg.loginuid = value
        return len(data)
    return store


class ProcessDir(TableDir):
    """/proc/PID (whole process) or /proc/PID/task/TID (one thread)."""

    def __init__(self, fs, subject: Subject):
        table = PROCESS_TABLE if subject.whole else THREAD_TABLE
        super().__init__(fs, table, 0o555, subject)


class FdDir(ProcDir):
    """/proc/PID/fd (links) or /proc/PID/fdinfo (files): one entry per open fd."""

    def __init__(self, fs, subject: Subject, info: bool):
        super().__init__(fs, 0o555 if info else 0o500, subject)
        self.info = info

    def _fds(self) -> list:
        table = self.subject.fdtable()
        return [fd for fd, _ in table.items()] if table is not None else []

    def entries(self) -> list:
        dtype = DT_REG if self.info else DT_LNK
        return [(2 + fd, str(fd).encode(), dtype) for fd in self._fds()]

    def make(self, name: bytes) -> ProcInode:
        fd = _parse_number(name)
        s = self.subject
        if fd is None:
            raise SysError(errno.ENOENT)
        desc = _fd_desc(s, fd)
        if self.info:
            return FdEntryFile(self.fs, s, fd, desc)
        return FdLink(self.fs, s, fd, desc)


class _FdEntry:
    """Valid while the fd still holds the description it was made for."""

    def _fd_valid(self) -> bool:
        table = self.subject.fdtable()
        return table is not None and self.fd in table and table.get(self.fd) is self.desc


class FdLink(_FdEntry, ProcLink):
    def __init__(self, fs, subject, fd: int, desc):
        self.fd, self.desc = fd, desc
        super().__init__(fs, lambda ctx: fd_link_text(subject, fd, ctx),
                         self._jump_to, subject, mode=_fd_link_mode(desc), size=64)

    def _jump_to(self, ctx):
        _require_access(ctx, self.subject.tg)
        return _fd_desc(self.subject, self.fd).location

    def valid(self) -> bool:
        return ProcLink.valid(self) and self._fd_valid()


class FdEntryFile(_FdEntry, ProcFile):
    def __init__(self, fs, subject, fd: int, desc):
        self.fd, self.desc = fd, desc
        super().__init__(fs, 0o444, lambda: fdinfo_text(subject, fd), None, subject)

    def valid(self) -> bool:
        return ProcFile.valid(self) and self._fd_valid()


class TaskDir(ProcDir):
    """/proc/PID/task: one directory per live thread."""

    def __init__(self, fs, subject: Subject):
        super().__init__(fs, 0o555, subject)

    def entries(self) -> list:
        return [(2 + t.tid, str(t.tid).encode(), DT_DIR)
                for t in sorted(self.subject.threads(), key=lambda t: t.tid)]

    def make(self, name: bytes) -> ProcInode:
        tid = _parse_number(name)
        tg = self.subject.tg
        task = self.subject.kernel.tasks.get(tid) if tid is not None else None
        if task is None or task.tg is not tg or task.dead:
            raise SysError(errno.ENOENT)
        return ProcessDir(self.fs, Subject(self.fs, tg, task, whole=False))


def _dir_entry(cls, *args):
    return (DT_DIR, lambda d: cls(d.fs, d.subject, *args))


_COMMON = {
    b"fd": _dir_entry(FdDir, False),
    b"fdinfo": _dir_entry(FdDir, True),
    b"environ": _file(environ_text, 0o400),
    b"auxv": _file(auxv_text, 0o400),
    b"status": _file(status_text),
    b"limits": _file(limits_text),
    b"comm": _file(lambda s: s.comm() + b"\n", 0o644, _comm_store),
    b"cmdline": _file(cmdline_text),
    b"stat": _file(stat_text),
    b"statm": _file(statm_text),
    b"maps": _file(maps_text),
    b"cwd": _magic_link(_cwd),
    b"root": _magic_link(_root),
    b"exe": _magic_link(_exe),
    b"mounts": _file(lambda s: mounts_text(s.kernel, _root(s)) if _root(s) else b""),
    b"oom_score_adj": _file(lambda s: b"%d\n" % getattr(s.tg, "oom_score_adj", 0), 0o644,
                            _oom_score_adj_store),
    b"loginuid": _file(_loginuid, 0o644, _loginuid_store),
}
PROCESS_TABLE = {b"task": _dir_entry(TaskDir), **_COMMON}
THREAD_TABLE = dict(_COMMON)


# == the root and the system-wide files =====================================================
def _parse_number(name: bytes) -> int | None:
    """A pid or fd as a /proc name: decimal digits, no sign, no leading zero."""
    if not name or not name.isdigit() or (name[:1] == b"0" and len(name) > 1) or len(name) > 10:
        return None
    return int(name)


class RootDir(TableDir):
    """/proc: the fixed entries, then one directory per process (by tgid). A thread's
    tid also resolves (to a directory for that thread) but is not listed, as on Linux."""

    def __init__(self, fs: ProcFS):
        super().__init__(fs, root_table(fs), 0o555)
        self.ino = 1                       # PROC_ROOT_INO
        self._first_pid_pos = 2 + len(self._table)

    def entries(self) -> list:
        base = super().entries()
        pids = sorted(self.fs.kernel.groups)
        return base + [(self._first_pid_pos + pid, str(pid).encode(), DT_DIR) for pid in pids]

    def make(self, name: bytes) -> ProcInode:
        if name in self._table:
            return super().make(name)
        pid = _parse_number(name)
        kernel = self.fs.kernel
        if pid is None:
            raise SysError(errno.ENOENT)
        tg = kernel.groups.get(pid)
        if tg is not None:
            return ProcessDir(self.fs, Subject(self.fs, tg, tg.leader, whole=True))
        task = kernel.tasks.get(pid)
        if task is None or task.dead:
            raise SysError(errno.ENOENT)
        return ProcessDir(self.fs, Subject(self.fs, task.tg, task, whole=True))


def _self_target(ctx) -> bytes:
    task = caller_of(ctx)
    if task is None:
        raise SysError(errno.ENOENT)
    return b"%d" % task.tg.tgid


def _thread_self_target(ctx) -> bytes:
    task = caller_of(ctx)
    if task is None:
        raise SysError(errno.ENOENT)
    return b"%d/task/%d" % (task.tg.tgid, task.tid)


def _static(render, mode=0o444, store=None):
    return (DT_REG, lambda d: ProcFile(d.fs, mode, render, store))


def _link(target: bytes):
    return (DT_LNK, lambda d: ProcLink(d.fs, lambda ctx: target, size=len(target)))


def _dynamic_link(target):
    return (DT_LNK, lambda d: ProcLink(d.fs, target))


def _subdir(table_of):
    return (DT_DIR, lambda d: TableDir(d.fs, table_of(d.fs)))


def root_table(fs: ProcFS) -> dict:
    k = fs.kernel
    return {
        b"sys": _subdir(sys_table),
        b"stat": _static(lambda: system_stat_text(fs)),
        b"mounts": _link(b"self/mounts"),
        b"uptime": _static(lambda: uptime_text(fs)),
        b"cpuinfo": _static(lambda: cpuinfo_text(fs)),
        b"loadavg": _static(lambda: loadavg_text(k)),
        b"meminfo": _static(lambda: meminfo_text(k)),
        b"version": _static(lambda: version_text(k)),
        b"filesystems": _static(filesystems_text),
        b"self": _dynamic_link(_self_target),
        b"thread-self": _dynamic_link(_thread_self_target),
    }


def sys_table(fs: ProcFS) -> dict:
    k = fs.kernel

    def kernel_dir(fs):
        return {
            b"hostname": _static(lambda: bytes(k.hostname) + b"\n", 0o644,
                                 _string_store(k, "hostname")),
            b"domainname": _static(lambda: bytes(getattr(k, "domainname", b"(none)")) + b"\n",
                                   0o644, _string_store(k, "domainname")),
            b"ostype": _static(lambda: b"Linux\n"),
            b"osrelease": _static(lambda: bytes(k.release) + b"\n"),
            b"pid_max": _static(lambda: b"%d\n" % PID_MAX),
            b"ngroups_max": _static(lambda: b"%d\n" % NGROUPS_MAX),
            b"cap_last_cap": _static(lambda: b"%d\n" % C.CAP_LAST_CAP),
        }

    def vm_dir(fs):
        from ..mm.addrspace import max_map_count
        return {b"overcommit_memory": _static(lambda: b"%d\n" % fs.overcommit_memory, 0o644,
                                              _overcommit_store(fs)),
                # The VMA limit the sandbox's address spaces have (under the host's own
                # on ptrace, with room for the stub: sentry/mm/addrspace.py).
                b"max_map_count": _static(lambda: b"%d\n" % max_map_count(k.platform))}

    def fs_dir(fs):
        from .pipe import PIPE_MAX_SIZE
        return {b"pipe-max-size": _static(lambda: b"%d\n" % PIPE_MAX_SIZE)}

    return {b"fs": _subdir(fs_dir), b"kernel": _subdir(kernel_dir), b"vm": _subdir(vm_dir)}


def _string_store(kernel, attr: str):
    def store(data: bytes, offset: int) -> int:
        # proc_dostring: the value ends at the first newline or NUL; at most 64 bytes
        # (__NEW_UTS_LEN); a write at an offset continues the current string.
        value = data.split(b"\n", 1)[0].split(b"\0", 1)[0]
        old = bytes(getattr(kernel, attr))
        if offset > len(old):
            return len(data)
        setattr(kernel, attr, (old[:offset] + value)[:64])
        return len(data)
    return store


def _overcommit_store(fs: ProcFS):
    def store(data: bytes, offset: int) -> int:
        value = _parse_int(data)
        if value not in (0, 1, 2):
            raise SysError(errno.EINVAL)
        fs.overcommit_memory = value
        return len(data)
    return store


def uptime_text(fs: ProcFS) -> bytes:
    up = _uptime(fs.kernel)
    busy = sum(usage.group_cpu_ns(tg) for tg in fs.kernel.groups.values()) / 1e9
    idle = max(up * fs.ncpus - busy, 0.0)
    return b"%d.%02d %d.%02d\n" % (int(up), int(up * 100) % 100, int(idle),
                                  int(idle * 100) % 100)


def _last_pid(kernel) -> int:
    known = list(kernel.tasks) + list(kernel.groups)
    return max(known) if known else 0


def loadavg_text(kernel) -> bytes:
    tasks = [t for t in kernel.tasks.values() if not t.dead]
    running = sum(1 for t in tasks if t.block is None and not t.stopped)
    return b"0.00 0.00 0.00 %d/%d %d\n" % (running, len(tasks), _last_pid(kernel))


def system_stat_text(fs: ProcFS) -> bytes:
    kernel = fs.kernel
    up = _uptime(kernel)
    user = sum(usage.ticks(usage.group_cpu_ns(tg)) for tg in kernel.groups.values())
    system = 0
    idle_total = max(_ticks(up) * fs.ncpus - user - system, 0)
    per_cpu = []
    for i in range(fs.ncpus):
        share = lambda n: n // fs.ncpus + (1 if i < n % fs.ncpus else 0)  # noqa: E731
        per_cpu.append((share(user), share(system), share(idle_total)))

    def cpu_line(name, u, sy, idle):
        return f"{name} {u} 0 {sy} {idle} 0 0 0 0 0 0\n"
    tasks = [t for t in kernel.tasks.values() if not t.dead]
    out = [cpu_line("cpu ", user, system, idle_total)]
    out += [cpu_line(f"cpu{i}", *vals) for i, vals in enumerate(per_cpu)]
    out += [
        "intr 0\n",
        "ctxt 0\n",
        f"btime {int(time.time() - up)}\n",
        f"processes {_last_pid(kernel)}\n",
        f"procs_running {sum(1 for t in tasks if t.block is None and not t.stopped)}\n",
        "procs_blocked 0\n",
        "softirq 0 0 0 0 0 0 0 0 0 0 0\n",
    ]
    return _lines(*out)


MEMINFO_FIELDS = (
    "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active",
    "Inactive", "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)",
    "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Dirty", "Writeback", "AnonPages",
    "Mapped", "Shmem", "KReclaimable", "Slab", "SReclaimable", "SUnreclaim", "KernelStack",
    "PageTables", "NFS_Unstable", "Bounce", "WritebackTmp", "CommitLimit", "Committed_AS",
    "VmallocTotal", "VmallocUsed", "VmallocChunk", "Percpu", "AnonHugePages",
    "ShmemHugePages", "ShmemPmdMapped", "FileHugePages", "FilePmdMapped",
    "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp", "Hugepagesize",
    "Hugetlb", "DirectMap4k", "DirectMap2M", "DirectMap1G",
)
_MEMINFO_COUNTS = ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")


def meminfo_text(kernel) -> bytes:
    """/proc/meminfo: MemTotal is the sandbox's memory (what sysinfo reports); what is
    used is what the sandbox's address spaces map."""
    total = getattr(kernel, "mem_total", DEFAULT_MEM_TOTAL)
    seen = set()
    anon = file = shmem = 0
    for t in kernel.tasks.values():
        mm = t.mm
        if t.dead or mm is None or id(mm) in seen:
            continue
        seen.add(id(mm))
        u = VmUsage(mm)
        anon, file, shmem = anon + u.rss_anon, file + u.rss_file, shmem + u.rss_shmem
    used = min(anon + shmem, total)
    cached = min(file + shmem, total - used)
    free = total - used - cached
    kb = dict.fromkeys(MEMINFO_FIELDS, 0)
    kb.update({
        "MemTotal": total, "MemFree": free, "MemAvailable": free + cached,
        "Cached": cached, "Active": anon + file, "Active(anon)": anon,
        "Active(file)": file, "AnonPages": anon, "Mapped": file, "Shmem": shmem,
        "CommitLimit": total, "Committed_AS": used, "VmallocTotal": 34359738367 * 1024,
        "Hugepagesize": 2 << 20, "DirectMap4k": total,
    })
    out = []
    for name in MEMINFO_FIELDS:
        label = f"{name + ':':<16}"
        if name in _MEMINFO_COUNTS:
            out.append(f"{label}{kb[name]:8d}\n")
        else:
            out.append(f"{label}{kb[name] // 1024:8d} kB\n")
    return _lines(*out)


def cpuinfo_text(fs: ProcFS) -> bytes:
    """The host's /proc/cpuinfo as given at construction, or a minimal one."""
    if fs.cpuinfo is not None:
        text = fs.cpuinfo
        return text if text.endswith(b"\n") or not text else text + b"\n"
    blocks = [f"processor\t: {i}\nvendor_id\t: unknown\nmodel name\t: unknown\n"
              f"flags\t\t:\n\n" for i in range(fs.ncpus)]
    return _lines(*blocks)


def version_text(kernel) -> bytes:
    version = bytes(getattr(kernel, "version", b"#1 SMP pysentry"))
    return b"Linux version %s (pysentry@pysentry) (pysentry) %s\n" % (bytes(kernel.release),
                                                                      version)


def filesystems_text() -> bytes:
    return _lines(*[f"{'nodev' if nodev else ''}\t{name}\n" for nodev, name in FILESYSTEMS])
