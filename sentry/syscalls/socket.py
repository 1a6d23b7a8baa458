"""Socket syscalls: socket, socketpair, bind, listen, accept(4), connect, getsockname,
getpeername, sendto/recvfrom, sendmsg/recvmsg, sendmmsg/recvmmsg, shutdown,
setsockopt/getsockopt.

This layer owns the ABI. It reads sockaddrs, msghdrs, iovecs and control messages from
user memory and validates them (the program is the adversary), turns SCM_RIGHTS fds into
descriptions and checks SCM_CREDENTIALS claims, and writes results back. The socket
(vfs/unix.py for AF_UNIX) gets Python values and raises WouldBlock when it must wait; the
loops here park the task on the right queue, honour O_NONBLOCK / MSG_DONTWAIT and
SO_RCVTIMEO / SO_SNDTIMEO, and turn a signal into ERESTARTSYS, or EINTR when a timeout is
set (Linux's sock_intr_errno). A blocking stream send keeps going until everything is
queued, returning the partial count only when a signal, timeout or error stops it.
"""
import errno
import struct
import time

from ..kernel import caps as C
from ..kernel import signals as S
from ..kernel.errors import SysError, WouldBlock
from ..kernel.sigframe import pack_siginfo
from ..kernel.wait import Block, INTERRUPTED, TIMEOUT, POLLERR, POLLHUP
from ..mm.userbuf import UserBuffer
from ..vfs import iov
from ..vfs.file import O_NONBLOCK
from ..vfs.unix import (AF_UNIX, MSG_CMSG_CLOEXEC, MSG_CTRUNC, MSG_DONTWAIT, MSG_NOSIGNAL,
                        MSG_PEEK, MSG_TRUNC, MSG_WAITALL, SCM_CREDENTIALS, SCM_MAX_FD,
                        SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET, SOMAXCONN, Control,
                        RecvState, SocketCaller, SocketFile, UnixDomain, create_socket,
                        make_socketpair, timeout_seconds)
from .table import syscall, PARTIAL

AF_INET, AF_INET6, AF_NETLINK, AF_PACKET = 2, 10, 16, 17
NPROTO = 46                       # families Linux knows of (AF_MAX)
SOCK_TYPE_MASK = 0xF
SOCK_MAX = 11
SOCK_NONBLOCK = O_NONBLOCK
SOCK_CLOEXEC = 0o2000000
PF_UNIX = 1
SHUT_RDWR = 2
MSG_WAITFORONE = 0x10000

SOCKADDR_STORAGE = 128
UIO_MAXIOV = 1024
MAX_RW_COUNT = 0x7FFFF000
OPTMEM_MAX = 131072               # net.core.optmem_max: the largest control buffer
MSGHDR = struct.Struct("<Qi4xQQQQi4x")    # name, namelen, iov, iovlen, control, controllen, flags
MMSGHDR_SIZE = 64                 # struct mmsghdr: msghdr + unsigned msg_len + padding
CMSGHDR = struct.Struct("<Qii")  # cmsg_len, cmsg_level, cmsg_type
ERESTARTSYS = 512
OPTVAL_READ_MAX = 256             # no SOL_SOCKET option is larger

# Families a later netstack serves: socket() says EAFNOSUPPORT for now, socketpair()
# EOPNOTSUPP (what Linux answers for them even when they exist).
_NETSTACK_FAMILIES = (AF_INET, AF_INET6, AF_NETLINK, AF_PACKET)


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _align8(n: int) -> int:
    return (n + 7) & ~7


# ---- who, what, where ------------------------------------------------------------------
def _domain(kernel) -> UnixDomain:
    """The kernel's AF_UNIX state, created on first use."""
    dom = getattr(kernel, "unix_domain", None)
    if dom is None:
        dom = kernel.unix_domain = UnixDomain(kernel.vfs)
    return dom


def _caller(t) -> SocketCaller:
    tg = t.tg
    return SocketCaller(t.path_context(), tg.tgid, tg.uid, tg.gid, tg.euid, tg.egid)


def _sock(t, fd) -> SocketFile:
    desc = t.fdtable.get(s32(fd))
    if not isinstance(desc, SocketFile):
        raise SysError(errno.ENOTSOCK)
    return desc


def _read_addr(t, addr: int, addrlen: int) -> bytes:
    """A sockaddr from user space (move_addr_to_kernel): b"" when there is none."""
    addrlen = s32(addrlen)
    if addrlen < 0 or addrlen > SOCKADDR_STORAGE:
        raise SysError(errno.EINVAL)
    if addrlen == 0:
        return b""
    return t.copy_in(addr, addrlen)       # a NULL address with a length is EFAULT


def _write_addr(t, addr: int, lenptr: int, data: bytes) -> None:
    """Give an address back (move_addr_to_user): copy what fits in the caller's length,
    report the full length."""
    if not addr:
        return
    ulen = struct.unpack("<i", t.copy_in(lenptr, 4))[0]
    if ulen < 0:
        raise SysError(errno.EINVAL)
    n = min(ulen, len(data))
    if n:
        t.copy_out(addr, data[:n])
    t.copy_out(lenptr, struct.pack("<i", len(data)))


def _intr(secs) -> int:
    return -ERESTARTSYS if secs is None else -errno.EINTR


def _sigpipe(t) -> None:
    t.kernel.send_signal(t.tg, S.SIGPIPE, pack_siginfo(S.SIGPIPE, S.SI_USER, pid=t.tg.tgid,
                                                       uid=t.tg.uid), task=t)


def _park(desc, wb: WouldBlock, deadline):
    """Wait for what `wb` asks for; returns the wake-up reason."""
    queue = getattr(wb, "queue", None)
    if queue is None:             # (not `or`: an empty WaitQueue is falsy)
        queue = desc.waitqueue
    return (yield Block([queue], mask=wb.events | POLLERR | POLLHUP, deadline=deadline))


def _retry(desc, op, nonblock: bool, timeo: int):
    """Run op() until it stops raising WouldBlock. Returns (True, result) or (False,
    -errno) when the caller gave up waiting (non-blocking, timeout, signal)."""
    secs = timeout_seconds(timeo)
    deadline = None
    expired = False
    while True:
        try:
            return True, op()
        except WouldBlock as wb:
            if nonblock or secs == 0.0 or expired:
                return False, -errno.EAGAIN
            if secs is not None and deadline is None:
                deadline = time.monotonic() + secs
            reason = yield from _park(desc, wb, deadline)
            if reason == INTERRUPTED:
                return False, _intr(secs)
            expired = reason == TIMEOUT


# ---- creating sockets --------------------------------------------------------------------
def _split_type(type_: int):
    type_ = s32(type_)
    flags = type_ & ~SOCK_TYPE_MASK
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SysError(errno.EINVAL)
    return type_ & SOCK_TYPE_MASK, flags


def _check_family(family: int, stype: int, protocol: int, pair: bool) -> None:
    if family < 0 or family >= NPROTO:
        raise SysError(errno.EAFNOSUPPORT)
    if stype >= SOCK_MAX:
        raise SysError(errno.EINVAL)
    if family != AF_UNIX:
        if pair and family in _NETSTACK_FAMILIES:
            raise SysError(errno.EOPNOTSUPP)
        raise SysError(errno.EAFNOSUPPORT)
    if protocol not in (0, PF_UNIX):
        raise SysError(errno.EPROTONOSUPPORT)


@syscall("socket", ("int", "int", "int"), ret="fd", support=PARTIAL,
         note="AF_UNIX (stream, dgram, seqpacket); AF_INET/AF_INET6/AF_NETLINK/AF_PACKET "
              "are EAFNOSUPPORT until the netstack serves them")
def sys_socket(t, family, type_, protocol, *_):
    stype, flags = _split_type(type_)
    _check_family(s32(family), stype, s32(protocol), pair=False)
    desc = create_socket(_domain(t.kernel), _caller(t), stype, flags)
    try:
        return t.fdtable.install(desc, cloexec=bool(flags & SOCK_CLOEXEC))
    finally:
        desc.decref()


@syscall("socketpair", ("int", "int", "int", "ptr"), support=PARTIAL,
         note="AF_UNIX only (other families: EOPNOTSUPP, as Linux for inet/netlink)")
def sys_socketpair(t, family, type_, protocol, sv, *_):
    stype, flags = _split_type(type_)
    _check_family(s32(family), stype, s32(protocol), pair=True)
    a, b = make_socketpair(_domain(t.kernel), _caller(t), stype, flags)
    tab = t.fdtable
    cloexec = bool(flags & SOCK_CLOEXEC)
    try:
        fa = tab.install(a, cloexec=cloexec)
        try:
            fb = tab.install(b, cloexec=cloexec)
        except SysError:
            tab.close(fa)
            raise
    finally:
        a.decref()
        b.decref()
    try:
        t.copy_out(sv, struct.pack("<ii", fa, fb))
    except SysError:
        tab.close(fa)
        tab.close(fb)
        raise
    return 0


# ---- names and connections -----------------------------------------------------------------
@syscall("bind", ("fd", "ptr", "int"))
def sys_bind(t, fd, addr, addrlen, *_):
    desc = _sock(t, fd)
    desc.bind(_caller(t), _read_addr(t, addr, addrlen))
    return 0


@syscall("listen", ("fd", "int"))
def sys_listen(t, fd, backlog, *_):
    desc = _sock(t, fd)
    backlog &= 0xFFFFFFFF          # Linux compares it unsigned: negative means the maximum
    desc.listen(_caller(t), min(backlog, SOMAXCONN))
    return 0


def _accept(t, fd, addr, lenptr, flags):
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SysError(errno.EINVAL)
    desc = _sock(t, fd)
    if len(t.fdtable) >= t.fdtable.limit:
        raise SysError(errno.EMFILE)     # before taking a connection off the queue
    caller = _caller(t)
    ok, r = yield from _retry(desc, lambda: desc.accept(caller, flags & SOCK_NONBLOCK),
                              bool(desc.flags & O_NONBLOCK), desc.rcvtimeo)
    if not ok:
        return r
    new = r
    try:
        _write_addr(t, addr, lenptr, new.peername())
        return t.fdtable.install(new, cloexec=bool(flags & SOCK_CLOEXEC))
    finally:
        new.decref()


@syscall("accept", ("fd", "ptr", "ptr"), ret="fd")
def sys_accept(t, fd, addr, lenptr, *_):
    return _accept(t, fd, addr, lenptr, 0)


@syscall("accept4", ("fd", "ptr", "ptr", "flags:sock"), ret="fd")
def sys_accept4(t, fd, addr, lenptr, flags, *_):
    return _accept(t, fd, addr, lenptr, s32(flags))


@syscall("connect", ("fd", "ptr", "int"))
def sys_connect(t, fd, addr, addrlen, *_):
    desc = _sock(t, fd)
    raw = _read_addr(t, addr, addrlen)
    caller = _caller(t)
    ok, r = yield from _retry(desc, lambda: desc.connect(caller, raw),
                              bool(desc.flags & O_NONBLOCK), desc.sndtimeo)
    return 0 if ok else r


@syscall("getsockname", ("fd", "ptr", "ptr"))
def sys_getsockname(t, fd, addr, lenptr, *_):
    desc = _sock(t, fd)
    _give_name(t, addr, lenptr, desc.sockname())
    return 0


@syscall("getpeername", ("fd", "ptr", "ptr"))
def sys_getpeername(t, fd, addr, lenptr, *_):
    desc = _sock(t, fd)
    _give_name(t, addr, lenptr, desc.peername())
    return 0


def _give_name(t, addr, lenptr, name: bytes) -> None:
    """getsockname/getpeername: a NULL buffer faults unless the length is zero (Linux
    copies into it regardless)."""
    if addr:
        _write_addr(t, addr, lenptr, name)
        return
    ulen = struct.unpack("<i", t.copy_in(lenptr, 4))[0]
    if ulen < 0:
        raise SysError(errno.EINVAL)
    if ulen:
        raise SysError(errno.EFAULT)
    t.copy_out(lenptr, struct.pack("<i", len(name)))


@syscall("shutdown", ("fd", "int"))
def sys_shutdown(t, fd, how, *_):
    desc = _sock(t, fd)
    how = s32(how)
    if not 0 <= how <= SHUT_RDWR:
        raise SysError(errno.EINVAL)
    desc.shutdown(how)
    return 0


# ---- options -------------------------------------------------------------------------------
@syscall("setsockopt", ("fd", "int", "int", "ptr", "int"), support=PARTIAL,
         note="SOL_SOCKET options; SO_PEEK_OFF and protocol levels are not supported")
def sys_setsockopt(t, fd, level, name, optval, optlen, *_):
    desc = _sock(t, fd)
    optlen = s32(optlen)
    if optlen < 0:
        raise SysError(errno.EINVAL)
    value = t.copy_in(optval, min(optlen, OPTVAL_READ_MAX)) if optlen else b""
    desc.setsockopt(s32(level), s32(name), value, privileged=C.has_cap(t, C.CAP_NET_ADMIN))
    return 0


@syscall("getsockopt", ("fd", "int", "int", "ptr", "ptr"), support=PARTIAL,
         note="SOL_SOCKET options; protocol levels are not supported")
def sys_getsockopt(t, fd, level, name, optval, lenptr, *_):
    desc = _sock(t, fd)
    ulen = struct.unpack("<i", t.copy_in(lenptr, 4))[0]
    if ulen < 0:
        raise SysError(errno.EINVAL)
    value = desc.getsockopt(s32(level), s32(name))
    n = min(ulen, len(value))
    if n:
        t.copy_out(optval, value[:n])
    t.copy_out(lenptr, struct.pack("<i", n))
    return 0


# ---- sending -------------------------------------------------------------------------------
def _send(t, desc, resolve, raw_addr, control, flags):
    """Send until everything is queued (a stream may take several rounds), or the
    caller gives up waiting. Returns the count sent or -errno. `resolve()` gives the views
    of the data; it is called again after every wait (mm/userbuf.py says why)."""
    caller = _caller(t)
    nonblock = bool(flags & MSG_DONTWAIT or desc.flags & O_NONBLOCK)
    secs = timeout_seconds(desc.sndtimeo)
    deadline = None
    views = resolve()
    total = iov.total(views)
    sent = 0
    while True:
        try:
            n = desc.sendmsg(caller, iov.advance(views, sent) if sent else views,
                             raw_addr or None, None if sent else control, flags)
        except WouldBlock as wb:
            if nonblock or secs == 0.0:
                return sent or -errno.EAGAIN
            if secs is not None and deadline is None:
                deadline = time.monotonic() + secs
            reason = yield from _park(desc, wb, deadline)
            if reason == INTERRUPTED:
                return sent or _intr(secs)
            if reason == TIMEOUT:
                return sent or -errno.EAGAIN
            try:
                views = resolve()
            except SysError as e:
                return sent or -e.errno
            continue
        except SysError as e:
            if sent:
                return sent
            if e.errno == errno.EPIPE and desc.sigpipe_on_epipe and not flags & MSG_NOSIGNAL:
                _sigpipe(t)
            return -e.errno
        sent += n
        if sent >= total or n == 0:
            return sent


def _source(t, ranges):
    """The bytes to send, resolved on demand (EFAULT now if they are not mapped)."""
    ub = UserBuffer(t.mm, ranges, False)
    ub.check()
    return ub.views


def _copy_to_user(t, ranges, data: bytes) -> None:
    """Scatter received bytes into the caller's buffers. Only the bytes that arrived are
    written, so a buffer larger than its mapping is fine, as on Linux."""
    off = 0
    for base, ln in ranges:
        if off >= len(data):
            break
        n = min(ln, len(data) - off)
        t.copy_out(base, data[off:off + n])
        off += n


@syscall("sendto", ("fd", "bytes", "size", "flags:msg", "ptr", "int"))
def sys_sendto(t, fd, buf, size, flags, addr, addrlen):
    desc = _sock(t, fd)
    raw = _read_addr(t, addr, addrlen) if addr else b""
    source = _source(t, [(buf, min(size, MAX_RW_COUNT))] if size else [])
    return (yield from _send(t, desc, source, raw, None, s32(flags)))


def _read_msghdr(t, addr: int):
    (name, namelen, iov_addr, iovlen, control, controllen,
     _flags) = MSGHDR.unpack(t.copy_in(addr, MSGHDR.size))
    if namelen < 0:
        raise SysError(errno.EINVAL)
    if not name:
        namelen = 0
    namelen = min(namelen, SOCKADDR_STORAGE)
    if iovlen > UIO_MAXIOV:
        raise SysError(errno.EMSGSIZE)
    return name, namelen, iov_addr, iovlen, control, controllen


def _iovecs(t, addr: int, count: int) -> list:
    """An iovec array -> [(base, length)], the total capped as Linux caps it."""
    raw = t.copy_in(addr, 16 * count) if count else b""
    ranges = []
    total = 0
    for i in range(count):
        base, ln = struct.unpack_from("<QQ", raw, 16 * i)
        if ln >> 63:
            raise SysError(errno.EINVAL)
        ln = min(ln, MAX_RW_COUNT - total)
        total += ln
        if ln:
            ranges.append((base, ln))
    return ranges


def _parse_control(t, ctl: bytes) -> Control:
    """SOL_SOCKET control messages of a send (other levels are ignored, as Linux does for
    AF_UNIX). SCM_RIGHTS fds become descriptions; SCM_CREDENTIALS must be the sender's
    own ids unless it is privileged."""
    rights = []
    creds = None
    off = 0
    while off + CMSGHDR.size <= len(ctl):
        cmsg_len, level, ctype = CMSGHDR.unpack_from(ctl, off)
        if cmsg_len < CMSGHDR.size or cmsg_len > len(ctl) - off:
            raise SysError(errno.EINVAL)
        if level == SOL_SOCKET:
            data = ctl[off + CMSGHDR.size:off + cmsg_len]
            if ctype == SCM_RIGHTS:
                count = len(data) // 4
                if len(rights) + count > SCM_MAX_FD:
                    raise SysError(errno.EINVAL)
                for i in range(count):
                    fd = struct.unpack_from("<i", data, 4 * i)[0]
                    rights.append(t.fdtable.get(fd))
            elif ctype == SCM_CREDENTIALS:
                if len(data) != 12:
                    raise SysError(errno.EINVAL)
                creds = _claimed_creds(t, *struct.unpack("<iII", data))
            else:
                raise SysError(errno.EINVAL)
        off += _align8(cmsg_len)
    return Control(tuple(rights), creds)


def _claimed_creds(t, pid: int, uid: int, gid: int) -> tuple:
    """Linux's scm_check_creds: the pid must be the sender's and the ids among its real,
    effective and saved ones, unless it holds CAP_SYS_ADMIN (pid), CAP_SETUID (uid) and
    CAP_SETGID (gid); the pid must name a live task."""
    if uid == 0xFFFFFFFF or gid == 0xFFFFFFFF:
        raise SysError(errno.EINVAL)
    tg = t.tg
    if not ((pid == tg.tgid or C.has_cap(t, C.CAP_SYS_ADMIN))
            and (uid in (tg.uid, tg.euid, tg.suid) or C.has_cap(t, C.CAP_SETUID))
            and (gid in (tg.gid, tg.egid, tg.sgid) or C.has_cap(t, C.CAP_SETGID))):
        raise SysError(errno.EPERM)
    if pid not in t.kernel.tasks:
        raise SysError(errno.ESRCH)
    return (pid, uid, gid)


def _sendmsg_one(t, desc, msg_addr: int, flags: int):
    name, namelen, iov_addr, iovlen, control, controllen = _read_msghdr(t, msg_addr)
    raw_addr = t.copy_in(name, namelen) if namelen else b""
    source = _source(t, _iovecs(t, iov_addr, iovlen))
    ctl = None
    if controllen:
        if controllen >= OPTMEM_MAX:
            raise SysError(errno.ENOBUFS)
        ctl = _parse_control(t, t.copy_in(control, controllen))
    return (yield from _send(t, desc, source, raw_addr, ctl, flags))


@syscall("sendmsg", ("fd", "ptr", "flags:msg"), support=PARTIAL,
         note="MSG_OOB is EOPNOTSUPP; SCM_RIGHTS and SCM_CREDENTIALS supported")
def sys_sendmsg(t, fd, msg, flags, *_):
    desc = _sock(t, fd)
    return (yield from _sendmsg_one(t, desc, msg, s32(flags)))


@syscall("sendmmsg", ("fd", "ptr", "int", "flags:msg"))
def sys_sendmmsg(t, fd, vec, vlen, flags, *_):
    desc = _sock(t, fd)
    vlen = min(vlen & 0xFFFFFFFF, UIO_MAXIOV)
    done = 0
    while done < vlen:
        entry = vec + MMSGHDR_SIZE * done
        try:
            r = yield from _sendmsg_one(t, desc, entry, s32(flags))
        except SysError as e:
            r = -e.errno
        if r < 0:
            return done or r
        t.copy_out(entry + MSGHDR.size, struct.pack("<I", r))
        done += 1
    return done


# ---- receiving -----------------------------------------------------------------------------
def _recv(t, desc, want: int, flags: int):
    """Receive up to `want` bytes, waiting as the flags and the socket say. Returns
    (count or -errno, data, RecvState); the caller must drop the state's rights."""
    st = RecvState()
    nonblock = bool(flags & MSG_DONTWAIT or desc.flags & O_NONBLOCK)
    secs = timeout_seconds(desc.rcvtimeo)
    deadline = None
    waitall = bool(flags & MSG_WAITALL) and desc.sock_type == SOCK_STREAM \
        and not flags & MSG_PEEK
    call_flags = flags | (MSG_DONTWAIT if nonblock else 0)
    chunks = []
    got = 0
    while True:
        try:
            data = desc.recvmsg(want - got, call_flags, st)
        except WouldBlock as wb:
            if nonblock or secs == 0.0:
                return (got or -errno.EAGAIN), b"".join(chunks), st
            if secs is not None and deadline is None:
                deadline = time.monotonic() + secs
            reason = yield from _park(desc, wb, deadline)
            if reason == INTERRUPTED:
                return (got or _intr(secs)), b"".join(chunks), st
            if reason == TIMEOUT:
                return (got or -errno.EAGAIN), b"".join(chunks), st
            continue
        except SysError as e:
            return (got or -e.errno), b"".join(chunks), st
        chunks.append(data)
        got += len(data)
        if not waitall or not data or got >= want or st.stop:
            break
    if flags & MSG_TRUNC and st.msg_flags & MSG_TRUNC:
        return st.full_length, b"".join(chunks), st
    return got, b"".join(chunks), st


@syscall("recvfrom", ("fd", "ptr", "size", "flags:msg", "ptr", "ptr"))
def sys_recvfrom(t, fd, buf, size, flags, addr, lenptr):
    desc = _sock(t, fd)
    size = min(size, MAX_RW_COUNT)
    r, data, st = yield from _recv(t, desc, size, s32(flags))
    try:
        if r < 0:
            return r
        _copy_to_user(t, [(buf, size)], data)
        if addr:
            _write_addr(t, addr, lenptr, desc.source_address(st))
        return r
    finally:
        st.drop_rights()


def _put_control(t, control: int, capacity: int, creds, rights, cloexec: bool):
    """Write SCM_CREDENTIALS then SCM_RIGHTS into the caller's control buffer as far as
    it has room (Linux's put_cmsg and scm_detach_fds: a cut message is marked
    MSG_CTRUNC, descriptions that do not fit are dropped). Returns (bytes used, flags)."""
    used = 0
    flags = 0
    if creds is not None:
        payload = struct.pack("<iII", *creds)
        avail = capacity - used
        if avail < CMSGHDR.size:
            flags |= MSG_CTRUNC
        else:
            cmlen = CMSGHDR.size + len(payload)
            if avail < cmlen:
                flags |= MSG_CTRUNC
                cmlen = avail
            t.copy_out(control + used, (CMSGHDR.pack(cmlen, SOL_SOCKET, SCM_CREDENTIALS)
                                        + payload)[:cmlen])
            used += min(_align8(CMSGHDR.size + len(payload)), avail)
    if rights:
        avail = capacity - used
        fit = min((avail - CMSGHDR.size) // 4 if avail > CMSGHDR.size else 0, len(rights))
        fds = []
        for desc in rights[:fit]:
            try:
                fds.append(t.fdtable.install(desc, cloexec=cloexec))
            except SysError:
                break
        if fds:
            cmlen = CMSGHDR.size + 4 * len(fds)
            t.copy_out(control + used, CMSGHDR.pack(cmlen, SOL_SOCKET, SCM_RIGHTS)
                       + struct.pack(f"<{len(fds)}i", *fds))
            used += min(_align8(cmlen), avail)
        if len(fds) < len(rights):
            flags |= MSG_CTRUNC
    return used, flags


def _recvmsg_one(t, desc, msg_addr: int, flags: int):
    name, namelen, iov_addr, iovlen, control, controllen = _read_msghdr(t, msg_addr)
    ranges = _iovecs(t, iov_addr, iovlen)
    r, data, st = yield from _recv(t, desc, sum(ln for _, ln in ranges), flags)
    try:
        if r < 0:
            return r
        _copy_to_user(t, ranges, data)
        if name:
            addr = desc.source_address(st)
            n = min(namelen, len(addr))
            if n:
                t.copy_out(name, addr[:n])
            t.copy_out(msg_addr + 8, struct.pack("<i", len(addr)))
        used, cflags = _put_control(t, control, min(controllen, 1 << 31),
                                    desc.received_creds(st), st.rights,
                                    bool(flags & MSG_CMSG_CLOEXEC))
        out_flags = (flags & MSG_CMSG_CLOEXEC) | st.msg_flags | cflags
        t.copy_out(msg_addr + 40, struct.pack("<Q", used))
        t.copy_out(msg_addr + 48, struct.pack("<i", s32(out_flags)))
        return r
    finally:
        st.drop_rights()


@syscall("recvmsg", ("fd", "ptr", "flags:msg"), support=PARTIAL,
         note="MSG_OOB is not supported; SO_PEEK_OFF is not modelled")
def sys_recvmsg(t, fd, msg, flags, *_):
    desc = _sock(t, fd)
    return (yield from _recvmsg_one(t, desc, msg, s32(flags)))


@syscall("recvmmsg", ("fd", "ptr", "int", "flags:msg", "ptr"), support=PARTIAL,
         note="the timeout is checked between datagrams, as Linux does")
def sys_recvmmsg(t, fd, vec, vlen, flags, timeout, _a5):
    desc = _sock(t, fd)
    deadline = None
    if timeout:
        sec, nsec = struct.unpack("<qq", t.copy_in(timeout, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SysError(errno.EINVAL)
        deadline = time.monotonic() + sec + nsec / 1e9
    flags = s32(flags)
    vlen = min(vlen & 0xFFFFFFFF, UIO_MAXIOV)
    done = 0
    while done < vlen:
        entry = vec + MMSGHDR_SIZE * done
        try:
            r = yield from _recvmsg_one(t, desc, entry, flags & ~MSG_WAITFORONE)
        except SysError as e:
            r = -e.errno
        if r < 0:
            if done:
                break
            return r
        t.copy_out(entry + MSGHDR.size, struct.pack("<I", r))
        done += 1
        if flags & MSG_WAITFORONE:
            flags |= MSG_DONTWAIT
        if deadline is not None and time.monotonic() >= deadline:
            break
    if deadline is not None:
        left = max(deadline - time.monotonic(), 0.0)
        t.copy_out(timeout, struct.pack("<qq", int(left), int(left % 1 * 1e9)))
    return done
