"""tmpfs: a POSIX filesystem held entirely in the sentry's memory.

Regular files are sparse, in 4 KiB pages, so a hole costs nothing and SEEK_DATA/SEEK_HOLE
see page granularity like Linux's tmpfs; a file past 64 KiB keeps its bytes in a memfd of
its own so that its reads and writes are one host copy (FileData). Directories map names to
inodes and give each entry a serial number, which is its getdents position: serials only
grow, so a position stays meaningful while entries come and go. Sizes and link counts
follow Linux's shmem: a directory's nlink is 2 + its subdirectories, its size 20 bytes
per entry plus 40.
"""
from __future__ import annotations

import bisect
import errno
import itertools
import os
import stat as _st
import weakref

from ..kernel.errors import SysError
from .inode import (RENAME_EXCHANGE, RENAME_NOREPLACE, XATTR_CREATE, XATTR_REPLACE, Dirent,
                    Filesystem, Inode)
from . import iov
from .readmap import ReadMapping
from ..mm.pageranges import PageRanges
from .stat import TMPFS_MAGIC, StatFS

PAGE = 4096
BOGO_DIRENT_SIZE = 20


def _default_size_limit() -> int:
    # Linux's default: half of RAM.
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):
        return 1 << 30


class TmpFS(Filesystem):
    fstype = "tmpfs"

    def __init__(self, mode: int = 0o1777, uid: int = 0, gid: int = 0,
                 size_limit: int | None = None, max_inodes: int | None = None,
                 first_ino: int = 1, fstype: str | None = None):
        super().__init__()
        if fstype:
            self.fstype = fstype
        self.size_limit = size_limit if size_limit is not None else _default_size_limit()
        self.max_inodes = max_inodes if max_inodes is not None else self.size_limit // PAGE
        self.pages_used = 0
        self.inodes_used = 0
        self._inos = itertools.count(first_ino)
        self._mode = mode
        self._root = TmpDir(self, mode & 0o7777, uid, gid)

    def root(self) -> "TmpDir":
        return self._root

    def new_ino(self) -> int:
        if self.inodes_used >= self.max_inodes:
            raise SysError(errno.ENOSPC)
        self.inodes_used += 1
        return next(self._inos)

    def charge_pages(self, n: int) -> None:
        if n > 0 and (self.pages_used + n) * PAGE > self.size_limit:
            raise SysError(errno.ENOSPC)
        self.pages_used += n

    def statfs(self) -> StatFS:
        blocks = self.size_limit // PAGE
        free = max(blocks - self.pages_used, 0)
        return StatFS(fstype_magic=TMPFS_MAGIC, bsize=PAGE, blocks=blocks, bfree=free,
                      bavail=free, files=self.max_inodes,
                      ffree=max(self.max_inodes - self.inodes_used, 0), namelen=255,
                      dev=self.dev)

    def options(self) -> str:
        return f"size={self.size_limit // 1024}k,mode={self._mode & 0o7777:o}"


def _refund(fs: TmpFS, pages) -> None:
    fs.inodes_used -= 1
    if pages is not None:
        fs.pages_used -= len(pages)
        pages.close()


def _memfd_budget() -> int:
    # tmpfs files may hold at most a quarter of the sentry's fds, so that they never starve
    # what needs an fd to work at all (gofer handles, sockets, the event loop).
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(soft, 64) // 4 if soft != resource.RLIM_INFINITY else 1 << 16


class FileData:
    """The bytes of one regular tmpfs file, sparse, in pages.

    Two representations, chosen by size. A small file (every page below SMALL_PAGES) is a
    dict of 4 KiB bytearrays: no host resource at all. Once a file reaches past that, its
    bytes move to a memfd of its own, so a read or write of any length is one host
    preadv/pwritev straight between the memfd and the user's views (one kernel copy,
    no Python per page). Invariants in memfd mode: the memfd's size is the file's size,
    and `held` (a PageRanges) is exactly the set of pages holding data,
    the ones charged to the filesystem. A file never goes back to small mode, and stays
    in it past SMALL_PAGES only when the memfd budget (MEMFDS) is spent.

    Reads of pages that all hold data copy from a read-only mapping of the memfd
    (`_map`, readmap.py): a user-space copy runs at memory speed, where the host's shmem
    read path takes ~2.4x as long per MiB. A range with a hole goes through preadv, which
    reads holes as zeros without allocating them (touching a hole through the mapping
    would). set_size drops the mapping before a shrink, so it stays within the memfd.
    """
    __slots__ = ("small", "fd", "held", "_map")
    SMALL_PAGES = 16      # small mode: at most this many pages (a few Python steps per call)
    MEMFDS = _memfd_budget()
    memfds_open = 0       # over every tmpfs of the process

    def __init__(self):
        self.small: dict[int, bytearray] | None = {}
        self.fd: int | None = None
        self.held = PageRanges()
        self._map: ReadMapping | None = None

    def __len__(self) -> int:
        if self.small is not None:
            return len(self.small)
        return len(self.held)

    def close(self) -> None:
        self.unmap()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            FileData.memfds_open -= 1

    def to_memfd(self, size: int) -> None:
        """Move the pages into a memfd of `size` bytes (the file's size). Without a free
        host fd (or budget for one) the file simply stays small: slower, never wrong."""
        if FileData.memfds_open >= FileData.MEMFDS:
            return
        try:
            fd = os.memfd_create("pysentry-tmpfs", os.MFD_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                return
            raise SysError(exc.errno) from None
        try:
            os.ftruncate(fd, size)
            for idx, page in self.small.items():
                os.pwrite(fd, page, idx * PAGE)
        except OSError as exc:
            os.close(fd)
            raise SysError(exc.errno) from None
        FileData.memfds_open += 1
        for idx in sorted(self.small):
            self.held.add(idx, idx + 1)
        self.fd, self.small = fd, None

    def read(self, offset: int, dst, size: int) -> int:
        """Fill `dst` from the file (memfd mode) at `offset`, which is below `size`, the
        file's size (and the memfd's)."""
        end = min(offset + iov.total(dst), size)
        if self.held.covers(offset // PAGE, (end + PAGE - 1) // PAGE):
            if self._map is None:
                self._map = ReadMapping(self.fd, may_shrink=False)
            got = self._map.copy(offset, dst, size)
            if got is not None:
                return got
        # The memfd's size is the file's: preadv stops at the end by itself.
        return iov.host_preadv(self.fd, dst, offset)

    def unmap(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def new_pages(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The runs of pages in [lo, hi) that hold no data yet (memfd mode)."""
        return self.held.gaps(lo, hi)

    def add_pages(self, lo: int, hi: int) -> None:
        self.held.add(lo, hi)

    def punch(self, lo: int, hi: int) -> int:
        """Make bytes [lo, hi) read as zeros (memfd mode): shmem frees the whole pages and
        zeroes the partial ones in place (a partial page that is a hole stays one).
        Returns how many pages holding data were freed."""
        try:
            iov.host_fallocate(self.fd, iov.FALLOC_FL_PUNCH_HOLE | iov.FALLOC_FL_KEEP_SIZE,
                               lo, hi - lo)
        except SysError:
            raise SysError(errno.EIO) from None     # a memfd of ours always can
        return self.held.remove((lo + PAGE - 1) // PAGE, hi // PAGE)

    def drop_pages_from(self, first: int) -> int:
        """Forget pages at index >= first; returns how many there were."""
        return self.held.drop_from(first)

    def first_data(self, idx: int) -> int | None:
        """The first page index >= idx holding data (memfd mode), or None."""
        return self.held.first_in(idx)

    def first_hole(self, idx: int) -> int:
        """The first page index >= idx holding no data (memfd mode)."""
        return self.held.first_not_in(idx)


class TmpInode(Inode):
    def __init__(self, fs: TmpFS, mode: int, uid: int, gid: int, rdev: int = 0):
        super().__init__(fs, fs.new_ino(), mode, uid, gid, rdev)
        self.xattrs: dict[bytes, bytes] = {}
        # An inode's space is returned when the object dies: after its last name *and*
        # its last open file are gone (an unlinked open file keeps its data, as POSIX says).
        weakref.finalize(self, _refund, fs, getattr(self, "pages", None))

    # Linux tmpfs supports trusted.*, security.* and user.* attributes.
    def getxattr(self, name: bytes) -> bytes:
        try:
            return self.xattrs[name]
        except KeyError:
            raise SysError(errno.ENODATA) from None

    def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        if flags & XATTR_CREATE and name in self.xattrs:
            raise SysError(errno.EEXIST)
        if flags & XATTR_REPLACE and name not in self.xattrs:
            raise SysError(errno.ENODATA)
        self.xattrs[name] = bytes(value)
        self.touch(ctime=True)

    def listxattr(self) -> list:
        return list(self.xattrs)

    def removexattr(self, name: bytes) -> None:
        if self.xattrs.pop(name, None) is None:
            raise SysError(errno.ENODATA)
        self.touch(ctime=True)


class TmpFile(TmpInode):
    def __init__(self, fs, mode, uid, gid):
        self.pages = FileData()
        super().__init__(fs, _st.S_IFREG | (mode & 0o7777), uid, gid)

    def blocks(self) -> int:
        return len(self.pages) * (PAGE // 512)

    def _make_big(self, size: int) -> None:
        """Switch to memfd mode once the file reaches past its small pages."""
        if self.pages.small is not None and size > FileData.SMALL_PAGES * PAGE:
            self.pages.to_memfd(self.size)

    def read(self, offset: int, dst) -> int:
        if offset >= self.size:
            return 0
        if self.pages.fd is not None:
            return self.pages.read(offset, dst, self.size)
        return self._read_small(offset, dst)

    def _read_small(self, offset: int, dst) -> int:
        small = self.pages.small
        remaining = self.size - offset
        done = 0
        for view in dst:
            if remaining <= 0:
                break
            want = min(len(view), remaining)
            pos = 0
            while pos < want:
                idx, off = divmod(offset, PAGE)
                n = min(PAGE - off, want - pos)
                page = small.get(idx)
                if page is None:
                    view[pos:pos + n] = bytes(n)
                else:
                    view[pos:pos + n] = page[off:off + n]
                pos += n
                offset += n
            done += want
            remaining -= want
        return done

    def write(self, offset: int, src) -> int:
        count = iov.total(src)
        if not count:
            return 0
        data = self.pages
        if data.fd is None:
            self._make_big(offset + count)
            if data.fd is None:
                return self._write_small(offset, src)
        first, end_page = offset // PAGE, (offset + count + PAGE - 1) // PAGE
        fresh = data.new_pages(first, end_page)
        room = self.fs.size_limit // PAGE - self.fs.pages_used
        if fresh and sum(b - a for a, b in fresh) > room:
            # Linux's tmpfs writes the pages that fit, then says ENOSPC.
            for a, b in fresh:
                if b - a > room:
                    count = min(count, (a + room) * PAGE - offset)
                    break
                room -= b - a
            if count <= 0:
                raise SysError(errno.ENOSPC)
            src = iov.clip(src, count)
            end_page = (offset + count + PAGE - 1) // PAGE
            fresh = data.new_pages(first, end_page)
        n = iov.host_pwritev(data.fd, src, offset)
        if n and fresh:
            # Pages the host now holds, charged as such (a short write charges its part).
            touched_end = (offset + n + PAGE - 1) // PAGE
            charged = sum(min(b, touched_end) - a for a, b in fresh if a < touched_end)
            self.fs.charge_pages(charged)
            data.add_pages(first, touched_end)
        return self._grew(offset + n, n)

    def _write_small(self, offset: int, src) -> int:
        small = self.pages.small
        done = 0
        for view in src:
            view = memoryview(view).cast("B") if not isinstance(view, memoryview) else view
            pos = 0
            while pos < len(view):
                idx, off = divmod(offset, PAGE)
                n = min(PAGE - off, len(view) - pos)
                page = small.get(idx)
                if page is None:
                    try:
                        self.fs.charge_pages(1)
                    except SysError:
                        if done:
                            return self._grew(offset, done)
                        raise
                    page = small[idx] = bytearray(PAGE)
                page[off:off + n] = view[pos:pos + n]
                pos += n
                offset += n
                done += n
        return self._grew(offset, done)

    def _grew(self, end: int, done: int) -> int:
        if end > self.size:
            self.size = end
        if done:
            self.touch(mtime=True, ctime=True)
        return done

    def set_size(self, size: int) -> None:
        self._make_big(size)
        data = self.pages
        last = (size + PAGE - 1) // PAGE          # first page index wholly past EOF
        if data.fd is not None:
            if size < self.size:
                data.unmap()        # a mapping past the memfd's new end would SIGBUS
            try:
                os.ftruncate(data.fd, size)
            except OSError as exc:
                raise SysError(exc.errno) from None
            self.fs.charge_pages(-data.drop_pages_from(last))
        elif size < self.size:
            small = data.small
            dropped = [i for i in small if i >= last]
            for i in dropped:
                del small[i]
            self.fs.charge_pages(-len(dropped))
            tail = size % PAGE
            if tail and size // PAGE in small:
                page = small[size // PAGE]
                page[tail:] = bytes(PAGE - tail)
        self.size = size

    def punch_hole(self, lo: int, hi: int) -> None:
        data = self.pages
        if data.fd is not None:
            freed = data.punch(lo, hi)
        else:
            small = data.small
            first_whole, end_whole = (lo + PAGE - 1) // PAGE, hi // PAGE
            dropped = [i for i in small if first_whole <= i < end_whole]
            for i in dropped:
                del small[i]
            freed = len(dropped)
            # Partial pages keep their place, as shmem's do, with zeros over the range.
            for idx in {lo // PAGE, (hi - 1) // PAGE}:
                page = small.get(idx)
                if page is not None:
                    a, b = max(lo - idx * PAGE, 0), min(hi - idx * PAGE, PAGE)
                    page[a:b] = bytes(b - a)
        self.fs.charge_pages(-freed)
        self.touch(mtime=True, ctime=True)

    def seek_data(self, offset: int) -> int:
        if offset >= self.size:
            raise SysError(errno.ENXIO)
        if self.pages.small is not None:
            idxs = sorted(self.pages.small)
            i = bisect.bisect_left(idxs, offset // PAGE)
            first = idxs[i] if i < len(idxs) else None
        else:
            first = self.pages.first_data(offset // PAGE)
        if first is None:
            raise SysError(errno.ENXIO)
        start = max(first * PAGE, offset)
        if start >= self.size:
            raise SysError(errno.ENXIO)
        return start

    def seek_hole(self, offset: int) -> int:
        if offset >= self.size:
            raise SysError(errno.ENXIO)
        idx = offset // PAGE
        if self.pages.small is not None:
            while idx in self.pages.small:
                idx += 1
        else:
            idx = self.pages.first_hole(idx)
        return min(max(idx * PAGE, offset), self.size)


class TmpSymlink(TmpInode):
    def __init__(self, fs, target: bytes, uid, gid):
        super().__init__(fs, _st.S_IFLNK | 0o777, uid, gid)
        self.target = bytes(target)
        self.size = len(self.target)

    def readlink(self) -> bytes:
        return self.target


class TmpSpecial(TmpInode):
    """Device nodes, FIFOs and sockets: only a type and an rdev; the VFS opens them."""


class _Entry:
    # `dirent` is what getdents reports for the entry, made on first listing: an entry
    # never changes its serial or inode (a rename makes a new entry), and an inode never
    # changes its number or file type.
    __slots__ = ("serial", "inode", "dirent")

    def __init__(self, serial: int, inode: Inode):
        self.serial = serial
        self.inode = inode
        self.dirent = None


class TmpDir(TmpInode):
    def __init__(self, fs, mode, uid, gid):
        super().__init__(fs, _st.S_IFDIR | (mode & 0o7777), uid, gid)
        self.nlink = 2
        self.size = 2 * BOGO_DIRENT_SIZE
        self.entries: dict[bytes, _Entry] = {}
        # (serial, name) in serial order; stale pairs are skipped and compacted lazily.
        self._serials: list[int] = []
        self._names: list[bytes] = []
        self._next_serial = 2

    def blocks(self) -> int:
        return 0

    # -- entry bookkeeping --------------------------------------------------------------
    def _add(self, name: bytes, inode: Inode) -> None:
        serial = self._next_serial
        self._next_serial += 1
        self.entries[name] = _Entry(serial, inode)
        self._serials.append(serial)
        self._names.append(name)
        self.size += BOGO_DIRENT_SIZE
        if inode.is_dir():
            self.nlink += 1
        self.touch(mtime=True, ctime=True)

    def _remove(self, name: bytes) -> Inode:
        inode = self.entries.pop(name).inode
        self.size -= BOGO_DIRENT_SIZE
        if inode.is_dir():
            self.nlink -= 1
        self.touch(mtime=True, ctime=True)
        if len(self._serials) > 2 * len(self.entries) + 16:
            self._compact()
        return inode

    def _compact(self) -> None:
        pairs = [(s, n) for s, n in zip(self._serials, self._names)
                 if n in self.entries and self.entries[n].serial == s]
        self._serials = [s for s, _ in pairs]
        self._names = [n for _, n in pairs]

    def _get(self, name: bytes) -> Inode:
        e = self.entries.get(name)
        if e is None:
            raise SysError(errno.ENOENT)
        return e.inode

    def _check_free(self, name: bytes) -> None:
        if name in self.entries:
            raise SysError(errno.EEXIST)
        if self.nlink == 0:
            raise SysError(errno.ENOENT)

    # -- Inode interface ----------------------------------------------------------------
    def lookup(self, name: bytes) -> Inode:
        return self._get(name)

    def create(self, name, mode, uid, gid) -> Inode:
        self._check_free(name)
        inode = TmpFile(self.fs, mode, uid, gid)
        self._add(name, inode)
        return inode

    def new_tmpfile(self, mode, uid, gid) -> Inode:
        inode = TmpFile(self.fs, mode, uid, gid)
        inode.nlink = 0
        return inode

    def mkdir(self, name, mode, uid, gid) -> Inode:
        self._check_free(name)
        inode = TmpDir(self.fs, mode, uid, gid)
        self._add(name, inode)
        return inode

    def mknod(self, name, mode, rdev, uid, gid) -> Inode:
        self._check_free(name)
        fmt = _st.S_IFMT(mode)
        if fmt in (0, _st.S_IFREG):
            inode = TmpFile(self.fs, mode, uid, gid)
        elif fmt in (_st.S_IFCHR, _st.S_IFBLK, _st.S_IFIFO, _st.S_IFSOCK):
            inode = TmpSpecial(self.fs, fmt | (mode & 0o7777), uid, gid,
                               rdev if fmt in (_st.S_IFCHR, _st.S_IFBLK) else 0)
        else:
            raise SysError(errno.EINVAL)
        self._add(name, inode)
        return inode

    def symlink(self, name, target, uid, gid) -> Inode:
        self._check_free(name)
        inode = TmpSymlink(self.fs, target, uid, gid)
        self._add(name, inode)
        return inode

    def link(self, name, inode) -> None:
        self._check_free(name)
        inode.nlink += 1
        inode.touch(ctime=True)
        self._add(name, inode)

    def unlink(self, name, inode) -> None:
        victim = self._get(name)
        if victim.is_dir():
            raise SysError(errno.EISDIR)
        self._remove(name)
        victim.nlink -= 1
        victim.touch(ctime=True)

    def rmdir(self, name, inode) -> None:
        victim = self._get(name)
        if not victim.is_dir():
            raise SysError(errno.ENOTDIR)
        if victim.entries:
            raise SysError(errno.ENOTEMPTY)
        self._remove(name)
        victim.nlink = 0
        victim.touch(ctime=True)

    def rename(self, oldname, newdir, newname, flags: int = 0) -> None:
        if not isinstance(newdir, TmpDir) or newdir.fs is not self.fs:
            raise SysError(errno.EXDEV)
        src = self._get(oldname)
        target_entry = newdir.entries.get(newname)
        if flags & RENAME_EXCHANGE:
            if target_entry is None:
                raise SysError(errno.ENOENT)
            dst = target_entry.inode
            if src is dst:
                return
            self._remove(oldname)
            newdir._remove(newname)
            self._add(oldname, dst)
            newdir._add(newname, src)
            src.touch(ctime=True)
            dst.touch(ctime=True)
            return
        if target_entry is not None:
            if flags & RENAME_NOREPLACE:
                raise SysError(errno.EEXIST)
            dst = target_entry.inode
            if dst is src:
                return
            if dst.is_dir():
                if not src.is_dir():
                    raise SysError(errno.EISDIR)
                if dst.entries:
                    raise SysError(errno.ENOTEMPTY)
            elif src.is_dir():
                raise SysError(errno.ENOTDIR)
            newdir._remove(newname)
            dst.nlink = 0 if dst.is_dir() else dst.nlink - 1
            dst.touch(ctime=True)
        self._remove(oldname)
        newdir._add(newname, src)
        src.touch(ctime=True)

    def iterdir(self, offset: int):
        serials, names, entries = self._serials, self._names, self.entries
        i = bisect.bisect_left(serials, offset)
        while i < len(serials):
            serial = serials[i]
            e = entries.get(names[i])
            i += 1
            if e is None or e.serial != serial:
                continue                    # a stale pair: the name went or came back
            d = e.dirent
            if d is None:
                d = e.dirent = Dirent(e.inode.ino, serial + 1, e.inode.dtype(), names[i - 1])
            yield d
