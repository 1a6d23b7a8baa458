"""Write access against execution, as the host's Linux has it (tests/progs/exec_txtbsy.c
against a native run): exec of a file with an open writable description is ETXTBSY (by
name, through an fd, as a script), the program of a live process cannot be opened for
writing or truncated, and execveat of an O_PATH|O_NOFOLLOW fd of a symlink is ELOOP.
A memfd's own descriptor does not count as a writer (Linux: pseudo files take no write
access), nor does a description that was closed, or one only an idle page cache kept."""
import os

import pytest

from conftest import (PLATFORMS, assert_same_stdout, compile_c, run_native,
                      run_native_and_on_volume, run_sandbox)
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS


@pytest.mark.parametrize("platform", PLATFORMS)
def test_exec_and_write_access_match_linux_on_tmpfs(platform, tmp_path):
    prog = compile_c("exec_txtbsy")
    assert_same_stdout(run_native([prog, str(tmp_path)]),
                        run_sandbox([prog, "/tmp"], f"--platform={platform}"))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_exec_and_write_access_match_linux_on_a_volume(platform, tmp_path):
    assert_same_stdout(*run_native_and_on_volume(compile_c("exec_txtbsy"), tmp_path, platform))


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
