"""What one gofer process serves: a root directory and the policy around it.

Shared by every connection (the TCP listener may accept several); per-connection state
(fids, msize) lives in session.py.
"""
import errno
import os
import stat

from . import hostfs
from .qids import QidMap

DEFAULT_MAX_MSIZE = 1 << 20
_MAX_DEPTH = 4096     # directories climbed when checking that ".." stays beneath the root


class Export:
    def __init__(self, root_fd: int, *, names=("", "/"), ro: bool = False,
                 procfds: hostfs.ProcFds | None = None, max_msize: int = DEFAULT_MAX_MSIZE):
        st = os.stat(root_fd)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "export root is not a directory")
        self.root_fd = root_fd              # O_PATH fd of the root; never closed while serving
        self.root_key = (st.st_dev, st.st_ino)
        self.names = frozenset(names)       # anames Tattach may use
        self.ro = ro
        self.procfds = procfds or hostfs.ProcFds()
        self.max_msize = max_msize
        self.qids = QidMap(st.st_dev)

    def accepts(self, aname: str) -> bool:
        return aname in self.names

    def is_root(self, st) -> bool:
        return (st.st_dev, st.st_ino) == self.root_key

    def parent(self, dirfd: int, st) -> int:
        """O_PATH fd of the parent of directory `dirfd` (stat `st`), never above the root.

        At the root, ".." is the root itself. Elsewhere the parent is opened and then
        checked to lie beneath the root by climbing to it; a directory that was moved out
        from under the root on the host (the only way a held fd can end up outside) gives
        EACCES instead of a handle outside the export.
        """
        if self.is_root(st):
            return os.dup(self.root_fd)
        parent = hostfs.lookup_dir(dirfd, "..")
        try:
            self._check_beneath_root(parent)
        except BaseException:
            os.close(parent)
            raise
        return parent

    def _check_beneath_root(self, fd: int) -> None:
        current = os.dup(fd)
        try:
            for _ in range(_MAX_DEPTH):
                st = os.stat(current)
                if self.is_root(st):
                    return
                up = hostfs.lookup_dir(current, "..")
                up_st = os.stat(up)
                os.close(current)
                current = up
                if (up_st.st_dev, up_st.st_ino) == (st.st_dev, st.st_ino):
                    break       # reached the host's "/" without meeting the root
        finally:
            os.close(current)
        raise OSError(errno.EACCES, "directory is not beneath the export root")

    def resolve(self, names) -> int:
        """O_PATH fd of the directory reached from the root through `names` (no symlinks)."""
        fd = os.dup(self.root_fd)
        try:
            for name in names:
                hostfs.check_new_name(name)
                nxt = hostfs.lookup_dir(fd, name)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd
