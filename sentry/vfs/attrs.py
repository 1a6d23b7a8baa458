"""Attribute changes shared by the path syscalls (chmod, ...) and their fd variants
(fchmod, ...): permission rules, read-only mounts, and suid/sgid clearing.

`mount` is None for files outside any mount (pipes, anonymous inodes).
"""
from __future__ import annotations

import errno
import stat as _st

from ..kernel.caps import CAP_CHOWN, CAP_FSETID
from ..kernel.errors import SysError
from ..mm import filemap
from . import perm
from .inode import now_ns

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
MAX_FILE_SIZE = (1 << 63) - 1


def check_writable_mount(mount, inode) -> None:
    if mount is not None and mount.readonly:
        raise SysError(errno.EROFS)
    if inode.fs.readonly:
        raise SysError(errno.EROFS)


def chmod(creds, mount, inode, mode: int) -> None:
    check_writable_mount(mount, inode)
    if not perm.is_owner(creds, inode):
        raise SysError(errno.EPERM)
    mode &= 0o7777
    if not creds.in_group(inode.gid) and not creds.has_cap(CAP_FSETID):
        mode &= ~_st.S_ISGID
    inode.setattr(mode=mode)


def killed_privs(mode: int) -> int | None:
    """The mode once suid/sgid are dropped (as a chown or an unprivileged write drops
    them), or None if nothing changes. sgid without group-exec marks mandatory locking,
    not privilege, and stays."""
    new = mode & ~_st.S_ISUID
    if mode & (_st.S_ISGID | _st.S_IXGRP) == (_st.S_ISGID | _st.S_IXGRP):
        new &= ~_st.S_ISGID
    return None if new == mode else new


def chown(creds, mount, inode, uid: int, gid: int) -> None:
    check_writable_mount(mount, inode)
    uid = None if uid in (-1, 0xFFFFFFFF) else uid
    gid = None if gid in (-1, 0xFFFFFFFF) else gid
    if not creds.has_cap(CAP_CHOWN):
        owner = creds.fsuid == inode.uid
        if uid is not None and not (owner and uid == inode.uid):
            raise SysError(errno.EPERM)
        if gid is not None and not (owner and (creds.in_group(gid) or gid == inode.gid)):
            raise SysError(errno.EPERM)
    mode = None
    if not _st.S_ISDIR(inode.mode):
        mode = killed_privs(inode.mode)
    inode.setattr(uid=uid, gid=gid, mode=mode)


def _time(spec, now: int):
    """(ns to set, or None to leave) for one utimens argument."""
    if spec is None or spec == UTIME_NOW:
        return now
    if spec == UTIME_OMIT:
        return None
    sec, nsec = spec
    if nsec == UTIME_NOW:
        return now
    if nsec == UTIME_OMIT:
        return None
    if not 0 <= nsec < 1_000_000_000:
        raise SysError(errno.EINVAL)
    return sec * 1_000_000_000 + nsec


def _is_now(spec) -> bool:
    return spec is None or spec == UTIME_NOW or (isinstance(spec, tuple) and spec[1] == UTIME_NOW)


def _is_omit(spec) -> bool:
    return spec == UTIME_OMIT or (isinstance(spec, tuple) and spec[1] == UTIME_OMIT)


def utimens(creds, mount, inode, atime, mtime) -> None:
    """Each time is (sec, nsec), UTIME_NOW, UTIME_OMIT or None (= now, as utimes(NULL))."""
    now = now_ns()
    a, m = _time(atime, now), _time(mtime, now)
    if a is None and m is None:
        return
    check_writable_mount(mount, inode)
    if not perm.is_owner(creds, inode):
        # Setting "now" needs only write access; explicit times need ownership.
        if (_is_now(atime) or _is_omit(atime)) and (_is_now(mtime) or _is_omit(mtime)):
            if not perm.allowed(creds, inode, perm.MAY_WRITE):
                raise SysError(errno.EACCES)
        else:
            raise SysError(errno.EPERM)
    inode.setattr(atime_ns=a, mtime_ns=m)


def truncate(creds, mount, inode, length: int) -> None:
    """Change the size of a regular file; the caller checked write access."""
    if _st.S_ISDIR(inode.mode):
        raise SysError(errno.EISDIR)
    if not _st.S_ISREG(inode.mode):
        raise SysError(errno.EINVAL)
    if length < 0:
        raise SysError(errno.EINVAL)
    if length > MAX_FILE_SIZE:
        raise SysError(errno.EFBIG)
    check_writable_mount(mount, inode)
    mode = None if creds is None or creds.has_cap(CAP_FSETID) else killed_privs(inode.mode)
    now = now_ns()
    old_size = inode.size
    inode.setattr(size=length, mode=mode, mtime_ns=now, ctime_ns=now)
    filemap.resized(inode, old_size)     # a shared mapping sees the cut (or the new zeros)
