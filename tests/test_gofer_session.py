"""The gofer's request semantics, driven sans-I/O: Session.handle(message) -> reply.

Host state is checked with the host's own system calls after each request.
"""
import errno
import os
import signal
import socket
import stat

import pytest

from pysentry.gofer.export import Export
from pysentry.gofer.p9 import constants as C
from pysentry.gofer.p9 import messages as m
from pysentry.gofer.p9.dirent import decode_dirents
from pysentry.gofer.session import Session

MSIZE = 8192


class Harness:
    """A session on `root` with fid 0 attached to the root; `call` returns the reply and
    closes any donated fd (donation itself is tested in test_gofer_donation)."""

    def __init__(self, root, *, ro=False, donate=False):
        self.root = root
        self.export = Export(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC),
                             ro=ro, names=("", str(root)))
        self.session = Session(self.export, donate=donate)
        assert self.call(m.Tversion(C.NOTAG, MSIZE, "9P2000.L")) == \
            m.Rversion(C.NOTAG, MSIZE, "9P2000.L")
        assert isinstance(self.call(m.Tattach(1, 0, C.NOFID, "root", "", 0)), m.Rattach)

    def call(self, msg):
        reply, fd = self.session.handle(msg)
        if fd is not None:
            os.close(fd)
        return reply

    def ok(self, msg):
        reply = self.call(msg)
        assert not isinstance(reply, m.Rlerror), f"{msg} -> {os.strerror(reply.ecode)}"
        assert type(reply) is m.reply_type(type(msg))
        return reply

    def err(self, msg) -> int:
        reply = self.call(msg)
        assert isinstance(reply, m.Rlerror), f"{msg} -> {reply}"
        assert reply.tag == msg.tag
        return reply.ecode

    def close(self):
        self.session.close()
        os.close(self.export.root_fd)
        os.close(self.export.procfds.fd)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"hello\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "g.txt").write_bytes(b"g")
    os.mkfifo(tmp_path / "fifo")
    os.symlink("f.txt", tmp_path / "lnk")
    return tmp_path


@pytest.fixture
def h(root):
    harness = Harness(root)
    yield harness
    harness.close()


@pytest.fixture
def no_hang():
    """Turn a gofer that blocks (e.g. opening a FIFO) into a test failure, not a hang."""
    def fail(*_):
        raise TimeoutError("the gofer blocked")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_session_rules(root):
    h = Harness(root)
    try:
        s = Session(h.export)
        assert s.handle(m.Tattach(1, 0, C.NOFID, "", "", 0))[0] == m.Rlerror(1, errno.EPROTO)
        assert s.handle(m.Tversion(C.NOTAG, MSIZE, "9P2000.u"))[0].version == "unknown"
        assert s.handle(m.Tversion(C.NOTAG, 100, "9P2000.L"))[0].version == "unknown"
        assert s.handle(m.Tversion(C.NOTAG, 1 << 30, "9P2000.L"))[0].msize == 1 << 20
        assert h.err(m.Tauth(1, 5, "root", "", 0)) == errno.ENOENT   # "no auth needed"
        assert h.err(m.Tattach(1, 0, C.NOFID, "", "", 0)) == errno.EBADF   # fid in use
        assert h.err(m.Tattach(1, 1, C.NOFID, "", "/elsewhere", 0)) == errno.ENOENT
        h.ok(m.Tattach(1, 1, C.NOFID, "", str(root), 0))
        assert h.ok(m.Tflush(2, 1)) == m.Rflush(2)
        assert h.err(m.Tclunk(1, 99)) == errno.EBADF
        assert h.call(m.Rread(1, b"")) == m.Rlerror(1, errno.EINVAL)   # replies are not requests
        # Tversion starts a new session: every fid is gone
        h.ok(m.Tversion(C.NOTAG, MSIZE, "9P2000.L"))
        assert h.err(m.Tclunk(1, 0)) == errno.EBADF
    finally:
        h.close()


def test_walk_semantics(h, root):
    assert h.ok(m.Twalk(1, 0, 1, [])).qids == []                           # clone
    r = h.ok(m.Twalk(1, 0, 2, ["d", "g.txt"]))
    assert [q.path for q in r.qids] == [os.stat(root / "d").st_ino,
                                         os.stat(root / "d" / "g.txt").st_ino]
    assert h.err(m.Twalk(1, 0, 3, ["nope"])) == errno.ENOENT
    assert h.ok(m.Twalk(1, 0, 3, ["d", "nope", "x"])).qids[0].type == C.QTDIR   # partial
    assert h.err(m.Tclunk(1, 3)) == errno.EBADF            # partial walk created no fid
    assert h.err(m.Twalk(1, 0, 2, ["d"])) == errno.EBADF    # newfid in use
    assert h.err(m.Twalk(1, 2, 4, ["x"])) == errno.ENOTDIR  # walking from a file
    h.ok(m.Twalk(1, 1, 1, ["d"]))                            # fid == newfid moves the fid
    assert h.ok(m.Tgetattr(1, 1, C.GETATTR_BASIC)).qid.path == os.stat(root / "d").st_ino
    r = h.ok(m.Twalk(1, 0, 5, [".", "d", ".", "..", "d"]))
    assert r.qids[-1].path == os.stat(root / "d").st_ino


def test_getattr_is_the_host_stat(h, root):
    for name in ("f.txt", "d", "lnk", "fifo"):
        fid = 10 + len(name)
        h.ok(m.Twalk(1, 0, fid, [name]))
        a = h.ok(m.Tgetattr(1, fid, C.GETATTR_ALL))
        st = os.lstat(root / name)
        assert a.valid & C.GETATTR_BASIC == C.GETATTR_BASIC
        assert (a.mode, a.uid, a.gid, a.nlink, a.size, a.blocks, a.qid.path) == \
            (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_blocks,
             st.st_ino)
        assert a.mtime_sec * 10**9 + a.mtime_nsec == st.st_mtime_ns
        assert a.ctime_sec * 10**9 + a.ctime_nsec == st.st_ctime_ns


def test_only_regular_files_and_directories_are_opened(h, root, no_hang):
    h.ok(m.Twalk(1, 0, 1, ["fifo"]))
    assert h.err(m.Tlopen(1, 1, os.O_RDONLY)) == errno.EPERM
    assert h.err(m.Tlopen(1, 1, os.O_WRONLY)) == errno.EPERM
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        h.ok(m.Twalk(1, 0, 2, ["sock"]))
        assert h.err(m.Tlopen(1, 2, os.O_RDWR)) == errno.EPERM
    h.ok(m.Twalk(1, 0, 3, ["lnk"]))
    assert h.err(m.Tlopen(1, 3, os.O_RDONLY)) == errno.ELOOP
    # creating over an existing FIFO must neither open it nor block
    h.ok(m.Twalk(1, 0, 4, []))
    assert h.err(m.Tlcreate(1, 4, "fifo", os.O_WRONLY, 0o644, 0)) == errno.EEXIST
    assert h.err(m.Txattrwalk(1, 1, 5, "")) == errno.EPERM


def test_open_flags(h, root):
    h.ok(m.Twalk(1, 0, 1, ["d"]))
    assert h.err(m.Tlopen(1, 1, os.O_WRONLY)) == errno.EISDIR
    assert h.err(m.Tlopen(1, 1, os.O_RDONLY | os.O_TRUNC)) == errno.EISDIR
    h.ok(m.Twalk(1, 0, 2, ["f.txt"]))
    assert h.err(m.Tlopen(1, 2, os.O_RDONLY | os.O_DIRECTORY)) == errno.ENOTDIR
    assert h.err(m.Tlopen(1, 2, 3)) == errno.EINVAL
    assert h.err(m.Tread(1, 2, 0, 10)) == errno.EBADF          # not open yet
    h.ok(m.Tlopen(1, 2, os.O_RDWR | os.O_TRUNC | os.O_CREAT | os.O_EXCL | os.O_NOCTTY))
    assert os.stat(root / "f.txt").st_size == 0
    assert h.err(m.Tlopen(1, 2, os.O_RDONLY)) == errno.EBADF   # already open
    assert h.ok(m.Twrite(1, 2, 0, b"abc")).count == 3
    assert h.ok(m.Tread(1, 2, 1, 100)).data == b"bc"
    assert h.err(m.Tread(1, 2, 2**63, 1)) == errno.EINVAL
    assert len(h.ok(m.Tread(1, 2, 0, 1 << 20)).data) == 3      # count clipped to msize
    h.ok(m.Tfsync(1, 2, 0))
    h.ok(m.Tfsync(1, 2, 1))
    h.ok(m.Twalk(1, 0, 3, ["f.txt"]))
    h.ok(m.Tlopen(1, 3, os.O_WRONLY | os.O_APPEND))
    h.ok(m.Twrite(1, 3, 0, b"Z"))                                # O_APPEND ignores offset
    assert (root / "f.txt").read_bytes() == b"abcZ"


def test_create_family_matches_host(h, root):
    h.ok(m.Twalk(1, 0, 1, []))
    r = h.ok(m.Tlcreate(1, 1, "new", os.O_RDWR, 0o640, os.getgid()))
    st = os.stat(root / "new")
    assert r.qid.path == st.st_ino and stat.S_IMODE(st.st_mode) == 0o640 & ~_umask()
    assert r.iounit == MSIZE - C.IOHDRSZ
    h.ok(m.Twrite(1, 1, 0, b"data"))
    assert (root / "new").read_bytes() == b"data"
    h.ok(m.Twalk(1, 0, 2, []))
    assert h.err(m.Tlcreate(1, 2, "new", os.O_RDWR | os.O_EXCL, 0o600, 0)) == errno.EEXIST
    h.ok(m.Tlcreate(1, 2, "new", os.O_RDWR | os.O_TRUNC, 0o600, 0))   # existing file
    assert (root / "new").read_bytes() == b""
    r = h.ok(m.Tmkdir(1, 0, "sub", 0o700, 0))
    assert r.qid.type == C.QTDIR and r.qid.path == os.stat(root / "sub").st_ino
    r = h.ok(m.Tsymlink(1, 0, "sl", "/anything/at/all", 0))
    assert os.readlink(root / "sl") == "/anything/at/all" and r.qid.type == C.QTSYMLINK
    h.ok(m.Tmknod(1, 0, "p", stat.S_IFIFO | 0o600, 0, 0, 0))
    assert stat.S_ISFIFO(os.lstat(root / "p").st_mode)
    assert h.err(m.Tmknod(1, 0, "null", stat.S_IFCHR | 0o666, 1, 3, 0)) == errno.EPERM
    assert h.err(m.Tmknod(1, 0, "blk", stat.S_IFBLK | 0o666, 8, 0, 0)) == errno.EPERM
    assert not (root / "null").exists() and not (root / "blk").exists()
    h.ok(m.Twalk(1, 0, 3, ["f.txt"]))
    h.ok(m.Tlink(1, 0, 3, "hard"))
    assert os.stat(root / "hard").st_ino == os.stat(root / "f.txt").st_ino
    assert h.err(m.Tmkdir(1, 0, "sub", 0o700, 0)) == errno.EEXIST


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_rename_remove_unlink(h, root):
    h.ok(m.Twalk(1, 0, 1, ["f.txt"]))
    h.ok(m.Twalk(1, 0, 2, ["d"]))
    h.ok(m.Trename(1, 1, 2, "moved.txt"))
    assert (root / "d" / "moved.txt").read_bytes() == b"hello\n"
    h.ok(m.Trename(1, 1, 0, "back.txt"))            # the fid followed its file
    assert (root / "back.txt").exists()
    # a fid whose name now means another file is stale, not silently retargeted
    h.ok(m.Twalk(1, 0, 3, ["back.txt"]))
    os.rename(root / "back.txt", root / "elsewhere.txt")
    (root / "back.txt").write_bytes(b"impostor")
    assert h.err(m.Tremove(1, 3)) == errno.ESTALE
    assert (root / "back.txt").read_bytes() == b"impostor"
    assert h.err(m.Tclunk(1, 3)) == errno.EBADF      # Tremove clunked it anyway
    h.ok(m.Trenameat(1, 0, "elsewhere.txt", 2, "e.txt"))
    assert (root / "d" / "e.txt").exists()
    h.ok(m.Tunlinkat(1, 2, "e.txt", 0))
    assert h.err(m.Tunlinkat(1, 0, "d", 0)) in (errno.EISDIR, errno.EPERM)
    assert h.err(m.Tunlinkat(1, 0, "d", C.AT_REMOVEDIR)) == errno.ENOTEMPTY
    assert h.err(m.Tunlinkat(1, 0, "back.txt", 0x4)) == errno.EINVAL
    h.ok(m.Twalk(1, 0, 4, ["back.txt"]))
    h.ok(m.Tremove(1, 4))
    assert not (root / "back.txt").exists()
    assert h.err(m.Tremove(1, 0)) == errno.EBUSY     # the root cannot be removed


def test_setattr_matches_host(h, root):
    h.ok(m.Twalk(1, 0, 1, ["f.txt"]))
    h.ok(m.Tsetattr(1, 1, C.SETATTR_SIZE | C.SETATTR_MODE, 0o604, 0, 0, 2, 0, 0, 0, 0))
    st = os.stat(root / "f.txt")
    assert st.st_size == 2 and stat.S_IMODE(st.st_mode) == 0o604
    h.ok(m.Tsetattr(1, 1, C.SETATTR_ATIME | C.SETATTR_ATIME_SET | C.SETATTR_MTIME |
                    C.SETATTR_MTIME_SET, 0, 0, 0, 0, 100, 1, 200, 2))
    st = os.stat(root / "f.txt")
    assert (st.st_atime_ns, st.st_mtime_ns) == (100 * 10**9 + 1, 200 * 10**9 + 2)
    h.ok(m.Tsetattr(1, 1, C.SETATTR_MTIME | C.SETATTR_MTIME_SET, 0, 0, 0, 0, 0, 0,
                    2**64 - 10, 0))                   # negative times are two's complement
    assert os.stat(root / "f.txt").st_mtime_ns == -10 * 10**9
    h.ok(m.Tsetattr(1, 1, C.SETATTR_MTIME, 0, 0, 0, 0, 0, 0, 0, 0))   # "now"
    assert os.stat(root / "f.txt").st_mtime_ns > 0
    assert os.stat(root / "f.txt").st_atime_ns == 100 * 10**9 + 1      # left alone
    assert h.err(m.Tsetattr(1, 1, C.SETATTR_MTIME | C.SETATTR_MTIME_SET, 0, 0, 0, 0, 0, 0,
                            5, 10**9)) == errno.EINVAL
    if os.geteuid() == 0:
        h.ok(m.Tsetattr(1, 1, C.SETATTR_UID | C.SETATTR_GID, 0, 1234, 5678, 0, 0, 0, 0, 0))
        st = os.stat(root / "f.txt")
        assert (st.st_uid, st.st_gid) == (1234, 5678)
    h.ok(m.Twalk(1, 0, 2, ["d"]))
    assert h.err(m.Tsetattr(1, 2, C.SETATTR_SIZE, 0, 0, 0, 0, 0, 0, 0, 0)) == errno.EISDIR


def test_readdir_pages_with_stable_cookies(h, root):
    for i in range(40):
        (root / "d" / f"entry-{i:02}").write_bytes(b"")
    h.ok(m.Twalk(1, 0, 1, ["d"]))
    assert h.err(m.Treaddir(1, 1, 0, 4096)) == errno.EBADF     # not open
    h.ok(m.Tlopen(1, 1, os.O_RDONLY))
    whole = decode_dirents(h.ok(m.Treaddir(1, 1, 0, MSIZE)).data)
    assert sorted(e.name for e in whole) == sorted([".", ".."] + os.listdir(root / "d"))
    by_name = {e.name: e for e in whole}
    assert by_name["."].qid.path == os.stat(root / "d").st_ino
    assert by_name[".."].qid.path == os.stat(root).st_ino
    assert by_name["g.txt"].type == 8 and by_name["g.txt"].qid.path == \
        os.stat(root / "d" / "g.txt").st_ino
    paged, offset = [], 0
    while True:
        batch = decode_dirents(h.ok(m.Treaddir(1, 1, offset, 60)).data)
        if not batch:
            break
        assert len(batch) <= 2
        paged += batch
        offset = batch[-1].offset
    assert paged == whole
    # the root's ".." is the root
    h.ok(m.Twalk(1, 0, 2, []))
    h.ok(m.Tlopen(1, 2, os.O_RDONLY))
    top = {e.name: e for e in decode_dirents(h.ok(m.Treaddir(1, 2, 0, MSIZE)).data)}
    assert top[".."].qid == top["."].qid
    assert top["lnk"].type == 10 and top["fifo"].type == 1 and top["d"].type == 4


def test_non_utf8_names(h, root):
    raw = b"\xff\xfeweird"
    with open(os.path.join(os.fsencode(root), raw), "wb") as f:
        f.write(b"bytes name")
    name = raw.decode("utf-8", "surrogateescape")
    h.ok(m.Twalk(1, 0, 1, []))
    h.ok(m.Tlopen(1, 1, os.O_RDONLY))
    assert name in {e.name for e in decode_dirents(h.ok(m.Treaddir(1, 1, 0, MSIZE)).data)}
    h.ok(m.Twalk(1, 0, 2, [name]))
    h.ok(m.Tlopen(1, 2, os.O_RDONLY))
    assert h.ok(m.Tread(1, 2, 0, 100)).data == b"bytes name"


def test_read_only_export_refuses_every_mutation(root):
    h = Harness(root, ro=True)
    try:
        before = {p: os.lstat(root / p) for p in os.listdir(root)}
        h.ok(m.Twalk(1, 0, 1, ["f.txt"]))
        h.ok(m.Twalk(1, 0, 2, ["d"]))
        h.ok(m.Twalk(1, 0, 3, []))
        for msg in (m.Tlopen(1, 1, os.O_WRONLY), m.Tlopen(1, 1, os.O_RDWR),
                    m.Tlopen(1, 1, os.O_RDONLY | os.O_TRUNC),
                    m.Tlcreate(1, 3, "x", os.O_RDWR, 0o644, 0), m.Tmkdir(1, 0, "x", 0o755, 0),
                    m.Tsymlink(1, 0, "x", "y", 0), m.Tmknod(1, 0, "x", 0o10644, 0, 0, 0),
                    m.Tlink(1, 0, 1, "x"), m.Trename(1, 1, 2, "x"),
                    m.Trenameat(1, 0, "f.txt", 0, "x"), m.Tunlinkat(1, 0, "f.txt", 0),
                    m.Tsetattr(1, 1, C.SETATTR_MODE, 0o777, 0, 0, 0, 0, 0, 0, 0),
                    m.Txattrcreate(1, 1, "user.x", 1, 0), m.Tremove(1, 2)):
            assert h.err(msg) == errno.EROFS, msg
        h.ok(m.Twalk(1, 0, 4, ["f.txt"]))
        h.ok(m.Tlopen(1, 4, os.O_RDONLY))
        assert h.ok(m.Tread(1, 4, 0, 100)).data == b"hello\n"
        assert {p: os.lstat(root / p) for p in os.listdir(root)} == before
    finally:
        h.close()


def test_xattrs_read_back(h, root):
    try:
        os.setxattr(root / "f.txt", "user.color", b"blue")
    except OSError as exc:
        pytest.skip(f"the test directory's filesystem has no user xattrs ({exc})")
    h.ok(m.Twalk(1, 0, 1, ["f.txt"]))
    assert h.ok(m.Txattrwalk(1, 1, 2, "user.color")).size == 4
    assert h.ok(m.Tread(1, 2, 0, 100)).data == b"blue"
    size = h.ok(m.Txattrwalk(1, 1, 3, "")).size
    assert b"user.color\0" in h.ok(m.Tread(1, 3, 0, size)).data
    assert h.err(m.Txattrwalk(1, 1, 4, "user.missing")) == errno.ENODATA
    assert h.err(m.Twalk(1, 2, 5, [])) == errno.EBADF            # xattr fids do not walk


def test_locks_conflict_between_fids_and_never_block(h, root):
    for fid in (1, 2):
        h.ok(m.Twalk(1, 0, fid, ["f.txt"]))
        h.ok(m.Tlopen(1, fid, os.O_RDWR))
    assert h.ok(m.Tlock(1, 1, C.LOCK_TYPE_WRLCK, 0, 0, 10, 100, "a")).status == C.LOCK_SUCCESS
    assert h.ok(m.Tlock(1, 2, C.LOCK_TYPE_WRLCK, C.LOCK_FLAGS_BLOCK, 5, 1, 200, "b")).status \
        == C.LOCK_BLOCKED
    held = h.ok(m.Tgetlock(1, 2, C.LOCK_TYPE_RDLCK, 0, 0, 200, "b"))
    assert (held.type, held.start, held.length) == (C.LOCK_TYPE_WRLCK, 0, 10)
    assert h.ok(m.Tlock(1, 2, C.LOCK_TYPE_WRLCK, 0, 10, 5, 200, "b")).status == C.LOCK_SUCCESS
    h.ok(m.Tlock(1, 1, C.LOCK_TYPE_UNLCK, 0, 0, 0, 100, "a"))
    assert h.ok(m.Tlock(1, 2, C.LOCK_TYPE_WRLCK, 0, 0, 0, 200, "b")).status == C.LOCK_SUCCESS
    free = h.ok(m.Tgetlock(1, 1, C.LOCK_TYPE_RDLCK, 0, 0, 100, "a"))
    assert free.type == C.LOCK_TYPE_WRLCK   # fid 2 now holds the whole file
    h.ok(m.Tlock(1, 2, C.LOCK_TYPE_UNLCK, 0, 0, 0, 200, "b"))
    assert h.ok(m.Tgetlock(1, 1, C.LOCK_TYPE_RDLCK, 0, 0, 100, "a")).type == C.LOCK_TYPE_UNLCK


def test_statfs_and_readlink(h, root):
    sfs = h.ok(m.Tstatfs(1, 0))
    host = os.statvfs(root)
    assert (sfs.bsize, sfs.blocks, sfs.files, sfs.namelen) == \
        (host.f_bsize, host.f_blocks, host.f_files, host.f_namemax)
    h.ok(m.Twalk(1, 0, 1, ["lnk"]))
    assert h.ok(m.Treadlink(1, 1)).target == "f.txt"
    assert h.err(m.Treadlink(1, 0)) == errno.EINVAL


def test_cloning_an_open_fid_onto_itself_keeps_it_open(h):
    h.ok(m.Twalk(1, 0, 1, ["f.txt"]))
    h.ok(m.Tlopen(1, 1, os.O_RDONLY))
    assert h.ok(m.Twalk(1, 1, 1, [])) == m.Rwalk(1, [])
    assert h.ok(m.Tread(1, 1, 0, 5)).data == b"hello"
