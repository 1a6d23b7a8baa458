"""Host system calls the os module of Python 3.11 does not offer, via ctypes.

Each wrapper raises OSError(errno) on failure, like the os module does.
"""
import ctypes
import os
import struct
from typing import NamedTuple

_libc = ctypes.CDLL(None, use_errno=True)

AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_FOWNER = 3
CAP_FSETID = 4

_SYS_CAPGET = 125
_SYS_CAPSET = 126
_SYS_PIVOT_ROOT = 155
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _check(ret: int) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _path(value) -> bytes | None:
    if value is None:
        return None
    return os.fsencode(value)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec),
                            ctypes.c_int]
_libc.fchownat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint,
                           ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
_libc.syscall.restype = ctypes.c_long


def utimensat(dirfd: int, path, atime, mtime, flags: int = 0) -> None:
    """atime/mtime are (sec, nsec) pairs, or UTIME_NOW / UTIME_OMIT."""
    times = (_Timespec * 2)()
    for slot, value in zip(times, (atime, mtime)):
        if isinstance(value, tuple):
            slot.tv_sec, slot.tv_nsec = value
        else:
            slot.tv_sec, slot.tv_nsec = 0, value
    _check(_libc.utimensat(dirfd, _path(path), times, flags))


def fchownat(dirfd: int, path, uid: int, gid: int, flags: int = 0) -> None:
    """uid/gid of -1 leave that id unchanged."""
    _check(_libc.fchownat(dirfd, _path(path), uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, flags))


class StatFs(NamedTuple):
    type: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int


_STATFS = struct.Struct("<qqQQQQQ2iqqq4q")   # struct statfs on x86-64


def fstatfs(fd: int) -> StatFs:
    buf = ctypes.create_string_buffer(_STATFS.size)
    _check(_libc.fstatfs(fd, buf))
    (ftype, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen,
     _frsize, _flags, *_spare) = _STATFS.unpack(buf.raw)
    fsid = (fsid0 & 0xFFFFFFFF) | ((fsid1 & 0xFFFFFFFF) << 32)
    return StatFs(ftype & 0xFFFFFFFF, bsize, blocks, bfree, bavail, files, ffree, fsid,
                  namelen)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags))


def mount(source, target, fstype, flags: int, data=None) -> None:
    _check(_libc.mount(_path(source), _path(target), _path(fstype), flags, data))


def umount2(target, flags: int) -> None:
    _check(_libc.umount2(_path(target), flags))


def pivot_root(new_root, put_old) -> None:
    _check(_libc.syscall(_SYS_PIVOT_ROOT, _path(new_root), _path(put_old)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64-bit masks)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_SYS_CAPSET, ctypes.byref(header), data))


def capget() -> tuple:
    """(effective, permitted, inheritable) of this thread as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.syscall(_SYS_CAPGET, ctypes.byref(header), data))
    return tuple(data[0].__getattribute__(f) | (data[1].__getattribute__(f) << 32)
                 for f in ("effective", "permitted", "inheritable"))
