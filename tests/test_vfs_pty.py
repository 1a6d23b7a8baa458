"""Pseudo-terminals: the N_TTY line discipline (sentry/vfs/ldisc.py) and the pty pair,
devpts and /dev/tty (sentry/vfs/pty.py).

The line discipline is checked against the host's real one: the same termios is set on
a host pty pair (os.openpty), the same bytes are typed at both masters, and what a reader
of the slave gets and what the master shows (echo, output processing) must be the same.
"""
import errno
import fcntl
import os
import select
import stat as _st
import struct
import subprocess
import sys

import pytest

from conftest import compile_c, run_sandbox
from pysentry.sentry.kernel.errors import SysError, WouldBlock
from pysentry.sentry.kernel.task import ProcessGroup, Session, ThreadGroup
from pysentry.sentry.kernel.wait import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI
from pysentry.sentry.vfs import ldisc as L
from pysentry.sentry.vfs import pty as P
from pysentry.sentry.vfs.devfs import DevFS
from pysentry.sentry.vfs.fdtable import FDTable
from pysentry.sentry.vfs.ldisc import LineDiscipline, Signal, Termios, Wait
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

TCGETS, TCSETS = 0x5401, 0x5402


# ---- the host oracle -------------------------------------------------------------------
def _drain(fd, bufsize, canonical):
    """Read until EAGAIN. An empty read is an EOF mark in canonical mode (more may follow),
    the end of the data otherwise. A read that finds nothing makes Linux finish
    processing pending input first (tty_buffer_flush_work), so EAGAIN means "all of it"."""
    chunks = []
    for _ in range(10000):
        try:
            d = os.read(fd, bufsize)
        except BlockingIOError:
            break
        except OSError as e:
            chunks.append(errno.errorcode[e.errno])
            break
        chunks.append(d)
        if not d and not canonical:
            break
    return chunks


def host_session(t: Termios, steps, bufsize=4096):
    """Run `steps` on a host pty: ("in", bytes) typed at the master, ("out", bytes)
    written by the slave. After each step the slave's reader and the master are drained.
    Returns a list of (reads, shown) per step."""
    m, s = os.openpty()
    try:
        fcntl.ioctl(s, TCSETS, t.pack())
        os.set_blocking(m, False)
        os.set_blocking(s, False)
        canonical = bool(t.lflag & L.ICANON)
        out = []
        for kind, data in steps:
            if kind == "in":
                os.write(m, data)
            else:
                os.write(s, data)
            reads = _drain(s, bufsize, canonical)
            shown = b"".join(c for c in _drain(m, 65536, False) if isinstance(c, bytes))
            out.append((reads, shown))
        return out
    finally:
        os.close(m)
        os.close(s)


def model_session(t: Termios, steps, bufsize=4096):
    """The same steps on our LineDiscipline. Returns the same shape as host_session,
    plus the signals raised."""
    ld = LineDiscipline(t)
    canonical = bool(t.lflag & L.ICANON)
    pending = bytearray()
    shown = bytearray()
    signals = []

    def feed():
        r = ld.receive(pending)
        del pending[:r.consumed]
        for ev in r.events:
            if isinstance(ev, Signal):
                signals.append(ev.sig)
            else:
                shown.extend(ev)
        return r.consumed

    out = []
    for kind, data in steps:
        if kind == "in":
            pending.extend(data)
            feed()
        else:
            n, b = ld.process_output(data, 1 << 20)
            assert n == len(data)
            shown.extend(b)
        reads = []
        for _ in range(10000):
            r = ld.read(bufsize)
            if isinstance(r, Wait):
                if pending and feed():
                    continue
                break
            reads.append(r)
            feed()
            if not r and not canonical:
                break
        out.append((reads, bytes(shown)))
        shown.clear()
    return out, signals


def assert_like_host(t: Termios, steps, bufsize=4096):
    host = host_session(t, steps, bufsize)
    model, signals = model_session(t, steps, bufsize)
    if not t.lflag & L.ICANON:
        # How a non-canonical reader's data is split depends on when the host's worker
        # ran; the bytes and their order do not.
        host = [([b"".join(r)], shown) for r, shown in host]
        model = [([b"".join(r)], shown) for r, shown in model]
    assert model == host
    return model, signals


def tio(**changes) -> Termios:
    t = Termios.pty_slave_default()
    for k, v in changes.items():
        if k == "cc":
            for idx, val in v.items():
                t.cc[idx] = val
        else:
            setattr(t, k, v)
    return t


DEFAULT = Termios.pty_slave_default()
RAW = tio(iflag=0, oflag=0, lflag=0)


# ---- termios layout --------------------------------------------------------------------
def test_default_termios_is_what_a_new_host_pty_has():
    m, s = os.openpty()
    try:
        host = fcntl.ioctl(s, TCGETS, bytes(36))
    finally:
        os.close(m)
        os.close(s)
    assert DEFAULT.pack() == host
    assert len(DEFAULT.pack()) == 36 and len(DEFAULT.pack2()) == 44


def test_termios_round_trip_and_speeds():
    t = tio(cflag=L.CS8 | L.CREAD | 0o15)            # B9600
    back = Termios.unpack(t.pack() + bytes(24))     # glibc passes a 60-byte buffer
    assert back.pack() == t.pack()
    assert (back.ispeed, back.ospeed) == (9600, 9600)
    assert Termios.unpack2(back.pack2()).pack2() == back.pack2()
    with pytest.raises(ValueError):
        Termios.unpack(b"\0" * 35)


# ---- canonical mode against the host ---------------------------------------------------
@pytest.mark.parametrize("typed", [
    b"hello\n",
    b"one\ntwo\nthree",                          # the last line is not complete
    b"abc\x7f\x7fd\n",                           # ERASE
    b"foo bar  baz\x17\x17x\n",                  # WERASE
    b"a/b-c_d e\x17\x17\x17\n",                  # WERASE stops at punctuation
    b"junk\x15ok\n",                             # KILL with ECHOKE
    b"ab\tc\x7f\x7f\x7fd\n",                     # erasing a tab
    b"\x01\x02\x7f\x7fq\n",                      # erasing ^A ^B (two columns each)
    b"x\x16\x03y\x16\x7f\n",                     # LNEXT makes ^C and DEL literal
    b"abc\x12def\n",                             # REPRINT
    b"line\r",                                   # ICRNL
    b"abc\x04def\x04\x04",                       # EOF: pushes a line; an empty one reads 0
    b"\x7f\x15\x17start\n",                      # editing an empty line does nothing
    b"caf\xc3\xa9\x7f\n",                        # without IUTF8 a DEL erases one byte
])
def test_canonical_editing_and_echo_like_host(typed):
    assert_like_host(DEFAULT, [("in", typed)])


@pytest.mark.parametrize("changes", [
    dict(lflag=L.ICANON | L.ECHO | L.ISIG),                      # no ECHOCTL/ECHOE/ECHOK
    dict(lflag=L.ICANON | L.ECHO | L.ECHOK | L.ISIG | L.IEXTEN),  # KILL echoes ^U? no: U+\n
    dict(lflag=L.ICANON | L.ECHONL),                              # only newlines echo
    dict(lflag=L.ICANON | L.ECHO | L.ECHOPRT | L.ECHOCTL | L.IEXTEN | L.ECHOE),
    dict(lflag=L.ICANON),                                         # no echo at all
    dict(iflag=L.ICRNL | L.IUTF8),
    dict(iflag=L.IGNCR),
    dict(iflag=L.INLCR | L.ICRNL),
    dict(iflag=L.ISTRIP | L.ICRNL),
    dict(iflag=L.PARMRK | L.ICRNL),                               # 0xff is doubled
    dict(iflag=L.IUCLC | L.ICRNL),
    dict(oflag=0),                                                # echo without OPOST
    dict(oflag=L.OPOST | L.ONLCR | L.XTABS),
    dict(cc={L.VEOL: ord(";"), L.VEOL2: ord("|"), L.VERASE: ord("#"), L.VKILL: ord("@")}),
    dict(cc={L.VERASE: 0, L.VWERASE: 0, L.VEOF: 0}),             # disabled characters
])
def test_canonical_variants_like_host(changes):
    typed = (b"ab\tc\x7fd#e@fgh\x15x;y|z caf\xc3\xa9\x7f\x17w\x04\x00\xff\r\n"
             b"\x01q\x7f\x16\x04\x12tail \x17\n")
    assert_like_host(tio(**changes), [("in", typed)])


def test_small_reads_split_a_line_like_host():
    assert_like_host(DEFAULT, [("in", b"abcdefgh\nij\x04kl\n")], bufsize=3)


def test_erase_tab_uses_the_column_output_left():
    # The prompt the program wrote moves the column the tab erase must go back to.
    steps = [("out", b"prompt> "), ("in", b"ab\t\x7fc\n"), ("out", b"x\ty\n"),
             ("in", b"\t\t\x7f\x7f\n")]
    assert_like_host(DEFAULT, steps)


def test_signal_characters_flush_and_echo_like_host():
    model, signals = assert_like_host(DEFAULT, [("out", b"unread output"),
                                                ("in", b"typed\x03after\n"),
                                                ("in", b"x\x1cy\x1az\n")])
    assert signals == [L.SIGINT, L.SIGQUIT, L.SIGTSTP]


def test_noflsh_keeps_input_like_host():
    t = tio(lflag=DEFAULT.lflag | L.NOFLSH)
    _, signals = assert_like_host(t, [("in", b"keep\x03this\n")])
    assert signals == [L.SIGINT]


def test_flow_control_characters_are_consumed_like_host():
    assert_like_host(DEFAULT, [("in", b"a\x13b\x11c\n")])
    assert_like_host(tio(iflag=L.ICRNL), [("in", b"a\x13b\x11c\n")])


# ---- the 4095-byte canonical line ------------------------------------------------------
def test_overlong_line_is_cut_at_4095_like_host():
    # Everything is echoed, only 4095 bytes (and the newline) are kept.
    assert_like_host(DEFAULT, [("in", b"a" * 5000), ("in", b"b\n")])


def test_erasing_inside_an_overlong_line_like_host():
    assert_like_host(DEFAULT, [("in", b"x" * 4100), ("in", b"\x7f\x7fZ\n")])


def test_full_buffer_of_lines_waits_for_the_reader_like_host():
    lines = b"".join(b"%05d\n" % i for i in range(1200))        # 7200 bytes
    assert_like_host(DEFAULT, [("in", lines)])


# ---- non-canonical mode against the host ----------------------------------------------
@pytest.mark.parametrize("changes", [
    dict(lflag=L.ISIG),                                          # cbreak-ish, no echo
    dict(lflag=L.ISIG | L.ECHO | L.ECHOCTL),                     # echo in raw mode
    dict(iflag=0, oflag=0, lflag=0),                             # fully raw
    dict(lflag=L.ECHO, oflag=L.OPOST | L.ONLCR),
    dict(iflag=L.ICRNL | L.IXON, lflag=L.IEXTEN | L.ISIG),       # LNEXT is not special
    dict(iflag=L.PARMRK, lflag=0),
])
def test_noncanonical_like_host(changes):
    typed = b"ab\r\n\tc\x7f\x16\x04\x17\x00\xff\x85 done"
    assert_like_host(tio(**changes), [("in", typed), ("in", b"\x1a more")])


def test_raw_mode_buffer_limit_like_host():
    assert_like_host(RAW, [("in", bytes(range(256)) * 40)])


def test_switching_to_raw_exposes_the_partial_line_and_eof_marks():
    ld = LineDiscipline(DEFAULT)
    ld.receive(b"done\x04part")
    assert ld.read(100) == b"done"
    assert isinstance(ld.read(100), Wait)
    ld.set_termios(RAW)
    assert ld.read(100) == b"part"
    ld.receive(b"x\x04y")                 # ^D is data now
    ld.set_termios(DEFAULT)               # what is buffered becomes one line
    assert ld.read(100) == b"x\x04y"


def test_switching_to_canonical_with_pending_raw_data_like_host():
    m, s = os.openpty()
    try:
        fcntl.ioctl(s, TCSETS, RAW.pack())
        os.write(m, b"abc")
        select.select([s], [], [], 5)
        fcntl.ioctl(s, TCSETS, DEFAULT.pack())
        os.set_blocking(s, False)
        host = _drain(s, 100, True)
    finally:
        os.close(m)
        os.close(s)
    ld = LineDiscipline(RAW)
    ld.receive(b"abc")
    ld.set_termios(DEFAULT)
    assert [ld.read(100)] + ([] if isinstance(ld.read(100), Wait) else ["more"]) == host


# ---- VMIN / VTIME (the caller owns the clock) ------------------------------------------
def raw_with(vmin, vtime):
    return tio(iflag=0, oflag=0, lflag=0, cc={L.VMIN: vmin, L.VTIME: vtime})


def test_vmin_waits_for_that_many_bytes():
    ld = LineDiscipline(raw_with(3, 0))
    assert ld.read(10) == Wait(None)
    ld.receive(b"ab")
    assert not ld.readable() and ld.read(10) == Wait(None)
    assert ld.read(2) == b"ab"            # a smaller request is satisfied sooner
    ld.receive(b"cdef")
    assert ld.readable() and ld.read(10) == b"cdef"


def test_vmin0_vtime0_never_waits():
    ld = LineDiscipline(raw_with(0, 0))
    assert ld.read(10) == b""
    ld.receive(b"x")
    assert ld.read(10) == b"x"


def test_vtime_alone_is_a_timeout_from_the_start_of_the_read():
    ld = LineDiscipline(raw_with(0, 5))   # half a second
    assert ld.read(10, now=100.0, started=100.0) == Wait(100.5)
    assert ld.read(10, now=100.4, started=100.0) == Wait(100.5)
    assert ld.read(10, now=100.5, started=100.0) == b""
    ld.receive(b"z", now=101.0)
    assert ld.read(10, now=101.0, started=101.0) == b"z"


def test_vmin_with_vtime_is_an_inter_byte_timer():
    ld = LineDiscipline(raw_with(4, 2))
    assert ld.read(10, now=5.0, started=5.0) == Wait(None)     # no timer before a byte
    ld.receive(b"ab", now=6.0)
    assert ld.readable()                                       # poll: any byte will do
    assert ld.read(10, now=6.1, started=5.0).deadline == pytest.approx(6.2)
    ld.receive(b"c", now=6.15)
    assert ld.read(10, now=6.3, started=5.0).deadline == pytest.approx(6.35)
    assert ld.read(10, now=6.36, started=5.0) == b"abc"


# ---- output processing -----------------------------------------------------------------
def test_output_room_never_splits_an_expansion():
    ld = LineDiscipline(DEFAULT)
    assert ld.process_output(b"ab\ncd", 3) == (2, b"ab")
    assert ld.process_output(b"\ncd", 3) == (2, b"\r\nc")
    assert ld.process_output(b"x", 0) == (0, b"")


@pytest.mark.parametrize("changes", [
    dict(oflag=L.OPOST | L.ONLCR),
    dict(oflag=L.OPOST | L.OCRNL | L.ONLRET),
    dict(oflag=L.OPOST | L.ONOCR | L.ONLCR),
    dict(oflag=L.OPOST | L.OLCUC | L.XTABS | L.ONLCR),
    dict(oflag=0),
])
def test_output_processing_like_host(changes):
    steps = [("out", b"\rab\tc\r\rd\n\nxy\bz\x01\t\xe9\xc3\xa9\tQ\n"), ("in", b"\t\x7f")]
    assert_like_host(tio(**changes), steps)


# ---- odds and ends ---------------------------------------------------------------------
def test_fionread_counts_complete_lines_without_eof_marks():
    ld = LineDiscipline(DEFAULT)
    ld.receive(b"ab\n\x04cd")
    assert ld.inq() == 3
    ld.set_termios(RAW)
    assert ld.inq() == 6


def test_flush_input_forgets_everything():
    ld = LineDiscipline(DEFAULT)
    ld.receive(b"ab\ncd")
    ld.flush_input()
    assert ld.inq() == 0 and ld.read(10) == Wait(None)
    ld.receive(b"e\n")
    assert ld.read(10) == b"e\n"


# =========================================================================================
# The pty pair, devpts and /dev/tty, through the VFS with a stand-in kernel
# =========================================================================================
POLL_BITS = POLLIN | POLLOUT | POLLERR | POLLHUP | POLLPRI
TIOCGPTN, TIOCSPTLCK, TIOCGPTLCK, TIOCGPTPEER = 0x80045430, 0x40045431, 0x80045439, 0x5441
TIOCGPGRP, TIOCSPGRP, TIOCGSID, TIOCSCTTY, TIOCNOTTY = 0x540F, 0x5410, 0x5429, 0x540E, 0x5422
TIOCGWINSZ, TIOCSWINSZ, FIONREAD, TCFLSH, TIOCPKT = 0x5413, 0x5414, 0x541B, 0x540B, 0x5420
SIGHUP, SIGINT, SIGCONT, SIGTTIN, SIGTTOU, SIGWINCH = 1, 2, 18, 21, 22, 28


class FakeKernel:
    """What the pty needs from the kernel: signal delivery, timers, the current task."""

    def __init__(self):
        self.sent = []
        self.pgroups = {}
        self.groups = {}
        self.timers = []
        self.current_task = None
        self.init = None

    def signal_pgrp(self, pgid, sig):
        self.sent.append(("pgrp", pgid, sig))

    def signal_session_leader(self, sid, sig):
        self.sent.append(("leader", sid, sig))

    def add_timer(self, deadline, callback):
        entry = [deadline, callback]
        self.timers.append(entry)
        return entry

    def cancel_timer(self, entry):
        if entry in self.timers:
            self.timers.remove(entry)


class FakeTask:
    """A task as the pty sees it: memory reached by copy_in/copy_out, a thread group in
    a process group and session, a signal mask, an fd table."""

    def __init__(self, kernel, tgid, pgid=None, sid=None, parent=None, euid=0):
        self.kernel = kernel
        self.tg = ThreadGroup(kernel, tgid, parent)
        self.tg.euid = self.tg.egid = self.tg.fsuid = self.tg.fsgid = euid
        kernel.groups[tgid] = self.tg
        sid = tgid if sid is None else sid
        pgid = tgid if pgid is None else pgid
        sess = next((pg.session for pg in kernel.pgroups.values() if pg.session.sid == sid),
                    None) or Session(sid)
        pg = kernel.pgroups.get(pgid)
        if pg is None:
            pg = kernel.pgroups[pgid] = ProcessGroup(pgid, sess)
        pg.members.add(self.tg)
        self.tg.pgrp = pg
        self.sigmask = 0
        self.fdtable = FDTable()
        self.mem = bytearray(4096)

    def copy_in(self, addr, n):
        return bytes(self.mem[addr:addr + n])

    def copy_out(self, addr, data):
        self.mem[addr:addr + len(data)] = data

    def ioctl(self, desc, cmd, value=b"", out=0):
        """ioctl with an in-memory argument: `value` is copied in at 256, and `out`
        bytes are returned from there afterwards (an int arg is passed as is)."""
        if isinstance(value, int):
            r = desc.ioctl(self, cmd, value)
            return r if not out else (r, self.copy_in(256, out))
        self.copy_out(256, value)
        r = desc.ioctl(self, cmd, 256)
        return self.copy_in(256, out) if out else r


class Box:
    """A name space with /dev (devtmpfs) and /dev/pts (devpts) and the tty devices."""

    def __init__(self, **devpts_opts):
        self.kernel = FakeKernel()
        self.vfs = VirtualFS(TmpFS())
        self.ctx = self.vfs.root_context()
        self.vfs.mkdir(self.ctx, None, b"/dev", 0o755)
        self.vfs.mount(DevFS(with_tty=True), b"/dev")
        self.devpts = P.DevPtsFS(**devpts_opts)
        self.vfs.mount(self.devpts, b"/dev/pts")
        P.register_tty_devices(self.vfs.chardevs, self.devpts, self.kernel, self.vfs)
        self.now = 1000.0
        self.devpts.clock = lambda: self.now
        self.root = FakeTask(self.kernel, 1)

    def open(self, path, flags=os.O_RDWR | os.O_NOCTTY, task=None):
        self.kernel.current_task = task
        try:
            return self.vfs.openat(self.ctx, None, path, flags)
        finally:
            self.kernel.current_task = None

    def openpty(self, task=None):
        m = self.open(b"/dev/ptmx", task=task)
        n = struct.unpack("<I", self.root.ioctl(m, TIOCGPTN, out=4))[0]
        self.root.ioctl(m, TIOCSPTLCK, struct.pack("<i", 0))
        return m, n


def rd(desc, n=4096, task=None, kernel=None):
    buf = bytearray(n)
    if kernel is not None:
        kernel.current_task = task
    try:
        got = desc.read([memoryview(buf)])
    except WouldBlock:
        return "EAGAIN"
    except SysError as e:
        return errno.errorcode.get(e.errno, e.errno)
    finally:
        if kernel is not None:
            kernel.current_task = None
    return bytes(buf[:got])


def wr(desc, data):
    try:
        return desc.write([memoryview(bytearray(data))])
    except WouldBlock:
        return "EAGAIN"
    except SysError as e:
        return errno.errorcode.get(e.errno, e.errno)


# ---- the same scenario on a host pty and on ours ---------------------------------------
class HostPty:
    def __init__(self):
        self.m = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
        fcntl.ioctl(self.m, TIOCSPTLCK, struct.pack("<i", 0))
        n = struct.unpack("<I", fcntl.ioctl(self.m, TIOCGPTN, bytes(4)))[0]
        self.path = f"/dev/pts/{n}"
        self.s = None
        self.open_slave()
        os.set_blocking(self.m, False)

    def open_slave(self):
        self.s = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        return "ok"

    def fd(self, side):
        return self.m if side == "m" else self.s

    def sync(self):
        """Linux processes typed input in a worker; make it finish before looking. A poll
        that finds no input waits for the worker, and TIOCINQ waits for a running one."""
        for fd in (self.s, self.m):
            if fd is not None:
                select.select([fd], [], [], 0)
                try:
                    fcntl.ioctl(fd, FIONREAD, bytes(4))
                except OSError:
                    pass

    @staticmethod
    def read_all(fd, n):
        """Read until nothing is left (a read that finds nothing waits for Linux's
        worker, so this sees all that was sent); an error or EOF only if nothing came."""
        return _read_all(lambda: os.read(fd, n))

    def op(self, side, kind, arg=None):
        fd = self.fd(side)
        self.sync()
        try:
            if kind == "write":
                return os.write(fd, arg)
            if kind == "read":
                return self.read_all(fd, arg)
            if kind == "poll":
                p = select.poll()
                p.register(fd, POLLIN | POLLOUT | POLLPRI)
                r = p.poll(0)
                return r[0][1] & POLL_BITS if r else 0
            if kind == "ioctl":
                cmd, val, out = arg
                if out:
                    return fcntl.ioctl(fd, cmd, val if val else bytes(out))[:out]
                fcntl.ioctl(fd, cmd, val)
                return 0
            if kind == "close":
                os.close(fd)
                if side == "m":
                    self.m = None
                else:
                    self.s = None
                return "ok"
        except BlockingIOError:
            return "EAGAIN"
        except OSError as e:
            return errno.errorcode[e.errno]

    def close(self):
        for fd in (self.m, self.s):
            if fd is not None:
                os.close(fd)


class OurPty:
    def __init__(self):
        self.box = Box()
        self.m, n = self.box.openpty()
        self.path = b"/dev/pts/%d" % n
        self.open_slave()

    def open_slave(self):
        self.s = self.box.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        return "ok"

    def op(self, side, kind, arg=None):
        desc = self.m if side == "m" else self.s
        task = self.box.root
        if kind == "write":
            return wr(desc, arg)
        if kind == "read":
            return _read_all(lambda: _raise_rd(desc, arg))
        if kind == "poll":
            return desc.readiness(POLLIN | POLLOUT | POLLPRI) & POLL_BITS
        if kind == "ioctl":
            cmd, val, out = arg
            try:
                if out:
                    return task.ioctl(desc, cmd, val, out)
                return task.ioctl(desc, cmd, val)
            except SysError as e:
                return errno.errorcode[e.errno]
        if kind == "close":
            desc.decref()
            return "ok"

    def close(self):
        pass


def _raise_rd(desc, n):
    buf = bytearray(n)
    try:
        return bytes(buf[:desc.read([memoryview(buf)])])
    except WouldBlock:
        raise BlockingIOError from None
    except SysError as e:
        raise OSError(e.errno, os.strerror(e.errno)) from None


def _read_all(read_once):
    got = b""
    while True:
        try:
            d = read_once()
        except BlockingIOError:
            return got or "EAGAIN"
        except OSError as e:
            return got or errno.errorcode[e.errno]
        if not d:
            return got
        got += d


def run_both(script):
    """Run (side, op, arg) steps on a host pty and on ours; "reopen" reopens the slave."""
    results = []
    for impl in (HostPty(), OurPty()):
        out = []
        try:
            for side, kind, arg in script:
                out.append(impl.open_slave() if kind == "reopen" else impl.op(side, kind, arg))
        finally:
            impl.close()
        results.append(out)
    return results


def assert_scenario_like_host(script):
    host, ours = run_both(script)
    assert ours == host, "\n".join(f"{s!r}: host {h!r} ours {o!r}"
                                   for s, h, o in zip(script, host, ours) if h != o)


def test_data_both_ways_and_master_close_like_host():
    assert_scenario_like_host([
        ("s", "write", b"unread "), ("m", "write", b"x\x03"), ("m", "read", 100),
        ("m", "poll", None), ("s", "poll", None),
        ("m", "write", b"hello\n"), ("s", "poll", None), ("s", "read", 100),
        ("s", "read", 100), ("m", "read", 100), ("m", "read", 100),
        ("s", "write", b"out\tput\n"), ("m", "poll", None), ("m", "read", 100),
        ("m", "write", b"unread\n"),
        ("m", "close", None),
        ("s", "poll", None), ("s", "read", 100), ("s", "write", b"x"),
        ("s", "ioctl", (TIOCGPGRP, b"", 4)), ("s", "ioctl", (TIOCSPGRP, b"\0" * 4, 4)),
        ("s", "ioctl", (FIONREAD, b"", 4)), ("s", "ioctl", (TCGETS, b"", 36)),
    ])


def test_slave_close_and_reopen_like_host():
    assert_scenario_like_host([
        ("s", "write", b"out"), ("s", "close", None),
        ("m", "poll", None), ("m", "read", 100), ("m", "read", 100), ("m", "poll", None),
        # Whether the host echoes while no slave is open races with its worker; what
        # the slave reads once reopened does not.
        ("m", "write", b"xyz\n"), ("s", "reopen", None), ("s", "read", 100),
    ])


def test_ioctls_like_host():
    winsz = struct.pack("<HHHH", 24, 80, 640, 480)
    raw = RAW.pack()
    assert_scenario_like_host([
        ("m", "ioctl", (TCGETS, b"", 36)), ("s", "ioctl", (TCGETS, b"", 36)),
        ("m", "ioctl", (TCSETS, raw, 0)), ("s", "ioctl", (TCGETS, b"", 36)),
        ("m", "ioctl", (TCSETS, DEFAULT.pack(), 0)),
        ("m", "ioctl", (TIOCSWINSZ, winsz, 0)), ("s", "ioctl", (TIOCGWINSZ, b"", 8)),
        ("s", "ioctl", (TIOCGPTN, b"", 4)),
        ("m", "ioctl", (TIOCGPGRP, b"", 4)), ("m", "ioctl", (TIOCGSID, b"", 4)),
        ("s", "ioctl", (TIOCGPGRP, b"", 4)), ("s", "ioctl", (TIOCGSID, b"", 4)),
        ("m", "ioctl", (TIOCGPTLCK, b"", 4)),
        ("m", "write", b"ab\ncd\x04ef"), ("s", "ioctl", (FIONREAD, b"", 4)),
        ("m", "ioctl", (FIONREAD, b"", 4)),
        ("s", "ioctl", (TCFLSH, 0, 0)), ("s", "read", 100),          # TCIFLUSH
        # TCOFLUSH drops only bytes still in flight to the peer, which on the host is a
        # race with its worker; the call itself is checked here, the effect below.
        ("m", "read", 100), ("s", "ioctl", (TCFLSH, 1, 0)), ("s", "ioctl", (TCFLSH, 7, 0)),
        ("m", "write", b"q\n"), ("m", "ioctl", (TCFLSH, 1, 0)), ("s", "read", 100),
        ("s", "ioctl", (0x5424, b"", 4)),                             # TIOCGETD
        ("s", "ioctl", (0x5401 + 0x7f, b"", 4)),                      # unknown
    ])


def test_packet_mode_like_host():
    assert_scenario_like_host([
        ("m", "ioctl", (TIOCPKT, struct.pack("<i", 1), 0)),
        ("m", "poll", None), ("s", "write", b"data"), ("m", "read", 100),
        ("s", "ioctl", (TCFLSH, 2, 0)), ("m", "poll", None), ("m", "read", 100),
        ("m", "read", 100),
        ("m", "write", b"x\x03"), ("m", "read", 100), ("m", "read", 100),
        ("m", "ioctl", (0x80045438, b"", 4)),                         # TIOCGPKT
    ])


def test_locked_slave_and_peer_open_like_host():
    m = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
    try:
        n = struct.unpack("<I", fcntl.ioctl(m, TIOCGPTN, bytes(4)))[0]
        with pytest.raises(OSError) as host_open:
            os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
        with pytest.raises(OSError) as host_peer:
            fcntl.ioctl(m, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        host_lck = fcntl.ioctl(m, TIOCGPTLCK, bytes(4))
        host_pts = os.stat(f"/dev/pts/{n}")
    finally:
        os.close(m)
    box = Box()
    master = box.open(b"/dev/ptmx")
    with pytest.raises(SysError) as our_open:
        box.open(b"/dev/pts/0")
    with pytest.raises(SysError) as our_peer:
        box.root.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    assert (our_open.value.errno, our_peer.value.errno) == (host_open.value.errno,
                                                            host_peer.value.errno)
    assert box.root.ioctl(master, TIOCGPTLCK, out=4) == host_lck
    st = box.vfs.stat(box.ctx, None, b"/dev/pts/0")
    assert (st.ino, os.major(st.rdev), _st.S_IFMT(st.mode)) == (
        3, os.major(host_pts.st_rdev), _st.S_IFMT(host_pts.st_mode))
    assert host_pts.st_ino == n + 3


# ---- devpts as a filesystem ------------------------------------------------------------
def test_devpts_entries_live_with_their_master():
    box = Box()
    user = FakeTask(box.kernel, 50, euid=1000)
    m0, n0 = box.openpty(task=user)
    m1, n1 = box.openpty()
    assert (n0, n1) == (0, 1)
    st = box.vfs.stat(box.ctx, None, b"/dev/pts/0")
    assert oct(st.mode) == oct(_st.S_IFCHR | 0o620)
    assert (st.uid, st.gid, st.rdev) == (1000, 5, os.makedev(136, 0))
    d = box.open(b"/dev/pts", os.O_RDONLY | os.O_DIRECTORY)
    assert [e.name for e in d.getdents(4096)] == [b".", b"..", b"ptmx", b"0", b"1"]
    d.decref()
    fstat = m0.stat()                       # the master is the node that was opened
    assert fstat.rdev == os.makedev(5, 2)
    m0.decref()
    with pytest.raises(SysError) as e:
        box.vfs.stat(box.ctx, None, b"/dev/pts/0")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(SysError):           # its device number is gone too
        box.vfs.chardevs.open(os.makedev(136, 0), None, os.O_RDWR)
    m2, n2 = box.openpty()
    assert n2 == 0                          # the lowest free index is reused
    assert box.vfs.stat(box.ctx, None, b"/dev/pts/0").uid == 0
    for name in (b"00", b"+1", b"9"):
        with pytest.raises(SysError):
            box.vfs.stat(box.ctx, None, b"/dev/pts/" + name)
    with pytest.raises(SysError) as e:
        box.vfs.mknod(box.ctx, None, b"/dev/pts/x", _st.S_IFIFO | 0o600)
    assert e.value.errno == errno.EPERM
    m1.decref()
    m2.decref()


def test_devpts_statfs_and_mount_options():
    box = Box()
    assert box.vfs.statfs(box.ctx, None, b"/dev/pts").fstype_magic == 0x1CD1
    opts = [o for _, path, fstype, o in box.vfs.mounts() if fstype == "devpts"][0]
    assert opts.endswith("gid=5,mode=620,ptmxmode=666")
    box2 = Box(mode=0o600, gid=None, ptmxmode=0)
    m, n = box2.openpty(task=FakeTask(box2.kernel, 7, euid=33))
    st = box2.vfs.stat(box2.ctx, None, b"/dev/pts/0")
    assert (st.mode & 0o7777, st.uid, st.gid) == (0o600, 33, 33)
    assert box2.vfs.stat(box2.ctx, None, b"/dev/pts/ptmx").mode & 0o7777 == 0


def test_peer_open_gets_the_pts_location():
    box = Box()
    m, n = box.openpty()
    fd = box.root.ioctl(m, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    s = box.root.fdtable.get(fd)
    assert box.root.fdtable.get_cloexec(fd)
    assert s.readlink_name() == b"/dev/pts/0"
    assert s.stat().rdev == os.makedev(136, 0)
    assert wr(m, b"hi\n") == 3 and rd(s) == b"hi\n"
    box.root.fdtable.close(fd)
    assert rd(m) == b"hi\r\n"
    assert rd(m) == "EIO"                   # the only slave is closed again


# ---- flow: a full buffer blocks the writer until the reader drains it -----------------
class Waiter:
    def __init__(self):
        self.events = []

    def notify(self, events):
        self.events.append(events)


def test_writer_blocks_when_full_and_wakes_when_drained():
    box = Box()
    m, n = box.openpty()
    s = box.open(b"/dev/pts/%d" % n)
    box.root.ioctl(s, TCSETS, RAW.pack())
    total = 0
    while True:
        r = wr(m, b"z" * 1000)
        if r == "EAGAIN":
            break
        total += r
    assert total == 4095 + P.FLIP_LIMIT
    assert not m.readiness(POLLOUT)
    w = Waiter()
    m.waitqueue.add(w, POLLOUT)
    assert rd(s, 1000) == b"z" * 1000
    assert w.events and m.readiness(POLLOUT) & POLLOUT
    got = 1000
    while True:
        r = rd(s, 65536)
        if r == "EAGAIN":
            break
        got += len(r)
    assert got == total


def test_slave_output_blocks_when_the_master_does_not_read():
    box = Box()
    m, n = box.openpty()
    s = box.open(b"/dev/pts/%d" % n)
    sent = b""
    for _ in range(100):
        chunk = b"line\n" * 100
        r = wr(s, chunk)
        if r == "EAGAIN":
            break
        sent += chunk[:r]
    assert r == "EAGAIN" and not s.readiness(POLLOUT)
    out = b""
    while (r := rd(m, 65536)) != "EAGAIN":
        out += r
    assert out == sent.replace(b"\n", b"\r\n") and s.readiness(POLLOUT) & POLLOUT


def test_tcoflush_drops_only_output_in_flight():
    box = Box()
    m, n = box.openpty()
    s = box.open(b"/dev/pts/%d" % n)
    box.root.ioctl(s, TCSETS, RAW.pack())
    assert wr(s, b"a" * 5000) == 5000          # 4095 reach the master's buffer
    box.root.ioctl(s, TCFLSH, 1)                 # TCOFLUSH: the other 905 go
    assert rd(m, 10000) == b"a" * 4095 and rd(m) == "EAGAIN"
    assert wr(m, b"b" * 5000) == 5000
    box.root.ioctl(s, TCFLSH, 0)                 # TCIFLUSH: what the slave held goes,
    assert rd(s, 10000) == b"b" * 905            # and what was in flight comes in


# ---- controlling terminal, job control and signals -------------------------------------
def leader_with_pty(box):
    """A session leader (pid 10) that opened the slave and so acquired it."""
    m, n = box.openpty()
    leader = FakeTask(box.kernel, 10)
    s = box.open(b"/dev/pts/%d" % n, os.O_RDWR, task=leader)
    return m, s, leader


def test_opening_the_slave_makes_it_the_session_leaders_terminal():
    box = Box()
    m, s, leader = leader_with_pty(box)
    sess = leader.tg.session
    assert sess.tty is s.pair and sess.tty.fg_pgid == 10
    assert struct.unpack("<i", leader.ioctl(s, TIOCGSID, out=4))[0] == 10
    assert struct.unpack("<i", leader.ioctl(m, TIOCGPGRP, out=4))[0] == 10
    # Not for a non-leader, nor with O_NOCTTY, nor a second time.
    box2 = Box()
    m2, n2 = box2.openpty()
    member = FakeTask(box2.kernel, 11, pgid=11, sid=1)
    box2.open(b"/dev/pts/0", os.O_RDWR, task=member)
    assert member.tg.session.tty is None
    lone = FakeTask(box2.kernel, 12)
    box2.open(b"/dev/pts/0", os.O_RDWR | os.O_NOCTTY, task=lone)
    assert lone.tg.session.tty is None


def test_signal_characters_go_to_the_foreground_group():
    box = Box()
    m, s, leader = leader_with_pty(box)
    wr(s, b"partial output")
    wr(m, b"typed\x03")
    assert box.kernel.sent == [("pgrp", 10, SIGINT)]
    assert rd(m) == b"partial output^C"         # the echo of "typed" went with the input
    assert rd(s) == "EAGAIN"
    FakeTask(box.kernel, 20, pgid=20, sid=10)
    leader.ioctl(s, TIOCSPGRP, struct.pack("<i", 20))
    wr(m, b"\x1a")
    assert box.kernel.sent[-1] == ("pgrp", 20, 20)      # SIGTSTP
    box.root.ioctl(m, 0x40045436, SIGINT)               # TIOCSIG from the master
    assert box.kernel.sent[-1] == ("pgrp", 20, SIGINT)
    with pytest.raises(SysError):
        box.root.ioctl(m, 0x40045436, 9)


def test_tiocspgrp_rules():
    box = Box()
    m, s, leader = leader_with_pty(box)
    FakeTask(box.kernel, 20, pgid=20, sid=10)
    other = FakeTask(box.kernel, 30)                     # its own session
    def spgrp(task, desc, pgid):
        try:
            task.ioctl(desc, TIOCSPGRP, struct.pack("<i", pgid))
            return 0
        except SysError as e:
            return errno.errorcode[e.errno]
    assert spgrp(leader, s, 999) == "ESRCH"
    assert spgrp(leader, s, 30) == "EPERM"
    assert spgrp(leader, s, -1) == "EINVAL"
    assert spgrp(other, s, 30) == "ENOTTY"               # not its terminal
    assert spgrp(leader, m, 20) == 0                     # through the master too
    assert s.pair.fg_pgid == 20


def test_winsize_change_sends_sigwinch():
    box = Box()
    m, s, leader = leader_with_pty(box)
    ws = struct.pack("<HHHH", 30, 100, 0, 0)
    box.root.ioctl(m, TIOCSWINSZ, ws)
    box.root.ioctl(m, TIOCSWINSZ, ws)                    # unchanged: no second signal
    assert box.kernel.sent == [("pgrp", 10, SIGWINCH)]
    assert leader.ioctl(s, TIOCGWINSZ, out=8) == ws


def test_master_close_hangs_up_the_session():
    box = Box()
    m, s, leader = leader_with_pty(box)
    w = Waiter()
    s.waitqueue.add(w)
    wr(m, b"never read\n")
    m.decref()
    assert box.kernel.sent == [("leader", 10, SIGHUP), ("leader", 10, SIGCONT)]
    assert leader.tg.session.tty is None and w.events
    assert rd(s) == b"" and wr(s, b"x") == "EIO"
    assert s.readiness(POLL_BITS) == POLLIN | POLLOUT | POLLERR | POLLHUP
    with pytest.raises(SysError) as e:
        box.open(b"/dev/tty", task=leader)
    assert e.value.errno == errno.ENXIO


def test_a_read_waiting_at_hangup_gets_eio_later_ones_eof():
    box = Box()
    m, s, leader = leader_with_pty(box)
    waiting = [memoryview(bytearray(10))]
    with pytest.raises(WouldBlock):
        s.read(waiting)
    m.decref()
    with pytest.raises(SysError) as e:
        s.read(waiting)                      # the syscall layer retries the same read
    assert e.value.errno == errno.EIO
    assert s.read([memoryview(bytearray(10))]) == 0


def test_dev_tty_opens_the_controlling_terminal():
    box = Box()
    m, s, leader = leader_with_pty(box)
    child = FakeTask(box.kernel, 11, pgid=10, sid=10, parent=leader.tg)
    t = box.open(b"/dev/tty", os.O_RDWR, task=child)
    assert t.pair is s.pair and t.readlink_name() == b"/dev/tty"
    assert t.stat().rdev == os.makedev(5, 0)
    wr(m, b"to tty\n")
    assert rd(t) == b"to tty\n"
    with pytest.raises(SysError) as e:
        box.open(b"/dev/tty", task=FakeTask(box.kernel, 40))
    assert e.value.errno == errno.ENXIO


def test_tiocsctty_and_tiocnotty():
    box = Box()
    m, n = box.openpty()
    s = box.open(b"/dev/pts/%d" % n)
    leader = FakeTask(box.kernel, 10, euid=1000)
    member = FakeTask(box.kernel, 11, pgid=11, sid=10, euid=1000)

    def call(task, desc, cmd, arg=0):
        try:
            return desc.ioctl(task, cmd, arg)
        except SysError as e:
            return errno.errorcode[e.errno]
    assert call(member, s, TIOCSCTTY) == "EPERM"         # not a session leader
    assert call(leader, s, TIOCSCTTY) == 0
    assert call(leader, s, TIOCSCTTY) == 0               # already its terminal
    other = FakeTask(box.kernel, 20, euid=1000)
    assert call(other, s, TIOCSCTTY) == "EPERM"          # another session has it
    assert call(other, s, TIOCSCTTY, 1) == "EPERM"       # stealing needs privilege
    assert call(member, s, TIOCNOTTY) == 0               # allowed; changes nothing here
    assert leader.tg.session.tty is s.pair
    assert call(other, s, TIOCNOTTY) == "ENOTTY"
    assert call(leader, m, TIOCNOTTY) == "ENOTTY"        # not on the master
    assert call(leader, s, TIOCNOTTY) == 0
    assert box.kernel.sent == [("pgrp", 10, SIGHUP), ("pgrp", 10, SIGCONT)]
    assert leader.tg.session.tty is None and s.pair.session is None
    thief = FakeTask(box.kernel, 30, euid=0)
    assert call(leader, s, TIOCSCTTY) == 0
    assert call(thief, s, TIOCSCTTY, 1) == 0             # root steals it
    assert leader.tg.session.tty is None and thief.tg.session.tty is s.pair


def test_background_reads_and_writes_stop_the_group():
    box = Box()
    m, s, leader = leader_with_pty(box)
    bg = FakeTask(box.kernel, 20, pgid=20, sid=10, parent=leader.tg)
    wr(m, b"line\n")
    assert rd(s, task=bg, kernel=box.kernel) == 512
    assert box.kernel.sent == [("pgrp", 20, SIGTTIN)]
    bg.tg.handlers.actions[SIGTTIN].handler = 1          # ignored: EIO instead
    assert rd(s, task=bg, kernel=box.kernel) == "EIO"
    assert wr(s, b"bg\n") == 3                           # no TOSTOP: writes are fine
    t = s.pair.slave_ld.termios
    t.lflag |= L.TOSTOP
    leader.ioctl(s, TCSETS, t.pack())
    box.kernel.current_task = bg
    try:
        assert wr(s, b"bg\n") == 512
        assert box.kernel.sent[-1] == ("pgrp", 20, SIGTTOU)
        with pytest.raises(SysError):                    # so is changing termios
            bg.ioctl(s, TCSETS, t.pack())
    finally:
        box.kernel.current_task = None
    assert rd(s, task=leader, kernel=box.kernel) == b"line\n"     # the foreground reads


def test_orphaned_background_group_gets_eio():
    box = Box()
    m, s, leader = leader_with_pty(box)
    orphan = FakeTask(box.kernel, 20, pgid=20, sid=10, parent=None)
    wr(m, b"x\n")
    assert rd(s, task=orphan, kernel=box.kernel) == "EIO"
    assert box.kernel.sent == []


# ---- VTIME through the file: a deadline, and a timer that wakes the reader -------------
def test_vtime_read_times_out_through_the_kernel_timer():
    box = Box()
    m, n = box.openpty()
    s = box.open(b"/dev/pts/%d" % n)
    box.root.ioctl(s, TCSETS, raw_with(0, 5).pack())
    buf = [memoryview(bytearray(10))]
    with pytest.raises(P.TimedWouldBlock) as e:
        s.read(buf)
    assert e.value.deadline == pytest.approx(1000.5)
    assert len(box.kernel.timers) == 1
    w = Waiter()
    s.waitqueue.add(w)
    box.now = 1000.5
    box.kernel.timers[0][1]()                           # the timer fires
    assert w.events
    assert s.read(buf) == 0                              # the retry completes: timeout
    with pytest.raises(P.TimedWouldBlock) as e:          # a new read starts a new timer
        s.read([memoryview(bytearray(10))])
    assert e.value.deadline == pytest.approx(1001.0)
    wr(m, b"k")
    assert rd(s) == b"k"


# ---- end to end: a program using a pty, natively and inside pysentry -------------------
PTY_PROGRAM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void show(const char *tag, const char *buf, long n) {
    printf("%s %ld [", tag, n);
    for (long i = 0; i < n; i++) {
        unsigned char c = buf[i];
        if (c >= 32 && c < 127 && c != '\\') putchar(c); else printf("\\x%02x", c);
    }
    printf("]\n");
    fflush(stdout);
}

/* Read once the fd is readable (or report that nothing came within 5 s). */
static void get(const char *tag, int fd) {
    char buf[512];
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) { printf("%s timeout\n", tag); return; }
    long n = read(fd, buf, sizeof buf);
    if (n < 0) printf("%s error %s\n", tag, strerror(errno));
    else show(tag, buf, n);
    fflush(stdout);
}

int main(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) { perror("openpt"); return 1; }
    char *name = ptsname(m);
    printf("name under /dev/pts: %d\n", strncmp(name, "/dev/pts/", 9) == 0);
    int s = open(name, O_RDWR | O_NOCTTY);
    struct stat st;
    fstat(s, &st);
    printf("slave: tty %d chr %d major %d\n", isatty(s), S_ISCHR(st.st_mode), major(st.st_rdev));
    struct termios t;
    tcgetattr(s, &t);
    printf("termios %x %x %x %x vmin %d\n", t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, t.c_cc[VMIN]);

    write(m, "hello\tworld\x7f\x7f\x17there\n", 20);
    get("slave read", s);
    get("echo", m);
    write(s, "out\tput\n", 8);
    get("master read", m);

    struct winsize ws = {33, 99, 0, 0}, got = {0};
    ioctl(m, TIOCSWINSZ, &ws);
    ioctl(s, TIOCGWINSZ, &got);
    printf("winsize %d %d\n", got.ws_row, got.ws_col);

    cfmakeraw(&t);
    tcsetattr(s, TCSANOW, &t);
    write(m, "r\r\x03\x04", 4);
    get("raw read", s);
    int avail = -1;
    ioctl(m, FIONREAD, &avail);
    printf("master FIONREAD after raw %d\n", avail);
    tcgetattr(s, &t);
    t.c_lflag |= ICANON | ECHO | ISIG | ECHOCTL;
    t.c_iflag |= ICRNL;
    t.c_oflag |= OPOST;
    tcsetattr(s, TCSAFLUSH, &t);

    /* A child takes the terminal in a new session; ^C reaches it; the master's close
       hangs it up. */
    int ready[2];
    pipe(ready);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(m);
        setsid();
        if (ioctl(s, TIOCSCTTY, 0) < 0) { printf("child TIOCSCTTY %s\n", strerror(errno)); _exit(3); }
        printf("child: sid ok %d, fg ok %d\n", tcgetsid(s) == getpid(), tcgetpgrp(s) == getpid());
        int tty = open("/dev/tty", O_RDWR);
        printf("child: /dev/tty %s\n", tty >= 0 ? "ok" : strerror(errno));
        fflush(stdout);
        write(tty, "via /dev/tty\n", 13);
        close(tty);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigprocmask(SIG_BLOCK, &set, NULL);
        write(ready[1], "r", 1);
        int sig = 0;
        sigwait(&set, &sig);
        printf("child: got signal %d\n", sig);
        fflush(stdout);
        write(ready[1], "r", 1);
        char buf[64];
        long n = read(s, buf, sizeof buf);
        show("child read", buf, n);
        signal(SIGHUP, SIG_IGN);
        write(ready[1], "r", 1);
        n = read(s, buf, sizeof buf);
        /* EIO if the read was already waiting when the master closed, else EOF */
        printf("child read after hangup: %s\n", n == 0 || (n < 0 && errno == EIO) ? "ok" : "bad");
        n = read(s, buf, sizeof buf);
        printf("child read again %ld %s\n", n, n < 0 ? strerror(errno) : "");
        n = write(s, "x", 1);
        printf("child write after hangup %ld %s\n", n, n < 0 ? strerror(errno) : "");
        fflush(stdout);
        _exit(0);
    }
    char c;
    read(ready[0], &c, 1);
    get("tty output", m);
    write(m, "\x03", 1);
    read(ready[0], &c, 1);
    get("echo of ^C", m);
    write(m, "line for child\n", 15);
    read(ready[0], &c, 1);
    get("echo of line", m);
    close(s);
    close(m);
    int status;
    waitpid(pid, &status, 0);
    printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    return 0;
}
"""

def test_a_pty_program_behaves_as_natively():
    prog = compile_c(PTY_PROGRAM)
    native = subprocess.run([prog], capture_output=True, timeout=60)
    box = run_sandbox([prog])
    assert native.returncode == 0 and b"timeout" not in native.stdout, native.stdout
    assert box.stdout.decode() == native.stdout.decode(), box.stderr.decode()[-3000:]
    assert box.returncode == 0
