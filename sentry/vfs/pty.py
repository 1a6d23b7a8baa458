"""Pseudo-terminals: /dev/ptmx, the devpts filesystem (/dev/pts/N) and /dev/tty.

A `PtyPair` is one terminal. Opening /dev/ptmx (5,2) creates a pair and returns its
master; the slave appears as /dev/pts/N (136,N) in a `DevPtsFS`, locked until the
master's owner unlocks it (TIOCSPTLCK, glibc's unlockpt). Data flows through two line
disciplines (ldisc.py): the slave's, which edits, echoes and processes output, and the
master's, which is always raw (termios ioctls on a master act on the slave, as on Linux).
Between them each direction has an in-flight buffer of FLIP_LIMIT bytes, Linux's flip
buffer: a writer blocks when it is full, and it drains as the reader makes room.

Lifetime: the pair lives while its master is open. Closing the master hangs the slave up
(reads 0, writes EIO, every poll bit set), sends SIGHUP and SIGCONT to the session
leader of the session it controlled, and removes /dev/pts/N. When the last slave closes,
the master reads EIO once drained and polls POLLHUP, until a slave is opened again.

The kernel is reached through a small protocol, given at registration (it need not be
the Kernel class itself):
  signal_pgrp(pgid, sig)            required: deliver `sig` to a process group
  signal_session_leader(sid, sig)   optional: only the session leader (else signal_pgrp(sid))
  add_timer(deadline, callback) / cancel_timer(entry)   optional: VTIME wake-ups
  current_task                      optional: the task whose syscall is running; needed
        for /dev/tty, for a session leader acquiring its controlling terminal by opening
        a slave, for the owner of a new /dev/pts/N, and for SIGTTIN/SIGTTOU on read/write.
        A chardev factory may instead be called with task=... .
Tasks come with `copy_in`, `copy_out`, `tg` (pgrp, session, tgid, euid/egid, handlers,
parent), `sigmask`, `fdtable` and `kernel.pgroups`, as hoststdio.py uses them.

Divergences: TIOCNOTTY by a process that is not the session leader succeeds and changes
nothing (the controlling terminal belongs to the session here, not to each process);
output flow control (^S, TCOOFF) is never applied; TCSETSW and TCSBRK do not wait.
"""
from __future__ import annotations

import errno
import stat as _st
import struct
import time
import weakref

from ..kernel.errors import SysError, WouldBlock
from ..kernel.wait import (POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDNORM,
                           POLLWRNORM, WaitQueue)
from . import iov
from .devices import TTYAUX_MAJOR
from .file import O_ACCMODE, O_APPEND, O_NONBLOCK, FileDescription
from .inode import Dirent, Filesystem, Inode
from .ldisc import (CREAD, CS8, CSIZE, EXTPROC, IXON, PARENB, VSTART, VSTOP, LineDiscipline,
                    Signal, Termios, Wait)
from .mount import Location
from .stat import DEVPTS_SUPER_MAGIC, DT_CHR, StatFS, makedev

PTY_SLAVE_MAJOR = 136
TTY_MINOR, PTMX_MINOR = 0, 2
FLIP_LIMIT = 16384          # bytes in flight each way, beyond the reader's 4 KiB buffer
DEFAULT_MAX_PTYS = 4096
TTY_GID = 5

SIGHUP, SIGINT, SIGQUIT, SIGTSTP, SIGCONT = 1, 2, 3, 20, 18
SIGTTIN, SIGTTOU, SIGWINCH = 21, 22, 28
SIG_IGN = 1
ERESTARTSYS = 512
O_NOCTTY = 0o400
O_CLOEXEC = 0o2000000

# ioctl numbers (asm-generic/ioctls.h)
TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH = 0x5409, 0x540A, 0x540B
TIOCEXCL, TIOCNXCL, TIOCSCTTY, TIOCGPGRP, TIOCSPGRP = 0x540C, 0x540D, 0x540E, 0x540F, 0x5410
TIOCOUTQ, TIOCSTI, TIOCGWINSZ, TIOCSWINSZ = 0x5411, 0x5412, 0x5413, 0x5414
FIONREAD = 0x541B
TIOCPKT, TIOCNOTTY, TIOCSETD, TIOCGETD, TCSBRKP = 0x5420, 0x5422, 0x5423, 0x5424, 0x5425
TIOCGSID = 0x5429
TCGETS2, TCSETS2, TCSETSW2, TCSETSF2 = 0x802C542A, 0x402C542B, 0x402C542C, 0x402C542D
TIOCGPTN, TIOCSPTLCK, TIOCSIG = 0x80045430, 0x40045431, 0x40045436
TIOCGPKT, TIOCGPTLCK, TIOCGEXCL, TIOCGPTPEER = 0x80045438, 0x80045439, 0x80045440, 0x5441

TCIFLUSH, TCOFLUSH, TCIOFLUSH = 0, 1, 2
TCOOFF, TCOON, TCIOFF, TCION = 0, 1, 2, 3
# TIOCPKT status bits
TIOCPKT_DATA, TIOCPKT_FLUSHREAD, TIOCPKT_FLUSHWRITE = 0, 1, 2
TIOCPKT_NOSTOP, TIOCPKT_DOSTOP = 16, 32

_HUNG_UP_READY = POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDNORM | POLLWRNORM


class TimedWouldBlock(WouldBlock):
    """WouldBlock with a deadline (VTIME): retrying at or after `deadline` (monotonic)
    completes the read. The pty also arms a kernel timer that wakes the wait queue then,
    so a caller that ignores the deadline still makes progress."""
    __slots__ = ("deadline",)

    def __init__(self, events: int, deadline: float):
        super().__init__(events)
        self.deadline = deadline


def _s32(data: bytes) -> int:
    return struct.unpack("<i", data)[0]


def _current_task(kernel, task):
    return task if task is not None else getattr(kernel, "current_task", None)


def _privileged(task) -> bool:
    """CAP_SYS_ADMIN, which stealing a controlling tty, TIOCSTI on another tty and opening
    an exclusive slave ask for."""
    from ..kernel.caps import CAP_SYS_ADMIN, has_cap
    return task is not None and has_cap(task, CAP_SYS_ADMIN)


def _is_session_leader(task) -> bool:
    return task.tg.session.sid == task.tg.tgid


# =========================================================================================
# The terminal
# =========================================================================================
class PtyPair:
    """One pseudo-terminal: the slave's discipline and the master's, the bytes in flight,
    and the controlling-terminal state. `fg_pgid` (0: none) and `session` are what a
    Session's `tty` attribute exposes to the rest of the kernel."""

    def __init__(self, devpts: "DevPtsFS", index: int, kernel, uid: int, gid: int):
        self.devpts = devpts
        self.index = index
        self.kernel = kernel
        self.slave_ld = LineDiscipline(Termios.pty_slave_default())
        self.master_ld = LineDiscipline(Termios.pty_master_default())
        self.to_slave = bytearray()       # written on the master, not yet in slave_ld
        self.to_master = bytearray()      # slave output and echo, not yet in master_ld
        self.master_wq = WaitQueue()
        self.slave_wq = WaitQueue()
        self.locked = True
        self.winsize = bytes(8)
        self.session = None
        self.fg_pgid = 0
        self.master_open = True
        self.slave_count = 0
        self.slave_closed = False         # Linux's TTY_OTHER_CLOSED, seen from the master
        self.slave_exclusive = False
        self.packet = False
        self.pktstatus = 0
        self.pts_root: Location | None = None   # the devpts mount the master came from
        self.inode = DevPtsNode(devpts, index + 3, _st.S_IFCHR | devpts.mode, uid=uid,
                                gid=gid, rdev=makedev(PTY_SLAVE_MAJOR, index))

    @property
    def name(self) -> bytes:
        return b"%d" % self.index

    @property
    def hung_up(self) -> bool:
        return not self.master_open

    # -- signals -----------------------------------------------------------------------
    def _signal_fg(self, sig: int) -> None:
        if self.fg_pgid:
            self.kernel.signal_pgrp(self.fg_pgid, sig)

    def _signal_leader(self, sid: int, sig: int) -> None:
        leader = getattr(self.kernel, "signal_session_leader", None)
        if leader is not None:
            leader(sid, sig)
        else:
            self.kernel.signal_pgrp(sid, sig)     # a session leader leads group `sid`

    # -- data movement -----------------------------------------------------------------
    def feed_slave(self) -> None:
        """Move master-written bytes into the slave's discipline while it has room; apply
        the echo and signals that produces."""
        took = False
        while self.to_slave:
            r = self.slave_ld.receive(self.to_slave, self.devpts.clock())
            if not r.consumed:
                break
            del self.to_slave[:r.consumed]
            took = True
            self._apply(r.events)
        if took:
            self.slave_wq.notify(POLLIN | POLLRDNORM)
            self.master_wq.notify(POLLOUT | POLLWRNORM)

    def _apply(self, events) -> None:
        for ev in events:
            if isinstance(ev, Signal):
                self._signal_fg(ev.sig)
                if ev.flush:
                    # The discipline dropped its input (and its uncommitted echo); the
                    # driver drops its output still in flight, not what the master's
                    # discipline already holds.
                    self.to_master.clear()
                    self._packet_status(TIOCPKT_FLUSHREAD | TIOCPKT_FLUSHWRITE)
            else:
                self.send_to_master(ev, echo=True)

    def send_to_master(self, data, echo: bool = False) -> None:
        """Output of the slave (processed), or echo, toward the master's reader. Echo
        that finds the master's buffers full is dropped, as Linux's echo ring forgets."""
        if echo and len(self.to_master) >= FLIP_LIMIT:
            return
        self.to_master += data
        self.feed_master()

    def feed_master(self) -> None:
        took = False
        while self.to_master:
            r = self.master_ld.receive(self.to_master, self.devpts.clock())
            if not r.consumed:
                break
            del self.to_master[:r.consumed]
            took = True
        if took:
            self.master_wq.notify(POLLIN | POLLRDNORM)
            self.slave_wq.notify(POLLOUT | POLLWRNORM)

    def _flush_master_input(self) -> None:
        self.master_ld.flush_input()
        self.feed_master()

    def _flush_slave_input(self) -> None:
        self.slave_ld.flush_input()
        self.feed_slave()

    def _packet_status(self, bits: int) -> None:
        if self.packet and bits:
            self.pktstatus |= bits
            self.master_wq.notify(POLLIN | POLLPRI | POLLRDNORM)

    def flush(self, master_side: bool, queue: int) -> None:
        """TCFLSH from one side. TCIFLUSH drops what that side's discipline holds for its
        reader (bytes still in flight then flow in). TCOFLUSH drops this side's output
        still in flight to the peer (Linux's pty_flush_buffer empties the peer's flip
        buffer, not its discipline). A packet-mode master is told of a slave's flushes."""
        if queue not in (TCIFLUSH, TCOFLUSH, TCIOFLUSH):
            raise SysError(errno.EINVAL)
        if queue in (TCIFLUSH, TCIOFLUSH):
            if master_side:
                self._flush_master_input()
            else:
                self._flush_slave_input()
                self._packet_status(TIOCPKT_FLUSHREAD)
        if queue in (TCOFLUSH, TCIOFLUSH):
            if master_side:
                self.to_slave.clear()
                self.master_wq.notify(POLLOUT | POLLWRNORM)
            else:
                self.to_master.clear()
                self.slave_wq.notify(POLLOUT | POLLWRNORM)
                self._packet_status(TIOCPKT_FLUSHWRITE)

    # -- the two sides' I/O ------------------------------------------------------------
    def master_write(self, data: bytes) -> int:
        n = min(len(data), FLIP_LIMIT - len(self.to_slave))
        if n <= 0:
            raise WouldBlock(POLLOUT)
        self.to_slave += data[:n]
        self.feed_slave()
        return n

    def master_read(self, nr: int) -> bytes:
        """In packet mode (TIOCPKT) every read starts with a status byte: pending flush
        or flow-control news alone, else TIOCPKT_DATA before the data."""
        if self.packet and self.pktstatus:
            status, self.pktstatus = self.pktstatus, 0
            return bytes((status,))
        if not self.master_ld.available():
            if self.slave_closed:
                raise SysError(errno.EIO)
            raise WouldBlock(POLLIN)
        prefix = b"\0" if self.packet else b""
        data = self.master_ld.read(nr - len(prefix))      # raw: never a Wait here
        self.feed_master()
        self.slave_wq.notify(POLLOUT | POLLWRNORM)
        return prefix + data

    def slave_write(self, data: bytes) -> int:
        if self.hung_up:
            raise SysError(errno.EIO)
        n, out = self.slave_ld.process_output(data, FLIP_LIMIT - len(self.to_master))
        if not n:
            raise WouldBlock(POLLOUT)
        self.send_to_master(out)
        return n

    def slave_read(self, nr: int, now: float, started: float):
        """bytes, or ldisc.Wait (the caller handles a hung-up slave)."""
        r = self.slave_ld.read(nr, now, started)
        if not isinstance(r, Wait):
            self.feed_slave()
            self.master_wq.notify(POLLOUT | POLLWRNORM)
        return r

    def master_readiness(self) -> int:
        r = 0
        if self.master_ld.readable():
            r |= POLLIN | POLLRDNORM
        if self.packet and self.pktstatus:
            r |= POLLPRI | POLLIN | POLLRDNORM
        if self.slave_closed:
            r |= POLLHUP
        if len(self.to_slave) < FLIP_LIMIT:
            r |= POLLOUT | POLLWRNORM
        return r

    def slave_readiness(self) -> int:
        if self.hung_up:
            return _HUNG_UP_READY
        r = 0
        if self.slave_ld.readable():
            r |= POLLIN | POLLRDNORM
        if len(self.to_master) < FLIP_LIMIT:
            r |= POLLOUT | POLLWRNORM
        return r

    # -- termios and window size -------------------------------------------------------
    def set_termios(self, new: Termios) -> None:
        """The slave's termios (from either side). A pty is always 8 bits, receiving."""
        new = new.copy()
        new.cflag = (new.cflag & ~(CSIZE | PARENB)) | CS8 | CREAD
        old = self.slave_ld.termios
        if self.packet:
            self._packet_flow_status(old, new)
        self.slave_ld.set_termios(new)
        self.feed_slave()
        self.slave_wq.notify(POLLIN | POLLRDNORM)

    def _packet_flow_status(self, old: Termios, new: Termios) -> None:
        def xon_xoff(t):
            return bool(t.iflag & IXON) and t.cc[VSTOP] == 0o23 and t.cc[VSTART] == 0o21
        was, now = xon_xoff(old), xon_xoff(new)
        if was != now:
            self.pktstatus &= ~(TIOCPKT_DOSTOP | TIOCPKT_NOSTOP)
            self.pktstatus |= TIOCPKT_DOSTOP if now else TIOCPKT_NOSTOP
            self.master_wq.notify(POLLIN | POLLPRI | POLLRDNORM)
        if (old.lflag | new.lflag) & EXTPROC:
            self.pktstatus |= 0x40            # TIOCPKT_IOCTL
            self.master_wq.notify(POLLIN | POLLPRI | POLLRDNORM)

    def set_winsize(self, ws: bytes) -> None:
        if ws != self.winsize:
            self.winsize = ws
            self._signal_fg(SIGWINCH)

    # -- controlling terminal ----------------------------------------------------------
    def attach_session(self, task) -> None:
        sess = task.tg.session
        self.session = sess
        self.fg_pgid = task.tg.pgrp.pgid
        sess.tty = self

    def detach_session(self) -> None:
        """Nobody has this terminal as controlling terminal any more."""
        if self.session is not None and getattr(self.session, "tty", None) is self:
            self.session.tty = None
        self.session = None
        self.fg_pgid = 0

    def disassociate(self, on_exit: bool) -> None:
        """The session leader lets go (TIOCNOTTY) or exits: SIGHUP (and, when not
        exiting, SIGCONT) to the foreground group, then the session loses its terminal."""
        if self.fg_pgid:
            self._signal_fg(SIGHUP)
            if not on_exit:
                self._signal_fg(SIGCONT)
        self.detach_session()

    def check_change(self, task, sig: int = SIGTTOU) -> None:
        """Job control (__tty_check_change): a background process using its controlling
        terminal stops with `sig`, or gets EIO when it cannot be stopped."""
        if task is None or self.hung_up:
            return
        sess = task.tg.session
        if getattr(sess, "tty", None) is not self or not self.fg_pgid:
            return
        pgrp = task.tg.pgrp
        if pgrp.pgid == self.fg_pgid:
            return
        if task.sigmask & (1 << (sig - 1)) or task.tg.handlers.actions[sig].handler == SIG_IGN:
            if sig == SIGTTIN:
                raise SysError(errno.EIO)
            return
        if _orphaned(task, pgrp):
            raise SysError(errno.EIO)
        self.kernel.signal_pgrp(pgrp.pgid, sig)
        raise SysError(ERESTARTSYS)

    # -- opening and closing -----------------------------------------------------------
    def open_slave(self, location, flags: int, task=None) -> "PtySlave":
        """Open /dev/pts/N (or /dev/tty, or TIOCGPTPEER): EIO while locked or hung up."""
        if self.hung_up or self.locked:
            raise SysError(errno.EIO)
        task = _current_task(self.kernel, task)
        if self.slave_exclusive and not _privileged(task):
            raise SysError(errno.EBUSY)
        f = PtySlave(self, location, flags)
        self.slave_count += 1
        self.slave_closed = False
        self.master_wq.notify()
        # A session leader without a terminal acquires this one (tty_open_proc_set_tty).
        if (task is not None and not flags & O_NOCTTY and f.readable
                and _is_session_leader(task) and task.tg.session.tty is None
                and self.session is None):
            self.attach_session(task)
        return f

    def slave_released(self) -> None:
        self.slave_count -= 1
        if self.slave_count == 0:
            self.slave_closed = True
            if self.master_open:
                self.detach_session()
            self.master_wq.notify(POLLIN | POLLHUP | POLLRDNORM)

    def master_released(self) -> None:
        """The master's last close: hang the slave up and remove /dev/pts/N."""
        self.master_open = False
        if self.session is not None:
            sid = self.session.sid
            self.detach_session()
            self._signal_leader(sid, SIGHUP)
            self._signal_leader(sid, SIGCONT)
        self.to_slave.clear()
        self.to_master.clear()
        self.devpts.remove_pair(self)
        self.slave_wq.notify()


def _orphaned(task, pgrp) -> bool:
    """An orphaned process group (POSIX): no member has a parent in another group of
    the same session, so nobody would continue it after a stop."""
    init = getattr(task.kernel, "init", None)
    for tg in list(getattr(pgrp, "members", ())):
        if getattr(tg, "exit_status", None) is not None:
            continue
        parent = getattr(tg, "parent", None)
        if parent is None or parent is init or parent.pgrp is None:
            continue
        if parent.pgrp is not pgrp and parent.pgrp.session is pgrp.session:
            return False
    return True


# =========================================================================================
# Open files
# =========================================================================================
class _PtyFile(FileDescription):
    stream = True
    is_master = False

    def __init__(self, pair: PtyPair, location, flags: int):
        super().__init__(location, flags, inode=None if location is not None else pair.inode)
        self.pair = pair
        self._released = False

    def readlink_name(self) -> bytes:
        if self.location is None:
            return b"/dev/pts/" + self.pair.name
        return super().readlink_name()

    def path_from(self, root) -> bytes:
        if self.location is None:
            return b"/dev/pts/" + self.pair.name
        return super().path_from(root)

    def _task(self, task=None):
        return _current_task(self.pair.kernel, task)

    # -- ioctl -------------------------------------------------------------------------
    def ioctl(self, task, cmd: int, arg: int) -> int:
        self._check_not_path()
        cmd &= 0xFFFFFFFF
        handler = _COMMON_IOCTLS.get(cmd) or self._own_ioctls().get(cmd)
        if handler is None:
            raise SysError(errno.ENOTTY)
        r = handler(self, task, arg)
        return 0 if r is None else r

    def _own_ioctls(self) -> dict:
        return {}

    def _termios_check(self, task) -> None:
        self.pair.check_change(task, SIGTTOU)

    def _tcgets(self, task, arg):
        task.copy_out(arg, self.pair.slave_ld.termios.pack())

    def _tcgets2(self, task, arg):
        task.copy_out(arg, self.pair.slave_ld.termios.pack2())

    def _tcsets(self, task, arg, cmd_flush=False, two=False):
        data = task.copy_in(arg, Termios.SIZE2 if two else Termios.SIZE)
        self._termios_check(task)
        current = self.pair.slave_ld.termios
        new = Termios.unpack2(data) if two else Termios.unpack(data, current)
        if cmd_flush:
            self.pair.flush(False, TCIFLUSH)      # the slave's input, from either side
        self.pair.set_termios(new)

    def _winsz_get(self, task, arg):
        task.copy_out(arg, self.pair.winsize)

    def _winsz_set(self, task, arg):
        self.pair.set_winsize(bytes(task.copy_in(arg, 8)))

    def _fionread(self, task, arg):
        ld = self.pair.master_ld if self.is_master else self.pair.slave_ld
        task.copy_out(arg, struct.pack("<i", ld.inq()))

    def _outq(self, task, arg):
        task.copy_out(arg, struct.pack("<i", 0))

    def _tcflsh(self, task, arg):
        if not self.is_master:
            self._termios_check(task)
        self.pair.flush(self.is_master, arg)

    def _tcxonc(self, task, arg):
        if arg not in (TCOOFF, TCOON, TCIOFF, TCION):
            raise SysError(errno.EINVAL)
        if not self.is_master:
            self._termios_check(task)
        if arg in (TCIOFF, TCION):
            # Send STOP/START to the other end, as a serial line would.
            t = (self.pair.master_ld if self.is_master else self.pair.slave_ld).termios
            c = t.cc[VSTOP if arg == TCIOFF else VSTART]
            if c:
                if self.is_master:
                    self.pair.to_slave.append(c)
                    self.pair.feed_slave()
                else:
                    self.pair.send_to_master(bytes((c,)))

    def _tcsbrk(self, task, arg):
        if not self.is_master:
            self._termios_check(task)

    def _sctty(self, task, arg):
        pair = self.pair
        sess = task.tg.session
        leader = _is_session_leader(task)
        if leader and pair.session is sess:
            return
        if not leader or sess.tty is not None:
            raise SysError(errno.EPERM)
        if pair.session is not None:
            if arg == 1 and _privileged(task):
                pair.detach_session()          # steal it
            else:
                raise SysError(errno.EPERM)
        if not self.readable and not _privileged(task):
            raise SysError(errno.EPERM)
        pair.attach_session(task)

    def _gpgrp(self, task, arg):
        pair = self.pair
        if not self.is_master and task.tg.session.tty is not pair:
            raise SysError(errno.ENOTTY)
        task.copy_out(arg, struct.pack("<i", pair.fg_pgid))

    def _spgrp(self, task, arg):
        pair = self.pair
        try:
            pair.check_change(task, SIGTTOU)
        except SysError as e:
            if e.errno == errno.EIO:
                raise SysError(errno.ENOTTY) from None
            raise
        pgid = _s32(task.copy_in(arg, 4))
        if pgid < 0:
            raise SysError(errno.EINVAL)
        sess = task.tg.session
        if sess.tty is not pair or pair.session is not sess:
            raise SysError(errno.ENOTTY)
        pg = task.kernel.pgroups.get(pgid)
        if pg is None:
            raise SysError(errno.ESRCH)
        if pg.session is not sess:
            raise SysError(errno.EPERM)
        pair.fg_pgid = pgid

    def _gsid(self, task, arg):
        pair = self.pair
        if not self.is_master and task.tg.session.tty is not pair:
            raise SysError(errno.ENOTTY)
        if pair.session is None:
            raise SysError(errno.ENOTTY)
        task.copy_out(arg, struct.pack("<i", pair.session.sid))

    def _getd(self, task, arg):
        task.copy_out(arg, struct.pack("<i", 0))          # N_TTY

    def _setd(self, task, arg):
        if _s32(task.copy_in(arg, 4)) != 0:
            raise SysError(errno.EINVAL)

    def _excl(self, task, arg):
        if not self.is_master:
            self.pair.slave_exclusive = True

    def _nxcl(self, task, arg):
        if not self.is_master:
            self.pair.slave_exclusive = False

    def _gexcl(self, task, arg):
        on = self.pair.slave_exclusive and not self.is_master
        task.copy_out(arg, struct.pack("<i", int(on)))

    def _sti(self, task, arg):
        """TIOCSTI: push a byte into this side's input, as if typed."""
        pair = self.pair
        if (self.is_master or task.tg.session.tty is not pair) and not _privileged(task):
            raise SysError(errno.EPERM)
        c = bytes(task.copy_in(arg, 1))
        if self.is_master:
            pair.send_to_master(c)
        else:
            pair.to_slave[:0] = c
            pair.feed_slave()

    # -- poll and close ----------------------------------------------------------------
    def release(self) -> None:
        if not self._released:
            self._released = True
            self._closed()

    def _closed(self) -> None:
        raise NotImplementedError


_COMMON_IOCTLS = {
    TCGETS: _PtyFile._tcgets,
    TCSETS: lambda f, t, a: f._tcsets(t, a),
    TCSETSW: lambda f, t, a: f._tcsets(t, a),
    TCSETSF: lambda f, t, a: f._tcsets(t, a, cmd_flush=True),
    TCGETS2: _PtyFile._tcgets2,
    TCSETS2: lambda f, t, a: f._tcsets(t, a, two=True),
    TCSETSW2: lambda f, t, a: f._tcsets(t, a, two=True),
    TCSETSF2: lambda f, t, a: f._tcsets(t, a, cmd_flush=True, two=True),
    TIOCGWINSZ: _PtyFile._winsz_get,
    TIOCSWINSZ: _PtyFile._winsz_set,
    FIONREAD: _PtyFile._fionread,
    TIOCOUTQ: _PtyFile._outq,
    TCFLSH: _PtyFile._tcflsh,
    TCXONC: _PtyFile._tcxonc,
    TCSBRK: _PtyFile._tcsbrk,
    TCSBRKP: _PtyFile._tcsbrk,
    TIOCSCTTY: _PtyFile._sctty,
    TIOCGPGRP: _PtyFile._gpgrp,
    TIOCSPGRP: _PtyFile._spgrp,
    TIOCGSID: _PtyFile._gsid,
    TIOCGETD: _PtyFile._getd,
    TIOCSETD: _PtyFile._setd,
    TIOCEXCL: _PtyFile._excl,
    TIOCNXCL: _PtyFile._nxcl,
    TIOCGEXCL: _PtyFile._gexcl,
    TIOCSTI: _PtyFile._sti,
}


class PtyMaster(_PtyFile):
    """The master end, what /dev/ptmx opens."""
    is_master = True

    def __init__(self, pair: PtyPair, location, flags: int):
        super().__init__(pair, location, flags)
        self.waitqueue = pair.master_wq

    def _read(self, dst, offset) -> int:
        want = iov.total(dst)
        if not want:
            return 0
        return iov.copy_into(dst, self.pair.master_read(want))

    def _write(self, src, offset, advance) -> int:
        if not iov.total(src):
            return 0
        return self.pair.master_write(iov.gather(src, FLIP_LIMIT))

    def readiness(self, mask: int) -> int:
        return self.pair.master_readiness() & (mask | POLLHUP | POLLERR)

    def _own_ioctls(self) -> dict:
        return _MASTER_IOCTLS

    def _gptn(self, task, arg):
        task.copy_out(arg, struct.pack("<I", self.pair.index))

    def _sptlck(self, task, arg):
        self.pair.locked = _s32(task.copy_in(arg, 4)) != 0

    def _gptlck(self, task, arg):
        task.copy_out(arg, struct.pack("<i", int(self.pair.locked)))

    def _gptpeer(self, task, arg):
        """Open the slave without a path lookup; returns the new fd."""
        pair = self.pair
        flags = arg & (O_ACCMODE | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | O_APPEND)
        slave = pair.open_slave(pair.devpts.slave_location(pair), flags, task)
        try:
            return task.fdtable.install(slave, cloexec=bool(flags & O_CLOEXEC))
        finally:
            slave.decref()

    def _pkt(self, task, arg):
        on = _s32(task.copy_in(arg, 4)) != 0
        if on and not self.pair.packet:
            self.pair.pktstatus = 0
        self.pair.packet = on

    def _gpkt(self, task, arg):
        task.copy_out(arg, struct.pack("<i", int(self.pair.packet)))

    def _sig(self, task, arg):
        if arg not in (SIGINT, SIGQUIT, SIGTSTP):
            raise SysError(errno.EINVAL)
        self.pair._signal_fg(arg)

    def _closed(self) -> None:
        self.pair.master_released()


_MASTER_IOCTLS = {
    TIOCGPTN: PtyMaster._gptn,
    TIOCSPTLCK: PtyMaster._sptlck,
    TIOCGPTLCK: PtyMaster._gptlck,
    TIOCGPTPEER: PtyMaster._gptpeer,
    TIOCPKT: PtyMaster._pkt,
    TIOCGPKT: PtyMaster._gpkt,
    TIOCSIG: PtyMaster._sig,
}


class PtySlave(_PtyFile):
    """A slave end: /dev/pts/N, TIOCGPTPEER, or /dev/tty when this is the terminal."""

    def __init__(self, pair: PtyPair, location, flags: int):
        super().__init__(pair, location, flags)
        self.waitqueue = pair.slave_wq
        self._read_view = None     # weakref to the first buffer of a read that waits
        self._read_started = 0.0
        self._timer = None
        self._timer_deadline = None

    def _read(self, dst, offset) -> int:
        want = iov.total(dst)
        if not want:
            return 0
        pair = self.pair
        pair.check_change(self._task(), SIGTTIN)
        now = pair.devpts.clock()
        # The syscall layer retries a waiting read with the same buffers; a new read()
        # builds new ones. VMIN=0/VTIME>0 times out from the start of the read.
        first = next(v for v in dst if len(v))
        retry = self._read_view is not None and self._read_view() is first
        if pair.hung_up:
            # A read that was waiting when the master went wakes to EIO (n_tty_read sees
            # TTY_OTHER_CLOSED); one issued afterwards reads end-of-file.
            self._read_view = None
            if retry:
                raise SysError(errno.EIO)
            return 0
        if not retry:
            self._read_view = weakref.ref(first)
            self._read_started = now
        r = pair.slave_read(want, now, self._read_started)
        if isinstance(r, Wait):
            if r.deadline is None:
                raise WouldBlock(POLLIN)
            self._arm_timer(r.deadline)
            raise TimedWouldBlock(POLLIN, r.deadline)
        self._read_view = None
        return iov.copy_into(dst, r)

    def _arm_timer(self, deadline: float) -> None:
        add = getattr(self.pair.kernel, "add_timer", None)
        if add is None or self._timer_deadline == deadline:
            return
        self._cancel_timer()
        wq = self.waitqueue
        self._timer = add(deadline, lambda: wq.notify(POLLIN | POLLRDNORM))
        self._timer_deadline = deadline

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            cancel = getattr(self.pair.kernel, "cancel_timer", None)
            if cancel is not None:
                cancel(self._timer)
        self._timer = self._timer_deadline = None

    def _write(self, src, offset, advance) -> int:
        if not iov.total(src):
            return 0
        pair = self.pair
        if pair.hung_up:
            raise SysError(errno.EIO)
        if pair.slave_ld.termios.lflag & 0o400:          # TOSTOP
            pair.check_change(self._task(), SIGTTOU)
        return pair.slave_write(iov.gather(src, FLIP_LIMIT))

    def readiness(self, mask: int) -> int:
        return self.pair.slave_readiness() & (mask | POLLHUP | POLLERR)

    def ioctl(self, task, cmd: int, arg: int) -> int:
        cmd &= 0xFFFFFFFF
        if self.pair.hung_up:
            self._check_not_path()
            raise SysError(errno.ENOTTY if cmd == TIOCSPGRP else errno.EIO)
        return super().ioctl(task, cmd, arg)

    def _own_ioctls(self) -> dict:
        return _SLAVE_IOCTLS

    def _notty(self, task, arg):
        pair = self.pair
        sess = task.tg.session
        if sess.tty is not pair:
            raise SysError(errno.ENOTTY)
        if _is_session_leader(task):
            pair.disassociate(on_exit=False)

    def _closed(self) -> None:
        self._cancel_timer()
        self.pair.slave_released()


_SLAVE_IOCTLS = {TIOCNOTTY: PtySlave._notty}


# =========================================================================================
# devpts
# =========================================================================================
class DevPtsNode(Inode):
    """/dev/pts/ptmx or /dev/pts/N: a character device node."""


class DevPtsDir(Inode):
    """The devpts root: "ptmx" and one entry per live pair, numbered like Linux (root 1,
    ptmx 2, pts N is inode N+3); a directory position is an inode number."""

    def __init__(self, fs: "DevPtsFS"):
        super().__init__(fs, 1, _st.S_IFDIR | 0o755)
        self.nlink = 2

    def lookup(self, name: bytes) -> Inode:
        inode = self.fs.entry(name)
        if inode is None:
            raise SysError(errno.ENOENT)
        return inode

    def revalidate_child(self, name: bytes, child: Inode) -> bool:
        return self.fs.entry(name) is child

    def iterdir(self, offset: int):
        fs = self.fs
        entries = [(fs.ptmx.ino, b"ptmx")] + [(p.inode.ino, p.name)
                                              for _, p in sorted(fs.ptys.items())]
        for ino, name in entries:
            if ino >= offset:
                yield Dirent(ino, ino + 1, DT_CHR, name)

    # Nothing can be created or removed by hand: Linux answers EACCES for a create
    # (no ->create) and EPERM for the other operations devpts lacks.
    def create(self, *args, **kwargs):
        raise SysError(errno.EACCES)

    def _eperm(self, *args, **kwargs):
        raise SysError(errno.EPERM)

    mkdir = mknod = symlink = link = unlink = rmdir = rename = _eperm


class DevPtsFS(Filesystem):
    """A devpts instance. Mount options as Linux's: `mode` of new pts nodes, `gid` for
    them (None: the opener's group), `ptmxmode` of /dev/pts/ptmx, `max` pairs. The
    defaults are the usual mount of /dev/pts (gid=5,mode=620,ptmxmode=666)."""

    fstype = "devpts"
    revalidate = True

    def __init__(self, mode: int = 0o620, gid: int | None = TTY_GID, ptmxmode: int = 0o666,
                 max_ptys: int = DEFAULT_MAX_PTYS):
        super().__init__()
        self.mode = mode & 0o7777
        self.gid = gid
        self.ptmxmode = ptmxmode & 0o7777
        self.max_ptys = max_ptys
        self._root = DevPtsDir(self)
        self.ptmx = DevPtsNode(self, 2, _st.S_IFCHR | self.ptmxmode,
                               rdev=makedev(TTYAUX_MAJOR, PTMX_MINOR))
        self.ptys: dict[int, PtyPair] = {}
        self.kernel = None          # set by register_tty_devices
        self.clock = time.monotonic # the clock of VTIME deadlines (the kernel's timers')
        self.vfs = None
        self.chardevs = None

    def root(self) -> Inode:
        return self._root

    def statfs(self) -> StatFS:
        return StatFS(fstype_magic=DEVPTS_SUPER_MAGIC, bsize=4096, namelen=255, dev=self.dev)

    def options(self) -> str:
        gid = f"gid={self.gid}," if self.gid is not None else ""
        return f"{gid}mode={self.mode:03o},ptmxmode={self.ptmxmode:03o}"

    def entry(self, name: bytes) -> Inode | None:
        if name == b"ptmx":
            return self.ptmx
        if not name.isdigit() or (name.startswith(b"0") and name != b"0"):
            return None
        pair = self.ptys.get(int(name))
        return pair.inode if pair is not None else None

    # -- pairs -------------------------------------------------------------------------
    def new_pair(self, task) -> PtyPair:
        if self.kernel is None:
            raise SysError(errno.ENODEV)
        index = next((i for i in range(self.max_ptys) if i not in self.ptys), None)
        if index is None:
            raise SysError(errno.ENOSPC)
        uid = getattr(task.tg, "euid", 0) if task is not None else 0
        gid = self.gid if self.gid is not None else (
            getattr(task.tg, "egid", 0) if task is not None else 0)
        pair = PtyPair(self, index, self.kernel, uid, gid)
        self.ptys[index] = pair
        if self.chardevs is not None:
            self.chardevs.register(PTY_SLAVE_MAJOR, index, self._slave_factory(pair))
        return pair

    @staticmethod
    def _slave_factory(pair: PtyPair):
        def open_pts(location, flags, task=None):
            return pair.open_slave(location, flags, task)
        return open_pts

    def remove_pair(self, pair: PtyPair) -> None:
        if self.ptys.get(pair.index) is pair:
            del self.ptys[pair.index]
            if self.chardevs is not None:
                self.chardevs.unregister(PTY_SLAVE_MAJOR, pair.index)

    def slave_location(self, pair: PtyPair) -> Location | None:
        """Where /dev/pts/N is, in the devpts mount the master was opened from."""
        root = pair.pts_root
        if root is None or self.vfs is None:
            return None
        try:
            return Location(root.mount, self.vfs.lookup_dentry(root, pair.name))
        except SysError:
            return None

    def _find_root(self, ptmx_location) -> Location | None:
        """The devpts root next to the ptmx node that was opened (Linux looks for "pts"
        beside /dev/ptmx); a ptmx inside devpts itself is already there."""
        if ptmx_location is None or self.vfs is None:
            return None
        mount, dentry = ptmx_location
        if mount.fs is self:
            return Location(mount, mount.root)
        if dentry.parent is None:
            return None
        try:
            pts = self.vfs.lookup_dentry(Location(mount, dentry.parent), b"pts")
        except SysError:
            return None
        loc = self.vfs.cross_down(Location(mount, pts))
        return loc if loc.mount.fs is self else None

    # -- the device factories ----------------------------------------------------------
    def open_ptmx(self, location, flags: int, task=None) -> PtyMaster:
        """/dev/ptmx (5,2): a new pair; the caller gets its master."""
        task = _current_task(self.kernel, task)
        pair = self.new_pair(task)
        pair.pts_root = self._find_root(location)
        return PtyMaster(pair, location, flags)


def open_controlling_tty(kernel, location, flags: int, task=None):
    """/dev/tty (5,0): the caller's controlling terminal, ENXIO when it has none."""
    task = _current_task(kernel, task)
    if task is None:
        raise SysError(errno.ENXIO)
    tty = getattr(task.tg.session, "tty", None)
    if tty is None:
        raise SysError(errno.ENXIO)
    if isinstance(tty, PtyPair):
        return tty.open_slave(location, flags | O_NOCTTY, task)
    hostfd = getattr(tty, "fd", None)
    if hostfd is None:
        raise SysError(errno.ENXIO)
    from .hoststdio import HostStdio
    return HostStdio(task.kernel, hostfd, flags, tty)


def register_tty_devices(chardevs, devpts: DevPtsFS, kernel, vfs=None) -> None:
    """Install /dev/ptmx (5,2), /dev/tty (5,0) and the /dev/pts/N (136,N) of `devpts`
    in a character-device registry. `kernel` speaks the protocol in the module doc;
    `vfs` (optional) lets TIOCGPTPEER give the slave its /dev/pts/N location."""
    devpts.kernel = kernel
    devpts.vfs = vfs
    devpts.chardevs = chardevs
    chardevs.register(TTYAUX_MAJOR, PTMX_MINOR, devpts.open_ptmx)

    def open_tty(location, flags, task=None):
        return open_controlling_tty(kernel, location, flags, task)
    chardevs.register(TTYAUX_MAJOR, TTY_MINOR, open_tty)


def session_leader_exit(session) -> None:
    """For the kernel's exit path: a session leader died. Its pty terminal (if any)
    sends SIGHUP to the foreground group and stops being anyone's terminal."""
    tty = getattr(session, "tty", None)
    if isinstance(tty, PtyPair):
        tty.disassociate(on_exit=True)
