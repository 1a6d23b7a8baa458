"""The table-driven struct codec (tablecodec.py, used at run time) against the construct
codec (construct_bodies.py, the independent reference): same bytes out, same messages back,
and the same verdict (accepted with equal result, or MalformedMessage / EncodeError) on
random well-formed messages, on every way of cutting or corrupting their frames, and on
values that do not fit."""
import random
import struct
import subprocess
import sys

import pytest

from pysentry.gofer.p9 import codec, messages as m
from pysentry.gofer.p9.errors import EncodeError, MalformedMessage, ProtocolError
from pysentry.gofer.p9.messages import Qid

_WIDTH = {"u8": 8, "u16": 16, "u32": 32, "u64": 64}


def _name(rng):
    raw = bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, 5, 40))))
    return raw.decode("utf-8", "surrogateescape")     # not UTF-8 in general: must survive


def _qid(rng):
    return Qid(rng.getrandbits(8), rng.getrandbits(32), rng.getrandbits(64))


def _value(rng, kind):
    if kind in _WIDTH:
        return rng.choice((0, (1 << _WIDTH[kind]) - 1, rng.getrandbits(_WIDTH[kind])))
    if kind == "str":
        return _name(rng)
    if kind == "qid":
        return _qid(rng)
    if kind == "names":
        return [_name(rng) for _ in range(rng.choice((0, 1, 3, 16)))]
    if kind == "qids":
        return [_qid(rng) for _ in range(rng.choice((0, 1, 3, 16)))]
    if kind == "data":
        return bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, 100))))
    raise AssertionError(kind)


def _random_message(rng, cls):
    return cls(rng.getrandbits(16), *(_value(rng, kind) for _, kind in cls.FIELDS))


def _verdict(wire, reference):
    try:
        return codec.decode(wire, use_fastpath=False, reference=reference)
    except MalformedMessage as exc:
        return ("malformed", exc.msg_type, exc.tag)


@pytest.mark.parametrize("cls", list(m.BY_TYPE.values()), ids=lambda c: c.__name__)
def test_same_bytes_and_messages_as_construct(cls):
    rng = random.Random(cls.TYPE)
    for _ in range(30):
        msg = _random_message(rng, cls)
        wire = codec.encode(msg, use_fastpath=False)
        assert wire == codec.encode(msg, reference=True)
        assert codec.decode(wire, use_fastpath=False) == msg
        assert codec.decode(wire, reference=True) == msg
        assert struct.unpack_from("<I", wire)[0] == len(wire)


def _reframe(wire, body):
    return struct.pack("<IBH", 7 + len(body), wire[4], struct.unpack_from("<H", wire, 5)[0]) \
        + body


@pytest.mark.parametrize("cls", list(m.BY_TYPE.values()), ids=lambda c: c.__name__)
def test_same_verdict_as_construct_on_damaged_frames(cls):
    rng = random.Random(1000 + cls.TYPE)
    for _ in range(8):
        wire = codec.encode(_random_message(rng, cls), use_fastpath=False)
        body = wire[7:]
        damaged = [body[:cut] for cut in range(len(body))]          # every truncation
        damaged += [body + b"\x00", body + b"\xff" * 3]              # trailing bytes
        for _ in range(20):                                          # corrupted bytes
            if body:
                pos = rng.randrange(len(body))
                damaged.append(body[:pos] + bytes([rng.getrandbits(8)]) + body[pos + 1:])
        for bad in damaged:
            frame = _reframe(wire, bad)
            assert _verdict(frame, False) == _verdict(frame, True), bad


def test_garbage_gets_the_same_verdict_and_only_protocol_errors():
    rng = random.Random(77)
    for _ in range(3000):
        cls = rng.choice(list(m.BY_TYPE.values()))
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 48)))
        frame = struct.pack("<IBH", 7 + len(body), cls.TYPE, rng.getrandbits(16)) + body
        assert _verdict(frame, False) == _verdict(frame, True)


@pytest.mark.parametrize("msg", [
    m.Tversion(1, 2**32, "9P2000.L"), m.Tversion(1, -1, "9P2000.L"),
    m.Tversion(1, 8192, None), m.Tattach(1, 0, 0, "x" * 70000, "", 0),
    m.Tlock(1, 0, 256, 0, 0, 0, 0, "c"), m.Rmkdir(1, (1, 2)), m.Rmkdir(1, Qid(1, 2, 2**64)),
    m.Rwalk(1, [Qid(0, 0, 0)] * 17), m.Twalk(1, 0, 1, ["a"] * 17),
    m.Tmkdir(1, 0, "\ud800", 0o755, 0), m.Rreaddir(1, 5.0), m.Rstatfs(1, *([None] * 9)),
])
def test_values_that_do_not_fit_are_encode_errors_in_both(msg):
    for reference in (False, True):
        with pytest.raises(EncodeError):
            codec.encode(msg, use_fastpath=False, reference=reference)


def test_decoding_never_raises_a_foreign_exception():
    rng = random.Random(5)
    for _ in range(2000):
        cls = rng.choice(list(m.BY_TYPE.values()))
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
        try:
            codec.decode(struct.pack("<IBH", 7 + len(body), cls.TYPE, 0) + body,
                         use_fastpath=False)
        except ProtocolError:
            pass


def test_runtime_codec_does_not_import_construct():
    # The sentry and every gofer import the codec at start-up; construct must stay out.
    code = ("import sys; import pysentry.gofer.p9.client, pysentry.gofer.server; "
            "print(any(n == 'construct' or n.startswith('construct.') for n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
