"""Debian's diod client tools (diodls, diodcat) against our gofer.

They must see what the directory holds: the same listing diodls prints for diod itself
(bar one documented divergence: at the export root, ".." is the root for us, the host's
parent directory for diod), and byte-identical file contents from diodcat.
"""
import os
import subprocess

import pytest

from pysentry.gofer import testing

pytestmark = pytest.mark.skipif(not testing.have_diod(),
                                reason="Debian's diod is not installed (apt-get install diod)")

CONTENT = os.urandom(200_000)           # several Treads at diodcat's 64 KiB msize


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "f.txt").write_bytes(b"hello\n")
    (root / "random.bin").write_bytes(CONTENT)
    (root / "empty").write_bytes(b"")
    (root / "sub").mkdir()
    (root / "sub" / "x").write_bytes(b"x")
    os.symlink("f.txt", root / "lnk")
    os.mkfifo(root / "fifo")
    return root


def diodls(port: int, root, *paths: str) -> list:
    out = subprocess.run([testing.DIODLS, "-s", f"127.0.0.1:{port}", "-a", str(root), "-l",
                          *paths], capture_output=True, timeout=30, check=True).stdout
    return out.decode().splitlines()


def diodcat(port: int, root, name: str) -> bytes:
    return subprocess.run([testing.DIODCAT, "-s", f"127.0.0.1:{port}", "-a", str(root), name],
                          capture_output=True, timeout=30, check=True).stdout


def _by_name(lines) -> dict:
    return {line.split()[-1]: line for line in lines if line.strip()}


@pytest.mark.parametrize("mode", [[], ["--ro"]], ids=["rw", "ro"])
def test_diodls_lists_the_directory_like_diod_does(root, mode):
    with testing.gofer_tcp(root, *mode) as (port, _):
        ours = _by_name(diodls(port, root, "/"))
    with testing.diod_server(root) as port:
        theirs = _by_name(diodls(port, root, "/"))
    assert set(ours) == set(os.listdir(root)) | {".", ".."}
    # ".." at the root is the root itself: the same line but for the name
    assert ours.pop("..").rsplit(None, 1)[0] == ours["."].rsplit(None, 1)[0]
    theirs.pop("..")
    assert ours == theirs


def test_diodls_of_a_subdirectory(root):
    with testing.gofer_tcp(root) as (port, _):
        lines = _by_name(diodls(port, root, "sub"))
    assert set(lines) - {"sub:"} == {".", "..", "x"}


@pytest.mark.parametrize("name", ["f.txt", "random.bin", "empty", "sub/x"])
def test_diodcat_reads_the_same_bytes(root, name):
    with testing.gofer_tcp(root) as (port, proc):
        assert diodcat(port, root, name) == (root / name).read_bytes()
        assert proc.poll() is None


def test_diodcat_cannot_open_a_fifo_and_the_gofer_does_not_block(root):
    with testing.gofer_tcp(root) as (port, proc):
        result = subprocess.run([testing.DIODCAT, "-s", f"127.0.0.1:{port}", "-a", str(root),
                                 "fifo"], capture_output=True, timeout=30)
        assert result.returncode != 0
        assert diodcat(port, root, "f.txt") == b"hello\n"    # still serving
        assert proc.poll() is None
