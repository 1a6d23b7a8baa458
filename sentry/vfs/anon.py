"""Inodes that live in no name space: pipes, and the anonymous inodes of epoll,
eventfd, timerfd, signalfd. They have a type, an owner and times (so fstat and fchmod
work on them) and a st_dev of their own pseudo filesystem, as on Linux."""
from __future__ import annotations

import itertools

from .inode import Filesystem, Inode
from .stat import ANON_INODE_FS_MAGIC, PIPEFS_MAGIC, StatFS


class AnonFS(Filesystem):
    def __init__(self, fstype: str, magic: int):
        super().__init__()
        self.fstype = fstype
        self._magic = magic
        self._inos = itertools.count(1)

    def new_ino(self) -> int:
        return next(self._inos)

    def statfs(self) -> StatFS:
        return StatFS(fstype_magic=self._magic, bsize=4096, namelen=255, dev=self.dev)


PIPEFS = AnonFS("pipefs", PIPEFS_MAGIC)
ANON_INODE_FS = AnonFS("anon_inodefs", ANON_INODE_FS_MAGIC)


class AnonInode(Inode):
    def __init__(self, fs: AnonFS = ANON_INODE_FS, mode: int = 0o600, uid: int = 0,
                 gid: int = 0):
        super().__init__(fs, fs.new_ino(), mode, uid, gid)
