"""The 9P2000.L messages: one table, one class per message.

Each message is an immutable named tuple whose first field is `tag`; the rest are the
fields after the header, in wire order. The table below is the single description of every
layout: the codecs (tablecodec.py for every message, fastpath.py for the hot ones, and
construct_bodies.py, the reference the tests compare them with) are derived from or checked
against it.

Field kinds:
  u8 u16 u32 u64   little-endian unsigned integers
  str              length[2] + bytes; held as `str` decoded with UTF-8 and
                   surrogateescape, so names that are not UTF-8 survive a round trip and can
                   be handed straight to os functions
  qid              type[1] version[4] path[8], held as Qid
  names            nwname[2] + nwname strings (Twalk), at most MAXWELEM
  qids             nwqid[2] + nwqid qids (Rwalk), at most MAXWELEM
  data             count[4] + count bytes, held as bytes
"""
import collections
from operator import itemgetter

# Field accessors: the C descriptor namedtuple itself uses where CPython has it.
_field = getattr(collections, "_tuplegetter",
                 lambda index, doc: property(itemgetter(index), doc=doc))

Qid = collections.namedtuple("Qid", "type version path")
Qid.__module__ = __name__

BY_TYPE: dict = {}      # message type number -> class
BY_NAME: dict = {}      # "Tread" -> class


class Message(tuple):
    """Base of every message class: an immutable tuple (tag, field, ...) with the
    named-tuple conveniences callers use. Classes are made by `_message` below instead of
    collections.namedtuple, which compiles a constructor per class and costs milliseconds
    at every start of the sentry and of each gofer for these ~70 classes."""
    __slots__ = ()
    _fields: tuple = ()

    def __new__(cls, *args, **kwargs):
        if kwargs:
            args = cls._bind(args, kwargs)
        if len(args) != len(cls._fields):
            raise TypeError(f"{cls.__name__} takes {len(cls._fields)} fields "
                            f"({', '.join(cls._fields)}), got {len(args)}")
        return tuple.__new__(cls, args)

    @classmethod
    def _bind(cls, args, kwargs) -> tuple:
        values = list(args)
        for name in cls._fields[len(args):]:
            if name not in kwargs:
                raise TypeError(f"{cls.__name__} missing field {name!r}")
            values.append(kwargs.pop(name))
        if kwargs:
            raise TypeError(f"{cls.__name__} got unexpected or repeated fields "
                            f"{sorted(kwargs)}")
        return tuple(values)

    @classmethod
    def _make(cls, iterable):
        return cls(*iterable)

    def _replace(self, **changes):
        values = [changes.pop(name, value) for name, value in zip(self._fields, self)]
        if changes:
            raise TypeError(f"{type(self).__name__} has no fields {sorted(changes)}")
        return tuple.__new__(type(self), values)

    def _asdict(self) -> dict:
        return dict(zip(self._fields, self))

    def __getnewargs__(self):
        return tuple(self)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self))
        return f"{type(self).__name__}({inner})"


def _message(name: str, type_no: int, layout: str = ""):
    fields = tuple(tuple(item.split(":")) for item in layout.split())
    names = ("tag",) + tuple(field for field, _ in fields)
    namespace = {
        "__slots__": (),
        "__module__": __name__,
        "_fields": names,
        "TYPE": type_no,
        "FIELDS": fields,
        "IS_REQUEST": type_no % 2 == 0,
    }
    for index, field in enumerate(names):
        namespace[field] = _field(index, f"{name}.{field}")
    cls = type(name, (Message,), namespace)
    BY_TYPE[type_no] = cls
    BY_NAME[name] = cls
    return cls


Rlerror = _message("Rlerror", 7, "ecode:u32")
Tstatfs = _message("Tstatfs", 8, "fid:u32")
Rstatfs = _message("Rstatfs", 9, "type:u32 bsize:u32 blocks:u64 bfree:u64 bavail:u64 "
                                 "files:u64 ffree:u64 fsid:u64 namelen:u32")
Tlopen = _message("Tlopen", 12, "fid:u32 flags:u32")
Rlopen = _message("Rlopen", 13, "qid:qid iounit:u32")
Tlcreate = _message("Tlcreate", 14, "fid:u32 name:str flags:u32 mode:u32 gid:u32")
Rlcreate = _message("Rlcreate", 15, "qid:qid iounit:u32")
Tsymlink = _message("Tsymlink", 16, "fid:u32 name:str symtgt:str gid:u32")
Rsymlink = _message("Rsymlink", 17, "qid:qid")
Tmknod = _message("Tmknod", 18, "dfid:u32 name:str mode:u32 major:u32 minor:u32 gid:u32")
Rmknod = _message("Rmknod", 19, "qid:qid")
Trename = _message("Trename", 20, "fid:u32 dfid:u32 name:str")
Rrename = _message("Rrename", 21)
Treadlink = _message("Treadlink", 22, "fid:u32")
Rreadlink = _message("Rreadlink", 23, "target:str")
Tgetattr = _message("Tgetattr", 24, "fid:u32 request_mask:u64")
Rgetattr = _message("Rgetattr", 25,
                    "valid:u64 qid:qid mode:u32 uid:u32 gid:u32 nlink:u64 rdev:u64 size:u64 "
                    "blksize:u64 blocks:u64 atime_sec:u64 atime_nsec:u64 mtime_sec:u64 "
                    "mtime_nsec:u64 ctime_sec:u64 ctime_nsec:u64 btime_sec:u64 btime_nsec:u64 "
                    "gen:u64 data_version:u64")
Tsetattr = _message("Tsetattr", 26, "fid:u32 valid:u32 mode:u32 uid:u32 gid:u32 size:u64 "
                                    "atime_sec:u64 atime_nsec:u64 mtime_sec:u64 mtime_nsec:u64")
Rsetattr = _message("Rsetattr", 27)
Txattrwalk = _message("Txattrwalk", 30, "fid:u32 newfid:u32 name:str")
Rxattrwalk = _message("Rxattrwalk", 31, "size:u64")
Txattrcreate = _message("Txattrcreate", 32, "fid:u32 name:str attr_size:u64 flags:u32")
Rxattrcreate = _message("Rxattrcreate", 33)
Treaddir = _message("Treaddir", 40, "fid:u32 offset:u64 count:u32")
Rreaddir = _message("Rreaddir", 41, "data:data")
Tfsync = _message("Tfsync", 50, "fid:u32 datasync:u32")
Rfsync = _message("Rfsync", 51)
Tlock = _message("Tlock", 52, "fid:u32 type:u8 flags:u32 start:u64 length:u64 proc_id:u32 "
                              "client_id:str")
Rlock = _message("Rlock", 53, "status:u8")
Tgetlock = _message("Tgetlock", 54, "fid:u32 type:u8 start:u64 length:u64 proc_id:u32 "
                                    "client_id:str")
Rgetlock = _message("Rgetlock", 55, "type:u8 start:u64 length:u64 proc_id:u32 client_id:str")
Tlink = _message("Tlink", 70, "dfid:u32 fid:u32 name:str")
Rlink = _message("Rlink", 71)
Tmkdir = _message("Tmkdir", 72, "dfid:u32 name:str mode:u32 gid:u32")
Rmkdir = _message("Rmkdir", 73, "qid:qid")
Trenameat = _message("Trenameat", 74, "olddirfid:u32 oldname:str newdirfid:u32 newname:str")
Rrenameat = _message("Rrenameat", 75)
Tunlinkat = _message("Tunlinkat", 76, "dirfid:u32 name:str flags:u32")
Runlinkat = _message("Runlinkat", 77)
Tversion = _message("Tversion", 100, "msize:u32 version:str")
Rversion = _message("Rversion", 101, "msize:u32 version:str")
Tauth = _message("Tauth", 102, "afid:u32 uname:str aname:str n_uname:u32")
Rauth = _message("Rauth", 103, "aqid:qid")
Tattach = _message("Tattach", 104, "fid:u32 afid:u32 uname:str aname:str n_uname:u32")
Rattach = _message("Rattach", 105, "qid:qid")
Tflush = _message("Tflush", 108, "oldtag:u16")
Rflush = _message("Rflush", 109)
Twalk = _message("Twalk", 110, "fid:u32 newfid:u32 wnames:names")
Rwalk = _message("Rwalk", 111, "qids:qids")
Tread = _message("Tread", 116, "fid:u32 offset:u64 count:u32")
Rread = _message("Rread", 117, "data:data")
Twrite = _message("Twrite", 118, "fid:u32 offset:u64 data:data")
Rwrite = _message("Rwrite", 119, "count:u32")
Tclunk = _message("Tclunk", 120, "fid:u32")
Rclunk = _message("Rclunk", 121)
Tremove = _message("Tremove", 122, "fid:u32")
Rremove = _message("Rremove", 123)


def reply_type(request_cls) -> type:
    """The class of the successful reply to a request class."""
    return BY_TYPE[request_cls.TYPE + 1]
