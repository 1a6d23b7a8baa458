"""Write access against execution, as the host's Linux has it (tests/progs/exec_txtbsy.c
against a native run): exec of a file with an open writable description is ETXTBSY (by
name, through an fd, as a script), the program of a live process cannot be opened for
writing or truncated, and execveat of an O_PATH|O_NOFOLLOW fd of a symlink is ELOOP.
A memfd's own descriptor does not count as a writer (Linux: pseudo files take no write
access), nor does a description that was closed, or one only an idle page cache kept."""
import os

import pytest

from conftest import PLATFORMS, compile_c, run_native, run_sandbox
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS


def _assert_same_output(native, box):
    assert native.returncode == 0, native.stderr.decode(errors="replace")
    assert box.stdout == native.stdout, (
        f"--- native ---\n{native.stdout.decode()}\n--- sandbox ---\n{box.stdout.decode()}\n"
        f"{box.stderr.decode(errors='replace')[-2000:]}")
    assert box.returncode == 0


@pytest.mark.parametrize("platform", PLATFORMS)
def test_exec_and_write_access_match_linux_on_tmpfs(platform, tmp_path):
    prog = compile_c("exec_txtbsy")
    _assert_same_output(run_native([prog, str(tmp_path)]),
                        run_sandbox([prog, "/tmp"], f"--platform={platform}"))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_exec_and_write_access_match_linux_on_a_volume(platform, tmp_path):
    prog = compile_c("exec_txtbsy")
    native_dir, volume = tmp_path / "native", tmp_path / "volume"
    native_dir.mkdir()
    volume.mkdir()
    _assert_same_output(run_native([prog, str(native_dir)]),
                        run_sandbox([prog, "/vol"], f"--platform={platform}",
                                    "--volume", f"{volume}:/vol"))


def test_writers_are_counted_per_open_description():
    v = VirtualFS(TmpFS())
    ctx = v.root_context(Creds())
    v.openat(ctx, None, b"/f", os.O_CREAT | os.O_WRONLY, 0o755).decref()
    inode = v.resolve(ctx, None, b"/f").dentry.inode
    assert inode.writers == 0
    w = v.openat(ctx, None, b"/f", os.O_RDWR)
    r = v.openat(ctx, None, b"/f", os.O_RDONLY)
    w.incref()                          # a dup: the same description, one writer
    assert inode.writers == 1
    w.decref()
    assert inode.writers == 1
    w.decref()
    r.decref()
    assert inode.writers == 0
    t = v.openat(ctx, None, b"/", os.O_TMPFILE | os.O_RDWR, 0o600)
    assert t.inode.writers == 1
    t.decref()
    assert t.inode.writers == 0
