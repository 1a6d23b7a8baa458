"""The N_TTY line discipline as a sans-I/O object: termios state, input editing, echo and
output processing, with no files, no tasks and no clock of its own.

One `LineDiscipline` serves one side of a terminal: bytes typed at the terminal go in
through `receive()`, the reader takes them out with `read()`, and what the program writes
passes through `process_output()`. Everything the discipline wants the terminal to show
(echo, and output processing of writes) comes back as bytes; signals come back as
`Signal` events. The caller (pty.py) moves bytes between queues and delivers signals.

Behaviour follows Linux's drivers/tty/n_tty.c, observable detail included:
  - the read buffer holds N_TTY_BUF_SIZE (4096) bytes; `receive()` takes only what fits
    and returns how much it took, the rest stays with the caller (Linux's flip buffer)
    until a read makes room. In canonical mode a line that fills the buffer keeps being
    edited and echoed, but characters beyond 4095 are discarded; the line terminator
    still fits, so a line is at most 4096 bytes;
  - an EOF character ends a line and is kept in the buffer as a NUL "line end" that a
    canonical read consumes but does not return (switching to raw mode exposes it);
  - echo goes through output processing (ONLCR, tabs, column tracking) except ^X
    forms; erasing a tab backs up to the right column;
  - INTR/QUIT/SUSP flush the input unless NOFLSH, and with it the echo of this
    receive() call not yet handed out (Linux commits echo at the end of a batch and the
    flush empties its echo ring), then echo themselves;
  - a character that is not in the current "special" set (c_cc entries set to 0 are
    disabled) is ordinary data.
Flow control (IXON's START/STOP) consumes the characters but never stops output;
parity/break flags (serial lines only) do not exist here.

Non-canonical reads: `read(nr, now, started)` returns bytes, or `Wait(deadline)` when the
caller must wait (deadline None: until more input; else until `deadline`, a monotonic
time after which a retry returns what there is). VMIN=0/VTIME=0 never waits.
"""
from __future__ import annotations

import re
import struct

from ..kernel.record import FrozenRecord, Record

N_TTY_BUF_SIZE = 4096
NCCS = 19
DISABLED = 0            # _POSIX_VDISABLE: a c_cc entry of 0 matches nothing

# c_cc indices
VINTR, VQUIT, VERASE, VKILL, VEOF, VTIME, VMIN, VSWTC = 0, 1, 2, 3, 4, 5, 6, 7
VSTART, VSTOP, VSUSP, VEOL, VREPRINT, VDISCARD, VWERASE, VLNEXT, VEOL2 = (
    8, 9, 10, 11, 12, 13, 14, 15, 16)

# c_iflag
IGNBRK, BRKINT, IGNPAR, PARMRK, INPCK, ISTRIP = 0o1, 0o2, 0o4, 0o10, 0o20, 0o40
INLCR, IGNCR, ICRNL, IUCLC, IXON, IXANY, IXOFF = 0o100, 0o200, 0o400, 0o1000, 0o2000, 0o4000, 0o10000
IMAXBEL, IUTF8 = 0o20000, 0o40000
# c_oflag
OPOST, OLCUC, ONLCR, OCRNL, ONOCR, ONLRET = 0o1, 0o2, 0o4, 0o10, 0o20, 0o40
TABDLY, XTABS = 0o14000, 0o14000
# c_cflag
CBAUD, CSIZE, CS8, CREAD, PARENB, HUPCL = 0o10017, 0o60, 0o60, 0o200, 0o400, 0o2000
BOTHER, CBAUDEX, CIBAUD, IBSHIFT = 0o10000, 0o10000, 0o2003600000, 16
B38400 = 0o17
# c_lflag
ISIG, ICANON, XCASE, ECHO, ECHOE, ECHOK, ECHONL, NOFLSH, TOSTOP = (
    0o1, 0o2, 0o4, 0o10, 0o20, 0o40, 0o100, 0o200, 0o400)
ECHOCTL, ECHOPRT, ECHOKE, FLUSHO, PENDIN, IEXTEN, EXTPROC = (
    0o1000, 0o2000, 0o4000, 0o10000, 0o40000, 0o100000, 0o200000)

SIGINT, SIGQUIT, SIGTSTP = 2, 3, 20

# Linux's default c_cc (INIT_C_CC): ^C ^\ DEL ^U ^D, VTIME 0, VMIN 1, ^Q ^S ^Z, ^R ^O ^W ^V.
DEFAULT_CC = bytes([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0])

_BAUDS = (0, 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200,
          38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000,
          1500000, 2000000, 2500000, 3000000, 3500000, 4000000)


def _baud(code: int) -> int:
    """The rate a CBAUD code stands for (codes above 15 have CBAUDEX set)."""
    idx = code & 0o17
    if code & CBAUDEX:
        idx += 15
    return _BAUDS[idx] if idx < len(_BAUDS) else 0


# --- the kernel's ctype (lib/ctype.c: Latin-1 letters are letters; 0x80-0x9f are nothing,
# not even controls) ---------------------------------------------------------------------
def _iscntrl(c: int) -> bool:
    return c < 32 or c == 127


def _isupper(c: int) -> bool:
    return 65 <= c <= 90 or (0xC0 <= c <= 0xDE and c != 0xD7)


def _islower(c: int) -> bool:
    return 97 <= c <= 122 or (0xDF <= c <= 0xFF and c != 0xF7)


def _isalnum(c: int) -> bool:
    return 48 <= c <= 57 or _isupper(c) or _islower(c)


_TOLOWER = bytes(c + 32 if _isupper(c) else c for c in range(256))
_TOUPPER = bytes(c - 32 if _islower(c) else c for c in range(256))
# Bytes that do not move the output column: controls, and with IUTF8 continuation bytes.
_NO_COLUMN = bytes(c for c in range(256) if _iscntrl(c))
_NO_COLUMN_UTF8 = bytes(c for c in range(256) if _iscntrl(c) or 0x80 <= c < 0xC0)
# Output bytes that do_output_char treats specially; everything else only moves the column.
_OUTPUT_SPECIAL = re.compile(rb"[\n\r\t\x08]")


class Termios(Record):
    """struct termios as the kernel's TCGETS/TCSETS carry it (36 bytes), plus the speeds
    of struct termios2 (TCGETS2, 44 bytes)."""
    _fields = ("iflag", "oflag", "cflag", "lflag", "line", "cc", "ispeed", "ospeed")

    def __init__(self, iflag: int = 0, oflag: int = 0, cflag: int = 0, lflag: int = 0,
                 line: int = 0, cc: bytearray | None = None, ispeed: int = 38400,
                 ospeed: int = 38400):
        self.iflag = iflag
        self.oflag = oflag
        self.cflag = cflag
        self.lflag = lflag
        self.line = line
        self.cc = bytearray(DEFAULT_CC) if cc is None else cc  # a fresh one per Termios
        self.ispeed = ispeed
        self.ospeed = ospeed

    SIZE = 36
    SIZE2 = 44
    _FMT = struct.Struct("<IIIIB19s")
    _FMT2 = struct.Struct("<IIIIB19sII")

    @classmethod
    def pty_slave_default(cls) -> "Termios":
        """What a new /dev/pts/N starts with (tty_std_termios, without HUPCL)."""
        return cls(ICRNL | IXON, OPOST | ONLCR, B38400 | CS8 | CREAD,
                   ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN)

    @classmethod
    def pty_master_default(cls) -> "Termios":
        """The master side: raw, and no ioctl can change it (termios ioctls on a master
        act on the slave)."""
        return cls(0, 0, B38400 | CS8 | CREAD, 0)

    def copy(self) -> "Termios":
        return Termios(self.iflag, self.oflag, self.cflag, self.lflag, self.line,
                       bytearray(self.cc), self.ispeed, self.ospeed)

    def pack(self) -> bytes:
        return self._FMT.pack(self.iflag, self.oflag, self.cflag, self.lflag, self.line,
                              bytes(self.cc))

    def pack2(self) -> bytes:
        return self._FMT2.pack(self.iflag, self.oflag, self.cflag, self.lflag, self.line,
                               bytes(self.cc), self.ispeed, self.ospeed)

    @classmethod
    def unpack(cls, data: bytes, current: "Termios | None" = None) -> "Termios":
        """From TCSETS's 36 bytes. Speeds follow from the CBAUD/CIBAUD bits; BOTHER
        (an arbitrary rate) keeps the `current` speeds, which the old struct cannot say."""
        if len(data) < cls.SIZE:
            raise ValueError("struct termios is 36 bytes")
        i, o, c, l, line, cc = cls._FMT.unpack_from(data)
        speeds = (current.ispeed, current.ospeed) if current is not None else (0, 0)
        return cls._with_speeds(cls(i, o, c, l, line, bytearray(cc)), *speeds)

    @classmethod
    def unpack2(cls, data: bytes) -> "Termios":
        """From TCSETS2's 44 bytes: BOTHER means the explicit speeds apply."""
        if len(data) < cls.SIZE2:
            raise ValueError("struct termios2 is 44 bytes")
        i, o, c, l, line, cc, ispeed, ospeed = cls._FMT2.unpack_from(data)
        return cls._with_speeds(cls(i, o, c, l, line, bytearray(cc)), ispeed, ospeed)

    @staticmethod
    def _with_speeds(t: "Termios", ispeed: int, ospeed: int) -> "Termios":
        code = t.cflag & CBAUD
        t.ospeed = ospeed if code == BOTHER else _baud(code)
        icode = (t.cflag & CIBAUD) >> IBSHIFT
        if icode == 0:
            t.ispeed = t.ospeed
        else:
            t.ispeed = ispeed if icode == BOTHER else _baud(icode)
        return t


class Signal(FrozenRecord):
    """INTR/QUIT/SUSP was typed: send `sig` to the foreground process group. `flush`: the
    discipline dropped its input (a packet-mode pty master is told so)."""
    _fields = ("sig", "flush")

    def __init__(self, sig: int, flush: bool):
        object.__setattr__(self, "sig", sig)
        object.__setattr__(self, "flush", flush)


class Wait(FrozenRecord):
    """read() cannot complete now: wait for input, or until `deadline` (monotonic) if set."""
    _fields = ("deadline",)

    def __init__(self, deadline: float | None = None):
        object.__setattr__(self, "deadline", deadline)


class Received(Record):
    """What receive() did: how many input bytes it took, and in order the bytes to show
    on the terminal (bytes) and the signals to send (Signal)."""
    _fields = ("consumed", "events")

    def __init__(self, consumed: int, events: list):
        self.consumed = consumed
        self.events = events


class LineDiscipline:
    def __init__(self, termios: Termios | None = None):
        self._termios = termios.copy() if termios is not None else Termios.pty_slave_default()
        # The read buffer: bytes [tail, head) in `_buf`, absolute positions as in Linux so
        # that line ends can be kept as positions. Lines end at positions in `_eols`
        # (ascending, all below `_canon_head`); bytes past `_canon_head` are the line
        # being edited.
        self._buf = bytearray()
        self._tail = 0
        self._canon_head = 0
        self._eols: list[int] = []
        self._lnext = False         # the next byte is literal (after VLNEXT)
        self._erasing = False       # inside an ECHOPRT \...\ erase sequence
        self.column = 0             # output column, for tab expansion and tab erase
        self._canon_column = 0      # column where the line being edited started
        self.last_input = 0.0       # when the last byte came in (VTIME inter-byte timer)
        self._erased_tail = b""     # the bytes the last erase step removed
        self._events: list = []
        self._set_modes()

    # -- termios -------------------------------------------------------------------------
    @property
    def termios(self) -> Termios:
        return self._termios.copy()

    def set_termios(self, new: Termios) -> None:
        """TCSETS: switching ICANON turns what is buffered into a line (or into raw data),
        as n_tty_set_termios does."""
        old = self._termios
        self._termios = new.copy()
        if (old.lflag ^ new.lflag) & (ICANON | EXTPROC):
            self._eols = []
            if not new.lflag & ICANON or not self._buf:
                self._canon_head = self._tail
            else:
                self._canon_head = self._head
                self._eols = [self._head - 1]
            self._erasing = False
            self._lnext = False
        self._set_modes()

    def _set_modes(self) -> None:
        t = self._termios
        self._icanon = bool(t.lflag & ICANON)
        needs_work = (t.iflag & (ISTRIP | IUCLC | IGNCR | ICRNL | INLCR | IXON | PARMRK)
                      or t.lflag & (ICANON | ISIG | ECHO))
        self._raw = not needs_work
        special = set()
        if t.iflag & (IGNCR | ICRNL):
            special.add(13)
        if t.iflag & INLCR:
            special.add(10)
        cc = t.cc
        if self._icanon:
            special.update((cc[VERASE], cc[VKILL], cc[VEOF], 10, cc[VEOL]))
            if t.lflag & IEXTEN:
                special.update((cc[VWERASE], cc[VLNEXT], cc[VEOL2]))
                if t.lflag & ECHO:
                    special.add(cc[VREPRINT])
        if t.iflag & IXON:
            special.update((cc[VSTART], cc[VSTOP]))
        if t.lflag & ISIG:
            special.update((cc[VINTR], cc[VQUIT], cc[VSUSP]))
        special.discard(DISABLED)
        self._special = frozenset(special)
        self._special_re = (re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in sorted(special)) + b"]")
                            if special else None)

    @property
    def _head(self) -> int:
        return self._tail + len(self._buf)

    # -- input ---------------------------------------------------------------------------
    def receive(self, data, now: float = 0.0) -> Received:
        """Take typed bytes, as many as the read buffer allows (n_tty_receive_buf_common)."""
        data = bytes(data)
        self._events = []
        done = 0
        parmrk = bool(self._termios.iflag & PARMRK)
        while done < len(data):
            room = N_TTY_BUF_SIZE - len(self._buf)
            if parmrk:
                room = (room + 2) // 3
            room -= 1
            if room <= 0:
                # A canonical line as long as the buffer: keep editing it, one byte at a
                # time, in a last slot the next byte overwrites (only a line end stays).
                overflow = self._icanon and self._canon_head == self._tail
                if overflow and room < 0:
                    self._buf.pop()
                room = 1 if overflow else 0
            n = min(len(data) - done, room)
            if n <= 0:
                break
            self._receive_chunk(data[done:done + n])
            done += n
        if done:
            self.last_input = now
        events, self._events = self._events, []
        return Received(done, events)

    def _receive_chunk(self, chunk: bytes) -> None:
        if self._raw and not self._lnext:
            self._buf += chunk
            return
        t = self._termios
        if self._special_re is not None and not t.lflag & ECHO and not self._lnext \
                and not t.iflag & (ISTRIP | IUCLC | PARMRK):
            # Fast path: runs of ordinary bytes with nothing to echo go straight in; a
            # special byte (and the byte after a VLNEXT) takes the slow path.
            pos = 0
            while pos < len(chunk):
                if self._lnext:
                    self._receive_byte(chunk[pos])
                    pos += 1
                    continue
                m = self._special_re.search(chunk, pos)
                if m is None:
                    self._buf += chunk[pos:]
                    break
                self._buf += chunk[pos:m.start()]
                self._receive_byte(chunk[m.start()])
                pos = m.end()
            return
        for c in chunk:
            self._receive_byte(c)

    def _receive_byte(self, c: int) -> None:
        t = self._termios
        if self._lnext:
            self._lnext = False
            self._receive_char(self._preprocess(c))
            return
        c = self._preprocess(c)
        if t.lflag & EXTPROC:
            self._put(c)
        elif c in self._special:
            self._receive_special(c)
        else:
            self._receive_char(c)

    def _preprocess(self, c: int) -> int:
        t = self._termios
        if t.iflag & ISTRIP:
            c &= 0x7F
        if t.iflag & IUCLC and t.lflag & IEXTEN:
            c = _TOLOWER[c]
        return c

    def _receive_char(self, c: int) -> None:
        """A character outside the special set, or a literal one after VLNEXT
        (n_tty_receive_char): even a newline echoes as ^J here."""
        if self._termios.lflag & ECHO:
            self._finish_erasing()
            if self._canon_head == self._head:
                self._canon_column = self.column
            self._echo_char(c)
        self._store(c)

    def _store(self, c: int) -> None:
        if c == 0xFF and self._termios.iflag & PARMRK:
            self._put(c)
        self._put(c)

    def _special_as_data(self, c: int) -> None:
        """A special character that turned out to be data (the tail of
        n_tty_receive_char_special): a newline made from CR echoes as a newline."""
        if self._termios.lflag & ECHO:
            self._finish_erasing()
            if c == 10:
                self._echo_raw(10)
            else:
                if self._canon_head == self._head:
                    self._canon_column = self.column
                self._echo_char(c)
        self._store(c)

    def _receive_special(self, c: int) -> None:
        t = self._termios
        cc = t.cc
        lflag = t.lflag
        if t.iflag & IXON and c in (cc[VSTART], cc[VSTOP]):
            return                              # flow control: consumed, not acted on
        if lflag & ISIG:
            for idx, sig in ((VINTR, SIGINT), (VQUIT, SIGQUIT), (VSUSP, SIGTSTP)):
                if c == cc[idx]:
                    self._signal_char(sig, c)
                    return
        if c == 13:
            if t.iflag & IGNCR:
                return
            if t.iflag & ICRNL:
                c = 10
        elif c == 10 and t.iflag & INLCR:
            c = 13
        if self._icanon:
            if c in (cc[VERASE], cc[VKILL]) or (c == cc[VWERASE] and lflag & IEXTEN):
                self._eraser(c)
                return
            if c == cc[VLNEXT] and lflag & IEXTEN:
                self._lnext = True
                if lflag & ECHO:
                    self._finish_erasing()
                    if lflag & ECHOCTL:
                        self._echo_raw(ord("^"))
                        self._echo_raw(8)
                return
            if c == cc[VREPRINT] and lflag & ECHO and lflag & IEXTEN:
                self._finish_erasing()
                self._echo_char(c)
                self._echo_raw(10)
                for b in self._buf[self._canon_head - self._tail:]:
                    self._echo_char(b)
                return
            if c == 10:
                if lflag & (ECHO | ECHONL):
                    self._echo_raw(10)
                self._end_line(c)
                return
            if c == cc[VEOF]:
                self._end_line(DISABLED)
                return
            if c == cc[VEOL] or (c == cc[VEOL2] and lflag & IEXTEN):
                if lflag & ECHO:
                    if self._canon_head == self._head:
                        self._canon_column = self.column
                    self._echo_char(c)
                if c == 0xFF and t.iflag & PARMRK:
                    self._put(c)
                self._end_line(c)
                return
        self._special_as_data(c)

    def _end_line(self, c: int) -> None:
        self._eols.append(self._head)
        self._put(c)
        self._canon_head = self._head

    def _put(self, c: int) -> None:
        self._buf.append(c)

    def _signal_char(self, sig: int, c: int) -> None:
        flush = not self._termios.lflag & NOFLSH
        if flush:
            self.flush_input()
            self._events = [ev for ev in self._events if isinstance(ev, Signal)]
        self._events.append(Signal(sig, flush))
        if self._termios.lflag & ECHO:
            self._echo_char(c)

    def _eraser(self, c: int) -> None:
        """ERASE, WERASE and KILL (n_tty's eraser())."""
        t = self._termios
        lflag = t.lflag
        cc = t.cc
        if self._head == self._canon_head:
            return
        if c == cc[VERASE]:
            kind = "erase"
        elif c == cc[VWERASE]:
            kind = "werase"
        else:
            if not lflag & ECHO:
                self._truncate_to(self._canon_head)
                return
            if not (lflag & ECHOK and lflag & ECHOKE and lflag & ECHOE):
                self._truncate_to(self._canon_head)
                self._finish_erasing()
                self._echo_char(cc[VKILL])
                if lflag & ECHOK:
                    self._echo_raw(10)
                return
            kind = "kill"
        utf8 = bool(t.iflag & IUTF8)
        seen_alnums = 0
        while self._head != self._canon_head:
            head = self._head
            while True:                # one possibly multi-byte character
                head -= 1
                ch = self._at(head)
                if not (utf8 and ch & 0xC0 == 0x80) or head == self._canon_head:
                    break
            if utf8 and ch & 0xC0 == 0x80:
                break                  # never erase part of a character
            if kind == "werase":
                if _isalnum(ch) or ch == ord("_"):
                    seen_alnums += 1
                elif seen_alnums:
                    break
            cnt = self._head - head
            self._truncate_to(head)
            if lflag & ECHO:
                self._echo_erased(ch, kind, cnt, head)
            if kind == "erase":
                break
        if self._head == self._canon_head and lflag & ECHO:
            self._finish_erasing()

    def _echo_erased(self, ch: int, kind: str, cnt: int, head: int) -> None:
        lflag = self._termios.lflag
        if lflag & ECHOPRT:
            if not self._erasing:
                self._echo_raw(ord("\\"))
                self._erasing = True
            self._echo_char(ch)
            # The rest of a multi-byte character was just truncated; re-show it as Linux
            # does (it reads the bytes still lying in the ring).
            for b in self._erased_tail[1:cnt]:
                self._echo_raw(b)
                if self.column > 0:
                    self.column -= 1
        elif kind == "erase" and not lflag & ECHOE:
            self._echo_char(self._termios.cc[VERASE])
        elif ch == 9:
            num_chars = 0
            after_tab = False
            pos = self._head
            while pos != self._canon_head:
                pos -= 1
                b = self._at(pos)
                if b == 9:
                    after_tab = True
                    break
                if _iscntrl(b):
                    if lflag & ECHOCTL:
                        num_chars += 2
                elif not (self._termios.iflag & IUTF8 and b & 0xC0 == 0x80):
                    num_chars += 1
            self._echo_erase_tab(num_chars, after_tab)
        else:
            # ^X took two columns; a raw control character (no ECHOCTL) took none.
            if _iscntrl(ch) and lflag & ECHOCTL:
                self._echo_bytes(b"\b \b")
            if not _iscntrl(ch) or lflag & ECHOCTL:
                self._echo_bytes(b"\b \b")

    def _at(self, pos: int) -> int:
        return self._buf[pos - self._tail]

    def _truncate_to(self, head: int) -> None:
        self._erased_tail = bytes(self._buf[head - self._tail:])
        del self._buf[head - self._tail:]

    # -- echo (what __process_echoes emits, done at once: there is always room) ----------
    def _emit(self, data: bytes) -> None:
        if self._events and isinstance(self._events[-1], bytearray):
            self._events[-1] += data
        else:
            self._events.append(bytearray(data))

    def _finish_erasing(self) -> None:
        if self._erasing:
            self._echo_raw(ord("/"))
            self._erasing = False

    def _echo_char(self, c: int) -> None:
        if c == 0xFF:
            self._echo_raw(c)
        elif self._termios.lflag & ECHOCTL and _iscntrl(c) and c != 9:
            self._emit(bytes((ord("^"), c ^ 0o100)))
            self.column += 2
        else:
            self._echo_raw(c)

    def _echo_raw(self, c: int) -> None:
        if c == 0xFF:
            self._emit(b"\xff")        # Linux's escaped echo-op byte: out as is
            self.column += 1
        elif self._termios.oflag & OPOST:
            self._emit(self._output_char(c))
        else:
            self._emit(bytes((c,)))

    def _echo_bytes(self, data: bytes) -> None:
        for c in data:
            self._echo_raw(c)

    def _echo_erase_tab(self, num_chars: int, after_tab: bool) -> None:
        num_chars &= 7
        if not after_tab:
            num_chars += self._canon_column
        num_bs = 8 - (num_chars & 7)
        self._emit(b"\b" * num_bs)
        self.column = max(self.column - num_bs, 0)

    # -- output --------------------------------------------------------------------------
    def _output_char(self, c: int) -> bytes:
        """One byte of OPOST processing (do_output_char); updates the column."""
        o = self._termios.oflag
        if c == 10:
            if o & ONLRET:
                self.column = 0
            if o & ONLCR:
                self._canon_column = self.column = 0
                return b"\r\n"
            self._canon_column = self.column
        elif c == 13:
            if o & ONOCR and self.column == 0:
                return b""
            if o & OCRNL:
                c = 10
                if o & ONLRET:
                    self._canon_column = self.column = 0
            else:
                self._canon_column = self.column = 0
        elif c == 9:
            spaces = 8 - (self.column & 7)
            self.column += spaces
            if o & TABDLY == XTABS:
                return b" " * spaces
        elif c == 8:
            if self.column > 0:
                self.column -= 1
        elif not _iscntrl(c):
            if o & OLCUC:
                c = _TOUPPER[c]
            if not (self._termios.iflag & IUTF8 and c & 0xC0 == 0x80):
                self.column += 1
        return bytes((c,))

    def _output_size(self, c: int) -> int:
        """How many bytes output processing turns `c` into at the current column."""
        o = self._termios.oflag
        if not o & OPOST:
            return 1
        if c == 10 and o & ONLCR:
            return 2
        if c == 9 and o & TABDLY == XTABS:
            return 8 - (self.column & 7)
        if c == 13 and o & ONOCR and self.column == 0:
            return 0
        return 1

    def process_output(self, data, room: int) -> tuple[int, bytes]:
        """A write(): returns (input bytes taken, bytes for the terminal), never more than
        `room` output bytes and never half of one input byte's expansion."""
        data = bytes(data)
        t = self._termios
        if not t.oflag & OPOST:
            n = min(len(data), max(room, 0))
            return n, data[:n]
        out = bytearray()
        done = 0
        utf8 = bool(t.iflag & IUTF8)
        olcuc = bool(t.oflag & OLCUC)
        while done < len(data) and len(out) < room:
            m = _OUTPUT_SPECIAL.search(data, done)
            end = m.start() if m else len(data)
            if end > done:
                # A run of bytes that only move the column (process_output_block).
                run = data[done:min(end, done + room - len(out))]
                self.column += len(run.translate(None, _NO_COLUMN_UTF8 if utf8 else _NO_COLUMN))
                out += run.translate(_TOUPPER_PRINTABLE) if olcuc else run
                done += len(run)
                continue
            c = data[done]
            if self._output_size(c) > room - len(out):
                break
            out += self._output_char(c)
            done += 1
        return done, bytes(out)

    # -- reading -------------------------------------------------------------------------
    def available(self) -> int:
        """Bytes a read could return now (canonical: complete lines only)."""
        if self._icanon and not self._termios.lflag & EXTPROC:
            return self._canon_head - self._tail
        return len(self._buf)

    def readable(self) -> bool:
        """POLLIN (input_available_p with poll=1): in non-canonical mode with VTIME 0,
        VMIN bytes must be there."""
        if self._icanon and not self._termios.lflag & EXTPROC:
            return self._canon_head != self._tail
        cc = self._termios.cc
        amt = cc[VMIN] if not cc[VTIME] and cc[VMIN] else 1
        return len(self._buf) >= amt

    def read(self, nr: int, now: float = 0.0, started: float = 0.0):
        """Take up to `nr` bytes for a reader whose read() began at `started`."""
        if nr <= 0:
            return b""
        if self._icanon and not self._termios.lflag & EXTPROC:
            if self._canon_head == self._tail:
                return Wait(None)
            return self._canon_read(nr)
        cc = self._termios.cc
        vmin, vtime = cc[VMIN], cc[VTIME] / 10
        have = len(self._buf)
        if not vmin:
            if have or not vtime:
                return self._take(min(nr, have))
            deadline = started + vtime
            return self._take(0) if now >= deadline else Wait(deadline)
        if have >= min(vmin, nr):
            return self._take(min(nr, have))
        if not have or not vtime:
            return Wait(None)
        deadline = self.last_input + vtime       # the inter-byte timer
        return self._take(min(nr, have)) if now >= deadline else Wait(deadline)

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        self._consume(n)
        return out

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._tail += n
        if self._canon_head < self._tail:
            self._canon_head = self._tail
        while self._eols and self._eols[0] < self._tail:
            self._eols.pop(0)

    def _canon_read(self, nr: int) -> bytes:
        """At most one line; the NUL an EOF left is consumed but not returned
        (canon_copy_from_read_buf)."""
        n = min(nr, self._canon_head - self._tail)
        if self._eols and self._eols[0] < self._tail + n:
            eol = self._eols.pop(0)
            c = eol - self._tail + 1
            keep = c if self._at(eol) != DISABLED else c - 1
            out = bytes(self._buf[:keep])
            self._consume(c)
            return out
        return self._take(n)

    def inq(self) -> int:
        """FIONREAD/TIOCINQ: canonical mode counts complete lines, without EOF marks."""
        if self._icanon and not self._termios.lflag & EXTPROC:
            n = self._canon_head - self._tail
            return n - sum(1 for e in self._eols if self._at(e) == DISABLED)
        return len(self._buf)

    def flush_input(self) -> None:
        """TCIFLUSH, and what a signal character does (reset_buffer_flags)."""
        self._tail += len(self._buf)
        self._buf.clear()
        self._canon_head = self._tail
        self._eols = []
        self._erasing = False
        self._lnext = False

    def room(self) -> int:
        """Free bytes in the read buffer (what receive() could take at once)."""
        return N_TTY_BUF_SIZE - 1 - len(self._buf)


_TOUPPER_PRINTABLE = bytes(_TOUPPER[c] if not _iscntrl(c) else c for c in range(256))
