"""File attributes as the Linux x86-64 ABI lays them out: struct stat, struct statx,
struct statfs.

Times are nanoseconds since the epoch (ints); device numbers are encoded like glibc's
makedev (the 64-bit `dev_t` that struct stat carries).
"""
from __future__ import annotations

import stat as _st
import struct

from ..kernel.record import Record

# statx mask bits (include/uapi/linux/stat.h)
STATX_TYPE = 0x1
STATX_MODE = 0x2
STATX_NLINK = 0x4
STATX_UID = 0x8
STATX_GID = 0x10
STATX_ATIME = 0x20
STATX_MTIME = 0x40
STATX_CTIME = 0x80
STATX_INO = 0x100
STATX_SIZE = 0x200
STATX_BLOCKS = 0x400
STATX_BASIC_STATS = 0x7ff
STATX_BTIME = 0x800
STATX_MNT_ID = 0x1000

# d_type values of getdents
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12

# f_type magic numbers (include/uapi/linux/magic.h)
TMPFS_MAGIC = 0x01021994
OVERLAYFS_SUPER_MAGIC = 0x794C7630
V9FS_MAGIC = 0x01021997
PROC_SUPER_MAGIC = 0x9FA0
DEVPTS_SUPER_MAGIC = 0x1CD1
PIPEFS_MAGIC = 0x50495045
ANON_INODE_FS_MAGIC = 0x09041934

# f_flags of statfs (ST_*), the same bits as the MS_* mount flags they come from
ST_RDONLY = 0x1
ST_NOSUID = 0x2
ST_NODEV = 0x4
ST_NOEXEC = 0x8
ST_RELATIME = 0x1000


def makedev(major: int, minor: int) -> int:
    return (((major & 0xfffff000) << 32) | ((major & 0xfff) << 8)
            | ((minor & 0xffffff00) << 12) | (minor & 0xff))


def major(dev: int) -> int:
    return ((dev >> 32) & 0xfffff000) | ((dev >> 8) & 0xfff)


def minor(dev: int) -> int:
    return ((dev >> 12) & 0xffffff00) | (dev & 0xff)


def dtype_of(mode: int) -> int:
    return _st.S_IFMT(mode) >> 12


_STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
_STATX = struct.Struct("<IIQIIIHHQQQQ"        # mask .. attributes_mask
                       "qIi" "qIi" "qIi" "qIi"   # atime, btime, ctime, mtime
                       "IIII"                 # rdev_major/minor, dev_major/minor
                       "QII"                  # mnt_id, dio_mem_align, dio_offset_align
                       "96x")
_STATFS = struct.Struct("<qqQQQQQiiqqq32x")

assert _STAT.size == 144 and _STATX.size == 256 and _STATFS.size == 120


def _s32(x: int) -> int:
    """f_fsid is two C ints: keep the low 32 bits, as a signed value."""
    return ((x + (1 << 31)) % (1 << 32)) - (1 << 31)


def _split_ns(ns: int) -> tuple[int, int]:
    sec, nsec = divmod(ns, 1_000_000_000)
    return sec, nsec


class Stat(Record):
    _fields = ("dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize",
               "blocks", "atime", "mtime", "ctime", "btime", "mnt_id", "attributes",
               "attributes_mask")

    def __init__(self, dev: int = 0, ino: int = 0, mode: int = 0, nlink: int = 1,
                 uid: int = 0, gid: int = 0, rdev: int = 0, size: int = 0,
                 blksize: int = 4096, blocks: int = 0, atime: int = 0, mtime: int = 0,
                 ctime: int = 0, btime: int | None = None, mnt_id: int = 0,
                 attributes: int = 0, attributes_mask: int = 0):
        self.dev = dev
        self.ino = ino
        self.mode = mode
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.size = size
        self.blksize = blksize
        self.blocks = blocks
        self.atime = atime
        self.mtime = mtime
        self.ctime = ctime
        self.btime = btime      # None: the filesystem does not know the birth time
        self.mnt_id = mnt_id
        self.attributes = attributes
        self.attributes_mask = attributes_mask

    def pack_stat(self) -> bytes:
        a, m, c = _split_ns(self.atime), _split_ns(self.mtime), _split_ns(self.ctime)
        return _STAT.pack(self.dev, self.ino, self.nlink, self.mode, self.uid, self.gid, 0,
                          self.rdev, self.size, self.blksize, self.blocks,
                          a[0], a[1], m[0], m[1], c[0], c[1])

    def statx_mask(self, requested: int) -> int:
        # Like Linux: basic stats are always filled; btime and mnt_id when known.
        mask = STATX_BASIC_STATS
        if self.btime is not None:
            mask |= STATX_BTIME
        if requested & STATX_MNT_ID and self.mnt_id:
            mask |= STATX_MNT_ID
        return mask

    def pack_statx(self, mask: int = STATX_BASIC_STATS) -> bytes:
        got = self.statx_mask(mask)
        a, m, c = _split_ns(self.atime), _split_ns(self.mtime), _split_ns(self.ctime)
        b = _split_ns(self.btime) if got & STATX_BTIME else (0, 0)
        return _STATX.pack(got, self.blksize, self.attributes,
                           self.nlink, self.uid, self.gid, self.mode & 0xffff, 0,
                           self.ino, self.size, self.blocks, self.attributes_mask,
                           a[0], a[1], 0, b[0], b[1], 0, c[0], c[1], 0, m[0], m[1], 0,
                           major(self.rdev), minor(self.rdev),
                           major(self.dev), minor(self.dev),
                           self.mnt_id if got & STATX_MNT_ID else 0, 0, 0)


class StatFS(Record):
    _fields = ("fstype_magic", "bsize", "blocks", "bfree", "bavail", "files", "ffree",
               "fsid", "namelen", "frsize", "flags", "dev")

    def __init__(self, fstype_magic: int = 0, bsize: int = 4096, blocks: int = 0,
                 bfree: int = 0, bavail: int = 0, files: int = 0, ffree: int = 0,
                 fsid: tuple = (0, 0), namelen: int = 255, frsize: int = 0, flags: int = 0,
                 dev: int = 0):
        self.fstype_magic = fstype_magic
        self.bsize = bsize
        self.blocks = blocks
        self.bfree = bfree
        self.bavail = bavail
        self.files = files
        self.ffree = ffree
        self.fsid = fsid
        self.namelen = namelen
        self.frsize = frsize    # 0: same as bsize
        self.flags = flags
        self.dev = dev          # not in struct statfs; lets the VFS derive an fsid

    def pack_statfs(self) -> bytes:
        return _STATFS.pack(self.fstype_magic, self.bsize, self.blocks, self.bfree,
                            self.bavail, self.files, self.ffree,
                            _s32(self.fsid[0]), _s32(self.fsid[1]), self.namelen,
                            self.frsize or self.bsize, self.flags)
