"""Who is asking, and from where: the credentials and the root/cwd of a path walk."""
from __future__ import annotations

from ..kernel.record import Record
from .mount import Location


class Creds(Record):
    _fields = ("uid", "gid", "euid", "egid", "fsuid", "fsgid", "groups")

    def __init__(self, uid: int = 0, gid: int = 0, euid: int = 0, egid: int = 0,
                 fsuid: int = 0, fsgid: int = 0, groups: tuple = ()):
        self.uid = uid
        self.gid = gid
        self.euid = euid
        self.egid = egid
        self.fsuid = fsuid
        self.fsgid = fsgid
        self.groups = groups

    def in_group(self, gid: int, real: bool = False) -> bool:
        return gid == (self.gid if real else self.fsgid) or gid in self.groups

    def privileged(self, real: bool = False) -> bool:
        """Holds CAP_DAC_OVERRIDE/CAP_FOWNER/...: uid 0 (the fs uid, or the real uid for
        access(2) without AT_EACCESS). Linux drops the fs capabilities when fsuid leaves
        0, which this reproduces."""
        return (self.uid if real else self.fsuid) == 0


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
