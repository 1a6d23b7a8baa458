"""/dev: a tmpfs populated with the standard nodes, like Linux's devtmpfs.

The device nodes are plain S_IFCHR inodes; opening them goes through the VFS's
character-device registry (devices.py), the same path a node made with mknod anywhere
else takes. `pts` and `shm` are empty directories for the devpts and tmpfs mounts.
"""
from __future__ import annotations

import stat as _st

from .devices import (FULL_MINOR, MEM_MAJOR, NULL_MINOR, RANDOM_MINOR, TTYAUX_MAJOR,
                      URANDOM_MINOR, ZERO_MINOR)
from .stat import makedev
from .tmpfs import TmpFS

MEM_NODES = (
    (b"null", NULL_MINOR),
    (b"zero", ZERO_MINOR),
    (b"full", FULL_MINOR),
    (b"random", RANDOM_MINOR),
    (b"urandom", URANDOM_MINOR),
)

LINKS = (
    (b"fd", b"/proc/self/fd"),
    (b"stdin", b"/proc/self/fd/0"),
    (b"stdout", b"/proc/self/fd/1"),
    (b"stderr", b"/proc/self/fd/2"),
)


class DevFS(TmpFS):
    """A tmpfs (mode 0755, like devtmpfs) holding /dev's nodes."""

    fstype = "devtmpfs"

    def __init__(self, with_tty: bool = False):
        super().__init__(mode=0o755, size_limit=64 << 20)
        root = self.root()
        for name, minor in MEM_NODES:
            self.add_chardev(name, MEM_MAJOR, minor, 0o666)
        for name, target in LINKS:
            root.symlink(name, target, 0, 0)
        root.mkdir(b"pts", _st.S_IFDIR | 0o755, 0, 0)
        root.mkdir(b"shm", _st.S_IFDIR | 0o1777, 0, 0)
        if with_tty:
            self.add_tty_nodes()

    def add_chardev(self, name: bytes, major: int, minor: int, mode: int = 0o666,
                    uid: int = 0, gid: int = 0):
        """A node for a device the kernel layer registered in CharDevices."""
        return self.root().mknod(name, _st.S_IFCHR | mode, makedev(major, minor), uid, gid)

    def add_tty_nodes(self) -> None:
        """/dev/tty (5,0) and /dev/ptmx (5,2); their factories come from the tty code."""
        self.add_chardev(b"tty", TTYAUX_MAJOR, 0, 0o666)
        self.add_chardev(b"ptmx", TTYAUX_MAJOR, 2, 0o666)
