"""fd donation: Rlopen/Rlcreate of a regular file over the socketpair carry the host fd.

The donated fd must read exactly what Tread reads, see writes made through Twrite and
vice versa, be close-on-exec, and only ever be offered for regular files. With
--no-donate, or over TCP, no fd comes and everything still works through Tread/Twrite.
"""
import os
import stat

import pytest

from pysentry.gofer import testing
from pysentry.gofer.launch import start_gofer
from pysentry.gofer.p9.client import Client

DATA = os.urandom(150_000)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "dir").mkdir()
    return tmp_path


def _connect(root, **kwargs):
    proc, sock = start_gofer(str(root), **kwargs)
    return proc, Client(sock)


@pytest.mark.parametrize("confine", [False, True], ids=["plain", "confined"])
def test_donated_fd_reads_the_same_bytes_as_tread(root, confine):
    proc, c = _connect(root, confine=confine)
    try:
        top = c.attach()
        fid, qids = c.walk(top, ["data.bin"])
        _, _, fd = c.lopen(fid, os.O_RDONLY)
        assert fd is not None
        try:
            assert not os.get_inheritable(fd)
            st = os.fstat(fd)
            assert stat.S_ISREG(st.st_mode) and st.st_ino == qids[0].path
            via_fd = os.pread(fd, len(DATA) + 1, 0)
            via_9p = c.read(fid, 0, len(DATA) + 1)
            assert via_fd == via_9p == DATA
            assert os.pread(fd, 100, 4321) == c.read(fid, 4321, 100)
        finally:
            os.close(fd)
    finally:
        c.close()
        proc.wait(timeout=10)


def test_donated_fd_and_twrite_see_each_other(root):
    proc, c = _connect(root, confine=False)
    try:
        top = c.attach()
        fid = c.clone(top)
        _, _, fd = c.lcreate(fid, "new.bin", os.O_RDWR, 0o644)
        assert fd is not None
        try:
            os.pwrite(fd, b"written through the donated fd", 0)
            assert c.read(fid, 0, 100) == b"written through the donated fd"
            c.write(fid, 8, b"THROUGH")
            assert os.pread(fd, 100, 0) == b"written THROUGH the donated fd"
        finally:
            os.close(fd)
        assert (root / "new.bin").read_bytes() == b"written THROUGH the donated fd"
    finally:
        c.close()
        proc.wait(timeout=10)


def test_directories_are_never_donated(root):
    proc, c = _connect(root, confine=False)
    try:
        top = c.attach()
        fid, _ = c.walk(top, ["dir"])
        assert c.lopen(fid, os.O_RDONLY)[2] is None
        assert {e.name for e in c.readdir_all(fid)} == {".", ".."}
    finally:
        c.close()
        proc.wait(timeout=10)


def test_no_donate_still_serves_everything(root):
    proc, c = _connect(root, donate=False, confine=False)
    try:
        top = c.attach()
        fid, _ = c.walk(top, ["data.bin"])
        assert c.lopen(fid, os.O_RDWR)[2] is None
        assert c.read(fid, 0, len(DATA)) == DATA
        c.write(fid, 0, b"XYZ")
        assert (root / "data.bin").read_bytes()[:4] == b"XYZ" + DATA[3:4]
        new = c.clone(top)
        assert c.lcreate(new, "created", os.O_WRONLY, 0o600)[2] is None
    finally:
        c.close()
        proc.wait(timeout=10)


def test_tcp_never_donates(root):
    with testing.gofer_tcp(root) as (port, _):
        with Client.connect_tcp("127.0.0.1", port) as c:
            fid, _ = c.walk(c.attach(), ["data.bin"])
            assert c.lopen(fid, os.O_RDONLY)[2] is None
            assert c.read(fid, 0, len(DATA)) == DATA


def test_gofer_exits_when_the_client_closes(root):
    proc, c = _connect(root, confine=False)
    c.attach()
    c.close()
    assert proc.wait(timeout=10) == 0
