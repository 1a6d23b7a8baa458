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
import struct

import pytest

from pysentry.sentry.vfs import ldisc as L
from pysentry.sentry.vfs.ldisc import LineDiscipline, Signal, Termios, Wait

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
    """The same steps on our LineDiscipline; a signal's flush drops what the master has
    not read yet. Returns the same shape as host_session, plus the signals raised."""
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
                if ev.flush:
                    shown.clear()
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
