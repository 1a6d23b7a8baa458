"""Tasks (threads), thread groups (processes), process groups and sessions."""
from . import caps
from .signals import PendingSet, SignalHandlers
from .wait import WaitQueue

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_NOFILE, RLIMIT_STACK = 7, 3
DEFAULT_RLIMITS = {
    0: (RLIM_INFINITY, RLIM_INFINITY),       # CPU
    1: (RLIM_INFINITY, RLIM_INFINITY),       # FSIZE
    2: (RLIM_INFINITY, RLIM_INFINITY),       # DATA
    3: (8 << 20, RLIM_INFINITY),             # STACK
    4: (0, RLIM_INFINITY),                   # CORE
    5: (RLIM_INFINITY, RLIM_INFINITY),       # RSS
    6: (63432, 63432),                       # NPROC
    7: (1024, 4096),                         # NOFILE
    8: (8 << 20, 8 << 20),                   # MEMLOCK
    9: (RLIM_INFINITY, RLIM_INFINITY),       # AS
    10: (RLIM_INFINITY, RLIM_INFINITY),      # LOCKS
    11: (63432, 63432),                      # SIGPENDING
    12: (819200, 819200),                    # MSGQUEUE
    13: (0, 0),                              # NICE
    14: (0, 0),                              # RTPRIO
    15: (RLIM_INFINITY, RLIM_INFINITY),      # RTTIME
}


class Session:
    def __init__(self, sid):
        self.sid = sid
        self.tty = None          # controlling terminal (a tty object with .fg_pgid)


class ProcessGroup:
    def __init__(self, pgid, session):
        self.pgid = pgid
        self.session = session
        self.members: set = set()


class FSContext:
    """cwd, root and umask; shared between tasks cloned with CLONE_FS."""

    def __init__(self, root, cwd, umask=0o022):
        self.root, self.cwd, self.umask = root, cwd, umask

    def copy(self):
        return FSContext(self.root, self.cwd, self.umask)


class ThreadGroup:
    def __init__(self, kernel, tgid, parent):
        self.kernel = kernel
        self.tgid = tgid
        self.parent: "ThreadGroup | None" = parent
        self.children: set = set()
        self.tasks: list = []
        self.leader = None
        self.handlers = SignalHandlers()
        self.pending = PendingSet()          # process-directed signals
        self.pgrp: ProcessGroup | None = None
        self.rlimits = dict(DEFAULT_RLIMITS)
        self.child_wq = WaitQueue()          # wait4 sleepers in this group
        self.exit_status = None              # wait status once a zombie
        self.exiting = False
        self.group_exit_status = None        # set by exit_group / fatal signal
        self.stopped = False
        self.stop_report = None              # pending wait report: ("stop", sig) / ("cont",)
        self.exit_signal = 17
        self.uid = self.gid = self.euid = self.egid = 0
        self.suid = self.sgid = 0
        self.fsuid = self.fsgid = 0          # follow euid/egid but for setfsuid/setfsgid
        self.groups = ()
        self.start_time = 0.0
        self.dead_cpu_ns = 0                 # CPU time of exited threads (kernel/usage.py)
        self.child_cpu_ns = 0                # CPU time of reaped children, theirs included
        self.maxrss_kib = self.child_maxrss_kib = 0   # peak memory, own and children's
        self.subreaper = False
        self.vfork_done = None
        self.itimer_real = None
        self.comm = b""

    @property
    def session(self):
        return self.pgrp.session

    def alive_tasks(self):
        return [t for t in self.tasks if not t.dead]


class Task:
    def __init__(self, kernel, tid, tg, ctx, mm, fdtable, fs):
        self.kernel = kernel
        self.tid = tid
        self.tg: ThreadGroup = tg
        self.ctx = ctx              # platform context; ctx.regs are this task's registers
        ctx.task = self
        self.cpu_ns_before = 0      # CPU time of contexts an exec replaced (kernel/usage.py)
        self.mm = mm
        self.fdtable = fdtable
        self.fs = fs
        self.sigmask = 0
        self.pending = PendingSet()   # thread-directed signals
        self.altstack = (0, 2, 0)     # (sp, flags, size); SS_DISABLE
        self.saved_sigmask = None     # rt_sigsuspend / ppoll restore this at return
        self.clear_child_tid = 0
        self.robust_list = 0
        self.gen = None               # generator of a syscall in progress
        self.block = None             # the Block it is parked on
        self.block_token = 0
        self.dead = False
        self.in_app = False           # its context is running application code
        self.stopped = False          # parked by a group stop
        self.syscall_nr = -1
        self.restart = None           # a restart block function for restart_syscall
        self.comm = b""
        self.vfork_child_done = None
        self.exit_code = 0

    # Wait-queue waiter protocol.
    def notify(self, events):
        self.kernel.wake(self, "woken")

    def __repr__(self):
        return f"<Task {self.tid} tg={self.tg.tgid}>"


def _path_context(self):
    from ..vfs.context import Creds, PathContext
    tg = self.tg
    creds = Creds(tg.uid, tg.gid, tg.euid, tg.egid, tg.fsuid, tg.fsgid, tuple(tg.groups),
                  caps.of(self).effective)
    return PathContext(self.fs.root, self.fs.cwd, creds, self.fs.umask, self)


def _fdtable_release(self):
    tab = self.fdtable
    tab.users = getattr(tab, "users", 1) - 1
    if tab.users <= 0:
        tab.close_all()


Task.path_context = _path_context
Task.fdtable_release = _fdtable_release


# The task's copy helpers: the one way handlers and files reach user memory.
Task.copy_in = lambda self, addr, n: self.mm.read(addr, n)
Task.copy_out = lambda self, addr, data: self.mm.write(addr, data)
Task.copy_in_string = lambda self, addr, limit=4096: self.mm.read_cstring(addr, limit)
