"""Permission checks, as Linux's generic_permission() and friends do them.

uid 0 stands for the capabilities a Linux root holds (CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_CHOWN, CAP_MKNOD): pysentry has no
finer-grained capability sets yet, so `Creds.privileged()` is the single switch.
"""
from __future__ import annotations

import errno
import stat as _st

from ..kernel.errors import SysError

MAY_EXEC = 1
MAY_WRITE = 2
MAY_READ = 4


def allowed(creds, inode, want: int, real: bool = False) -> bool:
    mode = inode.mode
    uid = creds.uid if real else creds.fsuid
    # The class (owner, group, other) is chosen first; an owner with fewer bits than
    # "other" is still refused, as in Linux.
    if uid == inode.uid:
        bits = (mode >> 6) & 7
    elif creds.in_group(inode.gid, real):
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    if want & ~bits == 0:
        return True
    if creds.privileged(real):
        # CAP_DAC_OVERRIDE: anything on directories; on other files anything but exec,
        # and exec only when at least one x bit is set.
        if _st.S_ISDIR(mode) or not want & MAY_EXEC or mode & 0o111:
            return True
    return False


def check(creds, inode, want: int, real: bool = False) -> None:
    if not allowed(creds, inode, want, real):
        raise SysError(errno.EACCES)


def is_owner(creds, inode) -> bool:
    """inode_owner_or_capable(): the owner, or CAP_FOWNER."""
    return creds.fsuid == inode.uid or creds.privileged()


def check_sticky(creds, dir_inode, inode) -> None:
    """Deleting or renaming `inode` out of a sticky directory needs ownership of one."""
    if not dir_inode.mode & _st.S_ISVTX:
        return
    if creds.fsuid in (inode.uid, dir_inode.uid) or creds.privileged():
        return
    raise SysError(errno.EPERM)


def may_hardlink(creds, inode) -> bool:
    """fs.protected_hardlinks=1 (Debian's default): linking a file you neither own nor
    could open for reading and writing is refused."""
    if creds.fsuid == inode.uid or creds.privileged():
        return True
    mode = inode.mode
    if not _st.S_ISREG(mode):
        return False
    if mode & _st.S_ISUID:
        return False
    if mode & (_st.S_ISGID | _st.S_IXGRP) == (_st.S_ISGID | _st.S_IXGRP):
        return False
    return allowed(creds, inode, MAY_READ | MAY_WRITE)
