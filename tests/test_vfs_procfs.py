"""procfs: formats checked against the host's own /proc, contents against live kernel objects.

The sandbox side is built from the real classes (Kernel, ThreadGroup/Task, AddressSpace over
a real MemoryFile, the initial-stack builder, VirtualFS with tmpfs) with a platform that runs
nothing. Where a behaviour does not depend on the machine (limits layout, fdinfo flags, fd
link modes, comm and oom_score_adj write rules, sysctl constants), the host kernel is the
oracle; elsewhere the host's files give the field names, their order and their shapes.
"""
import ast
import errno
import os
import re
import resource
import stat
import struct
import subprocess
import sys
import time

import pytest

from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.kernel.kernel import Kernel
from pysentry.sentry.kernel.task import FSContext, Task
from pysentry.sentry.kernel.wait import Block
from pysentry.sentry.mm.addrspace import PROT_EXEC, PROT_READ, PROT_WRITE, AddressSpace
from pysentry.sentry.mm.memfile import MemoryFile
from pysentry.sentry.mm.stack import build_initial_stack
from pysentry.sentry.vfs import walk as walk_mod
from pysentry.sentry.vfs import vfs as vfs_mod
from pysentry.sentry.vfs.context import Creds, PathContext
from pysentry.sentry.vfs.fdtable import FDTable
from pysentry.sentry.vfs.mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, Location
from pysentry.sentry.vfs.pipe import make_pipe
from pysentry.sentry.vfs.procfs import ProcFS
from pysentry.sentry.vfs.stat import PROC_SUPER_MAGIC
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

STACK_TOP = 0x7ffffffde000
STACK_SIZE = 128 << 10
MAX_ADDR = 1 << 47
AT_NULL, AT_PAGESZ = 0, 6


def host(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


# == a kernel that runs nothing ===========================================================
class FakeAddressSpace:
    def map_memfile(self, addr, length, offset, prot):
        pass

    def unmap(self, addr, length):
        pass

    def protect(self, addr, length, prot):
        pass

    def release(self):
        pass


class FakeContext:
    def __init__(self):
        self.task = None
        self.cpu_ns = 0

    def release(self):
        pass

    def cpu_time_ns(self):
        return self.cpu_ns


class FakePlatform:
    max_user_address = MAX_ADDR

    def __init__(self):
        self.efd = os.eventfd(0, os.EFD_CLOEXEC)

    def event_fd(self):
        return self.efd

    def new_address_space(self, memfile):
        return FakeAddressSpace()

    def new_context(self, pas):
        return FakeContext()


class World:
    """One sandbox: a kernel, a name space with /proc mounted, and helpers to make
    processes the way execve and clone leave them."""

    def __init__(self, cpuinfo=None):
        self.memfile = MemoryFile(size=64 << 20)
        self.vfs = VirtualFS(TmpFS(mode=0o755))
        ctx = self.vfs.root_context()
        for d in (b"/proc", b"/tmp", b"/home"):
            self.vfs.mkdir(ctx, None, d, 0o777)
        self.platform = FakePlatform()
        self.kernel = Kernel(self.platform, self.memfile, self.vfs)
        self.procfs = ProcFS(self.kernel, cpuinfo=cpuinfo)
        self.vfs.mount(self.procfs, b"/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    def close(self):
        self.kernel.epoll.close()
        os.close(self.platform.efd)
        self.memfile.view.release()
        self.memfile.map.close()
        os.close(self.memfile.fd)

    def spawn(self, argv=(b"/bin/prog", b"one", b"two words"), env=(b"HOME=/", b"X=1"),
              parent=None, uid=0, gid=0, groups=()):
        k = self.kernel
        pid = k.alloc_pid()
        tg = k.new_group(parent, pid)
        if parent is None:
            k.new_session(tg)
        else:
            k.set_pgrp(tg, parent.pgrp.pgid, parent.session)
        tg.uid = tg.euid = tg.suid = tg.fsuid = uid
        tg.gid = tg.egid = tg.sgid = tg.fsgid = gid
        tg.groups = tuple(groups)
        mm = AddressSpace(self.memfile, FakeAddressSpace(), MAX_ADDR)
        mm.map_anon(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, False,
                    b"[stack]")
        st = build_initial_stack(STACK_TOP, list(argv), list(env), [(AT_PAGESZ, 4096)],
                                 argv[0], bytes(range(16)))
        mm.write(st.sp, st.data)
        mm.arg_start, mm.arg_end, mm.env_start, mm.env_end = (
            st.arg_start, st.arg_end, st.env_start, st.env_end)
        mm.auxv = b"".join(struct.pack("<QQ", a, b) for a, b in st.auxv)
        mm.exe_name = argv[0]
        fdt = FDTable()
        fdt.users = 1
        t = Task(k, pid, tg, FakeContext(), mm, fdt, FSContext(self.vfs.root, self.vfs.root))
        tg.tasks.append(t)
        tg.leader = t
        k.tasks[pid] = t
        t.comm = tg.comm = argv[0].rsplit(b"/", 1)[-1][:15]
        return t

    def add_thread(self, t):
        k = self.kernel
        tid = k.alloc_pid()
        t.mm.users += 1
        th = Task(k, tid, t.tg, FakeContext(), t.mm, t.fdtable, t.fs)
        t.fdtable.users += 1
        th.comm = b"worker"
        t.tg.tasks.append(th)
        k.tasks[tid] = th
        return th

    def ctx(self, t, task_known=True):
        """The PathContext of a syscall made by task t."""
        if task_known:
            return t.path_context()
        tg = t.tg
        creds = Creds(tg.uid, tg.gid, tg.euid, tg.egid, tg.fsuid, tg.fsgid, tuple(tg.groups))
        return PathContext(t.fs.root, t.fs.cwd, creds, t.fs.umask)

    def read(self, path, ctx=None, chunk=65536):
        ctx = ctx or self.vfs.root_context()
        f = self.vfs.openat(ctx, None, path, os.O_RDONLY)
        try:
            out = b""
            while True:
                buf = bytearray(chunk)
                n = f.read([memoryview(buf)])
                if not n:
                    return out
                out += bytes(buf[:n])
        finally:
            f.decref()

    def write(self, path, data, ctx=None):
        ctx = ctx or self.vfs.root_context()
        f = self.vfs.openat(ctx, None, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            return f.write([memoryview(data)])
        finally:
            f.decref()

    def listdir(self, path, ctx=None):
        ctx = ctx or self.vfs.root_context()
        f = self.vfs.openat(ctx, None, path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            names = []
            while True:
                ents = f.getdents(4096)
                if not ents:
                    return [n for n in names if n not in (b".", b"..")]
                names += [e.name for e in ents]
        finally:
            f.decref()


@pytest.fixture
def w():
    world = World()
    yield world
    world.close()


@pytest.fixture
def caller_aware():
    """The walk hands its PathContext to links that want it and jumps to a Location a
    magic link returns; readlink(2) hands the PathContext too. That wiring now lives in
    the VFS itself (walk.Walk.follow, VirtualFS.readlink): nothing to patch."""
    return None


def errno_of(fn, *args):
    with pytest.raises(SysError) as e:
        fn(*args)
    return e.value.errno


def split_stat(line: bytes):
    """(pid, comm, [fields 3..52]) of a stat line; comm may hold spaces and parens."""
    open_, close = line.index(b"("), line.rindex(b")")
    return int(line[:open_]), line[open_ + 1:close], line[close + 2:].split()


def status_fields(text: str):
    return [tuple(line.split(":", 1)) for line in text.rstrip("\n").split("\n")]


# == /proc/PID/stat =======================================================================
def test_stat_has_the_hosts_52_fields_in_the_hosts_shape(w):
    host_pid, _, host_rest = split_stat(host("/proc/self/stat", "rb"))
    shape = re.compile(rb"\d+ \(.*\) [A-Za-z]( -?\d+){%d}\n" % (len(host_rest) - 1), re.S)
    assert shape.fullmatch(host("/proc/self/stat", "rb"))
    t = w.spawn()
    mine = w.read(b"/proc/%d/stat" % t.tid)
    assert shape.fullmatch(mine), mine
    assert len(split_stat(mine)[2]) + 2 == len(host_rest) + 2 == 52


def test_stat_values_come_from_the_process(w):
    init = w.spawn(argv=[b"/sbin/init"])
    t = w.spawn(parent=init.tg)
    w.kernel.set_pgrp(t.tg, t.tid)
    pid, comm, f = split_stat(w.read(b"/proc/%d/stat" % t.tid))
    field = lambda n: int(f[n - 3])  # noqa: E731  (proc(5) numbers fields from 1)
    assert (pid, comm, f[0]) == (t.tid, b"prog", b"R")
    assert field(4) == init.tid and field(5) == t.tid and field(6) == init.tid
    assert field(7) == 0 and field(8) == -1                   # no controlling tty
    assert field(20) == 1                                     # num_threads
    assert field(23) == sum(v.end - v.start for v in t.mm.vmas)
    assert field(25) == 2**64 - 1                             # RLIMIT_RSS unlimited
    assert field(38) == 17                                    # exit_signal SIGCHLD
    mm = t.mm
    assert [field(n) for n in (48, 49, 50, 51)] == [mm.arg_start, mm.arg_end,
                                                    mm.env_start, mm.env_end]
    assert field(52) == 0
    # A thread's own stat: its tid and name, and no exit signal (CLONE_THREAD).
    th = w.add_thread(t)
    pid, comm, f = split_stat(w.read(b"/proc/%d/task/%d/stat" % (t.tid, th.tid)))
    assert (pid, comm, field(20), field(38)) == (th.tid, b"worker", 2, -1)


def test_stat_comm_with_parens_and_spaces_parses_by_the_last_paren(w):
    t = w.spawn()
    t.comm = b"a) (b c"
    pid, comm, rest = split_stat(w.read(b"/proc/%d/stat" % t.tid))
    assert (pid, comm, len(rest)) == (t.tid, b"a) (b c", 50)


def test_stat_and_status_state_follow_the_task(w):
    t = w.spawn()
    path = b"/proc/%d/stat" % t.tid
    t.block = Block(interruptible=True)
    assert split_stat(w.read(path))[2][0] == b"S"
    t.block = Block(interruptible=False)
    assert split_stat(w.read(path))[2][0] == b"D"
    t.block = None
    t.tg.stopped = True
    assert split_stat(w.read(path))[2][0] == b"T"
    assert b"State:\tT (stopped)\n" in w.read(b"/proc/%d/status" % t.tid)


# == /proc/PID/status =====================================================================
# Values that legitimately differ from the host: the name, the host's CPU mitigation and
# topology strings, and signal-queue counts.
NOT_SHAPE_COMPARED = {"Name", "Speculation_Store_Bypass", "SpeculationIndirectBranch",
                      "Cpus_allowed", "Cpus_allowed_list", "Mems_allowed", "Mems_allowed_list"}


def _shape(value: str) -> str:
    # Linux pads short numbers ("%8lu kB"): padding after the tab is not part of the shape.
    return re.sub(r"\t +", "\t", re.sub(r" +", " ", re.sub(r"\d+", "N", re.sub(r"[0-9a-f]{16}", "X", value))))


def test_status_fields_are_the_hosts_in_the_hosts_order_and_shape(w):
    host_fields = status_fields(host("/proc/self/status"))
    host_names = [n for n, _ in host_fields]
    t = w.spawn(uid=os.getuid(), gid=os.getgid(), groups=os.getgroups())
    text = w.read(b"/proc/%d/status" % t.tid).decode()
    mine = status_fields(text)
    assert all(re.fullmatch(r"[A-Za-z_]+", n) and v.startswith("\t") for n, v in mine), text
    names = [n for n, _ in mine]
    it = iter(host_names)
    assert all(n in it for n in names), "not a subsequence of the host's fields"
    # Everything Linux 6.1 prints is there (the host may print newer fields too).
    for must in ("Umask", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "Uid", "Gid",
                 "FDSize", "Groups", "NStgid", "NSpid", "NSpgid", "NSsid", "VmPeak", "VmSize",
                 "VmRSS", "RssAnon", "VmData", "VmStk", "VmExe", "VmLib", "VmSwap",
                 "Threads", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt",
                 "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
                 "Cpus_allowed_list", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
        assert must in names
    host_values = dict(host_fields)
    for name, value in mine:
        if name not in NOT_SHAPE_COMPARED:
            assert _shape(value) == _shape(host_values[name]), (name, value, host_values[name])


def test_status_values_come_from_the_process(w):
    t = w.spawn(uid=1000, gid=100, groups=(100, 27))
    t.fs.umask = 0o027
    t.sigmask = 1 << (10 - 1)                      # SIGUSR1 blocked
    t.tg.handlers.actions[13].handler = 1          # SIGPIPE ignored
    t.tg.handlers.actions[2].handler = 0x401000    # SIGINT caught
    w.add_thread(t)
    st = dict(status_fields(w.read(b"/proc/%d/status" % t.tid).decode()))
    assert st["Name"] == "\tprog" and st["Umask"] == "\t0027"
    assert st["Pid"] == st["Tgid"] == f"\t{t.tid}"
    assert st["Uid"] == "\t1000\t1000\t1000\t1000" and st["Gid"] == "\t100\t100\t100\t100"
    assert st["Groups"] == "\t100 27 "
    assert st["Threads"] == "\t2"
    assert st["SigBlk"] == "\t0000000000000200"
    assert st["SigIgn"] == "\t0000000000001000" and st["SigCgt"] == "\t0000000000000002"
    assert st["CapEff"] == "\t0000000000000000"
    assert int(st["VmSize"].split()[0]) * 1024 == sum(v.end - v.start for v in t.mm.vmas)
    assert int(st["VmStk"].split()[0]) == STACK_SIZE // 1024


def test_status_escapes_a_newline_in_the_name(w):
    t = w.spawn()
    t.comm = b"a\nb\\c"
    assert b"Name:\ta\\nb\\\\c\n" in w.read(b"/proc/%d/status" % t.tid)
    t.comm = b"\xff\xfe x"                       # not UTF-8: passed through as bytes
    assert b"Name:\t\xff\xfe x\n" in w.read(b"/proc/%d/status" % t.tid)
    assert split_stat(w.read(b"/proc/%d/stat" % t.tid))[1] == b"\xff\xfe x"


# == memory-derived files =================================================================
def test_cmdline_environ_auxv(w):
    t = w.spawn(argv=[b"/bin/prog", b"one", b"two words"], env=[b"HOME=/", b"X=1"])
    assert w.read(b"/proc/%d/cmdline" % t.tid) == b"/bin/prog\0one\0two words\0"
    assert w.read(b"/proc/%d/environ" % t.tid) == b"HOME=/\0X=1\0"
    auxv = w.read(b"/proc/%d/auxv" % t.tid)
    host_auxv = host("/proc/self/auxv", "rb")
    for blob in (auxv, host_auxv):
        pairs = [struct.unpack_from("<QQ", blob, i) for i in range(0, len(blob), 16)]
        assert len(blob) % 16 == 0 and pairs[-1] == (AT_NULL, 0)
        assert (AT_PAGESZ, 4096) in pairs


def test_cmdline_after_setproctitle_is_the_string_at_arg_start(w):
    t = w.spawn(argv=[b"/bin/prog", b"one"], env=[b"HOME=/"])
    mm = t.mm                 # argv area: 14 bytes, then 7 bytes of environment
    title = b"prog: serving x"          # longer than argv: runs into environ
    mm.write(mm.arg_start, title + b"\0")
    assert mm.read(mm.arg_end - 1, 1) != b"\0"
    assert w.read(b"/proc/%d/cmdline" % t.tid) == title + b"\0"
    # Never past the end of the environment strings.
    mm.write(mm.arg_start, b"a much longer process title\0")
    assert w.read(b"/proc/%d/cmdline" % t.tid) == b"a much longer process"


def test_maps_and_statm(w):
    t = w.spawn()
    t.mm.map_anon(0x400000, 0x3000, PROT_READ | PROT_EXEC, False, b"")
    t.mm.vmas[0].file, t.mm.vmas[0].name = True, b"/bin/prog"
    t.mm.vmas[0].dev, t.mm.vmas[0].ino = os.makedev(254, 1), 1234
    t.mm.map_anon(0x600000, 0x1000, PROT_READ | PROT_WRITE, False, b"")
    maps = w.read(b"/proc/%d/maps" % t.tid)
    # The host's layout: the header ends with a space; a name starts at column 73.
    line = re.compile(rb"([0-9a-f]+-[0-9a-f]+ [r-][w-][x-][ps] [0-9a-f]{8} [0-9a-f]{2}:[0-9a-f]{2}"
                      rb" \d+ )( *)(.*)")
    for text in (host("/proc/self/maps", "rb"), maps):
        for x in text.splitlines():
            m = line.fullmatch(x)
            assert m, x
            assert not m.group(3) and not m.group(2) or m.start(3) == 73, x
    assert maps.splitlines() == [
        b"00400000-00403000 r-xp 00000000 fe:01 1234".ljust(73) + b"/bin/prog",
        b"00600000-00601000 rw-p 00000000 00:00 0 ",
        (b"%08x-%08x rw-p 00000000 00:00 0" % (STACK_TOP - STACK_SIZE, STACK_TOP)).ljust(73)
        + b"[stack]",
        b"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0".ljust(73) + b"[vsyscall]"]
    # The vsyscall line is the host's too (this host runs vsyscall=xonly).
    if b"[vsyscall]" in host("/proc/self/maps", "rb"):
        assert maps.splitlines()[-1] in host("/proc/self/maps", "rb").splitlines()
    host_statm = host("/proc/self/statm", "rb")
    statm = w.read(b"/proc/%d/statm" % t.tid)
    assert re.fullmatch(rb"\d+( \d+){6}\n", host_statm) and re.fullmatch(rb"\d+( \d+){6}\n", statm)
    assert int(statm.split()[0]) == (STACK_SIZE + 0x3000 + 0x1000) // 4096


def test_limits_are_byte_for_byte_the_hosts_for_the_same_rlimits(w):
    t = w.spawn()
    for res in range(16):
        soft, hard = resource.getrlimit(res)
        inf = 2**64 - 1
        t.tg.rlimits[res] = (inf if soft == resource.RLIM_INFINITY else soft,
                             inf if hard == resource.RLIM_INFINITY else hard)
    # Read the host's limits of this very process, after taking its rlimits.
    assert w.read(b"/proc/%d/limits" % t.tid) == host("/proc/self/limits", "rb")


# == fd, fdinfo ===========================================================================
def test_fd_links_name_files_pipes_and_deleted_files(w):
    t = w.spawn()
    ctx = w.ctx(t)
    f = w.vfs.openat(ctx, None, b"/tmp/data", os.O_CREAT | os.O_RDWR, 0o644)
    gone = w.vfs.openat(ctx, None, b"/tmp/gone", os.O_CREAT | os.O_WRONLY, 0o644)
    r, wr = make_pipe()
    fds = [t.fdtable.install(d) for d in (f, gone, r, wr)]
    for d in (f, gone, r, wr):
        d.decref()
    w.vfs.unlink(ctx, None, b"/tmp/gone")
    base = b"/proc/%d/fd" % t.tid
    assert w.listdir(base) == [b"%d" % fd for fd in fds]
    links = [w.vfs.readlink(ctx, None, b"%s/%d" % (base, fd)) for fd in fds]
    assert links[:2] == [b"/tmp/data", b"/tmp/gone (deleted)"]
    assert links[2] == links[3] == b"pipe:[%d]" % r.inode.ino
    t.fdtable.close(fds[0])
    assert errno_of(w.vfs.readlink, ctx, None, b"%s/%d" % (base, fds[0])) == errno.ENOENT
    assert w.listdir(base) == [b"%d" % fd for fd in fds[1:]]


def test_fd_link_modes_match_the_hosts(w, tmp_path):
    t = w.spawn()
    ctx = w.ctx(t)
    hostfile = tmp_path / "f"
    hostfile.write_bytes(b"x")
    for acc in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
        hfd = os.open(hostfile, acc)
        try:
            want = os.lstat(f"/proc/self/fd/{hfd}")
        finally:
            os.close(hfd)
        d = w.vfs.openat(ctx, None, b"/tmp/f", acc | os.O_CREAT, 0o644)
        fd = t.fdtable.install(d)
        d.decref()
        got = w.vfs.stat(ctx, None, b"/proc/%d/fd/%d" % (t.tid, fd), follow=False)
        assert (got.mode, got.size, got.blocks) == (want.st_mode, want.st_size,
                                                    want.st_blocks), acc


def test_fdinfo_matches_the_host_for_the_same_open(w, tmp_path):
    t = w.spawn()
    ctx = w.ctx(t)
    hostfile = tmp_path / "f"
    hostfile.write_bytes(b"0123456789")
    flags = os.O_RDWR | os.O_APPEND
    hfd = os.open(hostfile, flags)           # Python adds O_CLOEXEC
    try:
        os.lseek(hfd, 4, os.SEEK_SET)
        want = host(f"/proc/self/fdinfo/{hfd}")
    finally:
        os.close(hfd)
    w.vfs.openat(ctx, None, b"/tmp/f", os.O_CREAT | os.O_WRONLY, 0o644).decref()
    d = w.vfs.openat(ctx, None, b"/tmp/f", flags)
    d.write([memoryview(b"0123456789")])
    d.seek(4, os.SEEK_SET)
    fd = t.fdtable.install(d, cloexec=True)
    d.decref()
    got = w.read(b"/proc/%d/fdinfo/%d" % (t.tid, fd)).decode()
    keys = lambda s: [line.split(":")[0] for line in s.splitlines()]  # noqa: E731
    assert keys(got) == keys(want)[:4] == ["pos", "flags", "mnt_id", "ino"]
    assert got.splitlines()[:2] == want.splitlines()[:2]           # pos and flags
    assert got.splitlines()[3] == f"ino:\t{d.inode.ino}"


def test_fd_of_another_uid_is_refused(w):
    root = w.spawn()
    user = w.spawn(uid=1000, gid=1000)
    uctx = w.ctx(user)
    assert errno_of(w.listdir, b"/proc/%d/fd" % root.tid, uctx) == errno.EACCES
    assert errno_of(w.read, b"/proc/%d/environ" % root.tid, uctx) == errno.EACCES
    assert w.read(b"/proc/%d/environ" % user.tid, uctx) == b"HOME=/\0X=1\0"
    assert w.read(b"/proc/%d/cmdline" % root.tid, uctx).startswith(b"/bin/prog\0")


# == the caller: self, thread-self and magic links ========================================
def test_self_and_thread_self_name_the_caller(w, caller_aware):
    a, b = w.spawn(), w.spawn()
    th = w.add_thread(b)
    assert w.vfs.readlink(w.ctx(a), None, b"/proc/self") == b"%d" % a.tid
    assert w.vfs.readlink(w.ctx(th), None, b"/proc/thread-self") == b"%d/task/%d" % (b.tid, th.tid)
    st = dict(status_fields(w.read(b"/proc/self/status", w.ctx(b)).decode()))
    assert st["Pid"] == f"\t{b.tid}"
    st = dict(status_fields(w.read(b"/proc/thread-self/status", w.ctx(th)).decode()))
    assert (st["Pid"], st["Tgid"], st["Name"]) == (f"\t{th.tid}", f"\t{b.tid}", "\tworker")
    # Without a caller (the sentry's own walks), self names nobody.
    assert errno_of(w.vfs.readlink, w.ctx(a, task_known=False), None, b"/proc/self") == errno.ENOENT
    assert errno_of(w.read, b"/proc/self/stat") == errno.ENOENT


def test_proc_mounts_is_the_callers_view(w, caller_aware):
    t = w.spawn()
    w.vfs.mkdir(w.vfs.root_context(), None, b"/tmp/a b", 0o755)
    w.vfs.mount(TmpFS(), b"/tmp/a b")
    assert w.vfs.readlink(w.ctx(t), None, b"/proc/mounts") == b"self/mounts"
    text = w.read(b"/proc/mounts", w.ctx(t))
    shape = re.compile(rb"\S+ /\S* \S+ \S+ 0 0")
    assert all(shape.fullmatch(x) for x in host("/proc/mounts", "rb").splitlines())
    lines = text.splitlines()
    assert all(shape.fullmatch(x) for x in lines), text
    assert b"proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0" in lines
    assert lines[-1].startswith(b"tmpfs /tmp/a\\040b tmpfs rw,")
    # A chrooted process sees only the mounts under its root, relative to it.
    t.fs.root = t.fs.cwd = w.vfs.resolve(w.ctx(t), None, b"/tmp")
    assert [x.split()[1] for x in w.read(b"/proc/%d/mounts" % t.tid).splitlines()] == [b"/a\\040b"]


def test_magic_links_reach_the_very_file(w, caller_aware):
    t = w.spawn()
    ctx = w.ctx(t)
    w.vfs.mkdir(ctx, None, b"/home/u", 0o755)
    t.fs.cwd = w.vfs.resolve(ctx, None, b"/home/u")
    ctx = w.ctx(t)
    w.write(b"/home/u/note", b"in cwd", ctx)
    assert w.vfs.readlink(ctx, None, b"/proc/self/cwd") == b"/home/u"
    assert w.read(b"/proc/self/cwd/note", ctx) == b"in cwd"
    # An unlinked file stays reachable through its fd, as on Linux.
    d = w.vfs.openat(ctx, None, b"/home/u/note", os.O_RDONLY)
    fd = t.fdtable.install(d)
    d.decref()
    w.vfs.unlink(ctx, None, b"/home/u/note")
    assert w.vfs.readlink(ctx, None, b"/proc/self/fd/%d" % fd) == b"/home/u/note (deleted)"
    assert w.read(b"/proc/self/fd/%d" % fd, ctx) == b"in cwd"
    # A chrooted caller sees paths from its root (/proc bound into the new root).
    w.vfs.mkdir(ctx, None, b"/home/proc", 0o555)
    w.vfs.bind_mount(w.vfs.resolve(ctx, None, b"/proc"), b"/home/proc")
    t.fs.root = w.vfs.resolve(ctx, None, b"/home")
    assert w.vfs.readlink(w.ctx(t), None, b"/proc/%d/cwd" % t.tid) == b"/u"
    assert w.vfs.readlink(w.ctx(t), None, b"/proc/%d/exe" % t.tid) == b"/bin/prog"


def test_magic_links_of_another_user_are_refused(w, caller_aware):
    root = w.spawn()
    user = w.spawn(uid=1000, gid=1000)
    for name in (b"cwd", b"root", b"exe"):
        path = b"/proc/%d/%s" % (root.tid, name)
        assert errno_of(w.vfs.readlink, w.ctx(user), None, path) == errno.EACCES
        assert w.vfs.readlink(w.ctx(root), None, path)
    assert w.vfs.readlink(w.ctx(root), None, b"/proc/%d/cwd" % user.tid) == b"/"


# == processes come and go ================================================================
def test_root_lists_processes_in_order_and_hides_threads(w):
    a, b = w.spawn(), w.spawn()
    th = w.add_thread(a)
    names = w.listdir(b"/proc")
    assert names[:11] == [b"sys", b"stat", b"mounts", b"uptime", b"cpuinfo", b"loadavg",
                          b"meminfo", b"version", b"filesystems", b"self", b"thread-self"]
    assert names[11:] == [b"%d" % a.tid, b"%d" % b.tid]
    assert b"%d" % th.tid not in names
    # ... yet /proc/TID resolves, describing that thread.
    pid, comm, _ = split_stat(w.read(b"/proc/%d/stat" % th.tid))
    assert (pid, comm) == (th.tid, b"worker")
    assert w.listdir(b"/proc/%d/task" % a.tid) == [b"%d" % a.tid, b"%d" % th.tid]
    for name in (b"00%d" % a.tid, b"+%d" % a.tid, b"99999", b"nope"):
        assert errno_of(w.vfs.stat, w.vfs.root_context(), None, b"/proc/" + name) == errno.ENOENT


def test_listing_position_survives_processes_exiting(w):
    ts = [w.spawn() for _ in range(6)]
    ctx = w.vfs.root_context()
    f = w.vfs.openat(ctx, None, b"/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = []
        while len(first) < 15:
            first += [e.name for e in f.getdents(40)]
        w.kernel.exit_group(ts[-1].tg, 0)          # parentless: reaped at once
        rest = []
        while True:
            ents = f.getdents(4096)
            if not ents:
                break
            rest += [e.name for e in ents]
    finally:
        f.decref()
    seen = first + rest
    assert len(seen) == len(set(seen))
    assert [b"%d" % t.tid for t in ts[:-1]] == [n for n in seen if n.isdigit()]


def test_exited_and_reused_pids(w):
    init = w.spawn()
    t = w.spawn(parent=init.tg)
    ctx = w.vfs.root_context()
    path = b"/proc/%d/status" % t.tid
    f = w.vfs.openat(ctx, None, path, os.O_RDONLY)
    w.kernel.exit_group(t.tg, 3 << 8)
    # A zombie: still listed, state Z, no memory.
    pid, comm, rest = split_stat(w.read(b"/proc/%d/stat" % t.tid))
    assert rest[0] == b"Z" and int(rest[52 - 3]) == 3 << 8 and int(rest[23 - 3]) == 0
    assert b"VmSize" not in w.read(path)
    assert w.read(b"/proc/%d/cmdline" % t.tid) == b""
    assert w.listdir(b"/proc/%d/fd" % t.tid) == []
    w.kernel._reap(t.tg)
    # Reaped: the cached dentry is dropped, an open file reports ESRCH.
    assert errno_of(w.vfs.stat, ctx, None, path) == errno.ENOENT
    assert errno_of(f.read, [memoryview(bytearray(100))], 0) == errno.ESRCH
    f.decref()
    # The pid comes back for another process: the new one is shown.
    w.kernel._next_pid = t.tid
    again = w.spawn(argv=[b"/bin/other"])
    assert again.tid == t.tid
    assert b"Name:\tother\n" in w.read(path)


def test_owner_follows_the_credentials(w):
    t = w.spawn()
    ctx = w.vfs.root_context()
    path = b"/proc/%d" % t.tid
    assert w.vfs.stat(ctx, None, path).uid == 0
    t.tg.uid = t.tg.euid = t.tg.suid = t.tg.fsuid = 1234
    st = w.vfs.stat(ctx, None, path)
    assert (st.uid, stat.S_IMODE(st.mode), stat.S_ISDIR(st.mode)) == (1234, 0o555, True)
    assert w.vfs.stat(ctx, None, path + b"/environ").uid == 1234


# == writable files =======================================================================
def _native_writes(path, values):
    """Each value written natively to /proc/self/<path> by a fresh process: ("ok", n,
    what reads back) or ("err", errno)."""
    prog = (
        "import os, sys, ast\n"
        "out = []\n"
        "for v in ast.literal_eval(sys.argv[2]):\n"
        "    fd = os.open('/proc/self/' + sys.argv[1], os.O_WRONLY)\n"
        "    try:\n"
        "        n = os.write(fd, v)\n"
        "        out.append(('ok', n, open('/proc/self/' + sys.argv[1], 'rb').read()))\n"
        "    except OSError as e:\n"
        "        out.append(('err', e.errno))\n"
        "    os.close(fd)\n"
        "print(repr(out))\n")
    r = subprocess.run([sys.executable, "-c", prog, path, repr(values)], capture_output=True,
                       check=True, timeout=60)
    return ast.literal_eval(r.stdout.decode())


def _sandbox_writes(w, t, name, values):
    out = []
    path = b"/proc/%d/%s" % (t.tid, name.encode())
    for v in values:
        try:
            n = w.write(path, v)
            out.append(("ok", n, w.read(path)))
        except SysError as e:
            out.append(("err", e.errno))
    return out


# Values whose outcome does not depend on capabilities (none goes below 0).
OOM_VALUES = [b"5\n", b"1001", b"abc", b"0x10", b"010", b"+3", b"1_0", b"", b"5\n6", b"\n",
              b"99999999999", b"1000", b"0", b"0X1f", b"08", b"\t5", b"5 5", b"-0"]


def test_oom_score_adj_writes_as_the_host_does(w):
    t = w.spawn()
    assert _sandbox_writes(w, t, "oom_score_adj", OOM_VALUES) == \
        _native_writes("oom_score_adj", OOM_VALUES)


def test_oom_score_adj_floor_needs_privilege(w):
    user = w.spawn(uid=1000, gid=1000)
    assert _sandbox_writes(w, user, "oom_score_adj", [b"-5", b"7"]) == \
        [("err", errno.EACCES), ("ok", 1, b"7\n")]
    root = w.spawn()
    assert _sandbox_writes(w, root, "oom_score_adj", [b"-500"]) == [("ok", 4, b"-500\n")]


COMM_VALUES = [b"foo\n", b"averyveryverylongname", b"a\0b", b"", b"x"]


def test_comm_writes_as_the_host_does(w):
    t = w.spawn()
    assert _sandbox_writes(w, t, "comm", COMM_VALUES) == _native_writes("comm", COMM_VALUES)
    assert t.comm == t.tg.comm == b"x"


LOGINUID_VALUES = [b"1000", b"abc", b"4294967295", b"7\n", b" 8", b"-1", b"4294967296",
                   b"0x10", b""]


def test_loginuid_reads_and_writes_as_the_host_does(w):
    t = w.spawn()
    assert w.read(b"/proc/%d/loginuid" % t.tid) == b"4294967295"      # unset, no newline
    assert _sandbox_writes(w, t, "loginuid", LOGINUID_VALUES) == \
        _native_writes("loginuid", LOGINUID_VALUES)
    user = w.spawn(uid=1000, gid=1000)
    assert _sandbox_writes(w, user, "loginuid", [b"5"]) == [("err", errno.EPERM)]


def test_read_only_files_refuse_writes(w):
    t = w.spawn()
    for name in (b"stat", b"status", b"maps", b"limits"):
        assert errno_of(w.write, b"/proc/%d/%s" % (t.tid, name), b"1") == errno.EINVAL
    assert errno_of(w.vfs.chmod, w.vfs.root_context(), None, b"/proc/%d/comm" % t.tid,
                    0o666) == errno.EPERM


def test_snapshot_per_open_regenerated_at_offset_zero(w):
    t = w.spawn()
    f = w.vfs.openat(w.vfs.root_context(), None, b"/proc/%d/comm" % t.tid, os.O_RDONLY)
    buf = bytearray(3)
    assert f.read([memoryview(buf)]) == 3 and bytes(buf) == b"pro"
    t.comm = b"renamed"
    rest = bytearray(10)
    assert bytes(rest[:f.read([memoryview(rest)])]) == b"g\n"      # the same version
    assert f.seek(0, os.SEEK_SET) == 0
    assert bytes(rest[:f.read([memoryview(rest)])]) == b"renamed\n"
    assert errno_of(f.seek, 0, os.SEEK_END) == errno.EINVAL
    f.decref()


# == system-wide files ====================================================================
def test_sysctl_values_equal_the_hosts_where_they_are_kernel_constants(w):
    for rel in (b"kernel/ostype", b"kernel/ngroups_max", b"kernel/cap_last_cap",
                b"fs/pipe-max-size", b"vm/overcommit_memory"):
        assert w.read(b"/proc/sys/" + rel) == host(b"/proc/sys/" + rel, "rb"), rel
    assert w.read(b"/proc/sys/kernel/osrelease") == w.kernel.release + b"\n"
    assert w.read(b"/proc/sys/kernel/pid_max") == b"4194304\n"


def test_hostname_is_writable_by_root_only(w):
    user = w.spawn(uid=1000, gid=1000)
    assert w.read(b"/proc/sys/kernel/hostname") == b"pysentry\n"
    w.write(b"/proc/sys/kernel/hostname", b"box1\n")
    assert w.kernel.hostname == b"box1"
    assert w.read(b"/proc/sys/kernel/hostname", w.ctx(user)) == b"box1\n"
    assert errno_of(w.write, b"/proc/sys/kernel/hostname", b"evil", w.ctx(user)) == errno.EACCES
    w.write(b"/proc/sys/vm/overcommit_memory", b"2\n")
    assert w.read(b"/proc/sys/vm/overcommit_memory") == b"2\n"
    assert errno_of(w.write, b"/proc/sys/vm/overcommit_memory", b"3") == errno.EINVAL


def test_meminfo_fields_follow_the_hosts(w):
    w.spawn()
    host_lines = host("/proc/meminfo").splitlines()
    mine = w.read(b"/proc/meminfo").decode().splitlines()
    line = re.compile(r"(\S+:) +(\d+)( kB)?")
    host_units = {}
    for x in host_lines:
        m = line.fullmatch(x)
        assert m, x
        host_units[m.group(1)] = m.group(3)
        if len(m.group(2)) <= 8:
            assert m.end(2) == 24, x           # "%-16s%8lu"
    it = iter(host_units)
    for x in mine:
        m = line.fullmatch(x)
        assert m and m.group(1) in it, x       # a subsequence of the host's fields
        assert m.group(3) == host_units[m.group(1)], x
        assert len(m.group(2)) > 8 or m.end(2) == 24, x
    values = {x.split(":")[0]: int(x.split()[1]) for x in mine}
    assert values["MemTotal"] == 4 << 20 and 0 < values["MemFree"] <= values["MemTotal"]


def test_stat_uptime_loadavg_version_filesystems(w):
    a = w.spawn()
    host_stat = host("/proc/stat").splitlines()
    mine = w.read(b"/proc/stat").decode().splitlines()
    host_keys = [x.split()[0] for x in host_stat]
    it = iter(host_keys)
    assert all(x.split()[0] in it for x in mine)
    ncpu = os.cpu_count()
    assert [x.split()[0] for x in mine[:ncpu + 1]] == ["cpu"] + [f"cpu{i}" for i in range(ncpu)]
    assert {len(x.split()) for x in mine[:ncpu + 1]} == {len(host_stat[0].split())}
    btime = int(dict(x.split() for x in mine if x.startswith("btime"))["btime"])
    assert abs(btime - (time.time() - (time.monotonic() - w.kernel.boot_time))) < 2
    for name, shape in ((b"uptime", rb"\d+\.\d\d \d+\.\d\d\n"),
                        (b"loadavg", rb"\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+\n")):
        assert re.fullmatch(shape, host(b"/proc/" + name, "rb"))
        assert re.fullmatch(shape, w.read(b"/proc/" + name)), name
    assert w.read(b"/proc/loadavg").split()[3:] == [b"1/1", b"%d" % a.tid]
    assert w.read(b"/proc/version").startswith(b"Linux version " + w.kernel.release + b" (")
    assert re.match(rb"Linux version \S+ \(", host("/proc/version", "rb"))
    fs_line = re.compile(rb"(nodev)?\t\S+")
    assert all(fs_line.fullmatch(x) for x in host("/proc/filesystems", "rb").splitlines())
    mine = w.read(b"/proc/filesystems").splitlines()
    assert all(fs_line.fullmatch(x) for x in mine)
    assert b"nodev\tproc" in mine and b"nodev\ttmpfs" in mine


def test_cpuinfo_is_the_one_given():
    given = host("/proc/cpuinfo", "rb")
    world = World(cpuinfo=given)
    try:
        assert world.read(b"/proc/cpuinfo") == given
        cpu_lines = [x for x in world.read(b"/proc/stat").splitlines() if x.startswith(b"cpu")]
        assert len(cpu_lines) == 1 + given.count(b"processor\t:")
    finally:
        world.close()


def test_statfs_and_directory_shapes(w):
    t = w.spawn()
    ctx = w.vfs.root_context()
    assert w.vfs.statfs(ctx, None, b"/proc/%d" % t.tid).fstype_magic == PROC_SUPER_MAGIC
    assert w.vfs.stat(ctx, None, b"/proc").ino == 1
    modes = {name: stat.S_IMODE(w.vfs.stat(ctx, None, b"/proc/%d/%s" % (t.tid, name),
                                           follow=False).mode)
             for name in (b"fd", b"fdinfo", b"environ", b"auxv", b"stat", b"comm",
                          b"oom_score_adj", b"cwd")}
    hostmodes = {name: stat.S_IMODE(os.lstat(b"/proc/self/" + name).st_mode) for name in modes}
    assert modes == hostmodes
    # A directory's link count is 2 + its subdirectories, here one per thread.
    assert os.stat("/proc/self/task").st_nlink == 2 + len(os.listdir("/proc/self/task"))
    w.add_thread(t)
    assert w.vfs.stat(ctx, None, b"/proc/%d/task" % t.tid).nlink == 2 + 2
