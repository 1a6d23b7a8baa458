"""Mounts and locations.

A `Mount` puts the root dentry of a filesystem at a (parent mount, dentry) pair of the
name space. A `Location` names a point of the name space: a (mount, dentry) pair, like
Linux's `struct path`; it is what cwd, root and open files hold.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

from .dentry import Dentry

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_NOATIME = 0x400
MS_RELATIME = 0x200000

_mount_ids = itertools.count(1)


class Mount:
    __slots__ = ("fs", "root", "parent", "mountpoint", "flags", "source", "id",
                 "__weakref__")

    def __init__(self, fs, root: Dentry, parent: "Mount | None", mountpoint: Dentry | None,
                 flags: int = 0, source: str = "none"):
        self.fs = fs
        self.root = root
        self.parent = parent
        self.mountpoint = mountpoint
        self.flags = flags
        self.source = source
        self.id = next(_mount_ids)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY) or self.fs.readonly

    def options(self) -> str:
        opts = ["ro" if self.readonly else "rw"]
        for bit, name in ((MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"),
                          (MS_NOEXEC, "noexec"), (MS_NOATIME, "noatime")):
            if self.flags & bit:
                opts.append(name)
        if not self.flags & MS_NOATIME:
            opts.append("relatime")
        extra = self.fs.options()
        if extra:
            opts.append(extra)
        return ",".join(opts)

    def __repr__(self) -> str:
        return f"<Mount {self.id} {self.fs.fstype}>"


class Location(NamedTuple):
    mount: Mount
    dentry: Dentry

    @property
    def inode(self):
        return self.dentry.inode

    def parent(self, root: "Location | None" = None) -> "Location":
        """The `..` of this location: never above `root`, crossing mounts upwards."""
        mnt, d = self.mount, self.dentry
        while True:
            if root is not None and mnt is root.mount and d is root.dentry:
                return Location(mnt, d)
            if d is mnt.root:
                if mnt.parent is None:
                    return Location(mnt, d)
                mnt, d = mnt.parent, mnt.mountpoint
                continue
            return Location(mnt, d.parent if d.parent is not None else d)

    def walk_up(self, root: "Location"):
        """(names from here up to root or the top, reached_root: bool)."""
        names = []
        mnt, d = self.mount, self.dentry
        while True:
            if mnt is root.mount and d is root.dentry:
                return names, True
            if d is mnt.root:
                if mnt.parent is None:
                    return names, False
                mnt, d = mnt.parent, mnt.mountpoint
                continue
            names.append(d.name)
            d = d.parent

    def path_from(self, root: "Location") -> bytes:
        """The absolute path of this location as seen from `root`.

        A location outside `root` (e.g. a file opened before chroot) gets its path from
        the top of the name space, as Linux's d_path does for /proc/PID/fd.
        """
        names, _ = self.walk_up(root)
        return b"/" + b"/".join(reversed(names))

    def is_under(self, root: "Location") -> bool:
        return self.walk_up(root)[1]
