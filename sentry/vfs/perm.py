"""Permission checks, as Linux's generic_permission() and friends do them: the mode bits
first, then the one capability that overrides them (`Creds.has_cap`)."""
from __future__ import annotations

import errno
import stat as _st

from ..kernel.caps import CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
from ..kernel.errors import SysError

MAY_EXEC = 1
MAY_WRITE = 2
MAY_READ = 4


def allowed(creds, inode, want: int) -> bool:
    mode = inode.mode
    # The class (owner, group, other) is chosen first; an owner with fewer bits than
    # "other" is still refused, as in Linux.
    if creds.fsuid == inode.uid:
        bits = (mode >> 6) & 7
    elif creds.in_group(inode.gid):
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    if want & ~bits == 0:
        return True
    if _st.S_ISDIR(mode):
        # Reading and searching a directory: CAP_DAC_READ_SEARCH; anything: CAP_DAC_OVERRIDE.
        return (not want & MAY_WRITE and creds.has_cap(CAP_DAC_READ_SEARCH)
                or creds.has_cap(CAP_DAC_OVERRIDE))
    if want == MAY_READ and creds.has_cap(CAP_DAC_READ_SEARCH):
        return True
    # CAP_DAC_OVERRIDE grants exec only when at least one x bit is set.
    return (not want & MAY_EXEC or bool(mode & 0o111)) and creds.has_cap(CAP_DAC_OVERRIDE)


def check(creds, inode, want: int) -> None:
    if not allowed(creds, inode, want):
        raise SysError(errno.EACCES)


def is_owner(creds, inode) -> bool:
    """inode_owner_or_capable(): the owner, or CAP_FOWNER."""
    return creds.fsuid == inode.uid or creds.has_cap(CAP_FOWNER)


def check_sticky(creds, dir_inode, inode) -> None:
    """Deleting or renaming `inode` out of a sticky directory needs ownership of one."""
    if not dir_inode.mode & _st.S_ISVTX:
        return
    if creds.fsuid in (inode.uid, dir_inode.uid) or creds.has_cap(CAP_FOWNER):
        return
    raise SysError(errno.EPERM)


def may_hardlink(creds, inode) -> bool:
    """fs.protected_hardlinks=1 (Debian's default): linking a file you neither own nor
    could open for reading and writing is refused."""
    if is_owner(creds, inode):
        return True
    mode = inode.mode
    if not _st.S_ISREG(mode):
        return False
    if mode & _st.S_ISUID:
        return False
    if mode & (_st.S_ISGID | _st.S_IXGRP) == (_st.S_ISGID | _st.S_IXGRP):
        return False
    return allowed(creds, inode, MAY_READ | MAY_WRITE)
