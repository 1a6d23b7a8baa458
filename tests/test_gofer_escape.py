"""Nothing outside the gofer's root is ever reached, whatever the client sends.

The layout puts a secret next to the export root and plants every classic escape inside
it: ".." chains, absolute and relative symlinks pointing out, names with "/" in them, a
symlink swapped in for a directory in the middle of a walk (deterministically, between
two steps, and racing against a flipping thread), and a directory moved out from under
the root on the host while the client holds a fid inside it.
"""
import errno
import os
import stat
import threading

import pytest

from pysentry.gofer import hostfs
from pysentry.gofer.export import Export
from pysentry.gofer.launch import start_gofer
from pysentry.gofer.p9 import constants as C
from pysentry.gofer.p9 import messages as m
from pysentry.gofer.p9.client import Client
from pysentry.gofer.session import Session
from pysentry.sentry.kernel.errors import SysError

SECRET = b"TOP SECRET: outside the root\n"


@pytest.fixture
def tree(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    os.chmod(outside / "secret.txt", 0o600)
    root = tmp_path / "root"
    root.mkdir()
    (root / "d").mkdir()
    (root / "d" / "e").mkdir()
    (root / "d" / "e" / "inside.txt").write_bytes(b"inside\n")
    os.symlink(str(outside), root / "abs")               # absolute, to a directory
    os.symlink("../outside", root / "rel")                # relative, to a directory
    os.symlink("../outside/secret.txt", root / "sl")      # relative, to the file
    os.symlink(str(outside / "secret.txt"), root / "absfile")
    return root, outside


@pytest.fixture(params=[False, True], ids=["plain", "confined"])
def client(request, tree):
    root, _ = tree
    proc, sock = start_gofer(str(root), confine=request.param)
    c = Client(sock)
    try:
        yield c, c.attach()
    finally:
        c.close()
        proc.wait(timeout=10)


def errno_of(fn, *args, **kwargs):
    with pytest.raises(SysError) as info:
        fn(*args, **kwargs)
    return info.value.errno


def test_dotdot_chains_stay_at_the_root(client, tree):
    c, top = client
    for names in (["..", "..", "..", "outside", "secret.txt"], ["d", "..", "..", "outside"],
                  ["d", "e", "..", "..", "..", "..", "outside", "secret.txt"]):
        assert errno_of(c.walk, top, names) == errno.ENOENT
    fid, qids = c.walk(top, ["d", "e", "..", "..", "..", ".."])
    assert qids[-1] == c.root_qid
    assert c.walk(fid, ["d", "e", "inside.txt"])


def test_symlinks_are_never_followed_by_walk(client):
    c, top = client
    for link in ("abs", "rel"):
        # a walk failing after its first name is a partial walk: ENOENT at the client
        assert errno_of(c.walk, top, [link, "secret.txt"]) == errno.ENOENT
        fid, qids = c.walk(top, [link])
        assert qids[0].type == C.QTSYMLINK
        assert errno_of(c.walk, fid, ["secret.txt"]) == errno.ENOTDIR
        assert errno_of(c.walk, fid, ["."]) == errno.ENOTDIR
        assert errno_of(c.lopen, fid, os.O_RDONLY | os.O_DIRECTORY) == errno.ELOOP
    for link in ("sl", "absfile"):
        fid, qids = c.walk(top, [link])
        assert qids[0].type == C.QTSYMLINK
        assert stat.S_ISLNK(c.getattr(fid).mode)
        assert errno_of(c.lopen, fid, os.O_RDONLY) == errno.ELOOP
        assert errno_of(c.xattrwalk, fid, "") in (errno.ELOOP, errno.EOPNOTSUPP)
    fid, _ = c.walk(top, ["sl"])
    assert c.readlink(fid) == "../outside/secret.txt"     # for the sentry to resolve itself


def test_names_with_slashes_or_nul_are_rejected(client):
    c, top = client
    for bad in ("../outside", "d/../..", "/", "", "a\0b", "abs/secret.txt"):
        assert errno_of(c.walk, top, [bad]) == errno.EINVAL
    for call in (lambda n: c.mkdir(top, n, 0o755), lambda n: c.symlink(top, n, "x"),
                 lambda n: c.unlinkat(top, n), lambda n: c.renameat(top, n, top, "z"),
                 lambda n: c.renameat(top, "d", top, n), lambda n: c.mknod(top, n, 0o644),
                 lambda n: c.lcreate(c.clone(top), n, os.O_RDWR, 0o644)):
        for bad in ("../escaped", "..", ".", "a/b", ""):
            assert errno_of(call, bad) == errno.EINVAL


def test_mutations_through_symlinks_do_not_touch_the_target(client, tree):
    c, top = client
    _, outside = tree
    secret = outside / "secret.txt"
    before = os.stat(secret)
    # creating over the symlink's name must not open (and truncate) its target
    assert errno_of(c.lcreate, c.clone(top), "sl", os.O_WRONLY | os.O_TRUNC, 0o644) == \
        errno.EEXIST
    fid, _ = c.walk(top, ["sl"])
    assert errno_of(c.setattr, fid, C.SETATTR_SIZE, size=0) == errno.EINVAL
    assert errno_of(c.setattr, fid, C.SETATTR_MODE, mode=0o777) == errno.EOPNOTSUPP
    c.setattr(fid, C.SETATTR_GID, gid=before.st_gid + 1)   # the link itself, not the target
    c.setattr(fid, C.SETATTR_MTIME | C.SETATTR_MTIME_SET, mtime=(1, 0))
    c.link(top, fid, "hardlink-to-symlink")
    after = os.stat(secret)
    assert (after.st_size, after.st_mode, after.st_gid, after.st_mtime_ns, after.st_nlink) == \
        (before.st_size, before.st_mode, before.st_gid, before.st_mtime_ns, before.st_nlink)
    assert secret.read_bytes() == SECRET


def _session(root) -> Session:
    export = Export(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
    session = Session(export)
    assert isinstance(session.handle(m.Tversion(0xFFFF, 65536, "9P2000.L"))[0], m.Rversion)
    assert isinstance(session.handle(m.Tattach(1, 0, C.NOFID, "", "", 0))[0], m.Rattach)
    return session


def _close(session: Session) -> None:
    session.close()
    os.close(session.export.root_fd)
    os.close(session.export.procfds.fd)


def _read_all(session: Session, fid: int) -> bytes | None:
    reply, fd = session.handle(m.Tlopen(2, fid, os.O_RDONLY))
    if isinstance(reply, m.Rlerror):
        return None
    reply, _ = session.handle(m.Tread(3, fid, 0, 4096))
    return reply.data


def test_symlink_swapped_in_between_two_walk_steps(tree, monkeypatch):
    root, outside = tree
    session = _session(root)
    real_lookup = hostfs.lookup
    calls = []

    def swapping_lookup(dirfd, name):
        calls.append(name)
        if name == "secret.txt":        # after "d" was opened, before its child is
            os.rename(root / "d", root / "d.orig")
            os.symlink(str(outside), root / "d")
        return real_lookup(dirfd, name)

    monkeypatch.setattr(hostfs, "lookup", swapping_lookup)
    try:
        reply, _ = session.handle(m.Twalk(1, 0, 1, ["d", "secret.txt"]))
        assert calls == ["d", "secret.txt"]
        # the walk continued from the directory it had opened, not through the new link
        assert isinstance(reply, m.Rwalk) and len(reply.qids) == 1
        assert 1 not in session.fids
        # and a fresh walk sees the symlink as a symlink
        reply, _ = session.handle(m.Twalk(1, 0, 2, ["d", "secret.txt"]))
        assert isinstance(reply, m.Rlerror) or len(reply.qids) < 2
        reply, _ = session.handle(m.Twalk(1, 0, 3, ["d"]))
        assert reply.qids[0].type == C.QTSYMLINK
        assert _read_all(session, 3) is None
    finally:
        _close(session)


def test_walk_racing_a_flipping_symlink_never_reads_outside(tree):
    root, outside = tree
    (root / "d" / "secret.txt").write_bytes(b"decoy inside\n")
    session = _session(root)
    stop = threading.Event()

    def flip():
        # d alternates between the real directory and a symlink to the outside one
        while not stop.is_set():
            os.rename(root / "d", root / "d.real")
            os.symlink(str(outside), root / "d")
            os.unlink(root / "d")
            os.rename(root / "d.real", root / "d")

    flipper = threading.Thread(target=flip)
    flipper.start()
    seen = set()
    try:
        for i in range(400):
            newfid = 10 + i
            reply, _ = session.handle(m.Twalk(1, 0, newfid, ["d", "secret.txt"]))
            if isinstance(reply, m.Rwalk) and len(reply.qids) == 2:
                seen.add(_read_all(session, newfid))
    finally:
        stop.set()
        flipper.join()
        _close(session)
    assert SECRET not in seen
    assert seen <= {b"decoy inside\n", None}


def test_dotdot_from_a_directory_moved_outside_the_root(tree):
    root, outside = tree
    session = _session(root)
    try:
        reply, _ = session.handle(m.Twalk(1, 0, 1, ["d", "e"]))
        assert len(reply.qids) == 2
        os.rename(root / "d", outside / "d")         # on the host, behind the client's back
        for names in ([".."], ["..", ".."], ["..", "..", "secret.txt"]):
            reply, _ = session.handle(m.Twalk(1, 1, 2, names))
            assert reply == m.Rlerror(1, errno.EACCES)
        reply, _ = session.handle(m.Tlopen(1, 1, os.O_RDONLY))
        reply, _ = session.handle(m.Treaddir(1, 1, 0, 4096))
        assert reply == m.Rlerror(1, errno.EACCES)   # listing ".." would need the parent
    finally:
        _close(session)
