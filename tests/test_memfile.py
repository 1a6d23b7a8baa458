"""The memory file's allocator: zeroed runs, recycling, coalescing, memory given back."""
import os

from pysentry.sentry.mm.memfile import MemoryFile, PAGE


def _resident(mf) -> int:
    return os.fstat(mf.fd).st_blocks * 512


def _fill(mf, off, npages, byte=b"\xa5"):
    mf.view[off:off + npages * PAGE] = byte * (npages * PAGE)


def test_recycled_run_reads_as_zeros():
    mf = MemoryFile(size=64 << 20, recycle_pages=64)
    a = mf.alloc(16)
    _fill(mf, a, 16)
    mf.release(a, 16)
    b = mf.alloc(16)
    assert b == a                                   # recycled, not a fresh run
    assert bytes(mf.view[b:b + 16 * PAGE]) == bytes(16 * PAGE)


def test_map_unmap_churn_does_not_walk_the_file():
    # 1 MiB map/unmap cycles with COW-sized frees in between: the file offsets stay bounded,
    # so a long-running program never reaches ENOMEM by churn alone.
    mf = MemoryFile(size=64 << 20, recycle_pages=32)
    for _ in range(2000):
        run = mf.alloc(256)
        frame = mf.alloc(1)
        mf.release(run, 256)
        mf.release(frame, 1)
    assert mf.stats()["bump"] < 4 << 20


def test_recycle_cap_gives_memory_back_to_the_host():
    mf = MemoryFile(size=64 << 20, recycle_pages=8)
    runs = [mf.alloc(4) for _ in range(8)]
    for r in runs:
        _fill(mf, r, 4)
    before = _resident(mf)
    assert before >= 32 * PAGE
    for r in runs:
        mf.release(r, 4)
    st = mf.stats()
    assert st["recycled_pages"] <= 8
    assert _resident(mf) <= before - 24 * PAGE      # all but the cap were hole-punched


def test_large_runs_are_punched_at_once_and_coalesce():
    mf = MemoryFile(size=64 << 20, recycle_pages=4)
    a, b = mf.alloc(10), mf.alloc(10)
    assert b == a + 10 * PAGE
    _fill(mf, a, 20)
    mf.release(a, 10)
    mf.release(b, 10)
    assert mf.stats()["free_pages"] == 20
    c = mf.alloc(20)                                # the two freed runs merged into one
    assert c == a
    assert bytes(mf.view[c:c + 20 * PAGE]) == bytes(20 * PAGE)


def test_best_fit_splits_and_exhaustion_is_enomem():
    import errno
    import pytest
    from pysentry.sentry.kernel.errors import SysError
    mf = MemoryFile(size=1 << 20, recycle_pages=0)
    a = mf.alloc(100)
    mf.release(a, 100)
    x = mf.alloc(30)
    y = mf.alloc(70)
    assert {x, y} == {a, a + 30 * PAGE}
    with pytest.raises(SysError) as e:
        mf.alloc(256)
    assert e.value.errno == errno.ENOMEM


def test_a_large_recycled_run_is_cleared_where_it_holds_data_only():
    # A stack-like run: big, touched in a few scattered pages. Reused, it reads as zeros
    # everywhere, and its holes are not filled in (no memory allocated for them).
    mf = MemoryFile(size=256 << 20, recycle_pages=4096)
    npages = 2048
    a = mf.alloc(npages)
    for page in (0, 1, 700, npages - 1):
        _fill(mf, a + page * PAGE, 1)
    used = _resident(mf)
    mf.release(a, npages)
    b = mf.alloc(npages)
    assert b == a                                   # recycled
    assert _resident(mf) == used                    # the 2044 holes stayed holes...
    # (checked first: reading a hole of a shared memfd mapping allocates its page)
    assert bytes(mf.view[b:b + npages * PAGE]) == bytes(npages * PAGE)
