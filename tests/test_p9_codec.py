"""The 9P2000.L codec against byte layouts written out by hand from diod's protocol.md.

Each vector below spells the message type number and the body with struct.pack, field by
field as protocol.md lists them, independently of gofer/p9/messages.py; both codecs (the
construct one and the struct fast path) must produce exactly these bytes and parse them
back. Malformed input must raise the codec's own errors, never IndexError/struct.error.
"""
import struct

import pytest

from pysentry.gofer.p9 import codec, construct_bodies, fastpath
from pysentry.gofer.p9 import messages as m
from pysentry.gofer.p9.dirent import Dirent, decode_dirents, encode_dirent
from pysentry.gofer.p9.errors import (EncodeError, FramingError, MalformedMessage,
                                      ProtocolError, UnknownMessage)
from pysentry.gofer.p9.framing import FrameDecoder
from pysentry.gofer.p9.messages import Qid


def s(text) -> bytes:
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return struct.pack("<H", len(raw)) + raw


def q(qid) -> bytes:
    return struct.pack("<BIQ", *qid)


Q1 = Qid(0x80, 7, 0x0102030405060708)
Q2 = Qid(0x02, 0, 42)
Q3 = Qid(0x00, 1, 2**64 - 1)

# (type number from protocol.md / 9p.h, message, body as protocol.md lays it out)
VECTORS = [
    (7, m.Rlerror(5, 2), struct.pack("<I", 2)),
    (8, m.Tstatfs(5, 9), struct.pack("<I", 9)),
    (9, m.Rstatfs(5, 0x01021997, 4096, 10, 9, 8, 7, 6, 0xAABBCCDDEEFF0011, 255),
     struct.pack("<IIQQQQQQI", 0x01021997, 4096, 10, 9, 8, 7, 6, 0xAABBCCDDEEFF0011, 255)),
    (12, m.Tlopen(5, 9, 0o2304000), struct.pack("<II", 9, 0o2304000)),
    (13, m.Rlopen(5, Q1, 8192), q(Q1) + struct.pack("<I", 8192)),
    (14, m.Tlcreate(5, 9, "foo", 0x8241, 0o100644, 500),
     struct.pack("<I", 9) + s("foo") + struct.pack("<III", 0x8241, 0o100644, 500)),
    (15, m.Rlcreate(5, Q3, 0), q(Q3) + struct.pack("<I", 0)),
    (16, m.Tsymlink(5, 1, "newsymlink", "/tmp/9/newdir", 500),
     struct.pack("<I", 1) + s("newsymlink") + s("/tmp/9/newdir") + struct.pack("<I", 500)),
    (17, m.Rsymlink(5, Q2), q(Q2)),
    (18, m.Tmknod(5, 1, "fifo", 0o10644, 3, 4, 100),
     struct.pack("<I", 1) + s("fifo") + struct.pack("<IIII", 0o10644, 3, 4, 100)),
    (19, m.Rmknod(5, Q3), q(Q3)),
    (20, m.Trename(5, 3, 1, "new"), struct.pack("<II", 3, 1) + s("new")),
    (21, m.Rrename(5), b""),
    (22, m.Treadlink(5, 4), struct.pack("<I", 4)),
    (23, m.Rreadlink(5, "/tmp/9/newdir"), s("/tmp/9/newdir")),
    (24, m.Tgetattr(5, 1, 0x3FFF), struct.pack("<IQ", 1, 0x3FFF)),
    (25, m.Rgetattr(5, 0x7FF, Q1, 0o40755, 500, 501, 56, 0, 4096, 4096, 2664,
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
     struct.pack("<Q", 0x7FF) + q(Q1) +
     struct.pack("<III", 0o40755, 500, 501) +
     struct.pack("<QQQQQ", 56, 0, 4096, 4096, 2664) +
     struct.pack("<QQQQQQQQQQ", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)),
    (26, m.Tsetattr(5, 2, 0x41, 0o40000, 1, 2, 3, 4, 5, 6, 7),
     struct.pack("<IIIIIQQQQQ", 2, 0x41, 0o40000, 1, 2, 3, 4, 5, 6, 7)),
    (27, m.Rsetattr(5), b""),
    (30, m.Txattrwalk(5, 1, 2, "user.x"), struct.pack("<II", 1, 2) + s("user.x")),
    (31, m.Rxattrwalk(5, 12), struct.pack("<Q", 12)),
    (32, m.Txattrcreate(5, 1, "user.x", 12, 1),
     struct.pack("<I", 1) + s("user.x") + struct.pack("<QI", 12, 1)),
    (33, m.Rxattrcreate(5), b""),
    (40, m.Treaddir(5, 2, 2147483647, 65488), struct.pack("<IQI", 2, 2147483647, 65488)),
    (41, m.Rreaddir(5, b"\x01\x02\x03"), struct.pack("<I", 3) + b"\x01\x02\x03"),
    (50, m.Tfsync(5, 2, 1), struct.pack("<II", 2, 1)),
    (51, m.Rfsync(5), b""),
    (52, m.Tlock(5, 2, 1, 1, 100, 200, 4242, "host"),
     struct.pack("<IBIQQI", 2, 1, 1, 100, 200, 4242) + s("host")),
    (53, m.Rlock(5, 1), struct.pack("<B", 1)),
    (54, m.Tgetlock(5, 2, 0, 100, 200, 4242, "host"),
     struct.pack("<IBQQI", 2, 0, 100, 200, 4242) + s("host")),
    (55, m.Rgetlock(5, 1, 100, 200, 77, "other"),
     struct.pack("<BQQI", 1, 100, 200, 77) + s("other")),
    (70, m.Tlink(5, 1, 2, "hard"), struct.pack("<II", 1, 2) + s("hard")),
    (71, m.Rlink(5), b""),
    (72, m.Tmkdir(5, 1, "newdir", 0o40755, 500),
     struct.pack("<I", 1) + s("newdir") + struct.pack("<II", 0o40755, 500)),
    (73, m.Rmkdir(5, Q1), q(Q1)),
    (74, m.Trenameat(5, 1, "a", 2, "b"), struct.pack("<I", 1) + s("a") +
     struct.pack("<I", 2) + s("b")),
    (75, m.Rrenameat(5), b""),
    (76, m.Tunlinkat(5, 1, "dir", 0x200), struct.pack("<I", 1) + s("dir") +
     struct.pack("<I", 0x200)),
    (77, m.Runlinkat(5), b""),
    (100, m.Tversion(0xFFFF, 65512, "9P2000.L"), struct.pack("<I", 65512) + s("9P2000.L")),
    (101, m.Rversion(0xFFFF, 65512, "9P2000.L"), struct.pack("<I", 65512) + s("9P2000.L")),
    (102, m.Tauth(5, 3, "root", "/tmp/9", 0xFFFFFFFF),
     struct.pack("<I", 3) + s("root") + s("/tmp/9") + struct.pack("<I", 0xFFFFFFFF)),
    (103, m.Rauth(5, Q2), q(Q2)),
    (104, m.Tattach(5, 0, 0xFFFFFFFF, "root", "/tmp/9", 0xFFFFFFFF),
     struct.pack("<II", 0, 0xFFFFFFFF) + s("root") + s("/tmp/9") +
     struct.pack("<I", 0xFFFFFFFF)),
    (105, m.Rattach(5, Q1), q(Q1)),
    (108, m.Tflush(5, 3), struct.pack("<H", 3)),
    (109, m.Rflush(5), b""),
    (110, m.Twalk(5, 1, 2, ["usr", "lib", ".."]),
     struct.pack("<IIH", 1, 2, 3) + s("usr") + s("lib") + s("..")),
    (111, m.Rwalk(5, [Q1, Q2]), struct.pack("<H", 2) + q(Q1) + q(Q2)),
    (116, m.Tread(5, 5, 6, 32768), struct.pack("<IQI", 5, 6, 32768)),
    (117, m.Rread(5, b"hello\n"), struct.pack("<I", 6) + b"hello\n"),
    (118, m.Twrite(5, 2, 0, b"hello\n"), struct.pack("<IQI", 2, 0, 6) + b"hello\n"),
    (119, m.Rwrite(5, 6), struct.pack("<I", 6)),
    (120, m.Tclunk(5, 2), struct.pack("<I", 2)),
    (121, m.Rclunk(5), b""),
    (122, m.Tremove(5, 2), struct.pack("<I", 2)),
    (123, m.Rremove(5), b""),
]


def frame(type_no: int, tag: int, body: bytes) -> bytes:
    return struct.pack("<IBH", 7 + len(body), type_no, tag) + body


def test_vectors_cover_every_message_class():
    assert {type(msg) for _, msg, _ in VECTORS} == set(m.BY_TYPE.values())


@pytest.mark.parametrize("type_no,msg,body", VECTORS, ids=[type(v[1]).__name__ for v in VECTORS])
@pytest.mark.parametrize("fast", [True, False], ids=["fastpath", "construct"])
def test_message_matches_spec_bytes(type_no, msg, body, fast):
    expected = frame(type_no, msg.tag, body)
    assert msg.TYPE == type_no
    assert codec.encode(msg, use_fastpath=fast) == expected
    assert codec.decode(expected, use_fastpath=fast) == msg


def test_fastpath_covers_the_hot_messages():
    hot = {"Tread", "Rread", "Twrite", "Rwrite", "Twalk", "Rwalk", "Tgetattr", "Rgetattr",
           "Tlopen", "Rlopen", "Tclunk", "Rclunk"}
    assert {m.BY_NAME[n].TYPE for n in hot} <= set(fastpath.ENCODERS)
    assert set(fastpath.ENCODERS) == set(fastpath.DECODERS)


def test_non_utf8_names_round_trip():
    raw = b"caf\xe9-\xff\xfe"          # latin-1 bytes, not valid UTF-8
    name = raw.decode("utf-8", "surrogateescape")
    wire = frame(110, 1, struct.pack("<IIH", 0, 1, 1) + s(raw))
    msg = codec.decode(wire)
    assert msg.wnames == [name]
    assert codec.encode(msg) == wire
    assert codec.encode(m.Twalk(1, 0, 1, [raw])) == wire      # bytes accepted as well
    assert codec.decode(wire, use_fastpath=False).wnames == [name]


def test_dirents_round_trip_and_match_spec_layout():
    entry = Dirent(Q1, 2147483647, 4, "..")
    wire = q(Q1) + struct.pack("<QB", 2147483647, 4) + s("..")
    assert encode_dirent(entry) == wire
    assert decode_dirents(wire + encode_dirent(Dirent(Q3, 3, 8, "f"))) == \
        [entry, Dirent(Q3, 3, 8, "f")]
    with pytest.raises(MalformedMessage):
        decode_dirents(wire[:-1])
    with pytest.raises(MalformedMessage):
        decode_dirents(wire + b"\x00")


# --- malformed input ---------------------------------------------------------------------

def _bad_frames():
    good = {type(msg).__name__: frame(t, msg.tag, body) for t, msg, body in VECTORS}
    cases = []
    for name, wire in good.items():
        body_len = len(wire) - 7
        if body_len:
            short = wire[:-1]
            cases.append((f"{name}-short", struct.pack("<I", len(short)) + short[4:]))
        cases.append((f"{name}-trailing", struct.pack("<I", len(wire) + 1) + wire[4:] + b"Z"))
    # counts that disagree with the bytes that follow
    cases.append(("Rread-count-too-big", frame(117, 1, struct.pack("<I", 10) + b"abc")))
    cases.append(("Rread-count-too-small", frame(117, 1, struct.pack("<I", 1) + b"abc")))
    cases.append(("Twrite-count", frame(118, 1, struct.pack("<IQI", 1, 0, 99) + b"x")))
    cases.append(("Twalk-17-names", frame(110, 1, struct.pack("<IIH", 0, 1, 17) +
                                          s("a") * 17)))
    cases.append(("Rwalk-17-qids", frame(111, 1, struct.pack("<H", 17) + q(Q1) * 17)))
    cases.append(("Twalk-name-past-end", frame(110, 1, struct.pack("<IIHH", 0, 1, 1, 50) +
                                               b"ab")))
    cases.append(("Tattach-string-past-end", frame(104, 1, struct.pack("<IIH", 0, 0, 300) +
                                                   b"x")))
    cases.append(("Rreaddir-count", frame(41, 1, struct.pack("<I", 4))))
    return cases


@pytest.mark.parametrize("name,wire", _bad_frames(), ids=[c[0] for c in _bad_frames()])
@pytest.mark.parametrize("fast", [True, False], ids=["fastpath", "construct"])
def test_malformed_bodies_raise_malformed_message(name, wire, fast):
    with pytest.raises(MalformedMessage) as info:
        codec.decode(wire, use_fastpath=fast)
    assert info.value.tag == struct.unpack_from("<H", wire, 5)[0]


def test_unknown_type_and_size_mismatch():
    with pytest.raises(UnknownMessage) as info:
        codec.decode(frame(112, 9, struct.pack("<IB", 1, 0)))     # 9P2000 Topen: not .L
    assert info.value.tag == 9 and info.value.msg_type == 112
    with pytest.raises(MalformedMessage):
        codec.decode(b"\x07\x00\x00")                              # shorter than a header
    with pytest.raises(MalformedMessage):
        codec.decode(struct.pack("<IBH", 99, 121, 1))              # size field lies


def test_encode_rejects_values_that_do_not_fit():
    for msg in (m.Tread(1, 2**32, 0, 1), m.Tflush(1, 70000), m.Twalk(1, 0, 1, ["a"] * 17),
                m.Tmkdir(1, 0, "x" * 70000, 0, 0), m.Rlerror(1, -1), m.Tread(1, None, 0, 0)):
        for fast in (True, False):
            with pytest.raises(EncodeError):
                codec.encode(msg, use_fastpath=fast)


def test_random_garbage_never_escapes_as_a_foreign_exception():
    import random
    rng = random.Random(1234)
    type_numbers = sorted(m.BY_TYPE) + [0, 6, 99, 255]
    for _ in range(3000):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
        wire = frame(rng.choice(type_numbers), rng.randrange(65536), body)
        for fast in (True, False):
            try:
                codec.decode(wire, use_fastpath=fast)
            except ProtocolError:
                pass


# --- framing -------------------------------------------------------------------------------

def test_frame_decoder_reassembles_any_split():
    wires = [frame(t, msg.tag, body) for t, msg, body in VECTORS]
    stream = b"".join(wires)
    expected = [msg for _, msg, _ in VECTORS]
    for step in (1, 3, 7, 64, len(stream)):
        dec = FrameDecoder(max_size=8192)
        got = []
        for i in range(0, len(stream), step):
            dec.feed(stream[i:i + step])
            got.extend(dec)
        assert got == expected
        assert dec.buffered == 0


def test_frame_decoder_size_limits_are_framing_errors():
    dec = FrameDecoder(max_size=64)
    dec.feed(codec.encode(m.Rread(1, b"x" * 100)))
    with pytest.raises(FramingError):
        dec.next_frame()
    with pytest.raises(FramingError):      # stays broken: the stream has lost sync
        dec.feed(codec.encode(m.Rclunk(1)))

    dec = FrameDecoder(max_size=64)
    dec.feed(struct.pack("<IBH", 6, 121, 1))
    with pytest.raises(FramingError):
        dec.next_frame()


def test_frame_decoder_continues_after_a_malformed_frame():
    dec = FrameDecoder(max_size=1024)
    bad = frame(116, 3, b"\x00")                       # Tread with a 1-byte body
    dec.feed(bad + codec.encode(m.Tclunk(4, 1)))
    with pytest.raises(MalformedMessage) as info:
        dec.next_message()
    assert info.value.tag == 3
    assert dec.next_message() == m.Tclunk(4, 1)
    assert dec.next_message() is None


def test_construct_bodies_exist_for_every_message():
    assert set(construct_bodies.BODIES) == set(m.BY_TYPE)
