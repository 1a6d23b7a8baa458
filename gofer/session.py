"""One client connection's 9P2000.L state and the meaning of every request.

Sans-I/O: `Session.handle(request)` returns `(reply, donated_fd)`; the transport in
server.py moves bytes and fds. Requests are served to completion in arrival order (host
I/O on regular files and directories does not block for long), so a Tflush always finds
its target already answered and is acknowledged at once, which is what 9P requires.

Every host failure becomes Rlerror with the host errno. Bad client input (unknown fid,
bad name, value out of range) is Rlerror too; nothing a client sends can raise out of
`handle`.
"""
import errno
import fcntl
import os
import stat
import struct

from . import hostcalls, hostfs
from .p9 import messages as m
from .p9.constants import (AT_REMOVEDIR, GETATTR_BASIC, IOHDRSZ, LOCK_BLOCKED, LOCK_SUCCESS,
                           LOCK_TYPE_RDLCK, LOCK_TYPE_UNLCK, LOCK_TYPE_WRLCK, MIN_MSIZE,
                           NOFID, NONUNAME, READ_OVERHEAD, SETATTR_ATIME, SETATTR_ATIME_SET,
                           SETATTR_CTIME, SETATTR_GID, SETATTR_MODE, SETATTR_MTIME,
                           SETATTR_MTIME_SET, SETATTR_SIZE, SETATTR_UID, VERSION_9P2000_L,
                           VERSION_UNKNOWN)
from .p9.dirent import Dirent, dirent_size, encode_dirent

# Open flags a client may ask for. Everything else (O_CREAT, O_EXCL in Tlopen, O_NOCTTY,
# O_PATH, O_TMPFILE, O_DIRECT, O_NOATIME, ...) is dropped; O_CLOEXEC is always ours.
_OPEN_KEEP = os.O_ACCMODE | os.O_TRUNC | os.O_APPEND | os.O_DSYNC | os.O_SYNC
_WRITE_INTENT = os.O_WRONLY | os.O_RDWR | os.O_TRUNC
_XATTR_SIZE_MAX = 65536
_S64 = 1 << 63

_F_OFD_GETLK = 36
_F_OFD_SETLK = 37
_FLOCK = struct.Struct("hhqqi4x")    # struct flock on x86-64
_LOCK_TYPES = {LOCK_TYPE_RDLCK: fcntl.F_RDLCK, LOCK_TYPE_WRLCK: fcntl.F_WRLCK,
               LOCK_TYPE_UNLCK: fcntl.F_UNLCK}
_LOCK_TYPES_BACK = {v: k for k, v in _LOCK_TYPES.items()}

_DT = {stat.S_IFDIR: 4, stat.S_IFREG: 8, stat.S_IFLNK: 10, stat.S_IFIFO: 1,
       stat.S_IFSOCK: 12, stat.S_IFCHR: 2, stat.S_IFBLK: 6}
_DT_TO_QTYPE = {4: 0x80, 10: 0x02}


def _fail(code: int, why: str = ""):
    return OSError(code, why or os.strerror(code))


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= _S64 else value


class Fid:
    """A client's handle on one host file.

    path_fd: O_PATH fd pinning the inode (owned). path: names from the root at walk time,
    used only by Trename/Tremove, which re-check it against path_fd before acting.
    open_fd: the I/O fd after Tlopen/Tlcreate. xattr: value bytes for an xattr fid.
    """
    __slots__ = ("path_fd", "qid", "mode", "path", "uid", "open_fd", "listing", "xattr")

    def __init__(self, path_fd: int, st, qid, path: tuple, uid: int):
        self.path_fd = path_fd
        self.qid = qid
        self.mode = st.st_mode
        self.path = path
        self.uid = uid
        self.open_fd: int | None = None
        self.listing: list | None = None
        self.xattr: bytes | None = None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    def close(self) -> None:
        for fd in (self.open_fd, self.path_fd):
            if fd is not None:
                os.close(fd)
        self.open_fd = None
        self.path_fd = None


class Session:
    def __init__(self, export, *, donate: bool = False, log=None):
        self.export = export
        self.donate = donate
        self.msize = 0          # 0 until Tversion succeeds
        self.fids: dict = {}
        self.log = log
        self._handlers = {
            m.Tversion: self._version, m.Tauth: self._auth, m.Tattach: self._attach,
            m.Tflush: self._flush, m.Twalk: self._walk, m.Tclunk: self._clunk,
            m.Tremove: self._remove, m.Tstatfs: self._statfs, m.Tlopen: self._lopen,
            m.Tlcreate: self._lcreate, m.Tsymlink: self._symlink, m.Tmknod: self._mknod,
            m.Trename: self._rename, m.Treadlink: self._readlink, m.Tgetattr: self._getattr,
            m.Tsetattr: self._setattr, m.Txattrwalk: self._xattrwalk,
            m.Txattrcreate: self._xattrcreate, m.Treaddir: self._readdir,
            m.Tfsync: self._fsync, m.Tlock: self._lock, m.Tgetlock: self._getlock,
            m.Tlink: self._link, m.Tmkdir: self._mkdir, m.Trenameat: self._renameat,
            m.Tunlinkat: self._unlinkat, m.Tread: self._read, m.Twrite: self._write,
        }

    # --- dispatch -----------------------------------------------------------------------

    def handle(self, msg) -> tuple:
        """(reply, fd to donate or None). The caller owns and must close the fd."""
        handler = self._handlers.get(type(msg))
        if handler is None:
            return m.Rlerror(msg.tag, errno.EINVAL if not msg.IS_REQUEST
                             else errno.EOPNOTSUPP), None
        if self.msize == 0 and not isinstance(msg, m.Tversion):
            return m.Rlerror(msg.tag, errno.EPROTO), None
        try:
            result = handler(msg)
        except OSError as exc:
            return m.Rlerror(msg.tag, exc.errno or errno.EIO), None
        except (ValueError, OverflowError) as exc:     # e.g. NUL in a name, huge offset
            self._note(f"{type(msg).__name__}: {exc}")
            return m.Rlerror(msg.tag, errno.EINVAL), None
        except Exception:                               # a gofer bug: answer, keep serving
            import traceback        # here: it costs ms at every gofer start otherwise
            self._note(traceback.format_exc())
            return m.Rlerror(msg.tag, errno.EIO), None
        if type(result) is tuple:       # (reply, donated fd); a bare reply is a namedtuple
            return result
        return result, None

    def close(self) -> None:
        for fid in self.fids.values():
            fid.close()
        self.fids.clear()

    def _note(self, text: str) -> None:
        if self.log is not None:
            print(f"gofer: {text}", file=self.log, flush=True)

    # --- fid table ----------------------------------------------------------------------

    def _fid(self, number: int) -> Fid:
        fid = self.fids.get(number)
        if fid is None:
            raise _fail(errno.EBADF, f"unknown fid {number}")
        return fid

    def _file_fid(self, number: int) -> Fid:
        fid = self._fid(number)
        if fid.xattr is not None:
            raise _fail(errno.EBADF, "xattr fid")
        return fid

    def _dir_fid(self, number: int) -> Fid:
        fid = self._file_fid(number)
        if not fid.is_dir:
            raise _fail(errno.ENOTDIR)
        return fid

    def _free_number(self, number: int) -> None:
        if number == NOFID or number in self.fids:
            raise _fail(errno.EBADF, f"fid {number} in use or invalid")

    def _new_fid(self, path_fd: int, path: tuple, uid: int) -> Fid:
        st = os.stat(path_fd)
        return Fid(path_fd, st, self.export.qids.of_stat(st), path, uid)

    def _writable(self) -> None:
        if self.export.ro:
            raise _fail(errno.EROFS)

    def _iounit(self) -> int:
        return self.msize - IOHDRSZ

    # --- session ------------------------------------------------------------------------

    def _version(self, msg):
        self.close()
        self.msize = 0
        msize = min(msg.msize, self.export.max_msize)
        if not msg.version.startswith(VERSION_9P2000_L) or msize < MIN_MSIZE:
            return m.Rversion(msg.tag, msize, VERSION_UNKNOWN)
        self.msize = msize
        return m.Rversion(msg.tag, msize, VERSION_9P2000_L)

    def _auth(self, msg):
        # ENOENT is how diod and libnpclient say "no authentication required".
        raise _fail(errno.ENOENT, "authentication not required")

    def _attach(self, msg):
        self._free_number(msg.fid)
        if msg.afid != NOFID:
            raise _fail(errno.EBADF, "no auth fids exist")
        if not self.export.accepts(msg.aname):
            raise _fail(errno.ENOENT, f"no export named {msg.aname!r}")
        fid = self._new_fid(os.dup(self.export.root_fd), (), msg.n_uname)
        self.fids[msg.fid] = fid
        return m.Rattach(msg.tag, fid.qid)

    def _flush(self, msg):
        return m.Rflush(msg.tag)

    def _clunk(self, msg):
        fid = self._fid(msg.fid)
        del self.fids[msg.fid]
        fid.close()
        return m.Rclunk(msg.tag)

    # --- walking ------------------------------------------------------------------------

    def _step(self, fd: int, st, path: tuple, name: str) -> tuple:
        """(fd, stat, path) one component below `fd`; raises OSError."""
        hostfs.check_component(name)
        if not stat.S_ISDIR(st.st_mode):
            raise _fail(errno.ENOTDIR)
        if name == ".":
            new_fd, new_path = os.dup(fd), path
        elif name == "..":
            new_fd, new_path = self.export.parent(fd, st), path[:-1]
        else:
            new_fd, new_path = hostfs.lookup(fd, name), path + (name,)
        try:
            return new_fd, os.stat(new_fd), new_path
        except BaseException:
            os.close(new_fd)
            raise

    def _walk(self, msg):
        fid = self._file_fid(msg.fid)
        if msg.newfid != msg.fid:
            self._free_number(msg.newfid)
        elif not msg.wnames:
            return m.Rwalk(msg.tag, [])     # cloning a fid onto itself changes nothing
        fd, st, path = fid.path_fd, os.stat(fid.path_fd), fid.path
        owned = None            # the fd of the last step, ours to close unless installed
        qids = []
        try:
            for i, name in enumerate(msg.wnames):
                try:
                    new_fd, st, path = self._step(fd, st, path, name)
                except OSError:
                    if i == 0:
                        raise
                    break       # partial walk: Rwalk with the qids so far, newfid untouched
                if owned is not None:
                    os.close(owned)
                owned = fd = new_fd
                qids.append(self.export.qids.of_stat(st))
            if len(qids) < len(msg.wnames):
                return m.Rwalk(msg.tag, qids)
            new = Fid(os.dup(fid.path_fd) if owned is None else owned, st,
                      qids[-1] if qids else fid.qid, path, fid.uid)
            owned = None
        finally:
            if owned is not None:
                os.close(owned)
        if msg.newfid == msg.fid:
            fid.close()
        self.fids[msg.newfid] = new
        return m.Rwalk(msg.tag, qids)

    def _parent_of(self, fid: Fid) -> tuple:
        """(parent O_PATH fd, name) of fid, verified to still name the fid's inode."""
        if not fid.path:
            raise _fail(errno.EBUSY, "the root has no parent here")
        parent = self.export.resolve(fid.path[:-1])
        try:
            st = os.stat(fid.path[-1], dir_fd=parent, follow_symlinks=False)
            mine = os.stat(fid.path_fd)
            if (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino):
                raise _fail(errno.ESTALE, "file was renamed since it was walked")
        except BaseException:
            os.close(parent)
            raise
        return parent, fid.path[-1]

    # --- opening and creating -----------------------------------------------------------

    def _open_flags(self, fid: Fid, flags: int) -> int:
        hostfs.require_io_type(fid.mode)
        flags &= _OPEN_KEEP | os.O_DIRECTORY
        access = flags & os.O_ACCMODE
        if access == os.O_ACCMODE:
            raise _fail(errno.EINVAL)
        if self.export.ro and (access != os.O_RDONLY or flags & os.O_TRUNC):
            raise _fail(errno.EROFS)
        if fid.is_dir:
            if access != os.O_RDONLY or flags & os.O_TRUNC:
                raise _fail(errno.EISDIR)
            return os.O_RDONLY | os.O_DIRECTORY
        if flags & os.O_DIRECTORY:
            raise _fail(errno.ENOTDIR)
        return flags

    def _donation(self, fid: Fid):
        if self.donate and stat.S_ISREG(fid.mode):
            return os.dup(fid.open_fd)
        return None

    def _lopen(self, msg):
        fid = self._file_fid(msg.fid)
        if fid.open_fd is not None:
            raise _fail(errno.EBADF, "fid already open")
        flags = self._open_flags(fid, msg.flags)
        fid.open_fd = self.export.procfds.reopen(fid.path_fd, flags)
        fid.qid = self.export.qids.of_stat(os.stat(fid.open_fd))
        return m.Rlopen(msg.tag, fid.qid, self._iounit()), self._donation(fid)

    def _chown_new(self, fd: int, uid: int, gid: int) -> None:
        """Give a freshly created file the requesting user's ids (only a root gofer can)."""
        if os.geteuid() != 0:
            return
        try:
            hostcalls.fchownat(fd, "", -1 if uid == NONUNAME else uid, gid,
                               hostcalls.AT_EMPTY_PATH)
        except OSError as exc:
            # The node exists now; failing the request would leave it behind unreported.
            # It keeps the gofer's ids (e.g. ids unmapped in a user-namespace gofer).
            self._note(f"cannot chown new file to {uid}:{gid}: {exc}")

    def _lcreate(self, msg):
        fid = self._dir_fid(msg.fid)
        self._writable()
        if fid.open_fd is not None:
            raise _fail(errno.EBADF, "fid already open")
        hostfs.check_new_name(msg.name)
        flags = (msg.flags & _OPEN_KEEP)
        if flags & os.O_ACCMODE == os.O_ACCMODE:
            raise _fail(errno.EINVAL)
        # O_EXCL always: opening an existing name with O_CREAT could open (and block on) a
        # FIFO or device. An existing regular file is reopened through its O_PATH fd.
        try:
            fd = os.open(msg.name, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                         os.O_CLOEXEC, msg.mode & 0o7777, dir_fd=fid.path_fd)
            created = True
        except FileExistsError:
            if msg.flags & os.O_EXCL:
                raise
            created = False
            existing = hostfs.lookup(fid.path_fd, msg.name)
            try:
                st = os.stat(existing)
                if stat.S_ISDIR(st.st_mode):
                    raise _fail(errno.EISDIR)
                if not stat.S_ISREG(st.st_mode):
                    raise _fail(errno.EEXIST)
                fd = self.export.procfds.reopen(existing, flags)
            finally:
                os.close(existing)
        try:
            if created:
                self._chown_new(fd, fid.uid, msg.gid)
            path_fd = self.export.procfds.reopen(fd, os.O_PATH)
        except BaseException:
            os.close(fd)
            raise
        st = os.stat(fd)
        os.close(fid.path_fd)
        fid.path_fd, fid.open_fd, fid.mode = path_fd, fd, st.st_mode
        fid.path = fid.path + (msg.name,)
        fid.qid = self.export.qids.of_stat(st)
        return m.Rlcreate(msg.tag, fid.qid, self._iounit()), self._donation(fid)

    def _created(self, dirfd: int, name: str, uid: int, gid: int):
        """Qid of a node just created in dirfd, after giving it the caller's ids."""
        fd = hostfs.lookup(dirfd, name)
        try:
            self._chown_new(fd, uid, gid)
            return self.export.qids.of_stat(os.stat(fd))
        finally:
            os.close(fd)

    def _mkdir(self, msg):
        fid = self._dir_fid(msg.dfid)
        self._writable()
        hostfs.check_new_name(msg.name)
        os.mkdir(msg.name, msg.mode & 0o7777, dir_fd=fid.path_fd)
        return m.Rmkdir(msg.tag, self._created(fid.path_fd, msg.name, fid.uid, msg.gid))

    def _symlink(self, msg):
        fid = self._dir_fid(msg.fid)
        self._writable()
        hostfs.check_new_name(msg.name)
        os.symlink(msg.symtgt, msg.name, dir_fd=fid.path_fd)
        return m.Rsymlink(msg.tag, self._created(fid.path_fd, msg.name, fid.uid, msg.gid))

    def _mknod(self, msg):
        fid = self._dir_fid(msg.dfid)
        self._writable()
        hostfs.check_new_name(msg.name)
        kind = stat.S_IFMT(msg.mode) or stat.S_IFREG
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            raise _fail(errno.EPERM, "the gofer does not create device nodes")
        if kind not in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK):
            raise _fail(errno.EINVAL)
        os.mknod(msg.name, kind | (msg.mode & 0o7777), dir_fd=fid.path_fd)
        return m.Rmknod(msg.tag, self._created(fid.path_fd, msg.name, fid.uid, msg.gid))

    def _link(self, msg):
        dfid = self._dir_fid(msg.dfid)
        target = self._file_fid(msg.fid)
        self._writable()
        hostfs.check_new_name(msg.name)
        if target.is_dir:
            raise _fail(errno.EPERM)
        # linkat through /proc/self/fd/N with AT_SYMLINK_FOLLOW links exactly the pinned
        # inode and needs no CAP_DAC_READ_SEARCH (which AT_EMPTY_PATH would).
        procfds = self.export.procfds
        os.link(procfds.name_of(target.path_fd), msg.name, src_dir_fd=procfds.fd,
                dst_dir_fd=dfid.path_fd, follow_symlinks=True)
        return m.Rlink(msg.tag)

    # --- renaming and removing ----------------------------------------------------------

    def _rename(self, msg):
        fid = self._file_fid(msg.fid)
        dfid = self._dir_fid(msg.dfid)
        self._writable()
        hostfs.check_new_name(msg.name)
        parent, name = self._parent_of(fid)
        try:
            os.rename(name, msg.name, src_dir_fd=parent, dst_dir_fd=dfid.path_fd)
        finally:
            os.close(parent)
        fid.path = dfid.path + (msg.name,)
        return m.Rrename(msg.tag)

    def _renameat(self, msg):
        old = self._dir_fid(msg.olddirfid)
        new = self._dir_fid(msg.newdirfid)
        self._writable()
        hostfs.check_new_name(msg.oldname)
        hostfs.check_new_name(msg.newname)
        os.rename(msg.oldname, msg.newname, src_dir_fd=old.path_fd, dst_dir_fd=new.path_fd)
        return m.Rrenameat(msg.tag)

    def _unlinkat(self, msg):
        fid = self._dir_fid(msg.dirfid)
        self._writable()
        hostfs.check_new_name(msg.name)
        if msg.flags & ~AT_REMOVEDIR:
            raise _fail(errno.EINVAL)
        if msg.flags & AT_REMOVEDIR:
            os.rmdir(msg.name, dir_fd=fid.path_fd)
        else:
            os.unlink(msg.name, dir_fd=fid.path_fd)
        return m.Runlinkat(msg.tag)

    def _remove(self, msg):
        fid = self._fid(msg.fid)
        try:                    # Tremove clunks the fid whether or not the removal worked
            if fid.xattr is not None:
                raise _fail(errno.EINVAL)
            self._writable()
            parent, name = self._parent_of(fid)
            try:
                if fid.is_dir:
                    os.rmdir(name, dir_fd=parent)
                else:
                    os.unlink(name, dir_fd=parent)
            finally:
                os.close(parent)
        finally:
            self.fids.pop(msg.fid, None)
            fid.close()
        return m.Rremove(msg.tag)

    # --- attributes ---------------------------------------------------------------------

    def _getattr(self, msg):
        fid = self._file_fid(msg.fid)
        st = os.stat(fid.path_fd)
        fid.qid = self.export.qids.of_stat(st)
        a_s, a_ns = divmod(st.st_atime_ns, 10**9)
        m_s, m_ns = divmod(st.st_mtime_ns, 10**9)
        c_s, c_ns = divmod(st.st_ctime_ns, 10**9)
        mask = (1 << 64) - 1
        return m.Rgetattr(msg.tag, GETATTR_BASIC, fid.qid, st.st_mode, st.st_uid, st.st_gid,
                          st.st_nlink, st.st_rdev, st.st_size, st.st_blksize, st.st_blocks,
                          a_s & mask, a_ns, m_s & mask, m_ns, c_s & mask, c_ns, 0, 0, 0, 0)

    def _setattr(self, msg):
        fid = self._file_fid(msg.fid)
        self._writable()
        valid = msg.valid
        procfds = self.export.procfds
        if valid & (SETATTR_UID | SETATTR_GID):
            hostcalls.fchownat(fid.path_fd, "", msg.uid if valid & SETATTR_UID else -1,
                               msg.gid if valid & SETATTR_GID else -1,
                               hostcalls.AT_EMPTY_PATH)
        if valid & SETATTR_SIZE:
            if fid.is_dir:
                raise _fail(errno.EISDIR)
            if not stat.S_ISREG(fid.mode):
                raise _fail(errno.EINVAL)
            fd = procfds.reopen(fid.path_fd, os.O_WRONLY)
            try:
                os.ftruncate(fd, msg.size)
            finally:
                os.close(fd)
        if valid & SETATTR_MODE:
            # chown and truncate may clear setuid/setgid bits; mode is applied after them.
            os.chmod(procfds.name_of(fid.path_fd), msg.mode & 0o7777, dir_fd=procfds.fd)
        atime = self._time(valid, SETATTR_ATIME, SETATTR_ATIME_SET, msg.atime_sec,
                           msg.atime_nsec)
        mtime = self._time(valid, SETATTR_MTIME, SETATTR_MTIME_SET, msg.mtime_sec,
                           msg.mtime_nsec)
        if atime != hostcalls.UTIME_OMIT or mtime != hostcalls.UTIME_OMIT:
            hostcalls.utimensat(fid.path_fd, "", atime, mtime, hostcalls.AT_EMPTY_PATH)
        elif valid & SETATTR_CTIME and not valid & (SETATTR_UID | SETATTR_GID | SETATTR_MODE
                                                    | SETATTR_SIZE):
            hostcalls.fchownat(fid.path_fd, "", -1, -1, hostcalls.AT_EMPTY_PATH)
        return m.Rsetattr(msg.tag)

    @staticmethod
    def _time(valid: int, bit: int, set_bit: int, sec: int, nsec: int):
        if not valid & bit:
            return hostcalls.UTIME_OMIT
        if not valid & set_bit:
            return hostcalls.UTIME_NOW
        if nsec >= 10**9:
            raise _fail(errno.EINVAL)
        return (_signed64(sec), nsec)

    def _readlink(self, msg):
        fid = self._file_fid(msg.fid)
        if not stat.S_ISLNK(fid.mode):
            raise _fail(errno.EINVAL)
        return m.Rreadlink(msg.tag, os.readlink("", dir_fd=fid.path_fd))

    def _statfs(self, msg):
        fid = self._file_fid(msg.fid)
        s = hostcalls.fstatfs(fid.path_fd)
        return m.Rstatfs(msg.tag, s.type, s.bsize & 0xFFFFFFFF, s.blocks, s.bfree, s.bavail,
                         s.files, s.ffree, s.fsid, s.namelen & 0xFFFFFFFF)

    def _xattrwalk(self, msg):
        fid = self._file_fid(msg.fid)
        self._free_number(msg.newfid)
        hostfs.require_io_type(fid.mode)
        fd = self.export.procfds.reopen(
            fid.path_fd, os.O_RDONLY | (os.O_DIRECTORY if fid.is_dir else 0))
        try:
            if msg.name:
                value = os.getxattr(fd, msg.name)
            else:
                value = b"".join(os.fsencode(n) + b"\0" for n in os.listxattr(fd))
        finally:
            os.close(fd)
        if len(value) > _XATTR_SIZE_MAX:
            raise _fail(errno.E2BIG)
        new = self._new_fid(os.dup(fid.path_fd), fid.path, fid.uid)
        new.xattr = value
        self.fids[msg.newfid] = new
        return m.Rxattrwalk(msg.tag, len(value))

    def _xattrcreate(self, msg):
        self._file_fid(msg.fid)
        self._writable()
        raise _fail(errno.EOPNOTSUPP, "setting extended attributes is not supported")

    # --- I/O ----------------------------------------------------------------------------

    def _open_fid(self, number: int) -> Fid:
        fid = self._file_fid(number)
        if fid.open_fd is None:
            raise _fail(errno.EBADF, "fid not open")
        return fid

    @staticmethod
    def _offset(offset: int) -> int:
        if offset >= _S64:
            raise _fail(errno.EINVAL)
        return offset

    def _read(self, msg):
        count = min(msg.count, self.msize - READ_OVERHEAD)
        offset = self._offset(msg.offset)
        fid = self._fid(msg.fid)
        if fid.xattr is not None:
            return m.Rread(msg.tag, fid.xattr[offset:offset + count])
        fid = self._open_fid(msg.fid)
        return m.Rread(msg.tag, os.pread(fid.open_fd, count, offset))

    def _write(self, msg):
        fid = self._open_fid(msg.fid)
        written = os.pwrite(fid.open_fd, msg.data, self._offset(msg.offset))
        return m.Rwrite(msg.tag, written)

    def _fsync(self, msg):
        fid = self._open_fid(msg.fid)
        if msg.datasync:
            os.fdatasync(fid.open_fd)
        else:
            os.fsync(fid.open_fd)
        return m.Rfsync(msg.tag)

    def _readdir(self, msg):
        fid = self._dir_fid(msg.fid)
        if fid.open_fd is None:
            raise _fail(errno.EBADF, "directory not open")
        if msg.offset == 0 or fid.listing is None:
            fid.listing = self._list(fid)
        budget = min(msg.count, self.msize - READ_OVERHEAD)
        chunks = []
        # Cookies are indices into a listing taken at offset 0 (a rewind): stable for the
        # whole pass even if the directory changes meanwhile.
        for index in range(min(msg.offset, len(fid.listing)), len(fid.listing)):
            qid, dtype, name = fid.listing[index]
            size = dirent_size(name)
            if size > budget:
                break
            budget -= size
            chunks.append(encode_dirent(Dirent(qid, index + 1, dtype, name)))
        return m.Rreaddir(msg.tag, b"".join(chunks))

    def _list(self, fid: Fid) -> list:
        dir_st = os.stat(fid.open_fd)
        parent_fd = self.export.parent(fid.path_fd, dir_st)
        try:
            parent_qid = self.export.qids.of_stat(os.stat(parent_fd))
        finally:
            os.close(parent_fd)
        entries = [(fid.qid, 4, "."), (parent_qid, 4, "..")]
        os.lseek(fid.open_fd, 0, os.SEEK_SET)
        with os.scandir(fid.open_fd) as it:
            for entry in it:
                dtype = self._dtype(entry)
                qid = m.Qid(_DT_TO_QTYPE.get(dtype, 0), 0,
                            self.export.qids.path(dir_st.st_dev, entry.inode()))
                entries.append((qid, dtype, entry.name))
        return entries

    @staticmethod
    def _dtype(entry) -> int:
        try:
            if entry.is_symlink():
                return 10
            if entry.is_dir(follow_symlinks=False):
                return 4
            if entry.is_file(follow_symlinks=False):
                return 8
            return _DT.get(stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode), 0)
        except OSError:
            return 0            # DT_UNKNOWN: the entry vanished while listing

    def _lock(self, msg):
        fid = self._open_fid(msg.fid)
        kind = _LOCK_TYPES.get(msg.type)
        if kind is None:
            raise _fail(errno.EINVAL)
        # Open-file-description locks: one per fid, never merged across fids the way
        # process-wide POSIX locks would be. Never F_OFD_SETLKW: the gofer must not block;
        # a contended lock answers BLOCKED and the client retries.
        request = _FLOCK.pack(kind, os.SEEK_SET, _signed64(msg.start), _signed64(msg.length), 0)
        try:
            fcntl.fcntl(fid.open_fd, _F_OFD_SETLK, request)
        except (BlockingIOError, PermissionError):
            return m.Rlock(msg.tag, LOCK_BLOCKED)
        return m.Rlock(msg.tag, LOCK_SUCCESS)

    def _getlock(self, msg):
        fid = self._open_fid(msg.fid)
        kind = _LOCK_TYPES.get(msg.type)
        if kind is None or msg.type == LOCK_TYPE_UNLCK:
            raise _fail(errno.EINVAL)
        query = _FLOCK.pack(kind, os.SEEK_SET, _signed64(msg.start), _signed64(msg.length), 0)
        ltype, _whence, start, length, pid = _FLOCK.unpack(
            fcntl.fcntl(fid.open_fd, _F_OFD_GETLK, query))
        if ltype == fcntl.F_UNLCK:
            return m.Rgetlock(msg.tag, LOCK_TYPE_UNLCK, msg.start, msg.length, msg.proc_id,
                              msg.client_id)
        return m.Rgetlock(msg.tag, _LOCK_TYPES_BACK[ltype], start & (2**64 - 1),
                          length & (2**64 - 1), pid & 0xFFFFFFFF, "")

