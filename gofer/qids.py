"""Qids for host files: a stable 64-bit path per (st_dev, st_ino).

Files on the root's own device use their inode number as qid.path (what diod does, and
what keeps qids stable across gofer restarts). Files on any other device mounted beneath
the root get an allocated path with the top bit set, so two devices can never collide.
"""
import stat

from .p9.constants import QTDIR, QTFILE, QTSYMLINK
from .p9.messages import Qid

_FOREIGN = 1 << 63


def qid_type(mode: int) -> int:
    if stat.S_ISDIR(mode):
        return QTDIR
    if stat.S_ISLNK(mode):
        return QTSYMLINK
    return QTFILE


class QidMap:
    __slots__ = ("root_dev", "_foreign")

    def __init__(self, root_dev: int):
        self.root_dev = root_dev
        self._foreign: dict = {}    # (dev, ino) -> allocated path

    def path(self, dev: int, ino: int) -> int:
        if dev == self.root_dev and ino < _FOREIGN:
            return ino
        key = (dev, ino)
        allocated = self._foreign.get(key)
        if allocated is None:
            allocated = _FOREIGN | len(self._foreign)
            self._foreign[key] = allocated
        return allocated

    def of_stat(self, st) -> Qid:
        return Qid(qid_type(st.st_mode), 0, self.path(st.st_dev, st.st_ino))
