"""Who is asking, and from where: the credentials and the root/cwd of a path walk."""
from __future__ import annotations

from ..kernel.record import Record
from .mount import Location


class Creds(Record):
    """The ids a file operation runs as, and `caps`, the effective capability set of the
    thread behind it (a mask of kernel/caps.py's CAP_* bits). `caps` None means no
    thread: the sentry's own walks and tests, where fs uid 0 holds every capability."""
    _fields = ("uid", "gid", "euid", "egid", "fsuid", "fsgid", "groups", "caps")

    def __init__(self, uid: int = 0, gid: int = 0, euid: int = 0, egid: int = 0,
                 fsuid: int = 0, fsgid: int = 0, groups: tuple = (), caps: int | None = None):
        self.uid = uid
        self.gid = gid
        self.euid = euid
        self.egid = egid
        self.fsuid = fsuid
        self.fsgid = fsgid
        self.groups = groups
        self.caps = caps

    def in_group(self, gid: int, real: bool = False) -> bool:
        return gid == (self.gid if real else self.fsgid) or gid in self.groups

    def has_cap(self, cap: int) -> bool:
        """capable(cap) for the thread these credentials belong to."""
        if self.caps is None:
            return self.fsuid == 0
        return bool(self.caps >> cap & 1)


ROOT_CREDS = Creds()


class PathContext(Record):
    _fields = ("root", "cwd", "creds", "umask", "task")

    def __init__(self, root: Location, cwd: Location, creds: Creds, umask: int = 0o022,
                 task: object = None):
        self.root = root
        self.cwd = cwd
        self.creds = creds
        self.umask = umask
        # The calling Task, for files whose meaning depends on who asks (/proc/self and
        # the magic links of procfs); None when the sentry itself walks a path.
        self.task = task
