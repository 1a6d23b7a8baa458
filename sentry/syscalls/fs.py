"""File syscalls: paths, descriptors, I/O, metadata, pipes, polling.

User memory is reached only through the task's copy helpers (t.mm.read/write/views).
A blocking read/write is a generator: the file raises WouldBlock, the handler parks on the
file's wait queue (or returns EAGAIN for O_NONBLOCK) and retries when woken.
"""
import errno
import os
import stat as _st
import struct
import time

from ..kernel.errors import SysError, WouldBlock
from ..kernel.wait import Block, INTERRUPTED, POLLIN, POLLOUT, POLLNVAL, POLLERR, POLLHUP
from ..kernel import signals as S
from ..kernel import caps as C
from ..vfs.dirent import pack_dirents64
from ..vfs.fdtable import FDTable
from ..vfs.file import RegularFile
from ..vfs.iov import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, advance,
                       copy_into, total as iov_total)
from ..mm import filemap
from ..mm.addrspace import USER_PTR_MAX
from ..mm.userbuf import UserBuffer
from ..vfs.unix import MSG_NOSIGNAL, SocketFile
from ..vfs.pipe import make_pipe
from ..vfs.walk import RESOLVE_ALL, RESOLVE_BENEATH, RESOLVE_CACHED, RESOLVE_IN_ROOT
from .table import syscall, PARTIAL

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_SYMLINK_FOLLOW = 0x100, 0x200, 0x400
AT_EACCESS, AT_EMPTY_PATH, AT_NO_AUTOMOUNT = 0x200, 0x1000, 0x800
AT_STATX_SYNC_TYPE = 0x6000      # FORCE_SYNC | DONT_SYNC: one or the other, not both
O_NONBLOCK, O_CLOEXEC, O_APPEND, O_DIRECTORY, O_PATH = 0o4000, 0o2000000, 0o2000, 0o200000, 0o10000000
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_DUPFD_CLOEXEC = 5, 6, 7, 1030
F_SETPIPE_SZ, F_GETPIPE_SZ, F_SETOWN, F_GETOWN = 1031, 1032, 8, 9
F_SETLEASE, F_GETLEASE, F_NOTIFY = 1024, 1025, 1026
FD_CLOEXEC = 1
ERESTARTSYS = 512
IOV_MAX = 1024


def s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v


def _dir(t, dirfd):
    """The starting Location for an *at() path: None means the cwd."""
    dirfd = s32(dirfd)
    if dirfd == AT_FDCWD:
        return None
    desc = t.fdtable.get(dirfd)
    if desc.location is None:
        raise SysError(errno.ENOTDIR)
    return desc.location


def _path(t, addr):
    if not addr:
        raise SysError(errno.EFAULT)
    return t.mm.read_cstring(addr, 4096)


def _at(t, dirfd, pathaddr):
    return _dir(t, dirfd), _path(t, pathaddr)


# ---- open / close ----------------------------------------------------------------------
def do_open(t, dirfd, path, flags, mode, resolve=0):
    ctx = t.path_context()
    desc = t.kernel.vfs.openat(ctx, _dir(t, dirfd), path, flags, mode, resolve)
    try:
        # A FIFO opened without O_NONBLOCK waits for its peer.
        while True:
            try:
                desc.open_wait()
                break
            except WouldBlock as wb:
                reason = yield Block([desc.waitqueue], mask=wb.events)
                if reason == INTERRUPTED:
                    return -ERESTARTSYS
        return t.fdtable.install(desc, cloexec=bool(flags & O_CLOEXEC))
    finally:
        desc.decref()


@syscall("open", ("path", "flags:open", "mode"), ret="fd")
def sys_open(t, path, flags, mode, *_):
    return do_open(t, AT_FDCWD, _path(t, path), flags, mode)


@syscall("openat", ("fd", "path", "flags:open", "mode"), ret="fd")
def sys_openat(t, dirfd, path, flags, mode, *_):
    return do_open(t, dirfd, _path(t, path), flags, mode)


@syscall("creat", ("path", "mode"), ret="fd")
def sys_creat(t, path, mode, *_):
    return do_open(t, AT_FDCWD, _path(t, path), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)


# openat2's struct open_how: flags, mode, resolve (u64 each); later versions only append.
OPEN_HOW_SIZE_VER0 = 24
# Every O_* flag open(2) knows on x86-64 (Linux's VALID_OPEN_FLAGS); __O_TMPFILE is
# O_TMPFILE without its O_DIRECTORY.
VALID_OPEN_FLAGS = 0o37777703
__O_TMPFILE = 0o20000000


def _check_open_how(flags, mode, resolve):
    """openat2 refuses what open/openat silently ignore (build_open_flags(), in its order)."""
    flags &= ~O_CLOEXEC
    if flags & ~VALID_OPEN_FLAGS or resolve & ~RESOLVE_ALL:
        raise SysError(errno.EINVAL)
    if resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        raise SysError(errno.EINVAL)
    if flags & (os.O_CREAT | __O_TMPFILE):
        if mode & ~0o7777:
            raise SysError(errno.EINVAL)
    elif mode:
        raise SysError(errno.EINVAL)
    if flags & (O_DIRECTORY | os.O_CREAT) == O_DIRECTORY | os.O_CREAT:
        raise SysError(errno.EINVAL)    # as VirtualFS.openat, but before EAGAIN below
    if flags & __O_TMPFILE and (not flags & O_DIRECTORY or not flags & 3):
        raise SysError(errno.EINVAL)
    if flags & O_PATH and flags & ~(O_PATH | O_DIRECTORY | os.O_NOFOLLOW):
        raise SysError(errno.EINVAL)
    if resolve & RESOLVE_CACHED and flags & (os.O_TRUNC | os.O_CREAT | __O_TMPFILE):
        raise SysError(errno.EAGAIN)


@syscall("openat2", ("fd", "path", "ptr", "size"), ret="fd", support=PARTIAL,
         note="RESOLVE_CACHED never fails with EAGAIN for a lookup (the sentry always "
              "completes one); a procfs fd/N link of a pipe or socket is not treated as "
              "a magic link by the RESOLVE_* checks")
def sys_openat2(t, dirfd, path, how, size, *_):
    if size < OPEN_HOW_SIZE_VER0:
        raise SysError(errno.EINVAL)
    if size > 4096:
        raise SysError(errno.E2BIG)
    raw = t.mm.read(how, size)
    if any(raw[OPEN_HOW_SIZE_VER0:]):       # fields of a newer struct we do not know
        raise SysError(errno.E2BIG)
    flags, mode, resolve = struct.unpack_from("<QQQ", raw)
    _check_open_how(flags, mode, resolve)
    return do_open(t, dirfd, _path(t, path), flags, mode, resolve)


@syscall("close", ("fd",))
def sys_close(t, fd, *_):
    t.fdtable.close(s32(fd))
    return 0


@syscall("close_range", ("fd", "fd", "flags"))
def sys_close_range(t, first, last, flags, *_):
    if first > last:
        raise SysError(errno.EINVAL)
    t.fdtable.close_range(first, min(last, 1 << 20), flags)
    return 0


# ---- read / write ----------------------------------------------------------------------
def _io(t, desc, op, resolve, offset):
    """Run op(views, offset), waiting while the file would block. `resolve()` gives the
    views of the buffer; it is called again after every wait (mm/userbuf.py says why)."""
    views = resolve()
    while True:
        try:
            return op(views, offset)
        except WouldBlock as wb:
            if desc.flags & O_NONBLOCK:
                return -errno.EAGAIN
            reason = yield Block([desc.waitqueue], mask=wb.events | POLLERR | POLLHUP)
            if reason == INTERRUPTED:
                return -ERESTARTSYS
            views = resolve()


def _io_write_all(t, desc, resolve, offset):
    """A blocking write to a stream goes on until everything is written, as Linux's pipe
    write does; a signal after partial progress returns the count written so far."""
    if desc.flags & O_NONBLOCK or not desc.stream:
        return (yield from _io(t, desc, desc.write, resolve, offset))
    views = resolve()
    total, want = 0, iov_total(views)
    while True:
        try:
            n = desc.write(views, offset)
        except WouldBlock as wb:
            reason = yield Block([desc.waitqueue], mask=wb.events | POLLERR | POLLHUP)
            if reason == INTERRUPTED:
                return total or -ERESTARTSYS
            try:
                views = advance(resolve(), total)
            except SysError:
                if total:
                    return total
                raise
            continue
        except SysError:
            if total:
                return total
            raise
        total += n
        if total >= want or n == 0:
            return total
        views = advance(views, n)


def _check_write_result(t, r):
    if r == -errno.EPIPE:
        from ..kernel.sigframe import pack_siginfo
        t.kernel.send_signal(t.tg, S.SIGPIPE, pack_siginfo(S.SIGPIPE, S.SI_USER,
                                                           pid=t.tg.tgid, uid=t.tg.uid), task=t)
    return r


MAX_RW_COUNT = 0x7ffff000      # Linux caps one read/write at this many bytes


def _buffer(t, buf, count, write):
    """The user buffer of a read/write that may wait (checked now: EFAULT before waiting)."""
    ub = UserBuffer(t.mm, [(buf, min(count, MAX_RW_COUNT))], write)
    ub.check()
    return ub.views


def _read_views(t, fd, resolve, offset):
    desc = t.fdtable.get(s32(fd))
    if isinstance(desc, SocketFile):
        # read(2) on a socket is recv(fd, buf, n, 0): its timeouts, its credentials.
        if offset is not None:
            return -errno.ESPIPE
        from . import socket as sock
        r, data, st = yield from sock._recv(t, desc, iov_total(resolve()), 0)
        try:
            return r if r < 0 else copy_into(resolve(), data)
        finally:
            st.drop_rights()
    return (yield from _io(t, desc, desc.read, resolve, offset))


def _write_views(t, fd, resolve, offset):
    desc = t.fdtable.get(s32(fd))
    if isinstance(desc, SocketFile):
        if offset is not None:
            return -errno.ESPIPE
        from . import socket as sock
        return (yield from sock._send(t, desc, resolve, None, None, 0))
    try:
        r = yield from _io_write_all(t, desc, resolve, offset)
    except SysError as e:
        r = -e.errno
    return _check_write_result(t, r)


# A read from a file that never waits resolves its buffer (breaking copy-on-write for
# every page) only as far as data can arrive: in chunks that start at this size and
# double, so a huge buffer handed to a small file costs the first chunk, not the whole
# buffer (which stalled the single-threaded kernel ~1 s per 64 MiB), while a big read of
# a big file still takes few calls.
FIRST_READ_CHUNK = 1 << 20
LAST_READ_CHUNK = 64 << 20


def _read_chunked(t, desc, ranges, offset):
    """Read a non-waiting file into the (address, length) ranges in growing chunks,
    stopping at the first short read. A buffer that turns inaccessible part-way gets the
    bytes before the fault; only a fault before any byte is EFAULT, as on Linux. The
    ranges lie in user space (the caller checked, as Linux's access_ok does first)."""
    done, chunk = 0, FIRST_READ_CHUNK
    ranges = list(ranges)
    while ranges:
        views, want = [], 0
        while ranges and want < chunk:
            base, ln = ranges[0]
            n = min(ln, chunk - want)
            try:
                got = t.mm.views(base, n, True, True)
            except SysError:
                if done or views:
                    ranges = []
                    break
                raise
            views += got
            got_n = iov_total(got)
            want += got_n
            if got_n < n:
                ranges = []              # a fault part-way: this is the last chunk
                break
            ranges[0] = (base + n, ln - n)
            if ln == n:
                ranges.pop(0)
        if not views:
            break
        try:
            n = desc.read(views, None if offset is None else offset + done)
        except (WouldBlock, SysError):
            if done:
                return done
            raise
        done += n
        if n < want:
            break
        chunk = min(chunk * 2, LAST_READ_CHUNK)
    return done


def _read(t, fd, buf, count, offset):
    # The hot path of every file read: kept to the fewest Python steps (the fd as an
    # unsigned int, as Linux takes it; EBADF before EFAULT, as Linux orders them).
    desc = t.fdtable.get(fd & 0xffffffff)
    if not desc.stream and not isinstance(desc, SocketFile):
        # Regular files and directories never wait: no generator on the hot path (a file
        # that does want to wait after all falls back to the waiting path). A buffer that
        # turns inaccessible part-way gets the bytes before the fault, as on Linux.
        if count > MAX_RW_COUNT:
            count = MAX_RW_COUNT
        try:
            if count <= FIRST_READ_CHUNK:
                return desc.read(t.mm.views(buf, count, True, True) if count else [], offset)
            if buf + count > t.mm.max_addr:
                raise SysError(errno.EFAULT)     # access_ok: the whole buffer, first
            return _read_chunked(t, desc, [(buf, count)], offset)
        except WouldBlock:
            pass
    return _read_views(t, fd, _buffer(t, buf, count, True), offset)


def _write(t, fd, buf, count, offset):
    desc = t.fdtable.get(fd & 0xffffffff)
    if not desc.stream and not isinstance(desc, SocketFile):
        if count > MAX_RW_COUNT:
            count = MAX_RW_COUNT
        src = t.mm.views(buf, count, False, True) if count else []
        try:
            return desc.write(src, offset)
        except WouldBlock:
            pass
        except SysError as e:
            return _check_write_result(t, -e.errno)
    return _write_views(t, fd, _buffer(t, buf, count, False), offset)


@syscall("read", ("fd", "ptr", "size"))
def sys_read(t, fd, buf, count, *_):
    return _read(t, fd, buf, count, None)


@syscall("write", ("fd", "bytes", "size"))
def sys_write(t, fd, buf, count, *_):
    return _write(t, fd, buf, count, None)


@syscall("pread64", ("fd", "ptr", "size", "int"))
def sys_pread64(t, fd, buf, count, off, *_):
    if off >> 63:
        raise SysError(errno.EINVAL)
    return _read(t, fd, buf, count, off)


@syscall("pwrite64", ("fd", "bytes", "size", "int"))
def sys_pwrite64(t, fd, buf, count, off, *_):
    if off >> 63:
        raise SysError(errno.EINVAL)
    return _write(t, fd, buf, count, off)


def _iovec_ranges(t, iov, cnt) -> list:
    """An iovec array as [(base, length)]; every length is checked before any memory is
    (as Linux's import_iovec does)."""
    if cnt > IOV_MAX:
        raise SysError(errno.EINVAL)
    raw = t.mm.read(iov, 16 * cnt) if cnt else b""
    vecs = list(struct.iter_unpack("<QQ", raw))
    for _, ln in vecs:
        if ln >> 63:
            raise SysError(errno.EINVAL)
    # Then each buffer must lie in user space as given, and the total is cut to
    # MAX_RW_COUNT (Linux's import_iovec, in that order).
    top, room = t.mm.max_addr, MAX_RW_COUNT
    for i, (base, ln) in enumerate(vecs):
        # (Even an empty buffer must start in user space: access_ok looks at the address.)
        if base + ln > top and (ln or base > USER_PTR_MAX):
            raise SysError(errno.EFAULT)
        if ln > room:
            vecs[i] = (base, room)
        room -= vecs[i][1]
    return vecs


def _iovec_buffer(t, iov, cnt, write):
    """The iovec buffers of a readv/writev that may wait (checked now)."""
    ub = UserBuffer(t.mm, _iovec_ranges(t, iov, cnt), write)
    ub.check()
    return ub.views


def _views_of(t, vecs, write, partial):
    """The views of checked (address, length) ranges; with `partial`, a fault part-way
    ends the list there (EFAULT only if no byte at all is accessible)."""
    views = []
    for base, ln in vecs:
        if not ln:
            continue
        try:
            got = t.mm.views(base, ln, write, partial)
        except SysError as e:
            if partial and views and e.errno == errno.EFAULT:
                break
            raise
        views += got
        if partial and sum(map(len, got)) < ln:
            break
    return views


def _vread(t, fd, iov, cnt, offset):
    desc = t.fdtable.get(s32(fd))
    if not desc.stream and not isinstance(desc, SocketFile):
        # As _read: a regular file or directory needs no generator, and a fault part-way
        # through the buffers makes a short read.
        ranges = _iovec_ranges(t, iov, cnt)
        try:
            if sum(ln for _, ln in ranges) <= FIRST_READ_CHUNK:
                return desc.read(_views_of(t, ranges, True, True), offset)
            return _read_chunked(t, desc, [r for r in ranges if r[1]], offset)
        except WouldBlock:
            pass
    return _read_views(t, fd, _iovec_buffer(t, iov, cnt, True), offset)


def _vwrite(t, fd, iov, cnt, offset):
    desc = t.fdtable.get(s32(fd))
    if not desc.stream and not isinstance(desc, SocketFile):
        try:
            return desc.write(_views_of(t, _iovec_ranges(t, iov, cnt), False, True), offset)
        except WouldBlock:
            pass
        except SysError as e:
            return _check_write_result(t, -e.errno)
    return _write_views(t, fd, _iovec_buffer(t, iov, cnt, False), offset)


@syscall("readv", ("fd", "ptr", "int"))
def sys_readv(t, fd, iov, cnt, *_):
    return _vread(t, fd, iov, cnt, None)


@syscall("writev", ("fd", "ptr", "int"))
def sys_writev(t, fd, iov, cnt, *_):
    return _vwrite(t, fd, iov, cnt, None)


@syscall("preadv", ("fd", "ptr", "int", "int"))
def sys_preadv(t, fd, iov, cnt, off, *_):
    return _vread(t, fd, iov, cnt, off)


@syscall("pwritev", ("fd", "ptr", "int", "int"))
def sys_pwritev(t, fd, iov, cnt, off, *_):
    return _vwrite(t, fd, iov, cnt, off)


RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT = 0x01, 0x02, 0x04, 0x08
RWF_APPEND, RWF_NOAPPEND, RWF_ATOMIC, RWF_DONTCACHE = 0x10, 0x20, 0x40, 0x80
RWF_NOSIGNAL = 0x100
RWF_SUPPORTED = 0x1ff


def _v2_offset(off):
    """preadv2/pwritev2's offset: -1 is the file position (None), other negatives EINVAL."""
    if off == (1 << 64) - 1:
        return None
    if off >> 63:
        raise SysError(errno.EINVAL)
    return off


def _check_rwf(t, fd, iov, cnt, offset, flags, write):
    """Validate RWF_* flags where Linux does (kiocb_set_rw_flags): after the fd, access
    mode and iovec checks, and not at all for an empty transfer (then 0 is returned).
    None means: go on with the transfer.

    What the flags mean here: HIPRI (polled I/O) is a hint; NOWAIT on a pipe or socket is
    EAGAIN when it is not ready, on a tmpfs file EOPNOTSUPP (as Linux's tmpfs, which
    does not offer it), elsewhere a no-op (a regular file never waits in the sentry);
    APPEND/NOAPPEND, DSYNC/SYNC and NOSIGNAL are applied by pwritev2 (NOSIGNAL is a
    no-op for reads, as on Linux); ATOMIC (needs O_DIRECT on a capable device) and
    DONTCACHE (no page cache to bypass) are EOPNOTSUPP, as on Linux's tmpfs."""
    desc = t.fdtable.get(s32(fd))
    if offset is not None and desc.stream:
        raise SysError(errno.ESPIPE)
    if not (desc.writable if write else desc.readable):
        raise SysError(errno.EBADF)
    if not any(ln for _, ln in _iovec_ranges(t, iov, cnt)):
        return 0
    if flags & ~RWF_SUPPORTED or flags & (RWF_ATOMIC | RWF_DONTCACHE):
        raise SysError(errno.EOPNOTSUPP)
    if flags & RWF_APPEND and flags & RWF_NOAPPEND:
        raise SysError(errno.EINVAL)
    if flags & RWF_NOWAIT:
        if desc.stream:
            ready = (POLLOUT if write else POLLIN) | POLLERR | POLLHUP
            if not desc.readiness(ready):
                return -errno.EAGAIN
        elif getattr(getattr(desc.inode, "fs", None), "fstype", "") == "tmpfs":
            raise SysError(errno.EOPNOTSUPP)
    return None


@syscall("preadv2", ("fd", "ptr", "int", "int", "int", "flags"),
         note="RWF_NOWAIT never fails on a regular file outside tmpfs (nothing waits)")
def sys_preadv2(t, fd, iov, cnt, off, _hi, flags):
    offset = _v2_offset(off)
    if flags:
        r = _check_rwf(t, fd, iov, cnt, offset, flags, write=False)
        if r is not None:
            return r
    return _vread(t, fd, iov, cnt, offset)


@syscall("pwritev2", ("fd", "ptr", "int", "int", "int", "flags"),
         note="RWF_NOWAIT on a pipe or socket is EAGAIN only when no room at all (a big "
              "write may still wait for the rest)")
def sys_pwritev2(t, fd, iov, cnt, off, _hi, flags):
    offset = _v2_offset(off)
    if not flags:
        return _vwrite(t, fd, iov, cnt, offset)
    r = _check_rwf(t, fd, iov, cnt, offset, flags, write=True)
    if r is not None:
        return r
    desc = t.fdtable.get(s32(fd))
    if flags & RWF_NOSIGNAL and desc.stream:
        return _write_nosignal(t, desc, _iovec_buffer(t, iov, cnt, False))
    if not isinstance(desc, RegularFile):
        return _vwrite(t, fd, iov, cnt, offset)
    # RWF_APPEND / RWF_NOAPPEND turn O_APPEND on or off for this call only. A regular
    # file's write completes without waiting, so no other call sees the changed flags.
    saved = desc.flags
    if flags & RWF_APPEND:
        desc.flags = saved | O_APPEND
    elif flags & RWF_NOAPPEND:
        desc.flags = saved & ~O_APPEND
    try:
        n = _vwrite(t, fd, iov, cnt, offset)
    finally:
        desc.flags = saved
    if flags & (RWF_DSYNC | RWF_SYNC) and isinstance(n, int) and n > 0:
        desc.fsync()
    return n


def _write_nosignal(t, desc, resolve):
    """A write to a pipe or socket whose reader is gone is EPIPE without SIGPIPE."""
    if isinstance(desc, SocketFile):
        from . import socket as sock
        return (yield from sock._send(t, desc, resolve, None, None, MSG_NOSIGNAL))
    try:
        return (yield from _io_write_all(t, desc, resolve, None))
    except SysError as e:
        return -e.errno


@syscall("lseek", ("fd", "int", "int"))
def sys_lseek(t, fd, off, whence, *_):
    off = off - (1 << 64) if off >> 63 else off
    return t.fdtable.get(s32(fd)).seek(off, whence)


@syscall("sendfile", ("fd", "fd", "ptr", "size"), support=PARTIAL, note="copies through the sentry")
def sys_sendfile(t, out_fd, in_fd, offp, count, *_):
    src, dst = t.fdtable.get(s32(in_fd)), t.fdtable.get(s32(out_fd))
    if not src.readable or not dst.writable:
        raise SysError(errno.EBADF)
    count = min(count, 1 << 20)
    buf = bytearray(count)
    off = struct.unpack("<q", t.copy_in(offp, 8))[0] if offp else None
    if off is not None and off < 0:
        raise SysError(errno.EINVAL)
    # Read at an explicit offset, so a failed write leaves the input's offset alone.
    start = off if off is not None else (None if src.stream else src.pos)
    n = yield from _io(t, src, src.read, lambda: [memoryview(buf)], start)
    if n <= 0:
        return n
    w = yield from _io(t, dst, dst.write, lambda: [memoryview(buf)[:n]], None)
    if w > 0:
        if offp:
            t.copy_out(offp, struct.pack("<q", off + w))
        elif not src.stream:
            src.pos = start + w
    return w


# ---- metadata ---------------------------------------------------------------------------
def _stat_at(t, dirfd, pathaddr, flags):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | 0x6000):
        raise SysError(errno.EINVAL)
    path = t.mm.read_cstring(pathaddr, 4096) if pathaddr else b""
    if not path:
        if not flags & AT_EMPTY_PATH:
            raise SysError(errno.ENOENT)
        d = s32(dirfd)
        if d == AT_FDCWD:
            return t.kernel.vfs.stat(t.path_context(), None, b".")
        return t.fdtable.get(d).stat()
    return t.kernel.vfs.stat(t.path_context(), _dir(t, dirfd), path,
                             follow=not flags & AT_SYMLINK_NOFOLLOW)


@syscall("stat", ("path", "ptr"))
def sys_stat(t, path, buf, *_):
    t.mm.write(buf, t.kernel.vfs.stat(t.path_context(), None, _path(t, path)).pack_stat())
    return 0


@syscall("lstat", ("path", "ptr"))
def sys_lstat(t, path, buf, *_):
    t.mm.write(buf, t.kernel.vfs.stat(t.path_context(), None, _path(t, path), follow=False).pack_stat())
    return 0


@syscall("fstat", ("fd", "ptr"))
def sys_fstat(t, fd, buf, *_):
    t.mm.write(buf, t.fdtable.get(s32(fd)).stat().pack_stat())
    return 0


@syscall("newfstatat", ("fd", "path", "ptr", "flags:at"))
def sys_newfstatat(t, dirfd, path, buf, flags, *_):
    t.mm.write(buf, _stat_at(t, dirfd, path, flags).pack_stat())
    return 0


@syscall("statx", ("fd", "path", "flags:at", "hex", "ptr"))
def sys_statx(t, dirfd, path, flags, mask, buf, _a5):
    if mask & 0x80000000 or flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE:
        raise SysError(errno.EINVAL)
    st = _stat_at(t, dirfd, path, flags & ~AT_STATX_SYNC_TYPE)
    t.mm.write(buf, st.pack_statx(mask))
    return 0


def _statfs(t, st, buf):
    t.mm.write(buf, st.pack_statfs())
    return 0


@syscall("statfs", ("path", "ptr"))
def sys_statfs(t, path, buf, *_):
    return _statfs(t, t.kernel.vfs.statfs(t.path_context(), None, _path(t, path)), buf)


@syscall("fstatfs", ("fd", "ptr"))
def sys_fstatfs(t, fd, buf, *_):
    desc = t.fdtable.get(s32(fd))
    if desc.location is None:
        raise SysError(errno.ENOSYS)
    return _statfs(t, t.kernel.vfs.statfs_at(desc.location), buf)


@syscall("readlink", ("path", "ptr", "size"))
def sys_readlink(t, path, buf, size, *_):
    return _readlink(t, AT_FDCWD, path, buf, size)


@syscall("readlinkat", ("fd", "path", "ptr", "size"))
def sys_readlinkat(t, dirfd, path, buf, size, *_):
    return _readlink(t, dirfd, path, buf, size)


def _readlink(t, dirfd, path, buf, size):
    if s32(size) <= 0:
        raise SysError(errno.EINVAL)
    d, p = _at(t, dirfd, path)
    target = t.kernel.vfs.readlink(t.path_context(), d, p)
    out = target[:size]
    t.mm.write(buf, out)
    return len(out)


def _access(t, dirfd, path, mode, flags):
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    d, p = _at(t, dirfd, path)
    t.kernel.vfs.access(t.path_context(), d, p, mode, flags)
    return 0


@syscall("access", ("path", "int"))
def sys_access(t, path, mode, *_):
    return _access(t, AT_FDCWD, path, mode, 0)


@syscall("faccessat", ("fd", "path", "int"))
def sys_faccessat(t, dirfd, path, mode, *_):
    return _access(t, dirfd, path, mode, 0)


@syscall("faccessat2", ("fd", "path", "int", "flags:at"))
def sys_faccessat2(t, dirfd, path, mode, flags, *_):
    return _access(t, dirfd, path, mode, flags)


@syscall("getdents64", ("fd", "ptr", "size"))
def sys_getdents64(t, fd, buf, count, *_):
    desc = t.fdtable.get(s32(fd))
    data = pack_dirents64(desc.getdents(count & 0xffffffff))   # count is an unsigned int
    t.mm.write(buf, data)
    return len(data)


@syscall("getdents", ("fd", "ptr", "size"))
def sys_getdents(t, fd, buf, count, *_):
    from ..vfs.dirent import pack_dirents, reclen
    desc = t.fdtable.get(s32(fd))
    data = pack_dirents(desc.getdents(count & 0xffffffff, reclen=reclen))
    t.mm.write(buf, data)
    return len(data)


# ---- namespace changes -----------------------------------------------------------------
@syscall("mkdir", ("path", "mode"))
def sys_mkdir(t, path, mode, *_):
    t.kernel.vfs.mkdir(t.path_context(), None, _path(t, path), mode)
    return 0


@syscall("mkdirat", ("fd", "path", "mode"))
def sys_mkdirat(t, dirfd, path, mode, *_):
    d, p = _at(t, dirfd, path)
    t.kernel.vfs.mkdir(t.path_context(), d, p, mode)
    return 0


@syscall("mknod", ("path", "mode", "hex"))
def sys_mknod(t, path, mode, dev, *_):
    t.kernel.vfs.mknod(t.path_context(), None, _path(t, path), mode, dev)
    return 0


@syscall("mknodat", ("fd", "path", "mode", "hex"))
def sys_mknodat(t, dirfd, path, mode, dev, *_):
    d, p = _at(t, dirfd, path)
    t.kernel.vfs.mknod(t.path_context(), d, p, mode, dev)
    return 0


@syscall("unlink", ("path",))
def sys_unlink(t, path, *_):
    t.kernel.vfs.unlink(t.path_context(), None, _path(t, path))
    return 0


@syscall("rmdir", ("path",))
def sys_rmdir(t, path, *_):
    t.kernel.vfs.rmdir(t.path_context(), None, _path(t, path))
    return 0


@syscall("unlinkat", ("fd", "path", "flags:at"))
def sys_unlinkat(t, dirfd, path, flags, *_):
    if flags & ~AT_REMOVEDIR:
        raise SysError(errno.EINVAL)
    d, p = _at(t, dirfd, path)
    if flags & AT_REMOVEDIR:
        t.kernel.vfs.rmdir(t.path_context(), d, p)
    else:
        t.kernel.vfs.unlink(t.path_context(), d, p)
    return 0


@syscall("rename", ("path", "path"))
def sys_rename(t, old, new, *_):
    t.kernel.vfs.rename(t.path_context(), None, _path(t, old), None, _path(t, new))
    return 0


@syscall("renameat", ("fd", "path", "fd", "path"))
def sys_renameat(t, od, old, nd, new, *_):
    t.kernel.vfs.rename(t.path_context(), _dir(t, od), _path(t, old), _dir(t, nd), _path(t, new))
    return 0


@syscall("renameat2", ("fd", "path", "fd", "path", "flags"))
def sys_renameat2(t, od, old, nd, new, flags, _a5):
    t.kernel.vfs.rename(t.path_context(), _dir(t, od), _path(t, old), _dir(t, nd),
                        _path(t, new), flags)
    return 0


@syscall("symlink", ("path", "path"))
def sys_symlink(t, target, path, *_):
    t.kernel.vfs.symlink(t.path_context(), _path(t, target), None, _path(t, path))
    return 0


@syscall("symlinkat", ("path", "fd", "path"))
def sys_symlinkat(t, target, dirfd, path, *_):
    d, p = _at(t, dirfd, path)
    t.kernel.vfs.symlink(t.path_context(), _path(t, target), d, p)
    return 0


@syscall("link", ("path", "path"))
def sys_link(t, old, new, *_):
    t.kernel.vfs.link(t.path_context(), None, _path(t, old), None, _path(t, new))
    return 0


@syscall("linkat", ("fd", "path", "fd", "path", "flags:at"))
def sys_linkat(t, od, old, nd, new, flags, _a5):
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    t.kernel.vfs.link(t.path_context(), _dir(t, od), _path(t, old), _dir(t, nd), _path(t, new),
                      follow=bool(flags & AT_SYMLINK_FOLLOW))
    return 0


@syscall("chmod", ("path", "mode"))
def sys_chmod(t, path, mode, *_):
    t.kernel.vfs.chmod(t.path_context(), None, _path(t, path), mode & 0o7777)
    return 0


@syscall("fchmod", ("fd", "mode"))
def sys_fchmod(t, fd, mode, *_):
    t.fdtable.get(s32(fd)).chmod(t.path_context().creds, mode & 0o7777)
    return 0


@syscall("fchmodat", ("fd", "path", "mode"))
def sys_fchmodat(t, dirfd, path, mode, *_):
    d, p = _at(t, dirfd, path)
    t.kernel.vfs.chmod(t.path_context(), d, p, mode & 0o7777)
    return 0


def _id(v):
    v &= 0xffffffff
    return -1 if v == 0xffffffff else v


@syscall("chown", ("path", "int", "int"))
def sys_chown(t, path, uid, gid, *_):
    t.kernel.vfs.chown(t.path_context(), None, _path(t, path), _id(uid), _id(gid))
    return 0


@syscall("lchown", ("path", "int", "int"))
def sys_lchown(t, path, uid, gid, *_):
    t.kernel.vfs.chown(t.path_context(), None, _path(t, path), _id(uid), _id(gid), follow=False)
    return 0


@syscall("fchown", ("fd", "int", "int"))
def sys_fchown(t, fd, uid, gid, *_):
    t.fdtable.get(s32(fd)).chown(t.path_context().creds, _id(uid), _id(gid))
    return 0


@syscall("fchownat", ("fd", "path", "int", "int", "flags:at"))
def sys_fchownat(t, dirfd, path, uid, gid, flags, _a5):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    p = _path(t, path)
    if not p and flags & AT_EMPTY_PATH:
        if s32(dirfd) == AT_FDCWD:
            t.kernel.vfs.chown(t.path_context(), None, b".", _id(uid), _id(gid))
        else:
            t.fdtable.get(s32(dirfd)).chown(t.path_context().creds, _id(uid), _id(gid))
        return 0
    t.kernel.vfs.chown(t.path_context(), _dir(t, dirfd), p, _id(uid), _id(gid),
                       follow=not flags & AT_SYMLINK_NOFOLLOW)
    return 0


UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


@syscall("utimensat", ("fd", "path", "ptr", "flags:at"))
def sys_utimensat(t, dirfd, path, times, flags, *_):
    if times:
        a = struct.unpack("<qq", t.mm.read(times, 16))
        m = struct.unpack("<qq", t.mm.read(times + 16, 16))
        for ts in (a, m):
            if ts[1] not in (UTIME_NOW, UTIME_OMIT) and not 0 <= ts[1] < 1_000_000_000:
                raise SysError(errno.EINVAL)
        conv = lambda ts: ts[1] if ts[1] in (UTIME_NOW, UTIME_OMIT) else ts
        atime, mtime = conv(a), conv(m)
    else:
        atime = mtime = UTIME_NOW
    # A NULL path names dirfd itself (futimens), and then takes no flags (do_utimes()).
    if not path and s32(dirfd) != AT_FDCWD:
        if flags:
            raise SysError(errno.EINVAL)
        t.fdtable.get(s32(dirfd)).utimens(t.path_context().creds, atime, mtime)
        return 0
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SysError(errno.EINVAL)
    d, p = _at(t, dirfd, path)
    if not p and flags & AT_EMPTY_PATH:
        if d is None:
            t.kernel.vfs.utimens(t.path_context(), None, b".", atime, mtime)
        else:
            t.fdtable.get(s32(dirfd)).utimens(t.path_context().creds, atime, mtime)
        return 0
    t.kernel.vfs.utimens(t.path_context(), d, p, atime, mtime,
                         follow=not flags & AT_SYMLINK_NOFOLLOW)
    return 0


@syscall("truncate", ("path", "int"))
def sys_truncate(t, path, length, *_):
    if length >> 63:
        raise SysError(errno.EINVAL)
    t.kernel.vfs.truncate(t.path_context(), None, _path(t, path), length)
    return 0


@syscall("ftruncate", ("fd", "int"))
def sys_ftruncate(t, fd, length, *_):
    if length >> 63:
        raise SysError(errno.EINVAL)
    t.fdtable.get(s32(fd)).truncate(length, t.path_context().creds)
    return 0


@syscall("fsync", ("fd",))
def sys_fsync(t, fd, *_):
    t.fdtable.get(s32(fd)).fsync()
    return 0


@syscall("fdatasync", ("fd",))
def sys_fdatasync(t, fd, *_):
    t.fdtable.get(s32(fd)).fsync()
    return 0


@syscall("fadvise64", ("fd", "int", "int", "int"), support=PARTIAL, note="advice is accepted and ignored")
def sys_fadvise64(t, fd, off, length, advice, *_):
    desc = t.fdtable.get(s32(fd))
    if desc.stream:
        raise SysError(errno.ESPIPE)
    if advice > 5:
        raise SysError(errno.EINVAL)
    return 0


@syscall("sync")
def sys_sync(t, *_):
    return 0


FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE = 0x08, 0x20, 0x40
FALLOC_FL_WRITE_ZEROES = 0x80
FALLOC_FL_MODE_MASK = (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE
                       | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE
                       | FALLOC_FL_WRITE_ZEROES)


def _check_fallocate_mode(mode):
    """vfs_fallocate()'s checks of the mode alone: EOPNOTSUPP for what no file allows."""
    if mode & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE):
        raise SysError(errno.EOPNOTSUPP)
    op = mode & FALLOC_FL_MODE_MASK
    if op in (0, FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_ZERO_RANGE):
        return
    if op == FALLOC_FL_PUNCH_HOLE and mode & FALLOC_FL_KEEP_SIZE:
        return
    if (op in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_WRITE_ZEROES)
            and not mode & FALLOC_FL_KEEP_SIZE):
        return
    raise SysError(errno.EOPNOTSUPP)


@syscall("fallocate", ("fd", "int", "int", "int"), support=PARTIAL,
         note="allocate (space is not reserved), KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE (whole "
              "pages are freed; over 9P without a donated fd, zeros are written); "
              "ZERO_RANGE on volume files with a donated fd (EOPNOTSUPP elsewhere, as on "
              "Linux's tmpfs); others EOPNOTSUPP")
def sys_fallocate(t, fd, mode, off, length, *_):
    desc = t.fdtable.get(s32(fd))
    if desc.flags & O_PATH:
        raise SysError(errno.EBADF)
    mode &= 0xffffffff
    if off >> 63 or not 0 < length < 1 << 63:
        raise SysError(errno.EINVAL)
    _check_fallocate_mode(mode)
    if not desc.writable:
        raise SysError(errno.EBADF)
    st = desc.stat()
    if _st.S_ISFIFO(st.mode):
        raise SysError(errno.ESPIPE)
    if _st.S_ISDIR(st.mode):
        raise SysError(errno.EISDIR)
    if not _st.S_ISREG(st.mode):
        raise SysError(errno.ENODEV)
    if off + length >= 1 << 63:
        raise SysError(errno.EFBIG)
    inode = desc.inode
    op = mode & FALLOC_FL_MODE_MASK
    keep_size = bool(mode & FALLOC_FL_KEEP_SIZE)
    if op == FALLOC_FL_PUNCH_HOLE:
        # Nothing lies wholly past the end (no page is kept there). The range is not cut
        # at the end: a last page it covers up to the end is freed, not just zeroed.
        if off < st.size:
            inode.punch_hole(off, off + length)
            filemap.zeroed(inode, off, off + length)
    elif op == FALLOC_FL_ZERO_RANGE:
        old_size = inode.size
        inode.zero_range(off, length, keep_size)
        filemap.zeroed(inode, off, min(off + length, old_size))
        filemap.resized(inode, old_size)
    elif op:
        raise SysError(errno.EOPNOTSUPP)        # as Linux's tmpfs (shmem_fallocate)
    elif not keep_size and st.size < off + length:
        desc.truncate(off + length, t.path_context().creds)
    return 0


# ---- cwd --------------------------------------------------------------------------------
@syscall("chdir", ("path",))
def sys_chdir(t, path, *_):
    loc = t.kernel.vfs.resolve_dir(t.path_context(), None, _path(t, path))
    t.fs.cwd = loc
    return 0


@syscall("fchdir", ("fd",))
def sys_fchdir(t, fd, *_):
    desc = t.fdtable.get(s32(fd))
    if desc.location is None or not desc.location.dentry.inode.is_dir():
        raise SysError(errno.ENOTDIR)
    t.fs.cwd = desc.location
    return 0


@syscall("chroot", ("path",))
def sys_chroot(t, path, *_):
    if not C.has_cap(t, C.CAP_SYS_CHROOT):
        raise SysError(errno.EPERM)
    t.fs.root = t.kernel.vfs.resolve_dir(t.path_context(), None, _path(t, path))
    return 0


@syscall("getcwd", ("ptr", "size"))
def sys_getcwd(t, buf, size, *_):
    cwd = t.kernel.vfs.getcwd(t.path_context()) + b"\0"
    if len(cwd) > size:
        raise SysError(errno.ERANGE)
    t.mm.write(buf, cwd)
    return len(cwd)


# ---- descriptors ------------------------------------------------------------------------
@syscall("dup", ("fd",), ret="fd")
def sys_dup(t, fd, *_):
    desc = t.fdtable.get(s32(fd))
    return t.fdtable.install(desc)


@syscall("dup2", ("fd", "fd"), ret="fd")
def sys_dup2(t, old, new, *_):
    old, new = s32(old), s32(new)
    t.fdtable.get(old)
    if old == new:
        return new
    return t.fdtable.dup2(old, new)


@syscall("dup3", ("fd", "fd", "flags"), ret="fd")
def sys_dup3(t, old, new, flags, *_):
    old, new = s32(old), s32(new)
    if old == new or flags & ~O_CLOEXEC:
        raise SysError(errno.EINVAL)
    return t.fdtable.dup2(old, new, cloexec=bool(flags & O_CLOEXEC))


@syscall("fcntl", ("fd", "int", "hex"), support=PARTIAL,
         note="record locks hold within the sandbox (not against host processes), no EDEADLK "
              "detection; F_NOTIFY delivers no events; no leases")
def sys_fcntl(t, fd, cmd, arg, *_):
    fd = s32(fd)
    tab = t.fdtable
    desc = tab.get(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if s32(arg) < 0 or s32(arg) >= tab.limit:
            raise SysError(errno.EINVAL)
        return tab.install(desc, cloexec=cmd == F_DUPFD_CLOEXEC, minfd=s32(arg))
    if cmd == F_GETFD:
        return FD_CLOEXEC if tab.get_cloexec(fd) else 0
    if cmd == F_SETFD:
        tab.set_cloexec(fd, bool(arg & FD_CLOEXEC))
        return 0
    if cmd == F_GETFL:
        return desc.flags
    if cmd == F_SETFL:
        desc.set_status_flags(arg, t.path_context().creds)
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _record_lock(t, desc, cmd, arg)
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        if not hasattr(desc, "set_pipe_size"):
            raise SysError(errno.EBADF)
        if cmd == F_SETPIPE_SZ:
            return desc.set_pipe_size(s32(arg), privileged=C.has_cap(t, C.CAP_SYS_RESOURCE))
        return desc.pipe.capacity
    if cmd in (F_GETOWN, F_SETOWN):
        return 0
    if cmd == F_NOTIFY:
        # dnotify: accepted on directories; no events are ever delivered (PARTIAL).
        if desc.inode is None or not desc.inode.is_dir():
            raise SysError(errno.ENOTDIR)
        return 0
    if cmd in (F_GETLEASE,):
        return 2                    # F_UNLCK: no lease
    if cmd == F_SETLEASE:
        if arg & 0xffffffff not in (0, 1, 2):
            raise SysError(errno.EINVAL)
        return 0
    if cmd == 1033 or cmd == 1034:     # F_ADD_SEALS / F_GET_SEALS
        raise SysError(errno.EINVAL)
    raise SysError(errno.EINVAL)


LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8


@syscall("flock", ("fd", "int"), note="within the sandbox; not shared with host processes")
def sys_flock(t, fd, op, *_):
    from ..vfs import locks as L
    desc = t.fdtable.get(s32(fd))
    kind = op & ~LOCK_NB
    if kind not in (LOCK_SH, LOCK_EX, LOCK_UN) or desc.inode is None:
        raise SysError(errno.EINVAL)
    type_ = {LOCK_SH: L.F_RDLCK, LOCK_EX: L.F_WRLCK, LOCK_UN: L.F_UNLCK}[kind]
    table = L.locks_of(desc.inode)
    while type_ != L.F_UNLCK and table.flock_conflict(desc, type_) is not None:
        if op & LOCK_NB:
            return -errno.EWOULDBLOCK
        reason = yield Block([table.waitqueue])
        if reason == INTERRUPTED:
            return -ERESTARTSYS
    table.set_flock(desc, type_)
    return 0


F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
_FLOCK = struct.Struct("<hh4xqqi4x")        # struct flock: type, whence, start, len, pid


def _record_lock(t, desc, cmd, arg):
    """fcntl record locks. POSIX locks are owned by the fd table, OFD locks by the open
    file description; both live in the inode's lock table (sentry/vfs/locks.py)."""
    from ..vfs import locks as L
    type_, whence, start, length, pid = _FLOCK.unpack(t.copy_in(arg, _FLOCK.size))
    ofd = cmd in (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW)
    if ofd and pid != 0:
        raise SysError(errno.EINVAL)
    if type_ not in (L.F_RDLCK, L.F_WRLCK, L.F_UNLCK) or desc.inode is None:
        raise SysError(errno.EINVAL)
    if whence == 0:
        base = 0
    elif whence == 1:
        base = desc.pos
    elif whence == 2:
        base = desc.stat().size
    else:
        raise SysError(errno.EINVAL)
    first, last = L.lock_range(base, start, length)
    owner = desc if ofd else t.fdtable
    table = L.locks_of(desc.inode)
    if cmd in (F_GETLK, F_OFD_GETLK):
        if type_ == L.F_UNLCK:
            raise SysError(errno.EINVAL)
        lk = table.find_conflict(owner, first, last, type_)
        if lk is None:
            out = _FLOCK.pack(L.F_UNLCK, whence, start, length, pid)
        else:
            ln = 0 if lk.end == L.OFFSET_MAX else lk.end - lk.start + 1
            # An OFD lock has no owning process: Linux reports pid -1.
            out = _FLOCK.pack(lk.type, 0, lk.start, ln,
                              lk.pid if isinstance(lk.owner, FDTable) else -1)
        t.copy_out(arg, out)
        return 0
    if type_ == L.F_RDLCK and not desc.readable or type_ == L.F_WRLCK and not desc.writable:
        raise SysError(errno.EBADF)
    wait = cmd in (F_SETLKW, F_OFD_SETLKW)
    while type_ != L.F_UNLCK and table.find_conflict(owner, first, last, type_) is not None:
        if not wait:
            return -errno.EAGAIN
        reason = yield Block([table.waitqueue])
        if reason == INTERRUPTED:
            return -ERESTARTSYS
    table.set_posix(owner, first, last, type_, t.tg.tgid)
    return 0


@syscall("pipe", ("ptr",))
def sys_pipe(t, fds, *_):
    return _pipe(t, fds, 0)


@syscall("pipe2", ("ptr", "flags"))
def sys_pipe2(t, fds, flags, *_):
    return _pipe(t, fds, flags)


def _pipe(t, addr, flags):
    if flags & ~(O_NONBLOCK | O_CLOEXEC | 0o40000):
        raise SysError(errno.EINVAL)
    r, w = make_pipe(flags, t.tg.euid, t.tg.egid)
    tab = t.fdtable
    try:
        rfd = tab.install(r, cloexec=bool(flags & O_CLOEXEC))
        try:
            wfd = tab.install(w, cloexec=bool(flags & O_CLOEXEC))
        except SysError:
            tab.close(rfd)
            raise
    finally:
        r.decref()
        w.decref()
    try:
        t.mm.write(addr, struct.pack("<ii", rfd, wfd))
    except SysError:
        tab.close(rfd)
        tab.close(wfd)
        raise
    return 0


@syscall("ioctl", ("fd", "hex", "hex"), support=PARTIAL, note="terminal ioctls, FIONREAD, FIONBIO, FIOCLEX")
def sys_ioctl(t, fd, cmd, arg, *_):
    fd = s32(fd)
    desc = t.fdtable.get(fd)
    cmd &= 0xffffffff
    if cmd == 0x5421:            # FIONBIO
        on = struct.unpack("<i", t.mm.read(arg, 4))[0]
        desc.set_status_flags((desc.flags | O_NONBLOCK) if on else (desc.flags & ~O_NONBLOCK))
        return 0
    if cmd == 0x5451:            # FIOCLEX
        t.fdtable.set_cloexec(fd, True)
        return 0
    if cmd == 0x5450:            # FIONCLEX
        t.fdtable.set_cloexec(fd, False)
        return 0
    return desc.ioctl(t, cmd, arg)


# ---- poll / select ---------------------------------------------------------------------
def _poll_wait(t, fds, deadline):
    """fds: list of (fd, events); returns list of revents, waiting until one is ready."""
    while True:
        revents = []
        queues = []
        for fd, events in fds:
            if fd < 0:
                revents.append(0)
                continue
            try:
                desc = t.fdtable.get(fd)
            except SysError:
                revents.append(POLLNVAL)
                continue
            revents.append(desc.readiness(events | POLLERR | POLLHUP) & (events | POLLERR | POLLHUP))
            queues.append(desc.waitqueue)
        if any(revents) or (deadline is not None and time.monotonic() >= deadline):
            return revents
        reason = yield Block(queues, deadline=deadline)
        if reason == INTERRUPTED:
            return None


def _deadline_from_ts(t, ts):
    if not ts:
        return None
    sec, nsec = struct.unpack("<qq", t.mm.read(ts, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SysError(errno.EINVAL)
    return time.monotonic() + sec + nsec / 1e9


def _do_poll(t, ufds, nfds, deadline, restart_code):
    if nfds > t.fdtable.limit:
        raise SysError(errno.EINVAL)
    raw = t.mm.read(ufds, 8 * nfds) if nfds else b""
    fds = [(struct.unpack_from("<i", raw, 8 * i)[0], struct.unpack_from("<h", raw, 8 * i + 4)[0] & 0xffff)
           for i in range(nfds)]
    rev = yield from _poll_wait(t, fds, deadline)
    if rev is None:
        return restart_code
    out = bytearray(raw)
    for i, r in enumerate(rev):
        struct.pack_into("<H", out, 8 * i + 6, r & 0xffff)
    if nfds:
        t.mm.write(ufds, out)
    return sum(1 for r in rev if r)


@syscall("poll", ("ptr", "int", "int"))
def sys_poll(t, ufds, nfds, timeout, *_):
    timeout = s32(timeout)
    deadline = None if timeout < 0 else time.monotonic() + timeout / 1000
    return _do_poll(t, ufds, nfds, deadline, -516)


def _with_sigmask(t, sigmask_addr, size):
    if sigmask_addr:
        if size != 8:
            raise SysError(errno.EINVAL)
        mask = struct.unpack("<Q", t.mm.read(sigmask_addr, 8))[0] & ~S.UNBLOCKABLE
        t.saved_sigmask = t.sigmask
        t.sigmask = mask


def _restore_sigmask_unless_interrupted(t, r):
    if r != -errno.EINTR and t.saved_sigmask is not None:
        t.sigmask, t.saved_sigmask = t.saved_sigmask, None


@syscall("ppoll", ("ptr", "int", "ptr", "ptr", "size"))
def sys_ppoll(t, ufds, nfds, ts, sigmask, size, _a5):
    deadline = _deadline_from_ts(t, ts)
    _with_sigmask(t, sigmask, size)
    r = yield from _do_poll(t, ufds, nfds, deadline, -errno.EINTR)
    _restore_sigmask_unless_interrupted(t, r)
    _write_remaining(t, ts, deadline, 1_000_000_000)
    return r


def _do_select(t, n, rp, wp, ep, deadline, restart_code):
    if s32(n) < 0:
        raise SysError(errno.EINVAL)
    n = min(n, t.fdtable.limit)
    nbytes = ((n + 63) // 64) * 8
    sets = [int.from_bytes(t.mm.read(p, nbytes), "little") if p and nbytes else 0 for p in (rp, wp, ep)]
    fds = []
    for fd in range(n):
        ev = 0
        if sets[0] >> fd & 1:
            ev |= POLLIN
        if sets[1] >> fd & 1:
            ev |= POLLOUT
        if sets[2] >> fd & 1:
            ev |= 0x002
        if ev:
            if fd not in t.fdtable:
                raise SysError(errno.EBADF)
            fds.append((fd, ev))
    rev = yield from _poll_wait(t, fds, deadline)
    if rev is None:
        return restart_code
    out = [0, 0, 0]
    count = 0
    for (fd, ev), r in zip(fds, rev):
        if ev & POLLIN and r & (POLLIN | POLLHUP | POLLERR):
            out[0] |= 1 << fd
            count += 1
        if ev & POLLOUT and r & (POLLOUT | POLLERR):
            out[1] |= 1 << fd
            count += 1
        if ev & 0x002 and r & 0x002:
            out[2] |= 1 << fd
            count += 1
    for p, v in zip((rp, wp, ep), out):
        if p and nbytes:
            t.mm.write(p, v.to_bytes(nbytes, "little"))
    return count


def _write_remaining(t, addr, deadline, per_second):
    """Linux writes the unslept time back into select's timeval / ppoll's timespec."""
    if addr and deadline is not None:
        left = max(0.0, deadline - time.monotonic())
        t.copy_out(addr, struct.pack("<qq", int(left), int(left % 1 * per_second)))


@syscall("select", ("int", "ptr", "ptr", "ptr", "ptr"))
def sys_select(t, n, rp, wp, ep, tv, _a5):
    deadline = None
    if tv:
        sec, usec = struct.unpack("<qq", t.mm.read(tv, 16))
        if sec < 0 or not 0 <= usec < 1_000_000:
            raise SysError(errno.EINVAL)
        deadline = time.monotonic() + sec + usec / 1e6
    r = yield from _do_select(t, n, rp, wp, ep, deadline, -514)
    _write_remaining(t, tv, deadline, 1_000_000)
    return r


@syscall("pselect6", ("int", "ptr", "ptr", "ptr", "ptr", "ptr"))
def sys_pselect6(t, n, rp, wp, ep, ts, sig):
    deadline = _deadline_from_ts(t, ts)
    if sig:
        mask_addr, size = struct.unpack("<QQ", t.mm.read(sig, 16))
        _with_sigmask(t, mask_addr, size)
    r = yield from _do_select(t, n, rp, wp, ep, deadline, -errno.EINTR)
    _restore_sigmask_unless_interrupted(t, r)
    _write_remaining(t, ts, deadline, 1_000_000_000)
    return r


# ---- extended attributes ----------------------------------------------------------------
XATTR_NAME_MAX, XATTR_SIZE_MAX = 255, 65536


def _xname(t, addr):
    name = t.copy_in_string(addr, XATTR_NAME_MAX + 1)
    if not name or len(name) > XATTR_NAME_MAX:
        raise SysError(errno.ERANGE)
    return name


def _xattr_loc(t, path_or_fd, follow, by_fd):
    if by_fd:
        desc = t.fdtable.get(s32(path_or_fd))
        if desc.location is None:
            raise SysError(errno.EOPNOTSUPP)
        return desc.location
    return t.kernel.vfs.resolve(t.path_context(), None, _path(t, path_or_fd), follow=follow)


def _copy_sized(t, addr, size, data):
    """The xattr calls' convention: size 0 asks how big; too small a buffer is ERANGE."""
    if size == 0:
        return len(data)
    if len(data) > size:
        raise SysError(errno.ERANGE)
    t.copy_out(addr, data)
    return len(data)


def _get(t, target, name, value, size, follow, by_fd):
    loc = _xattr_loc(t, target, follow, by_fd)
    return _copy_sized(t, value, size, t.kernel.vfs.getxattr_at(t.path_context(), loc, _xname(t, name)))


def _set(t, target, name, value, size, flags, follow, by_fd):
    if size > XATTR_SIZE_MAX or flags & ~3:
        raise SysError(errno.E2BIG if size > XATTR_SIZE_MAX else errno.EINVAL)
    loc = _xattr_loc(t, target, follow, by_fd)
    data = t.copy_in(value, size) if size else b""
    t.kernel.vfs.setxattr_at(t.path_context(), loc, _xname(t, name), data, flags)
    return 0


def _list(t, target, buf, size, follow, by_fd):
    loc = _xattr_loc(t, target, follow, by_fd)
    names = t.kernel.vfs.listxattr_at(t.path_context(), loc)
    return _copy_sized(t, buf, size, b"".join(n + b"\0" for n in names))


def _remove(t, target, name, follow, by_fd):
    loc = _xattr_loc(t, target, follow, by_fd)
    t.kernel.vfs.removexattr_at(t.path_context(), loc, _xname(t, name))
    return 0


for _prefix, _follow, _byfd, _kind in (("", True, False, "path"), ("l", False, False, "path"),
                                       ("f", True, True, "fd")):
    syscall(_prefix + "getxattr", (_kind, "str", "ptr", "size"))(
        lambda t, a, n, v, sz, *_, f=_follow, b=_byfd: _get(t, a, n, v, sz, f, b))
    syscall(_prefix + "setxattr", (_kind, "str", "ptr", "size", "flags"))(
        lambda t, a, n, v, sz, fl, *_, f=_follow, b=_byfd: _set(t, a, n, v, sz, fl, f, b))
    syscall(_prefix + "listxattr", (_kind, "ptr", "size"))(
        lambda t, a, buf, sz, *_, f=_follow, b=_byfd: _list(t, a, buf, sz, f, b))
    syscall(_prefix + "removexattr", (_kind, "str"))(
        lambda t, a, n, *_, f=_follow, b=_byfd: _remove(t, a, n, f, b))


# ---- memfd, copy_file_range --------------------------------------------------------------
MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB, MFD_NOEXEC_SEAL, MFD_EXEC = 1, 2, 4, 8, 16


def _memfd_mount(k):
    """memfds live on a private tmpfs mount of the kernel (what /proc shows as /memfd:...)."""
    mnt = getattr(k, "memfd_mount", None)
    if mnt is None:
        from ..vfs.mount import Mount
        from ..vfs.dentry import Dentry
        from ..vfs.tmpfs import TmpFS
        fs = TmpFS(fstype="tmpfs")
        root = Dentry(b"/", None, fs.root())
        mnt = k.memfd_mount = Mount(fs, root, None, None, source="memfd")
    return mnt


MFD_HUGE_SHIFT, MFD_HUGE_MASK = 26, 0x3f
MFD_NAME_MAX = 249          # NAME_MAX less the "memfd:" prefix


@syscall("memfd_create", ("str", "flags"), ret="fd", support=PARTIAL,
         note="sealing (F_ADD_SEALS) is refused; MFD_HUGETLB is EINVAL (no hugetlbfs)")
def sys_memfd_create(t, name_addr, flags, *_):
    from ..vfs.dentry import Dentry
    from ..vfs.mount import Location
    known = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC
    if flags & MFD_HUGETLB:
        known |= MFD_HUGE_MASK << MFD_HUGE_SHIFT
    if flags & ~known:
        raise SysError(errno.EINVAL)
    if flags & MFD_EXEC and flags & MFD_NOEXEC_SEAL:
        raise SysError(errno.EINVAL)
    try:
        name = t.copy_in_string(name_addr, MFD_NAME_MAX + 1)
    except SysError as e:
        raise SysError(errno.EINVAL if e.errno == errno.ENAMETOOLONG else e.errno)
    if flags & MFD_HUGETLB:
        raise SysError(errno.EINVAL)
    mnt = _memfd_mount(t.kernel)
    # vm.memfd_noexec is 0: without MFD_NOEXEC_SEAL the file is executable.
    perms = 0o666 if flags & MFD_NOEXEC_SEAL else 0o777
    inode = mnt.root.inode.new_tmpfile(_st.S_IFREG | perms, t.tg.euid, t.tg.egid)
    d = Dentry(b"memfd:" + name, mnt.root, inode)
    d.dead = True
    desc = inode.open(Location(mnt, d), os.O_RDWR | 0o100000)
    try:
        return t.fdtable.install(desc, cloexec=bool(flags & MFD_CLOEXEC))
    finally:
        desc.decref()


@syscall("copy_file_range", ("fd", "ptr", "fd", "ptr", "size", "flags"), support=PARTIAL,
         note="copies through the sentry in 1 MiB steps")
def sys_copy_file_range(t, fd_in, off_in, fd_out, off_out, length, flags):
    if flags:
        raise SysError(errno.EINVAL)
    src, dst = t.fdtable.get(s32(fd_in)), t.fdtable.get(s32(fd_out))
    if src.stream or dst.stream:
        raise SysError(errno.EINVAL)
    if not src.readable or not dst.writable or dst.flags & O_APPEND:
        raise SysError(errno.EBADF)
    oin = struct.unpack("<q", t.copy_in(off_in, 8))[0] if off_in else None
    oout = struct.unpack("<q", t.copy_in(off_out, 8))[0] if off_out else None
    if (oin is not None and oin < 0) or (oout is not None and oout < 0):
        raise SysError(errno.EINVAL)
    buf = bytearray(min(length, 1 << 20))
    n = src.read([memoryview(buf)], oin)
    if n <= 0:
        return 0
    w = dst.write([memoryview(buf)[:n]], oout)
    if off_in:
        t.copy_out(off_in, struct.pack("<q", oin + w))
    if off_out:
        t.copy_out(off_out, struct.pack("<q", oout + w))
    return w
