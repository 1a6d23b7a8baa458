"""Linux capabilities: their numbers, a thread's five sets, and the rules of
security/commoncap.c that change them (capset, the set*uid fix-ups, execve).

Every privilege check in the sentry asks `has_cap(t, CAP_X)` (or `Creds.has_cap` in
the VFS) for one capability in the effective set of the calling thread. The securebits
are fixed at 0 except SECBIT_KEEP_CAPS (prctl PR_SET_KEEPCAPS). File capabilities are
not honoured: no exec gains capabilities from a file's security.capability xattr, and
pysentry's execve does not apply set-user-ID bits, so an exec keeps its uids.
"""
import errno

from .errors import SysError
from .record import Record

CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_FOWNER = 3
CAP_FSETID = 4
CAP_KILL = 5
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETPCAP = 8
CAP_LINUX_IMMUTABLE = 9
CAP_NET_BIND_SERVICE = 10
CAP_NET_BROADCAST = 11
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_IPC_LOCK = 14
CAP_IPC_OWNER = 15
CAP_SYS_MODULE = 16
CAP_SYS_RAWIO = 17
CAP_SYS_CHROOT = 18
CAP_SYS_PTRACE = 19
CAP_SYS_PACCT = 20
CAP_SYS_ADMIN = 21
CAP_SYS_BOOT = 22
CAP_SYS_NICE = 23
CAP_SYS_RESOURCE = 24
CAP_SYS_TIME = 25
CAP_SYS_TTY_CONFIG = 26
CAP_MKNOD = 27
CAP_LEASE = 28
CAP_AUDIT_WRITE = 29
CAP_AUDIT_CONTROL = 30
CAP_SETFCAP = 31
CAP_MAC_OVERRIDE = 32
CAP_MAC_ADMIN = 33
CAP_SYSLOG = 34
CAP_WAKE_ALARM = 35
CAP_BLOCK_SUSPEND = 36
CAP_AUDIT_READ = 37
CAP_PERFMON = 38
CAP_BPF = 39
CAP_CHECKPOINT_RESTORE = 40
CAP_LAST_CAP = CAP_CHECKPOINT_RESTORE

ALL_CAPS = (1 << (CAP_LAST_CAP + 1)) - 1
# The capabilities that follow the fs uid (CAP_FS_SET of the kernel): they leave the
# effective set when fsuid leaves 0 and come back from permitted when it returns.
FS_CAPS = sum(1 << c for c in (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
                               CAP_FOWNER, CAP_FSETID, CAP_LINUX_IMMUTABLE,
                               CAP_MAC_OVERRIDE, CAP_MKNOD))
SECBIT_KEEP_CAPS = 1 << 4


def valid_cap(cap: int) -> bool:
    return 0 <= cap <= CAP_LAST_CAP


class CapSets(Record):
    """One thread's capabilities, each set a bit mask of CAP_* numbers. Mutable: the
    rules below change a thread's own record; fork/clone gets a copy."""
    __slots__ = ("permitted", "effective", "inheritable", "bounding", "ambient",
                 "keep_caps")
    _fields = __slots__

    def __init__(self, permitted: int = 0, effective: int = 0, inheritable: int = 0,
                 bounding: int = ALL_CAPS, ambient: int = 0, keep_caps: bool = False):
        self.permitted = permitted
        self.effective = effective
        self.inheritable = inheritable
        self.bounding = bounding
        self.ambient = ambient
        self.keep_caps = keep_caps

    @classmethod
    def for_euid(cls, euid: int) -> "CapSets":
        """A task that never had sets of its own: root holds all, anyone else none."""
        full = ALL_CAPS if euid == 0 else 0
        return cls(permitted=full, effective=full)

    def copy(self) -> "CapSets":
        return CapSets(self.permitted, self.effective, self.inheritable, self.bounding,
                       self.ambient, self.keep_caps)

    def has(self, cap: int) -> bool:
        return bool(self.effective >> cap & 1)

    # -- capset(2) (cap_capset) -----------------------------------------------------
    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """Replace the three sets, or raise EPERM if Linux would refuse: nothing gained
        in permitted, effective within the new permitted, inheritable within the old
        inheritable | permitted (unless CAP_SETPCAP) and within bounding."""
        if inheritable & ~(self.inheritable | self.permitted) and not self.has(CAP_SETPCAP):
            raise SysError(errno.EPERM)
        if inheritable & ~(self.inheritable | self.bounding):
            raise SysError(errno.EPERM)
        if permitted & ~self.permitted:
            raise SysError(errno.EPERM)
        if effective & ~permitted:
            raise SysError(errno.EPERM)
        self.effective, self.permitted, self.inheritable = effective, permitted, inheritable
        # An ambient capability must stay both permitted and inheritable.
        self.ambient &= permitted & inheritable

    # -- set*uid (cap_emulate_setxuid) ----------------------------------------------
    def fix_setuid(self, old: tuple, new: tuple) -> None:
        """`old`/`new` are (real, effective, saved) uids around a setuid, setreuid or
        setresuid that succeeded."""
        if 0 in old and 0 not in new:
            if not self.keep_caps:
                self.permitted = self.effective = 0
            self.ambient = 0
        if old[1] == 0 and new[1] != 0:
            self.effective = 0
        elif old[1] != 0 and new[1] == 0:
            self.effective = self.permitted

    def fix_setfsuid(self, old_fsuid: int, new_fsuid: int) -> None:
        """A setfsuid that changed the fs uid: only the fs capabilities follow it."""
        if old_fsuid == 0 and new_fsuid != 0:
            self.effective &= ~FS_CAPS
        elif old_fsuid != 0 and new_fsuid == 0:
            self.effective |= self.permitted & FS_CAPS

    # -- execve (cap_bprm_creds_from_file, no file capabilities) --------------------
    def on_exec(self, uid: int, euid: int) -> None:
        """A root exec (real or effective uid 0) gets every capability its bounding and
        inheritable sets allow, effective too if euid is 0; anyone else keeps only the
        ambient set."""
        if uid == 0 or euid == 0:
            self.permitted = self.bounding | self.inheritable
        else:
            self.permitted = 0
        self.permitted |= self.ambient
        self.effective = self.permitted if euid == 0 else self.ambient
        self.keep_caps = False


def of(task) -> CapSets:
    """The thread's capability sets, made on first use for a task created before it
    had any (the sandbox's first task)."""
    caps = getattr(task, "caps", None)
    if caps is None:
        caps = task.caps = CapSets.for_euid(task.tg.euid)
    return caps


def has_cap(task, cap: int) -> bool:
    """capable(): `cap` is in the calling thread's effective set."""
    return of(task).has(cap)
