"""The sentry's 9P2000.L client: synchronous RPCs over a connected stream socket.

Blocking by design: each call sends one request and waits for its reply, so at most one
request is outstanding and the sentry's event loop is stalled for the round trip. That is
the documented trade-off: the gofer answers from local host files, and a synchronous
client keeps every VFS operation a plain function call. Not thread-safe.

Failures:
- Rlerror(ecode) raises SysError(ecode).
- A reply that breaks the protocol (wrong tag or type, bad bytes, connection closed)
  raises GoferConnectionError, a SysError with errno EIO; the client is then unusable.
- Arguments that cannot be encoded (a name over 65535 bytes) raise SysError(EINVAL).

fd donation: on a unix socket the gofer may attach a host fd (SCM_RIGHTS) to the reply to
Tlopen/Tlcreate of a regular file; lopen/lcreate return it (close-on-exec, owned by the
caller) or None. Any fd arriving with another reply is closed.
"""
import array
import errno
import os
import socket
import stat
import struct

from ...sentry.kernel.errors import SysError
from ...sentry.vfs import iov
from . import codec, messages as m
from .constants import (AT_REMOVEDIR, GETATTR_ALL, HEADER_SIZE, IOHDRSZ, MAXWELEM, MIN_MSIZE,
                        NOFID, NOTAG, QTDIR, VERSION_9P2000_L)
from .dirent import decode_dirents
from .errors import EncodeError, ProtocolError

DEFAULT_MSIZE = 1 << 20
_SIZE = struct.Struct("<I")
_MAX_FDS = 4


class GoferConnectionError(SysError):
    """The connection to the 9P server is broken (protocol violation or closed)."""

    def __init__(self, why: str):
        super().__init__(errno.EIO, f"9P connection failed: {why}")


class Client:
    def __init__(self, sock: socket.socket, msize: int = DEFAULT_MSIZE):
        if not MIN_MSIZE <= msize <= 0xFFFFFFFF:
            raise ValueError(f"msize {msize} out of range")
        sock.setblocking(True)
        self._sock = sock
        self._unix = sock.family == socket.AF_UNIX
        self._tag = 0
        self._broken: str | None = None
        self._next_fid = 0
        self._free_fids: list = []
        self._iounits: dict = {}
        self._unsupported: set = set()    # optional requests the server lacks
        self.msize = msize      # until Rversion lowers it
        self.root_qid = None
        self._negotiate(msize)

    @classmethod
    def connect_tcp(cls, host: str, port: int, msize: int = DEFAULT_MSIZE,
                    timeout: float | None = None) -> "Client":
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return cls(sock, msize)
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        self._broken = self._broken or "closed"
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- transport ----------------------------------------------------------------------

    def _fail(self, why: str) -> GoferConnectionError:
        self._broken = why
        return GoferConnectionError(why)

    def _recv_exact(self, view: memoryview) -> None:
        while len(view):
            n = self._sock.recv_into(view)
            if n == 0:
                raise self._fail("connection closed by server")
            view = view[n:]

    def _recv_header(self) -> tuple:
        """The 7 header bytes and any fds that came with the reply's first byte."""
        header = bytearray(HEADER_SIZE)
        fds = []
        if self._unix:
            data, ancdata, flags, _ = self._sock.recvmsg(
                HEADER_SIZE, socket.CMSG_SPACE(_MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    arr = array.array("i")
                    arr.frombytes(payload[:len(payload) - len(payload) % arr.itemsize])
                    fds.extend(arr)
            if not data:
                _close_all(fds)
                raise self._fail("connection closed by server")
            header[:len(data)] = data
            try:
                self._recv_exact(memoryview(header)[len(data):])
            except BaseException:
                _close_all(fds)
                raise
        else:
            self._recv_exact(memoryview(header))
        return header, fds

    def _rpc(self, request, reply_cls):
        """Send `request` (tag filled in here) and return (reply, fds)."""
        if self._broken:
            raise GoferConnectionError(self._broken)
        if not isinstance(request, m.Tversion):
            self._tag = (self._tag + 1) % NOTAG
            request = request._replace(tag=self._tag)
        try:
            frame = codec.encode(request)
        except EncodeError as exc:
            raise SysError(errno.EINVAL, str(exc)) from None
        if len(frame) > self.msize:
            raise SysError(errno.EINVAL, "request larger than msize")
        try:
            self._sock.sendall(frame)
            header, fds = self._recv_header()
        except OSError as exc:
            raise self._fail(str(exc)) from None
        try:
            reply = self._finish_reply(header)
        except BaseException:
            _close_all(fds)
            raise
        if reply.tag != request.tag:
            _close_all(fds)
            raise self._fail(f"reply tag {reply.tag} for request tag {request.tag}")
        if isinstance(reply, m.Rlerror):
            _close_all(fds)
            raise SysError(reply.ecode if 0 < reply.ecode < 4096 else errno.EIO)
        if not isinstance(reply, reply_cls):
            _close_all(fds)
            raise self._fail(f"{type(reply).__name__} in answer to {type(request).__name__}")
        return reply, fds

    def _finish_reply(self, header: bytearray):
        size = _SIZE.unpack_from(header)[0]
        if size < HEADER_SIZE or size > self.msize:
            raise self._fail(f"reply size {size} outside [{HEADER_SIZE}, {self.msize}]")
        frame = bytearray(size)
        frame[:HEADER_SIZE] = header
        try:
            self._recv_exact(memoryview(frame)[HEADER_SIZE:])
        except OSError as exc:
            raise self._fail(str(exc)) from None
        try:
            return codec.decode(frame)
        except ProtocolError as exc:
            raise self._fail(f"bad reply: {exc}") from None

    def _call(self, request, reply_cls):
        reply, fds = self._rpc(request, reply_cls)
        _close_all(fds)
        return reply

    def _negotiate(self, msize: int) -> None:
        reply = self._call(m.Tversion(NOTAG, msize, VERSION_9P2000_L), m.Rversion)
        if reply.version != VERSION_9P2000_L:
            raise self._fail(f"server speaks {reply.version!r}, not 9P2000.L")
        if not MIN_MSIZE <= reply.msize <= msize:
            raise self._fail(f"server msize {reply.msize} not in [{MIN_MSIZE}, {msize}]")
        self.msize = reply.msize

    # --- fids ---------------------------------------------------------------------------

    def _alloc_fid(self) -> int:
        if self._free_fids:
            return self._free_fids.pop()
        fid = self._next_fid
        if fid >= NOFID:
            raise SysError(errno.EMFILE)
        self._next_fid += 1
        return fid

    def _release_fid(self, fid: int) -> None:
        self._iounits.pop(fid, None)
        self._free_fids.append(fid)

    def _io_size(self, fid: int) -> int:
        # Like Linux, ask for at most msize - IOHDRSZ per message whatever the exact
        # header of Rread/Twrite: diod rejects larger counts with EIO.
        iounit = self._iounits.get(fid) or self.msize - IOHDRSZ
        return max(1, min(iounit, self.msize - IOHDRSZ))

    # --- session ------------------------------------------------------------------------

    def attach(self, aname: str = "", uname: str = "root", n_uname: int = 0) -> int:
        """A fid for the root of export `aname`; its qid is kept in root_qid."""
        fid = self._alloc_fid()
        try:
            reply = self._call(m.Tattach(0, fid, NOFID, uname, aname, n_uname), m.Rattach)
        except BaseException:
            self._release_fid(fid)
            raise
        self.root_qid = reply.qid
        return fid

    def clunk(self, fid: int) -> None:
        try:
            self._call(m.Tclunk(0, fid), m.Rclunk)
        finally:
            if not self._broken:
                self._release_fid(fid)

    def remove(self, fid: int) -> None:
        """Remove the file and clunk fid (the fid is gone even if removal fails)."""
        try:
            self._call(m.Tremove(0, fid), m.Rremove)
        finally:
            if not self._broken:
                self._release_fid(fid)

    def flush(self, oldtag: int) -> None:
        self._call(m.Tflush(0, oldtag), m.Rflush)

    # --- walking ------------------------------------------------------------------------

    def walk(self, fid: int, names=()) -> tuple:
        """(newfid, qids) for fid/names[0]/names[1]/...; [] clones fid.

        Raises SysError with the server's errno if the first name fails, ENOENT if a later
        one does (9P reports a partial walk without saying why). Walks longer than
        MAXWELEM names are split into several Twalks, continuing from newfid.
        """
        names = list(names)
        newfid = self._alloc_fid()
        qids = []
        established = False         # newfid exists on the server
        try:
            while True:
                chunk = names[len(qids):len(qids) + MAXWELEM]
                source = newfid if established else fid
                reply = self._call(m.Twalk(0, source, newfid, chunk), m.Rwalk)
                if len(reply.qids) > len(chunk):
                    raise self._fail("Rwalk with more qids than names")
                if len(reply.qids) < len(chunk):
                    raise SysError(errno.ENOENT)
                established = True
                qids.extend(reply.qids)
                if len(qids) == len(names):
                    return newfid, qids
        except BaseException:
            if not self._broken:
                if established:
                    try:
                        self.clunk(newfid)
                    except SysError:
                        pass
                else:
                    self._release_fid(newfid)
            raise

    def clone(self, fid: int) -> int:
        return self.walk(fid, [])[0]

    # --- open / create ------------------------------------------------------------------

    def _donated(self, fds):
        """The donated fd if exactly one regular-file fd came; any other fds are closed."""
        if len(fds) != 1:
            _close_all(fds)
            return None
        try:
            if stat.S_ISREG(os.fstat(fds[0]).st_mode):
                return fds[0]
        except OSError:
            pass
        _close_all(fds)
        return None

    def lopen(self, fid: int, flags: int) -> tuple:
        """(qid, iounit, donated host fd or None)."""
        reply, fds = self._rpc(m.Tlopen(0, fid, flags), m.Rlopen)
        self._iounits[fid] = reply.iounit
        return reply.qid, reply.iounit, self._donated(fds)

    def lcreate(self, fid: int, name: str, flags: int, mode: int, gid: int = 0) -> tuple:
        """Create and open dir-fid/name; fid then refers to the new file.
        (qid, iounit, donated host fd or None)."""
        reply, fds = self._rpc(m.Tlcreate(0, fid, name, flags, mode, gid), m.Rlcreate)
        self._iounits[fid] = reply.iounit
        return reply.qid, reply.iounit, self._donated(fds)

    def mkdir(self, dfid: int, name: str, mode: int, gid: int = 0):
        return self._call(m.Tmkdir(0, dfid, name, mode, gid), m.Rmkdir).qid

    def symlink(self, dfid: int, name: str, target: str, gid: int = 0):
        return self._call(m.Tsymlink(0, dfid, name, target, gid), m.Rsymlink).qid

    def mknod(self, dfid: int, name: str, mode: int, major: int = 0, minor: int = 0,
              gid: int = 0):
        return self._call(m.Tmknod(0, dfid, name, mode, major, minor, gid), m.Rmknod).qid

    def link(self, dfid: int, fid: int, name: str) -> None:
        self._call(m.Tlink(0, dfid, fid, name), m.Rlink)

    # --- names --------------------------------------------------------------------------

    def readlink(self, fid: int) -> str:
        return self._call(m.Treadlink(0, fid), m.Rreadlink).target

    def rename(self, fid: int, dfid: int, name: str) -> None:
        self._call(m.Trename(0, fid, dfid, name), m.Rrename)

    def renameat(self, olddfid: int, oldname: str, newdfid: int, newname: str) -> None:
        """Servers without Trenameat (diod 1.0.x) get walk + Trename, as protocol.md says."""
        if "renameat" not in self._unsupported:
            try:
                self._call(m.Trenameat(0, olddfid, oldname, newdfid, newname), m.Rrenameat)
                return
            except SysError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise
                self._unsupported.add("renameat")
        fid, _ = self.walk(olddfid, [oldname])
        try:
            self.rename(fid, newdfid, newname)
        finally:
            self.clunk(fid)

    def unlinkat(self, dfid: int, name: str, flags: int = 0) -> None:
        """Servers without Tunlinkat get walk + Tremove, as protocol.md says."""
        if "unlinkat" not in self._unsupported:
            try:
                self._call(m.Tunlinkat(0, dfid, name, flags), m.Runlinkat)
                return
            except SysError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise
                self._unsupported.add("unlinkat")
        fid, qids = self.walk(dfid, [name])
        is_dir = bool(qids[0].type & QTDIR)
        if bool(flags & AT_REMOVEDIR) != is_dir:
            self.clunk(fid)
            raise SysError(errno.EISDIR if is_dir else errno.ENOTDIR)
        self.remove(fid)

    # --- attributes ---------------------------------------------------------------------

    def getattr(self, fid: int, mask: int = GETATTR_ALL):
        """The Rgetattr reply (fields mode, uid, gid, size, atime_sec, ... and valid)."""
        return self._call(m.Tgetattr(0, fid, mask), m.Rgetattr)

    def setattr(self, fid: int, valid: int, *, mode: int = 0, uid: int = 0, gid: int = 0,
                size: int = 0, atime=(0, 0), mtime=(0, 0)) -> None:
        self._call(m.Tsetattr(0, fid, valid, mode, uid, gid, size, atime[0], atime[1],
                              mtime[0], mtime[1]), m.Rsetattr)

    def statfs(self, fid: int):
        return self._call(m.Tstatfs(0, fid), m.Rstatfs)

    def xattrwalk(self, fid: int, name: str = "") -> tuple:
        """(newfid, size): read the value (or, for name "", the NUL-separated list of
        names) from newfid with read(); clunk it afterwards."""
        newfid = self._alloc_fid()
        try:
            reply = self._call(m.Txattrwalk(0, fid, newfid, name), m.Rxattrwalk)
        except BaseException:
            self._release_fid(newfid)
            raise
        return newfid, reply.size

    def xattrcreate(self, fid: int, name: str, size: int, flags: int = 0) -> None:
        self._call(m.Txattrcreate(0, fid, name, size, flags), m.Rxattrcreate)

    # --- I/O ----------------------------------------------------------------------------

    def read(self, fid: int, offset: int, count: int) -> bytes:
        """Up to `count` bytes at `offset`; fewer only at end of file."""
        parts = []
        limit = self._io_size(fid)
        while count > 0:
            want = min(count, limit)
            data = self._call(m.Tread(0, fid, offset, want), m.Rread).data
            if len(data) > want:
                raise self._fail(f"Rread of {len(data)} bytes for {want} asked")
            parts.append(data)
            offset += len(data)
            count -= len(data)
            if len(data) < want:
                break
        return b"".join(parts)

    def read_into(self, fid: int, offset: int, dst) -> int:
        """Fill the memoryviews in `dst` (see sentry/vfs/iov.py); returns bytes read."""
        return iov.copy_into(dst, self.read(fid, offset, iov.total(dst)))

    def write(self, fid: int, offset: int, data) -> int:
        """Write bytes-like `data` (or a list of memoryviews) at `offset`; returns the
        count written, short only if the server wrote short."""
        if isinstance(data, list):
            data = iov.gather(data)
        view = memoryview(data).cast("B")
        limit = self._io_size(fid)
        done = 0
        while done < len(view):
            chunk = bytes(view[done:done + limit])
            n = self._call(m.Twrite(0, fid, offset + done, chunk), m.Rwrite).count
            if n > len(chunk):
                raise self._fail(f"Rwrite of {n} bytes for {len(chunk)} sent")
            done += n
            if n < len(chunk):
                break
        return done

    def readdir(self, fid: int, offset: int = 0, count: int | None = None) -> list:
        """Entries (Dirent) from cookie `offset`; [] at the end of the directory."""
        limit = self.msize - IOHDRSZ
        count = limit if count is None else min(count, limit)
        data = self._call(m.Treaddir(0, fid, offset, count), m.Rreaddir).data
        try:
            return decode_dirents(data)
        except ProtocolError as exc:
            raise self._fail(str(exc)) from None

    def readdir_all(self, fid: int) -> list:
        entries = []
        offset = 0
        while True:
            batch = self.readdir(fid, offset)
            if not batch:
                return entries
            entries.extend(batch)
            offset = batch[-1].offset

    def fsync(self, fid: int, datasync: bool = False) -> None:
        self._call(m.Tfsync(0, fid, int(datasync)), m.Rfsync)

    def lock(self, fid: int, type: int, flags: int, start: int, length: int, proc_id: int,
             client_id: str = "") -> int:
        """Rlock status (LOCK_SUCCESS, LOCK_BLOCKED, ...); never waits in the server."""
        return self._call(m.Tlock(0, fid, type, flags, start, length, proc_id, client_id),
                          m.Rlock).status

    def getlock(self, fid: int, type: int, start: int, length: int, proc_id: int,
                client_id: str = ""):
        return self._call(m.Tgetlock(0, fid, type, start, length, proc_id, client_id),
                          m.Rgetlock)


def _close_all(fds) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
