"""openat2(2): open_how validation and the RESOLVE_* restrictions of the path walk.

The differential program (tests/progs/openat2.c) checks every case against the host
kernel; the unit tests below cover what it cannot build natively without privileges:
bind mounts (RESOLVE_NO_XDEV treats them as any mount) and the walk's own invariants.
"""
import errno
import os

import pytest

from conftest import assert_same, compile_c
from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS
from pysentry.sentry.vfs.walk import (RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_SYMLINKS,
                                      RESOLVE_NO_XDEV)


def test_openat2_matches_linux():
    assert_same([compile_c("openat2")], check_stderr=False)


def err(call):
    with pytest.raises(SysError) as e:
        call()
    return e.value.errno


def content(desc):
    buf = bytearray(16)
    n = desc.read([memoryview(buf)], 0)
    desc.decref()
    return bytes(buf[:n])


@pytest.fixture
def tree():
    """/data (a tmpfs holding f), /bind (a bind mount of /data), /top/sub."""
    v = VirtualFS(TmpFS(mode=0o755))
    ctx = v.root_context(Creds())
    for d in (b"/data", b"/bind", b"/top", b"/top/sub"):
        v.mkdir(ctx, None, d, 0o755)
    v.mount(TmpFS(), b"/data")
    desc = v.openat(ctx, None, b"/data/f", os.O_CREAT | os.O_RDWR, 0o644)
    desc.write([memoryview(b"data")], 0)
    desc.decref()
    v.bind_mount(v.resolve(ctx, None, b"/data"), b"/bind")
    v.symlink(ctx, b"/data/f", None, b"/top/abs")
    return v, ctx


def test_no_xdev_refuses_bind_mounts_both_ways(tree):
    v, ctx = tree
    top = v.resolve(ctx, None, b"/")
    assert content(v.openat(ctx, top, b"bind/f", os.O_RDONLY)) == b"data"
    assert err(lambda: v.openat(ctx, top, b"bind/f", os.O_RDONLY, 0, RESOLVE_NO_XDEV)) \
        == errno.EXDEV
    bind = v.resolve(ctx, None, b"/bind")
    assert content(v.openat(ctx, bind, b"f", os.O_RDONLY, 0, RESOLVE_NO_XDEV)) == b"data"
    assert err(lambda: v.openat(ctx, bind, b"../top", os.O_RDONLY, 0, RESOLVE_NO_XDEV)) \
        == errno.EXDEV
    # O_CREAT meets the mount at its last component too, before open's own EISDIR.
    assert err(lambda: v.openat(ctx, top, b"bind", os.O_CREAT | os.O_RDONLY, 0o644,
                                RESOLVE_NO_XDEV)) == errno.EXDEV
    assert err(lambda: v.openat(ctx, top, b"bind", os.O_RDONLY, 0, RESOLVE_NO_XDEV)) \
        == errno.EXDEV


def test_absolute_symlink_and_xdev(tree):
    v, ctx = tree
    top = v.resolve(ctx, None, b"/top")
    # Followed from the root's mount, the jump to "/" is allowed; /data is not.
    assert err(lambda: v.openat(ctx, top, b"abs", os.O_RDONLY, 0, RESOLVE_NO_XDEV)) \
        == errno.EXDEV
    assert err(lambda: v.openat(ctx, top, b"abs", os.O_RDONLY, 0, RESOLVE_BENEATH)) \
        == errno.EXDEV
    assert err(lambda: v.openat(ctx, top, b"abs", os.O_RDONLY, 0, RESOLVE_NO_SYMLINKS)) \
        == errno.ELOOP
    # IN_ROOT: /data/f means /top/data/f, which does not exist.
    assert err(lambda: v.openat(ctx, top, b"abs", os.O_RDONLY, 0, RESOLVE_IN_ROOT)) \
        == errno.ENOENT
    assert content(v.openat(ctx, top, b"abs", os.O_RDONLY)) == b"data"


def test_scoped_walk_never_leaves_its_root(tree):
    v, ctx = tree
    sub = v.resolve(ctx, None, b"/top/sub")
    for path in (b"..", b"../sub/../..", b"/", b"/top"):
        assert err(lambda: v.openat(ctx, sub, path, os.O_RDONLY, 0, RESOLVE_BENEATH)) \
            == errno.EXDEV
    for path in (b"..", b"../..", b"/", b"/..", b"."):
        desc = v.openat(ctx, sub, path, os.O_RDONLY | os.O_PATH, 0, RESOLVE_IN_ROOT)
        assert desc.location == sub, path
        desc.decref()
