"""Hand-written struct codecs for the messages on the I/O hot path.

Tread/Rread/Twrite/Rwrite/Twalk/Rwalk/Tgetattr/Rgetattr/Tlopen/Rlopen/Tclunk/Rclunk and
Rlerror are encoded and decoded here: construct is several times slower on them (numbers in
bench_codec.py and the report). Layouts are the same as messages.py; test_p9_codec checks
every one of these against the construct codec.

Encoders take a message and return the whole frame (header included). Decoders take the
tag and the body (a bytes-like object, header stripped) and must consume it exactly.
"""
import struct

from .constants import HEADER_SIZE, MAXWELEM
from .errors import EncodeError, MalformedMessage
from .messages import (Qid, Rclunk, Rgetattr, Rlerror, Rlopen, Rread, Rwalk, Rwrite,
                       Tclunk, Tgetattr, Tlopen, Tread, Twalk, Twrite)

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_QID = struct.Struct("<BIQ")

_F_TREAD = struct.Struct("<IBHIQI")
_B_TREAD = struct.Struct("<IQI")
_F_RREAD_HEAD = struct.Struct("<IBHI")
_F_TWRITE_HEAD = struct.Struct("<IBHIQI")
_B_TWRITE_HEAD = struct.Struct("<IQI")
_F_RWRITE = struct.Struct("<IBHI")
_F_TWALK_HEAD = struct.Struct("<IBHIIH")
_B_TWALK_HEAD = struct.Struct("<IIH")
_F_RWALK_HEAD = struct.Struct("<IBHH")
_F_TGETATTR = struct.Struct("<IBHIQ")
_B_TGETATTR = struct.Struct("<IQ")
_F_RGETATTR = struct.Struct("<IBHQBIQIII15Q")
_B_RGETATTR = struct.Struct("<QBIQIII15Q")
_F_TLOPEN = struct.Struct("<IBHII")
_B_TLOPEN = struct.Struct("<II")
_F_RLOPEN = struct.Struct("<IBHBIQI")
_B_RLOPEN = struct.Struct("<BIQI")
_F_FID = struct.Struct("<IBHI")        # Tclunk, Rlerror, Rwrite share this shape
_F_EMPTY = struct.Struct("<IBH")


def _malformed(cls, tag, why):
    return MalformedMessage(f"{cls.__name__}: {why}", cls.TYPE, tag)


def _exact(cls, tag, body, layout):
    if len(body) != layout.size:
        raise _malformed(cls, tag, f"body is {len(body)} bytes, expected {layout.size}")
    return layout.unpack_from(body)


def _text(value) -> bytes:
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    if len(raw) > 0xFFFF:
        raise EncodeError("string longer than 65535 bytes")
    return raw


# --- encoders -------------------------------------------------------------------------

def enc_tread(m):
    return _F_TREAD.pack(_F_TREAD.size, Tread.TYPE, m.tag, m.fid, m.offset, m.count)


def enc_rread(m):
    data = m.data
    return _F_RREAD_HEAD.pack(_F_RREAD_HEAD.size + len(data), Rread.TYPE, m.tag,
                              len(data)) + data


def enc_twrite(m):
    data = m.data
    return _F_TWRITE_HEAD.pack(_F_TWRITE_HEAD.size + len(data), Twrite.TYPE, m.tag, m.fid,
                               m.offset, len(data)) + data


def enc_rwrite(m):
    return _F_RWRITE.pack(_F_RWRITE.size, Rwrite.TYPE, m.tag, m.count)


def enc_twalk(m):
    if len(m.wnames) > MAXWELEM:
        raise EncodeError(f"Twalk: more than {MAXWELEM} names")
    parts = [b""]
    for name in m.wnames:
        raw = _text(name)
        parts.append(_U16.pack(len(raw)))
        parts.append(raw)
    size = _F_TWALK_HEAD.size + sum(len(p) for p in parts)
    parts[0] = _F_TWALK_HEAD.pack(size, Twalk.TYPE, m.tag, m.fid, m.newfid, len(m.wnames))
    return b"".join(parts)


def enc_rwalk(m):
    if len(m.qids) > MAXWELEM:
        raise EncodeError(f"Rwalk: more than {MAXWELEM} qids")
    size = _F_RWALK_HEAD.size + _QID.size * len(m.qids)
    return _F_RWALK_HEAD.pack(size, Rwalk.TYPE, m.tag, len(m.qids)) + \
        b"".join(_QID.pack(*q) for q in m.qids)


def enc_tgetattr(m):
    return _F_TGETATTR.pack(_F_TGETATTR.size, Tgetattr.TYPE, m.tag, m.fid, m.request_mask)


def enc_rgetattr(m):
    q = m.qid
    return _F_RGETATTR.pack(_F_RGETATTR.size, Rgetattr.TYPE, m.tag, m.valid, q[0], q[1], q[2],
                            *m[3:])


def enc_tlopen(m):
    return _F_TLOPEN.pack(_F_TLOPEN.size, Tlopen.TYPE, m.tag, m.fid, m.flags)


def enc_rlopen(m):
    q = m.qid
    return _F_RLOPEN.pack(_F_RLOPEN.size, Rlopen.TYPE, m.tag, q[0], q[1], q[2], m.iounit)


def enc_tclunk(m):
    return _F_FID.pack(_F_FID.size, Tclunk.TYPE, m.tag, m.fid)


def enc_rclunk(m):
    return _F_EMPTY.pack(_F_EMPTY.size, Rclunk.TYPE, m.tag)


def enc_rlerror(m):
    return _F_FID.pack(_F_FID.size, Rlerror.TYPE, m.tag, m.ecode)


# --- decoders -------------------------------------------------------------------------

def dec_tread(tag, body):
    return Tread(tag, *_exact(Tread, tag, body, _B_TREAD))


def _counted(cls, tag, body):
    if len(body) < 4:
        raise _malformed(cls, tag, "short count")
    count = _U32.unpack_from(body)[0]
    if len(body) - 4 != count:
        raise _malformed(cls, tag, f"count {count} but {len(body) - 4} data bytes")
    return bytes(body[4:])


def dec_rread(tag, body):
    return Rread(tag, _counted(Rread, tag, body))


def dec_twrite(tag, body):
    if len(body) < _B_TWRITE_HEAD.size:
        raise _malformed(Twrite, tag, "short body")
    fid, offset, count = _B_TWRITE_HEAD.unpack_from(body)
    if len(body) - _B_TWRITE_HEAD.size != count:
        raise _malformed(Twrite, tag, f"count {count} but "
                                      f"{len(body) - _B_TWRITE_HEAD.size} data bytes")
    return Twrite(tag, fid, offset, bytes(body[_B_TWRITE_HEAD.size:]))


def dec_rwrite(tag, body):
    return Rwrite(tag, *_exact(Rwrite, tag, body, _U32))


def dec_twalk(tag, body):
    if len(body) < _B_TWALK_HEAD.size:
        raise _malformed(Twalk, tag, "short body")
    fid, newfid, nwname = _B_TWALK_HEAD.unpack_from(body)
    if nwname > MAXWELEM:
        raise _malformed(Twalk, tag, f"nwname {nwname} > {MAXWELEM}")
    pos = _B_TWALK_HEAD.size
    names = []
    for _ in range(nwname):
        if pos + 2 > len(body):
            raise _malformed(Twalk, tag, "short name length")
        length = _U16.unpack_from(body, pos)[0]
        pos += 2
        if pos + length > len(body):
            raise _malformed(Twalk, tag, "short name")
        names.append(bytes(body[pos:pos + length]).decode("utf-8", "surrogateescape"))
        pos += length
    if pos != len(body):
        raise _malformed(Twalk, tag, "trailing bytes")
    return Twalk(tag, fid, newfid, names)


def dec_rwalk(tag, body):
    if len(body) < 2:
        raise _malformed(Rwalk, tag, "short body")
    nwqid = _U16.unpack_from(body)[0]
    if nwqid > MAXWELEM:
        raise _malformed(Rwalk, tag, f"nwqid {nwqid} > {MAXWELEM}")
    if len(body) != 2 + nwqid * _QID.size:
        raise _malformed(Rwalk, tag, f"{nwqid} qids but {len(body) - 2} bytes")
    return Rwalk(tag, [Qid(*_QID.unpack_from(body, 2 + i * _QID.size)) for i in range(nwqid)])


def dec_tgetattr(tag, body):
    return Tgetattr(tag, *_exact(Tgetattr, tag, body, _B_TGETATTR))


def dec_rgetattr(tag, body):
    v = _exact(Rgetattr, tag, body, _B_RGETATTR)
    return Rgetattr(tag, v[0], Qid(v[1], v[2], v[3]), *v[4:])


def dec_tlopen(tag, body):
    return Tlopen(tag, *_exact(Tlopen, tag, body, _B_TLOPEN))


def dec_rlopen(tag, body):
    v = _exact(Rlopen, tag, body, _B_RLOPEN)
    return Rlopen(tag, Qid(v[0], v[1], v[2]), v[3])


def dec_tclunk(tag, body):
    return Tclunk(tag, *_exact(Tclunk, tag, body, _U32))


def dec_rclunk(tag, body):
    if len(body):
        raise _malformed(Rclunk, tag, "trailing bytes")
    return Rclunk(tag)


def dec_rlerror(tag, body):
    return Rlerror(tag, *_exact(Rlerror, tag, body, _U32))


ENCODERS = {
    Tread.TYPE: enc_tread, Rread.TYPE: enc_rread,
    Twrite.TYPE: enc_twrite, Rwrite.TYPE: enc_rwrite,
    Twalk.TYPE: enc_twalk, Rwalk.TYPE: enc_rwalk,
    Tgetattr.TYPE: enc_tgetattr, Rgetattr.TYPE: enc_rgetattr,
    Tlopen.TYPE: enc_tlopen, Rlopen.TYPE: enc_rlopen,
    Tclunk.TYPE: enc_tclunk, Rclunk.TYPE: enc_rclunk,
    Rlerror.TYPE: enc_rlerror,
}

DECODERS = {
    Tread.TYPE: dec_tread, Rread.TYPE: dec_rread,
    Twrite.TYPE: dec_twrite, Rwrite.TYPE: dec_rwrite,
    Twalk.TYPE: dec_twalk, Rwalk.TYPE: dec_rwalk,
    Tgetattr.TYPE: dec_tgetattr, Rgetattr.TYPE: dec_rgetattr,
    Tlopen.TYPE: dec_tlopen, Rlopen.TYPE: dec_rlopen,
    Tclunk.TYPE: dec_tclunk, Rclunk.TYPE: dec_rclunk,
    Rlerror.TYPE: dec_rlerror,
}

assert HEADER_SIZE == _F_EMPTY.size
