"""Real bytes from the wire: sessions against Debian's diod, recorded by a proxy.

diod's own clients (diodls, diodcat) and our client talk to diod through a recording
proxy. Every frame either side sent must decode with our codec (both codecs, identical
results), re-encode to the very same bytes, and, for diod's replies, carry the values
the host reports for the served files.
"""
import os
import stat
import subprocess

import pytest

from pysentry.gofer import testing
from pysentry.gofer.p9 import codec
from pysentry.gofer.p9 import constants as C
from pysentry.gofer.p9 import messages as m
from pysentry.gofer.p9.client import Client
from pysentry.gofer.p9.dirent import decode_dirents
from pysentry.sentry.kernel.errors import SysError

pytestmark = pytest.mark.skipif(not testing.have_diod(),
                                reason="Debian's diod is not installed (apt-get install diod)")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "f.txt").write_bytes(b"hello\n")
    (root / "sub").mkdir()
    os.symlink("f.txt", root / "lnk")
    with testing.diod_server(root) as port:
        proxy = testing.RecordingProxy(port)
        try:
            addr = f"127.0.0.1:{proxy.port}"
            listing = subprocess.run([testing.DIODLS, "-s", addr, "-a", str(root), "-l", "/"],
                                     capture_output=True, timeout=30, check=True)
            cat = subprocess.run([testing.DIODCAT, "-s", addr, "-a", str(root), "f.txt"],
                                 capture_output=True, timeout=30, check=True)
            _exercise_client(proxy.port, str(root))
        finally:
            proxy.close()
    return root, proxy.frames, listing.stdout, cat.stdout


def _exercise_client(port: int, root: str) -> None:
    """One of every request our client can make, against diod."""
    with Client.connect_tcp("127.0.0.1", port, msize=65536) as c:
        top = c.attach(root)
        d = c.clone(top)
        c.lcreate(d, "new.txt", os.O_RDWR, 0o644)
        c.write(d, 0, b"0123456789")
        c.read(d, 0, 100)
        c.fsync(d, datasync=True)
        assert c.lock(d, C.LOCK_TYPE_WRLCK, 0, 0, 0, 1, "me") == C.LOCK_SUCCESS
        c.getlock(d, C.LOCK_TYPE_WRLCK, 0, 0, 1, "me")
        c.statfs(top)
        c.mkdir(top, "dir", 0o755)
        c.symlink(top, "sl", "f.txt")
        sl, _ = c.walk(top, ["sl"])
        c.readlink(sl)
        c.mknod(top, "fifo", stat.S_IFIFO | 0o644)
        c.renameat(top, "new.txt", top, "renamed.txt")  # diod 1.0: Trenameat, then Trename
        f, _ = c.walk(top, ["renamed.txt"])
        c.setattr(f, C.SETATTR_SIZE | C.SETATTR_MODE, size=4, mode=0o600)
        c.getattr(f)
        c.link(top, f, "hard.txt")
        x, size = c.xattrwalk(f, "")
        c.read(x, 0, size or 1)
        c.clunk(x)
        try:
            c.xattrcreate(f, "user.test", 1)
        except SysError:
            pass
        c.flush(1)
        for fid in (d, sl, f):      # diod fails Tclunk of a fid whose file was unlinked
            c.clunk(fid)
        for name in ("hard.txt", "renamed.txt", "sl", "fifo"):
            c.unlinkat(top, name)                        # Tunlinkat, then Tremove
        c.unlinkat(top, "dir", C.AT_REMOVEDIR)
        c.clunk(top)


def test_every_recorded_frame_round_trips(recorded):
    _, frames, _, _ = recorded
    assert frames
    for _, wire in frames:
        fast = codec.decode(wire)
        assert codec.decode(wire, use_fastpath=False) == fast
        assert codec.encode(fast) == wire
        assert codec.encode(fast, use_fastpath=False) == wire


def test_recording_covers_the_protocol(recorded):
    _, frames, _, _ = recorded
    seen = {type(codec.decode(w)).__name__ for _, w in frames}
    requests = {n for n in m.BY_NAME if n.startswith("T")}
    # diod 1.0 answers Tauth/Trenameat/Tunlinkat with Rlerror, so Rauth, Rrenameat and
    # Runlinkat never appear; they are covered by test_p9_codec's spec vectors.
    replies = {n for n in m.BY_NAME if n.startswith("R")} - {"Rauth", "Rrenameat", "Runlinkat"}
    assert requests <= seen
    assert replies <= seen


def _pairs(frames):
    """(request, reply) pairs matched by tag, per direction order."""
    pending = {}
    for direction, wire in frames:
        msg = codec.decode(wire)
        if direction == "C":
            pending.setdefault(msg.tag, []).append(msg)
        else:
            yield pending[msg.tag].pop(0), msg


def test_diod_replies_carry_host_values(recorded):
    root, frames, _, cat_out = recorded
    st = os.stat(root / "f.txt")
    checked = set()
    for request, reply in _pairs(frames):
        if isinstance(reply, m.Rgetattr) and reply.qid.path == st.st_ino:
            assert reply.mode == st.st_mode and reply.size == st.st_size
            assert reply.mtime_sec == int(st.st_mtime) and reply.uid == st.st_uid
            checked.add("getattr")
        if isinstance(reply, m.Rread) and request.offset == 0 and reply.data == b"hello\n":
            checked.add("read")
        if isinstance(reply, m.Rreaddir) and reply.data:
            names = {e.name for e in decode_dirents(reply.data)}
            assert {"f.txt", "sub", "lnk", ".", ".."} <= names
            checked.add("readdir")
        if isinstance(reply, m.Rwalk) and request.wnames == ["f.txt"]:
            assert reply.qids == [(0, 0, st.st_ino)]
            checked.add("walk")
    assert checked == {"getattr", "read", "readdir", "walk"}
    assert cat_out == b"hello\n"
