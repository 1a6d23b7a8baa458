"""FD tables: allocation order, limits, dup2, cloexec, fork sharing and reference counts."""
import errno

import pytest

from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs.fdtable import CLOSE_RANGE_CLOEXEC, FDTable
from pysentry.sentry.vfs.file import FileDescription


class Counted(FileDescription):
    released = 0

    def release(self):
        Counted.released += 1
        self.was_released = True


def desc():
    d = Counted()
    d.was_released = False
    return d


def err(call):
    with pytest.raises(SysError) as e:
        call()
    return e.value.errno


def test_lowest_free_fd_and_minfd():
    t = FDTable()
    a, b, c = desc(), desc(), desc()
    assert [t.install(a), t.install(b), t.install(c)] == [0, 1, 2]
    t.close(1)
    assert t.install(desc()) == 1
    assert t.install(desc(), minfd=10) == 10
    assert t.install(desc(), minfd=10) == 11
    assert t.install(desc()) == 3
    assert [fd for fd, _ in t.items()] == [0, 1, 2, 3, 10, 11]


def test_limits():
    t = FDTable(limit=3)
    for _ in range(3):
        t.install(desc())
    assert err(lambda: t.install(desc())) == errno.EMFILE
    assert err(lambda: t.install(desc(), minfd=3)) == errno.EINVAL
    assert err(lambda: t.dup2(0, 3)) == errno.EBADF
    assert err(lambda: t.get(7)) == errno.EBADF
    assert err(lambda: t.close(7)) == errno.EBADF


def test_refcounts_release_once_at_last_close():
    t = FDTable()
    d = desc()
    fd = t.install(d)
    d.decref()                      # the opener's own reference; the table holds one
    assert not d.was_released
    fd2 = t.dup2(fd, 5)
    t.close(fd)
    assert not d.was_released
    t.close(fd2)
    assert d.was_released and d.refs == 0


def test_dup2_replaces_and_same_fd_is_noop():
    t = FDTable()
    a, b = desc(), desc()
    t.install(a)
    t.install(b)
    a.decref()
    b.decref()
    assert t.dup2(0, 0) == 0 and a.refs == 1
    assert t.dup2(0, 1, cloexec=True) == 1
    assert b.was_released and t.get(1) is a and t.get_cloexec(1)
    assert err(lambda: t.dup2(9, 1)) == errno.EBADF


def test_cloexec_exec_and_close_range():
    t = FDTable()
    ds = [desc() for _ in range(6)]
    for i, d in enumerate(ds):
        t.install(d, cloexec=i % 2 == 1)
        d.decref()
    t.set_cloexec(0, True)
    t.set_cloexec(1, False)
    t.on_exec()
    assert [fd for fd, _ in t.items()] == [1, 2, 4]
    assert ds[0].was_released and ds[3].was_released and not ds[1].was_released
    t.close_range(2, 100, CLOSE_RANGE_CLOEXEC)
    assert t.get_cloexec(2) and t.get_cloexec(4) and not t.get_cloexec(1)
    t.close_range(0, 2)
    assert [fd for fd, _ in t.items()] == [4]
    assert err(lambda: t.close_range(5, 1)) == errno.EINVAL
    assert err(lambda: t.close_range(0, 1, 1)) == errno.EINVAL


def test_fork_shares_descriptions():
    t = FDTable()
    d = desc()
    t.install(d, cloexec=True)
    d.decref()
    child = t.fork()
    assert child.get(0) is d and child.get_cloexec(0) and d.refs == 2
    t.close(0)
    assert not d.was_released
    child.install(desc())
    assert [fd for fd, _ in child.items()] == [0, 1]
    child.close_all()
    assert d.was_released


def test_remove_hands_back_the_reference():
    t = FDTable()
    d = desc()
    t.install(d)
    d.decref()
    got = t.remove(0)
    assert got is d and not d.was_released and 0 not in t
    got.decref()
    assert d.was_released


def test_dup2_install_places_at_a_given_fd():
    t = FDTable()
    a, b = desc(), desc()
    assert t.dup2_install(2, a) == 2 and a.refs == 2
    assert t.install(desc()) == 0
    t.dup2_install(2, b, cloexec=True)
    assert t.get(2) is b and t.get_cloexec(2) and a.refs == 1
    assert err(lambda: t.dup2_install(-1, a)) == errno.EBADF
