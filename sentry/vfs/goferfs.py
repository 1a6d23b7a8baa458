"""goferfs: a directory tree served by the gofer over 9P2000.L, as a VFS filesystem.

The sentry never opens a host path; every file of a goferfs mount is reached through a
9P `Client` (gofer/p9/client.py). This module maps the Inode interface (inode.py) onto
9P requests and decides what to remember between them.

Fids
----
Every inode is identified by qid.path (its st_ino) and keeps a *path fid*: a walked,
never opened fid used for Tgetattr, Tsetattr, Treadlink, xattrs and as the start of
further walks. Components are walked one at a time; symlinks are resolved by the VFS
(walk.py) through `readlink`, the gofer never follows them.
  - Directories always hold their path fid (children are walked from it).
  - Other files hold theirs in a least-recently-used cache (`path_fids` entries): an
    evicted file walks again from its parent by name when it is next needed and checks
    that the name still leads to the same qid.path (ESTALE otherwise). A file whose
    (parent, name) we no longer know - its last known name was removed while other
    links remain - keeps its fid for good. This bounds the fids (host fds in the gofer)
    that a walk over a big tree leaves behind.
Data I/O goes through *handles*: a clone of the path fid opened with Tlopen (or the fid
of Tlcreate), plus the host fd the gofer donated with it, if any. A regular file has at
most a read handle and a write handle (opened O_RDWR when the gofer allows, so it serves
reads too), shared by every open description of the file, as gVisor's gofer dentries do.
Handles are never opened O_APPEND (pwrite on an O_APPEND host fd ignores the offset); the
append rule lives in file.py. While no description has the file open, its handles wait
in a small LRU (`idle_handles`) and are closed on eviction.
Fids are clunked lazily: an evicted or dead fid is queued and clunked at the start of the
next request (`GoferFS.p9()`), never from a weakref finalizer, which could otherwise run
in the middle of another request on the same connection.

Caching (the default, exclusive mode: the sentry is the only writer of the tree)
-------------------------------------------------------------------------------
  - attributes come from Tgetattr at lookup/creation and are updated by our own
    changes; after a write or an atime touch the times and block counts are marked
    stale and `stat()` fetches them again (one Tgetattr);
  - each directory caches its looked-up children, names known to be absent, and, once
    listed, its whole listing; our create/unlink/rename/link update these in place, so
    a listing is read from the gofer once and negative lookups cost nothing;
  - symlink targets never change and are kept.
Shared mode (`shared=True`, for trees that change behind the sentry's back): the VFS
revalidates every cached dentry (`revalidate_child`: walk + Tgetattr), `stat()` always
asks the gofer, lookups are not cached here, and a directory is listed again whenever
a getdents pass starts at its beginning.

getdents positions: each directory entry gets a serial when first seen (listing order),
and its position is that serial, as in tmpfs: positions survive entries being added or
removed, and a re-listing in shared mode keeps the serials of entries that did not
change. Server readdir cookies never leak to the program.

Trust: everything that comes off the socket is checked. Attributes out of range
(size >= 2**63, nsec >= 10**9, unknown file type, ...) are EIO; directory entries with
impossible names ("", ".", "..", "/" or NUL inside, over 255 bytes) or duplicated names
are dropped; a readdir that never ends or repeats a cookie is EIO; an xattr larger than
XATTR_SIZE_MAX is E2BIG.

Known deviations:
  - RENAME_EXCHANGE is EINVAL (9P2000.L has no flags on Trenameat; Linux's v9fs gives
    EINVAL too); RENAME_NOREPLACE is checked against our view before Trenameat, so it
    is not atomic against changes made outside the sentry.
  - st_dev is this mount's own anonymous device; statfs reports V9FS_MAGIC and an fsid
    derived from that device, not the host's.
  - O_SYNC/O_DSYNC descriptions do not fsync after each write.
  - xattrs of symlinks and special files are not asked for (the gofer opens only
    regular files and directories): getxattr is ENODATA, listxattr is empty.
"""
from __future__ import annotations

import bisect
import collections
import errno
import os
import stat as _st
import weakref
from typing import NamedTuple

from ..kernel.errors import SysError
from . import iov
from .readmap import ReadMapping
from .file import RegularFile
from .inode import (RENAME_EXCHANGE, RENAME_NOREPLACE, XATTR_REPLACE, Dirent, Filesystem,
                    Inode)
from .stat import V9FS_MAGIC, Stat, StatFS, major, minor

O_DIRECTORY_9P = 0o200000          # Linux's O_DIRECTORY, as 9P2000.L Tlopen flags use it
AT_REMOVEDIR = 0x200
NAME_MAX = 255
XATTR_SIZE_MAX = 65536
MAX_DIR_ENTRIES = 1 << 20          # a listing longer than this is a misbehaving server
MAX_ABSENT = 4096                  # negative lookups remembered per directory
DEFAULT_PATH_FIDS = 1024
DEFAULT_IDLE_HANDLES = 64

# Rgetattr/Tsetattr bits (include/net/9p/9p.h)
_GETATTR_BTIME = 0x800
_SETATTR_MODE, _SETATTR_UID, _SETATTR_GID, _SETATTR_SIZE = 0x1, 0x2, 0x4, 0x8
_SETATTR_ATIME, _SETATTR_MTIME, _SETATTR_CTIME = 0x10, 0x20, 0x40
_SETATTR_ATIME_SET, _SETATTR_MTIME_SET = 0x80, 0x100
_QTDIR, _QTSYMLINK = 0x80, 0x02

_U64 = 1 << 64
_S64_MAX = (1 << 63) - 1
_NS = 1_000_000_000
_FILE_TYPES = frozenset((_st.S_IFREG, _st.S_IFDIR, _st.S_IFLNK, _st.S_IFIFO, _st.S_IFSOCK,
                         _st.S_IFCHR, _st.S_IFBLK))
_DTYPES = frozenset((0, 1, 2, 4, 6, 8, 10, 12))


def _bad(why: str) -> SysError:
    return SysError(errno.EIO, f"gofer sent {why}")


def _wire(name: bytes) -> str:
    """A name as the 9P codec carries it (UTF-8 with surrogateescape: any bytes)."""
    return name.decode("utf-8", "surrogateescape")


def _unwire(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _sane_name(name: bytes) -> bool:
    return (0 < len(name) <= NAME_MAX and name not in (b".", b"..")
            and b"/" not in name and b"\0" not in name)


# == attributes ===========================================================================

class Attrs(NamedTuple):
    mode: int
    uid: int
    gid: int
    nlink: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    btime_ns: int | None


def _time_ns(sec: int, nsec: int) -> int:
    if nsec >= _NS:
        raise _bad(f"a time with {nsec} nanoseconds")
    if sec > _S64_MAX:              # negative times travel as two's complement
        sec -= _U64
    return sec * _NS + nsec


def parse_attrs(r) -> Attrs:
    """Validated attributes of an Rgetattr; EIO for values no file can have."""
    if _st.S_IFMT(r.mode) not in _FILE_TYPES or r.mode > 0xFFFF:
        raise _bad(f"file mode {r.mode:#o}")
    if r.size > _S64_MAX or r.blocks > _S64_MAX:
        raise _bad("a size beyond 2**63")
    if r.nlink > 0xFFFFFFFF:
        raise _bad(f"a link count of {r.nlink}")
    blksize = r.blksize if 0 < r.blksize <= 1 << 30 else 4096
    btime = _time_ns(r.btime_sec, r.btime_nsec) if r.valid & _GETATTR_BTIME else None
    return Attrs(r.mode, r.uid, r.gid, r.nlink, r.rdev, r.size, blksize, r.blocks,
                 _time_ns(r.atime_sec, r.atime_nsec), _time_ns(r.mtime_sec, r.mtime_nsec),
                 _time_ns(r.ctime_sec, r.ctime_nsec), btime)


def _split_time(ns: int) -> tuple:
    sec, nsec = divmod(ns, _NS)
    return sec % _U64, nsec


# == host fd I/O ==========================================================================

# The preadv/pwritev helpers live in iov.py (tmpfs uses them too).
_advance = iov.advance            # the name tests knew it by


def _lseek(fd: int, offset: int, whence: int) -> int:
    # Only SEEK_DATA/SEEK_HOLE: the position of the shared host file is never relied on.
    try:
        return os.lseek(fd, offset, whence)
    except OSError as exc:
        raise SysError(exc.errno) from None


# == fids and handles =====================================================================

# Reads at least this large copy out of a mapping of the donated fd (readmap.py says why);
# below it the host's preadv costs less than the size check and the mapped copy's set-up.
MAPPED_READ_MIN = 128 * 1024


def _mapped_read(h, offset: int, dst, size: int | None) -> int | None:
    """A read of the donated fd through its read mapping, clipped to `size`, or to the
    host's size of the file now when None (a shared tree may change under us)."""
    if size is None:
        try:
            size = os.fstat(h.fd).st_size
        except OSError:
            return None
        if offset >= size:
            return 0
    if h.map is None:
        h.map = ReadMapping(h.fd)
    return h.map.copy(offset, dst, size)


class _Handle:
    """An opened fid and the host fd donated with it (None: use Tread/Twrite), and a read
    mapping of that fd for large reads (readmap.py), made when first needed."""
    __slots__ = ("fid", "fd", "readable", "writable", "map")

    def __init__(self, fid: int, fd, readable: bool, writable: bool):
        self.fid = fid
        self.fd = fd
        self.readable = readable
        self.writable = writable
        self.map = None

    def drop(self, doomed: list) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.close(fd)
            except OSError:
                pass
        if self.fid is not None:
            doomed.append(self.fid)
            self.fid = None


class _Holdings:
    """What an inode holds on the gofer. Kept apart from the inode so that a finalizer can
    let go of it once the inode is gone (fds closed at once, fids queued for Tclunk)."""
    __slots__ = ("fid", "reader", "writer")

    def __init__(self, fid):
        self.fid = fid
        self.reader: _Handle | None = None
        self.writer: _Handle | None = None

    def handles(self) -> list:
        return [h for h in (self.reader, self.writer) if h is not None]

    def drop_handles(self, doomed: list) -> None:
        for h in self.handles():
            h.drop(doomed)
        self.reader = self.writer = None

    def drop_fid(self, doomed: list) -> None:
        if self.fid is not None:
            doomed.append(self.fid)
            self.fid = None

    def drop(self, doomed: list) -> None:
        self.drop_handles(doomed)
        self.drop_fid(doomed)

    def close_fds(self) -> None:
        for h in self.handles():
            h.drop([])


# == directory listings ===================================================================

class _Listing:
    """A directory's entries in getdents order. Each entry's serial is its position, so
    positions stay meaningful while entries come and go (stale pairs are skipped)."""

    def __init__(self):
        # name -> (serial, ino, dtype, the Dirent getdents reports: made once per entry)
        self.entries: dict = {}
        self._serials: list = []
        self._names: list = []
        self._next = 2                 # 0 and 1 are "." and ".." (file.py)

    def add(self, name: bytes, ino: int, dtype: int) -> None:
        if name in self.entries:
            self.remove(name)
        serial = self._next
        self._next += 1
        self.entries[name] = (serial, ino, dtype, Dirent(ino, serial + 1, dtype, name))
        self._serials.append(serial)
        self._names.append(name)

    def remove(self, name: bytes) -> None:
        if self.entries.pop(name, None) is not None and \
                len(self._serials) > 2 * len(self.entries) + 16:
            pairs = [(s, n) for s, n in zip(self._serials, self._names)
                     if self.entries.get(n, (None,))[0] == s]
            self._serials = [s for s, _ in pairs]
            self._names = [n for _, n in pairs]

    def merge(self, fresh: list) -> None:
        """Replace the contents with `fresh` [(name, ino, dtype)], keeping the serials of
        entries that are still there with the same inode number."""
        wanted = {name: (ino, dtype) for name, ino, dtype in fresh}
        for name, entry in list(self.entries.items()):
            if wanted.get(name, (None,))[0] != entry[1]:
                self.remove(name)
        for name, ino, dtype in fresh:
            if name not in self.entries:
                self.add(name, ino, dtype)

    def iter_from(self, offset: int):
        serials, names, entries = self._serials, self._names, self.entries
        i = bisect.bisect_left(serials, offset)
        while i < len(serials):
            serial = serials[i]
            e = entries.get(names[i])
            i += 1
            if e is None or e[0] != serial:
                continue                    # a stale pair: the name went or came back
            yield e[3]


# == the filesystem =======================================================================

class GoferFS(Filesystem):
    """The files of one 9P attach. Owns `client` (and the gofer `process`, if given):
    `shutdown()` (also `release()`, run by the VFS at unmount) closes them."""

    fstype = "9p"

    def __init__(self, client, *, readonly: bool = False, shared: bool = False,
                 aname: str = "", uname: str = "root", n_uname: int = 0,
                 path_fids: int = DEFAULT_PATH_FIDS, idle_handles: int = DEFAULT_IDLE_HANDLES,
                 process=None):
        super().__init__()
        self.client = client
        self.readonly = readonly
        self.shared = shared
        self.revalidate = shared
        self.process = process
        self._closed = False
        self._doomed: list = []                          # fids to clunk before next request
        self._by_path = weakref.WeakValueDictionary()    # qid.path -> live inode
        self._path_lru: collections.OrderedDict = collections.OrderedDict()
        self._idle: collections.OrderedDict = collections.OrderedDict()
        self._path_cap = max(4, path_fids)   # an operation holds at most two such fids
        self._idle_cap = max(1, idle_handles)
        fid = client.attach(aname, uname, n_uname)
        try:
            attrs = parse_attrs(client.getattr(fid))
            if not _st.S_ISDIR(attrs.mode):
                raise _bad("a root that is not a directory")
        except BaseException:
            client.clunk(fid)
            raise
        self._root = GoferDir(self, client.root_qid.path, attrs, fid, None, b"/")
        self._by_path[self._root.ino] = self._root

    def root(self) -> "GoferDir":
        return self._root

    def p9(self):
        """The client, once the fids queued for release are clunked. Every request goes
        through here."""
        while self._doomed:
            fid = self._doomed.pop()
            try:
                self.client.clunk(fid)
            except SysError:
                pass        # the fid is gone either way; a broken connection shows next
        return self.client

    def statfs(self) -> StatFS:
        r = self.p9().statfs(self._root.path_fid())
        return StatFS(fstype_magic=V9FS_MAGIC, bsize=r.bsize or 4096, blocks=r.blocks,
                      bfree=r.bfree, bavail=r.bavail, files=r.files, ffree=r.ffree,
                      namelen=r.namelen or NAME_MAX, dev=self.dev)

    def options(self) -> str:
        return f"msize={self.client.msize},cache={'shared' if self.shared else 'exclusive'}"

    def release(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Close the connection and stop the gofer. Open descriptions fail with EIO from
        now on (their donated fds are closed, never left to be reused under them)."""
        if self._closed:
            return
        self._closed = True
        for inode in list(self._by_path.values()):
            inode._hold.close_fds()
        for inode in list(self._idle):
            inode._hold.close_fds()
        self._idle.clear()
        self._path_lru.clear()
        self._doomed.clear()
        self.client.close()
        proc = self.process
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
                proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    # -- inode identity --------------------------------------------------------------------
    def adopt(self, fid: int, qid, parent: "GoferDir", name: bytes) -> "GoferInode":
        """The inode for a freshly walked fid: the live one with that qid.path if there
        is one (hard links, repeated lookups), else a new one. Consumes `fid`."""
        existing = self._by_path.get(qid.path)
        if existing is not None and _qid_fits(existing, qid):
            try:
                if self.shared or existing._stale:
                    existing._apply(parse_attrs(self.p9().getattr(fid)))
            except BaseException:
                self._doomed.append(fid)
                raise
            if existing._hold.fid is None:
                existing._hold.fid = fid
            else:
                self._doomed.append(fid)
            if existing.parent is None:
                existing.parent, existing.name = parent, name
            self.path_used(existing)
            return existing
        try:
            attrs = parse_attrs(self.p9().getattr(fid))
        except BaseException:
            self._doomed.append(fid)
            raise
        return self.new_inode(qid.path, attrs, fid, parent, name)

    def new_inode(self, ino: int, attrs: Attrs, fid, parent, name) -> "GoferInode":
        cls = _CLASSES.get(_st.S_IFMT(attrs.mode), GoferSpecial)
        inode = cls(self, ino, attrs, fid, parent, name)
        self._by_path[ino] = inode
        if fid is not None:
            self.path_used(inode)
        return inode

    def forget(self, inode: "GoferInode") -> None:
        """`inode` has no name left: a new file may reuse its qid.path."""
        if self._by_path.get(inode.ino) is inode:
            del self._by_path[inode.ino]

    # -- bounded caches of fids and handles ------------------------------------------------
    def path_used(self, inode: "GoferInode") -> None:
        """Note a use of inode's path fid; evict the least recently used ones beyond the
        cap. Directories and files we could not walk to again are never evicted."""
        if inode.is_dir() or inode.parent is None or inode._hold.fid is None:
            self._path_lru.pop(inode, None)
            return
        self._path_lru[inode] = None
        self._path_lru.move_to_end(inode)
        while len(self._path_lru) > self._path_cap:
            victim, _ = self._path_lru.popitem(last=False)
            victim._hold.drop_fid(self._doomed)

    def handles_idle(self, inode: "GoferInode") -> None:
        self._idle[inode] = None
        self._idle.move_to_end(inode)
        while len(self._idle) > self._idle_cap:
            victim, _ = self._idle.popitem(last=False)
            victim._hold.drop_handles(self._doomed)

    def handles_busy(self, inode: "GoferInode") -> None:
        self._idle.pop(inode, None)

    def fids_in_use(self) -> int:
        """Fids this filesystem holds on the server (for tests and diagnostics)."""
        n = 0
        for inode in set(self._by_path.values()) | set(self._idle):
            n += (inode._hold.fid is not None) + len(inode._hold.handles())
        return n


def _qid_fits(inode: "GoferInode", qid) -> bool:
    """Could `qid` be this inode's? (a reused inode number of another type cannot)."""
    return (bool(qid.type & _QTDIR) == inode.is_dir()
            and bool(qid.type & _QTSYMLINK) == _st.S_ISLNK(inode.mode))


# == inodes ===============================================================================

class GoferInode(Inode):
    """Common to every goferfs file. `parent`/`name` are a name we know the file by (for
    walking to it again); parent is None for the root and for a file whose known name
    was removed."""

    def __init__(self, fs: GoferFS, ino: int, attrs: Attrs, fid, parent, name: bytes):
        super().__init__(fs, ino, attrs.mode)
        self.parent = parent
        self.name = name
        self._stale = False
        self._apply(attrs)
        self._hold = _Holdings(fid)
        weakref.finalize(self, self._hold.drop, fs._doomed)

    # -- attributes ----------------------------------------------------------------------
    def _apply(self, a: Attrs) -> None:
        self.mode = a.mode
        self.uid, self.gid, self.nlink, self.rdev = a.uid, a.gid, a.nlink, a.rdev
        self.size = a.size
        self.blksize = a.blksize
        self._blocks = a.blocks
        self.atime_ns, self.mtime_ns, self.ctime_ns = a.atime_ns, a.mtime_ns, a.ctime_ns
        self.btime_ns = a.btime_ns
        self._stale = False

    def refresh(self) -> None:
        """Fetch the attributes again (Tgetattr)."""
        fid = self._attr_fid()
        if fid is None:
            return          # unreachable and unopened: what we know is all there is
        self._apply(parse_attrs(self.fs.p9().getattr(fid)))

    def blocks(self) -> int:
        return self._blocks

    def stat(self) -> Stat:
        if self._stale or self.fs.shared:
            try:
                self.refresh()
            except SysError as exc:
                if exc.errno not in (errno.ENOENT, errno.ESTALE):
                    raise       # gone from the host: the last attributes we saw stand
        return Stat(dev=self.fs.dev, ino=self.ino, mode=self.mode, nlink=self.nlink,
                    uid=self.uid, gid=self.gid, rdev=self.rdev, size=self.size,
                    blksize=self.blksize, blocks=self._blocks, atime=self.atime_ns,
                    mtime=self.mtime_ns, ctime=self.ctime_ns, btime=self.btime_ns)

    def touch(self, atime=False, mtime=False, ctime=False) -> None:
        # The host keeps the times of its files itself; ours are re-read at next stat.
        self._stale = True

    def _check_writable(self) -> None:
        if self.fs.readonly:
            raise SysError(errno.EROFS)

    def setattr(self, *, mode=None, uid=None, gid=None, size=None, atime_ns=None,
                mtime_ns=None, ctime_ns=None) -> None:
        self._check_writable()
        if size is not None:
            if self.is_dir():
                raise SysError(errno.EISDIR)
            if not _st.S_ISREG(self.mode):
                raise SysError(errno.EINVAL)
        valid, args = 0, {}
        if mode is not None:
            valid |= _SETATTR_MODE
            args["mode"] = mode & 0o7777
        if uid is not None:
            valid |= _SETATTR_UID
            args["uid"] = uid
        if gid is not None:
            valid |= _SETATTR_GID
            args["gid"] = gid
        if size is not None:
            valid |= _SETATTR_SIZE
            args["size"] = size
        if atime_ns is not None:
            valid |= _SETATTR_ATIME | _SETATTR_ATIME_SET
            args["atime"] = _split_time(atime_ns)
        if mtime_ns is not None:
            valid |= _SETATTR_MTIME | _SETATTR_MTIME_SET
            args["mtime"] = _split_time(mtime_ns)
        if not valid:
            valid = _SETATTR_CTIME      # only "ctime = now" was asked for
        fid = self._attr_fid()
        if fid is None:
            raise SysError(errno.ESTALE)
        self.fs.p9().setattr(fid, valid, **args)
        # Read back what the host made of it (it may clear suid on chown, round times).
        self.refresh()

    # -- fids ----------------------------------------------------------------------------
    def path_fid(self) -> int:
        """This file's walked (unopened) fid, walking to it again if it was evicted."""
        hold = self._hold
        if hold.fid is None:
            hold.fid = self._walk_again()
        self.fs.path_used(self)
        return hold.fid

    def _walk_again(self) -> int:
        parent = self.parent
        if parent is None:
            raise SysError(errno.ESTALE)
        fs = self.fs
        fid, qids = fs.p9().walk(parent.path_fid(), [_wire(self.name)])
        if qids[-1].path != self.ino:
            fs._doomed.append(fid)
            raise SysError(errno.ESTALE)
        return fid

    def _attr_fid(self):
        """A fid to ask attributes of: the path fid, else an open handle, else a new walk;
        None if the file cannot be reached."""
        hold = self._hold
        if hold.fid is not None:
            self.fs.path_used(self)
            return hold.fid
        for h in hold.handles():
            return h.fid
        if self.parent is None:
            return None
        return self.path_fid()

    def unlinked_from(self, dir_inode, name: bytes, all_links: bool = False) -> None:
        """The name (dir_inode, name) of this file is gone."""
        self.nlink = 0 if all_links else max(self.nlink - 1, 0)
        self._stale = True
        if self.parent is dir_inode and self.name == name:
            self.parent = None
            self.fs.path_used(self)     # leaves the LRU: it cannot be walked to again
        if self.nlink == 0:
            self.fs.forget(self)

    def before_unlink(self, dir_inode, name: bytes) -> None:
        """About to lose (dir_inode, name): if other links remain and this was the name we
        would walk by, take the fid now, while the walk still works."""
        if self.nlink > 1 and self.parent is dir_inode and self.name == name:
            self.path_fid()

    # -- extended attributes -------------------------------------------------------------
    def _xattr_capable(self) -> bool:
        return _st.S_ISREG(self.mode) or _st.S_ISDIR(self.mode)

    def _read_xattr(self, name: str) -> bytes:
        fs = self.fs
        xfid, size = fs.p9().xattrwalk(self.path_fid(), name)
        try:
            if size > XATTR_SIZE_MAX:
                raise SysError(errno.E2BIG)
            data = fs.client.read(xfid, 0, size)
            if len(data) != size:
                raise _bad(f"an xattr of {len(data)} bytes announced as {size}")
            return data
        finally:
            fs._doomed.append(xfid)

    def getxattr(self, name: bytes) -> bytes:
        if not self._xattr_capable():
            raise SysError(errno.ENODATA)
        return self._read_xattr(_wire(name))

    def listxattr(self) -> list:
        if not self._xattr_capable():
            return []
        data = self._read_xattr("")
        return [n for n in data.split(b"\0") if n]

    def _write_xattr(self, name: str, value: bytes, flags: int) -> None:
        self._check_writable()
        c = self.fs.p9()
        fid = c.clone(self.path_fid())
        try:
            c.xattrcreate(fid, name, len(value), flags)
            if value and c.write(fid, 0, value) != len(value):
                raise SysError(errno.EIO)
        except BaseException:
            self.fs._doomed.append(fid)
            raise
        c.clunk(fid)        # the server sets the attribute at Tclunk; its error is ours
        self._stale = True

    def setxattr(self, name: bytes, value: bytes, flags: int = 0) -> None:
        if not self._xattr_capable():
            raise SysError(errno.EPERM)
        self._write_xattr(_wire(name), bytes(value), flags)

    def removexattr(self, name: bytes) -> None:
        if not self._xattr_capable():
            raise SysError(errno.ENODATA)
        # 9P2000.L removes an attribute by creating it empty with XATTR_REPLACE.
        self._write_xattr(_wire(name), b"", XATTR_REPLACE)


class GoferFile(GoferInode):
    """A regular file: data through the shared read/write handles."""

    def __init__(self, *args):
        super().__init__(*args)
        self._users = 0         # open descriptions

    # -- handles -------------------------------------------------------------------------
    def _open_handle(self, flags: int) -> _Handle:
        fs = self.fs
        c = fs.p9()
        fid = c.clone(self.path_fid())
        try:
            qid, _, fd = c.lopen(fid, flags)
        except BaseException:
            fs._doomed.append(fid)
            raise
        h = _Handle(fid, fd, flags & 3 != os.O_WRONLY, flags & 3 != os.O_RDONLY)
        if qid.path != self.ino:
            h.drop(fs._doomed)
            raise SysError(errno.ESTALE)
        return h

    def handle(self, write: bool) -> _Handle:
        hold = self._hold
        if write:
            if hold.writer is None:
                self._check_writable()
                try:
                    hold.writer = self._open_handle(os.O_RDWR)
                except SysError as exc:
                    if exc.errno != errno.EACCES:
                        raise
                    hold.writer = self._open_handle(os.O_WRONLY)
            h = hold.writer
        elif hold.writer is not None and hold.writer.readable:
            h = hold.writer
        else:
            if hold.reader is None:
                hold.reader = self._open_handle(os.O_RDONLY)
            h = hold.reader
        if self._users == 0:
            self.fs.handles_idle(self)
        return h

    def opened(self) -> None:
        self._users += 1
        self.fs.handles_busy(self)

    def closed(self) -> None:
        self._users -= 1
        if self._users == 0 and self._hold.handles():
            self.fs.handles_idle(self)

    def open(self, location, flags: int):
        desc = GoferRegularFile(location, flags)
        try:
            # Open the handles now, so that the host's refusal shows at open time.
            if desc.readable:
                self.handle(write=False)
            if desc.writable:
                self.handle(write=True)
        except BaseException:
            desc.decref()
            raise
        return desc

    # -- data ----------------------------------------------------------------------------
    def read(self, offset: int, dst) -> int:
        total = iov.total(dst)
        if not total:
            return 0
        h = self.handle(write=False)
        if h.fd is not None:
            if total >= MAPPED_READ_MIN:
                # In an exclusive tree the sentry's size is the file's, and a read that
                # stays below it needs no host call to learn where the file ends; one
                # that reaches the end takes preadv, which sees the host's own end.
                if self.fs.shared:
                    got = _mapped_read(h, offset, dst, None)
                elif offset + total <= self.size:
                    got = _mapped_read(h, offset, dst, self.size)
                else:
                    got = None
                if got is not None:
                    return got
            return iov.host_preadv(h.fd, dst, offset)
        return self.fs.p9().read_into(h.fid, offset, dst)

    def write(self, offset: int, src) -> int:
        self._check_writable()
        if not iov.total(src):
            return 0
        h = self.handle(write=True)
        if h.fd is not None:
            n = iov.host_pwritev(h.fd, src, offset)
        else:
            n = self.fs.p9().write(h.fid, offset, list(src))
        if n:
            self.size = max(self.size, offset + n)
            self._stale = True      # times and blocks: the host's, read at next stat
        return n

    def set_size(self, size: int) -> None:
        self.setattr(size=size)

    # 9P2000.L has no fallocate message (diod's protocol.md lists none): space can be
    # freed or zeroed in place only through a donated host fd.
    def punch_hole(self, lo: int, hi: int) -> None:
        self._check_writable()
        h = self.handle(write=True)
        if h.fd is not None:
            try:
                iov.host_fallocate(h.fd, iov.FALLOC_FL_PUNCH_HOLE | iov.FALLOC_FL_KEEP_SIZE,
                                   lo, hi - lo)
                self._stale = True      # blocks and times: the host's, read at next stat
                return
            except SysError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise
        super().punch_hole(lo, hi)      # zeros, written: the host cannot punch here

    def zero_range(self, offset: int, length: int, keep_size: bool) -> None:
        self._check_writable()
        h = self.handle(write=True)
        if h.fd is None:
            raise SysError(errno.EOPNOTSUPP)
        iov.host_fallocate(h.fd, iov.FALLOC_FL_ZERO_RANGE
                           | (iov.FALLOC_FL_KEEP_SIZE if keep_size else 0), offset, length)
        if not keep_size:
            self.size = max(self.size, offset + length)
        self._stale = True

    def seek_data(self, offset: int) -> int:
        h = self.handle(write=False)
        if h.fd is None:
            return super().seek_data(offset)
        return _lseek(h.fd, offset, os.SEEK_DATA)

    def seek_hole(self, offset: int) -> int:
        h = self.handle(write=False)
        if h.fd is None:
            return super().seek_hole(offset)
        return _lseek(h.fd, offset, os.SEEK_HOLE)

    def fsync(self) -> None:
        h = self._hold.writer or self._hold.reader
        if h is None:
            return
        if h.fd is not None:
            try:
                os.fsync(h.fd)
            except OSError as exc:
                raise SysError(exc.errno) from None
        else:
            self.fs.p9().fsync(h.fid)


class GoferRegularFile(RegularFile):
    """An open goferfs file: the generic RegularFile, counted as a user of the inode's
    handles while it lives."""

    def __init__(self, location, flags: int):
        super().__init__(location, flags)
        self.inode.opened()

    def release(self) -> None:
        self.inode.closed()


class GoferSymlink(GoferInode):
    def __init__(self, *args):
        super().__init__(*args)
        self._target = None     # a symlink's target never changes

    def readlink(self) -> bytes:
        if self._target is None:
            target = _unwire(self.fs.p9().readlink(self.path_fid()))
            if b"\0" in target:
                raise _bad("a symlink target with a NUL byte")
            self._target = target
        return self._target


class GoferSpecial(GoferInode):
    """FIFOs, sockets and device nodes: attributes only; the VFS serves their opens."""


class GoferDir(GoferInode):
    def __init__(self, *args):
        super().__init__(*args)
        self._children: dict = {}       # name -> inode (exclusive mode)
        self._absent: set = set()       # names known not to exist (exclusive mode)
        self._listing: _Listing | None = None

    # -- cache bookkeeping -----------------------------------------------------------------
    def _remember(self, name: bytes, child: GoferInode) -> None:
        if not self.fs.shared:
            self._children[name] = child
        self._absent.discard(name)
        if self._listing is not None:
            entry = self._listing.entries.get(name)
            if entry is None or entry[1] != child.ino:
                self._listing.add(name, child.ino, child.dtype())

    def _forget_name(self, name: bytes) -> None:
        self._children.pop(name, None)
        if self._listing is not None:
            self._listing.remove(name)
        if not self.fs.shared:
            if len(self._absent) >= MAX_ABSENT:
                self._absent.clear()
            self._absent.add(name)

    def _known_absent(self, name: bytes) -> bool:
        if self.fs.shared:
            return False
        return name in self._absent or (self._listing is not None
                                        and name not in self._listing.entries)

    # -- lookups -------------------------------------------------------------------------
    def lookup(self, name: bytes) -> GoferInode:
        if not self.fs.shared:
            child = self._children.get(name)
            if child is not None:
                return child
        if self._known_absent(name):
            raise SysError(errno.ENOENT)
        try:
            fid, qids = self.fs.p9().walk(self.path_fid(), [_wire(name)])
        except SysError as exc:
            if exc.errno == errno.ENOENT and not self.fs.shared:
                self._forget_name(name)
            raise
        child = self.fs.adopt(fid, qids[-1], self, name)
        self._remember(name, child)
        return child

    def _lookup_or_none(self, name: bytes):
        try:
            return self.lookup(name)
        except SysError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def revalidate_child(self, name: bytes, child) -> bool:
        """Shared mode: does `name` still lead to `child`? (refreshes its attributes)"""
        try:
            fid, qids = self.fs.p9().walk(self.path_fid(), [_wire(name)])
        except SysError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ESTALE):
                return False
            raise
        return self.fs.adopt(fid, qids[-1], self, name) is child

    # -- listing -------------------------------------------------------------------------
    def _read_listing(self) -> list:
        fs = self.fs
        c = fs.p9()
        fid = c.clone(self.path_fid())
        try:
            _, _, fd = c.lopen(fid, os.O_RDONLY | O_DIRECTORY_9P)
            if fd is not None:
                os.close(fd)        # never asked for; a directory has no donated fd
            fresh, names, cookies = [], set(), set()
            offset = 0
            while True:
                batch = c.readdir(fid, offset)
                if not batch:
                    return fresh
                for e in batch:
                    name = _unwire(e.name)
                    if not _sane_name(name) or name in names:
                        continue
                    names.add(name)
                    fresh.append((name, e.qid.path, e.type if e.type in _DTYPES else 0))
                offset = batch[-1].offset
                if offset in cookies or len(fresh) > MAX_DIR_ENTRIES:
                    raise _bad("a directory listing that does not end")
                cookies.add(offset)
        finally:
            fs._doomed.append(fid)

    def iterdir(self, offset: int):
        if self._listing is None or (self.fs.shared and offset <= 2):
            fresh = self._read_listing()
            if self._listing is None:
                self._listing = _Listing()
            self._listing.merge(fresh)
            if not self.fs.shared:
                self._absent.clear()
        return self._listing.iter_from(offset)

    # -- creation ------------------------------------------------------------------------
    def _settle_new(self, inode: GoferInode, mode, uid: int, gid: int) -> GoferInode:
        """Give a new file the owner and mode the VFS chose. The gofer creates as its
        attach user under its own umask; a gofer that may not chown keeps the host's
        ids, which is then what we report."""
        valid, args = 0, {}
        if mode is not None and (inode.mode & 0o7777) != (mode & 0o7777):
            valid |= _SETATTR_MODE
            args["mode"] = mode & 0o7777
        if inode.uid != uid:
            valid |= _SETATTR_UID
            args["uid"] = uid
        if inode.gid != gid:
            valid |= _SETATTR_GID
            args["gid"] = gid
        if valid:
            fid = inode._attr_fid()
            try:
                self.fs.p9().setattr(fid, valid, **args)
            except SysError as exc:
                if exc.errno not in (errno.EPERM, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
            inode.refresh()
        return inode

    def _created(self, name: bytes, inode: GoferInode) -> GoferInode:
        self._remember(name, inode)
        self._stale = True          # mtime, ctime, size and maybe nlink of this directory
        return inode

    def _walk_new(self, name: bytes, qid) -> GoferInode:
        fs = self.fs
        fid, qids = fs.p9().walk(self.path_fid(), [_wire(name)])
        if qids[-1].path != qid.path:
            fs._doomed.append(fid)
            raise SysError(errno.ESTALE)
        try:
            attrs = parse_attrs(fs.p9().getattr(fid))
        except BaseException:
            fs._doomed.append(fid)
            raise
        return fs.new_inode(qid.path, attrs, fid, self, name)

    def create(self, name: bytes, mode: int, uid: int, gid: int) -> GoferInode:
        self._check_writable()
        fs = self.fs
        c = fs.p9()
        fid = c.clone(self.path_fid())
        try:
            qid, _, fd = c.lcreate(fid, _wire(name), os.O_RDWR | os.O_EXCL, mode & 0o7777,
                                   gid)
        except BaseException:
            fs._doomed.append(fid)
            raise
        handle = _Handle(fid, fd, True, True)
        try:
            attrs = parse_attrs(c.getattr(fid))
            if not _st.S_ISREG(attrs.mode):
                raise _bad("a created file that is not regular")
        except BaseException:
            handle.drop(fs._doomed)
            raise
        inode = fs.new_inode(qid.path, attrs, None, self, name)
        inode._hold.writer = handle
        fs.handles_idle(inode)
        return self._created(name, self._settle_new(inode, mode, uid, gid))

    def mkdir(self, name: bytes, mode: int, uid: int, gid: int) -> GoferInode:
        self._check_writable()
        qid = self.fs.p9().mkdir(self.path_fid(), _wire(name), mode & 0o7777, gid)
        inode = self._walk_new(name, qid)
        if not inode.is_dir():
            raise _bad("a new directory that is not one")
        inode._listing = _Listing()     # known empty: no need to ask
        self.nlink += 1
        return self._created(name, self._settle_new(inode, mode, uid, gid))

    def mknod(self, name: bytes, mode: int, rdev: int, uid: int, gid: int) -> GoferInode:
        self._check_writable()
        fmt = _st.S_IFMT(mode) or _st.S_IFREG
        qid = self.fs.p9().mknod(self.path_fid(), _wire(name), fmt | (mode & 0o7777),
                                 major(rdev), minor(rdev), gid)
        inode = self._walk_new(name, qid)
        return self._created(name, self._settle_new(inode, mode, uid, gid))

    def symlink(self, name: bytes, target: bytes, uid: int, gid: int) -> GoferInode:
        self._check_writable()
        qid = self.fs.p9().symlink(self.path_fid(), _wire(name), _wire(target), gid)
        inode = self._walk_new(name, qid)
        if isinstance(inode, GoferSymlink):
            inode._target = bytes(target)
        # No mode: chmod of a symlink would reach its target through /proc/self/fd.
        return self._created(name, self._settle_new(inode, None, uid, gid))

    def link(self, name: bytes, inode) -> None:
        self._check_writable()
        if not isinstance(inode, GoferInode) or inode.fs is not self.fs:
            raise SysError(errno.EXDEV)
        c = self.fs.p9()
        c.link(self.path_fid(), inode.path_fid(), _wire(name))
        inode.nlink += 1
        inode._stale = True
        if inode.parent is None:
            inode.parent, inode.name = self, name
            self.fs.path_used(inode)
        self._created(name, inode)

    # -- removal -------------------------------------------------------------------------
    def _victim(self, name: bytes, inode):
        if isinstance(inode, GoferInode) and inode.fs is self.fs:
            return inode
        return self._children.get(name)

    def unlink(self, name: bytes, inode) -> None:
        self._check_writable()
        victim = self._victim(name, inode)
        if victim is not None:
            victim.before_unlink(self, name)
        self.fs.p9().unlinkat(self.path_fid(), _wire(name), 0)
        self._forget_name(name)
        self._stale = True
        if victim is not None:
            victim.unlinked_from(self, name)

    def rmdir(self, name: bytes, inode) -> None:
        self._check_writable()
        victim = self._victim(name, inode)
        self.fs.p9().unlinkat(self.path_fid(), _wire(name), AT_REMOVEDIR)
        self._forget_name(name)
        self._stale = True
        self.nlink = max(self.nlink - 1, 0)
        if victim is not None:
            victim.unlinked_from(self, name, all_links=True)

    def rename(self, oldname: bytes, newdir, newname: bytes, flags: int = 0) -> None:
        self._check_writable()
        if not isinstance(newdir, GoferDir) or newdir.fs is not self.fs:
            raise SysError(errno.EXDEV)
        if flags & RENAME_EXCHANGE or flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise SysError(errno.EINVAL)
        moved = self.lookup(oldname)
        replaced = newdir._lookup_or_none(newname)
        if replaced is not None and flags & RENAME_NOREPLACE:
            raise SysError(errno.EEXIST)
        if replaced is moved:
            return          # two links to one file: rename(2) does nothing
        if replaced is not None:
            replaced.before_unlink(newdir, newname)
        c = self.fs.p9()
        c.renameat(self.path_fid(), _wire(oldname), newdir.path_fid(), _wire(newname))
        self._forget_name(oldname)
        newdir._forget_name(newname)
        newdir._remember(newname, moved)
        if moved.parent is self and moved.name == oldname:
            moved.parent, moved.name = newdir, newname
        moved._stale = True
        self._stale = newdir._stale = True
        if replaced is not None:
            replaced.unlinked_from(newdir, newname, all_links=replaced.is_dir())
            if replaced.is_dir():
                newdir.nlink = max(newdir.nlink - 1, 0)
        if moved.is_dir() and newdir is not self:
            self.nlink = max(self.nlink - 1, 0)
            newdir.nlink += 1


_CLASSES = {_st.S_IFREG: GoferFile, _st.S_IFDIR: GoferDir, _st.S_IFLNK: GoferSymlink}


# == starting a gofer =====================================================================

def open_gofer_fs(root_dir, ro: bool = False, donate: bool = True, *, confine: bool = True,
                  shared: bool = False, msize: int | None = None, stderr=None,
                  **fs_options) -> GoferFS:
    """Start a gofer serving `root_dir` (gofer/launch.py) and return a GoferFS over it.

    The filesystem owns the gofer: `fs.shutdown()` (or `with open_gofer_fs(...) as fs:`,
    or unmounting it from a VirtualFS) closes the connection and reaps the process.
    `ro` makes both the gofer and the filesystem refuse every change (EROFS); `donate`
    lets the gofer pass host fds for regular files, so reads and writes skip the gofer.
    """
    from ...gofer.launch import start_gofer
    from ...gofer.p9.client import DEFAULT_MSIZE, Client

    proc, sock = start_gofer(os.fspath(root_dir), ro=ro, donate=donate, confine=confine,
                             stderr=stderr)
    try:
        client = Client(sock, msize or DEFAULT_MSIZE)
    except BaseException:
        sock.close()
        _reap(proc)
        raise
    try:
        return GoferFS(client, readonly=ro, shared=shared, process=proc, **fs_options)
    except BaseException:
        client.close()
        _reap(proc)
        raise


def _reap(proc) -> None:
    try:
        proc.wait(timeout=10)
    except Exception:
        proc.kill()
        proc.wait()
