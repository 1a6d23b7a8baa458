"""The KVM page-table pool running out (review3 F1, F2): an operation that fails for want of
table pages applies what it queued before returning, so a kept leaf table is never both
linked and kept (which freed it twice at release and gave one page to two tables); unmap
and protect need no new table page; a map that fails leaves no entries and is counted as
a dropped range, as a host ENOMEM is on ptrace. Driven in-process on a real VM."""
import pytest

from conftest import NEEDS_KVM

pytestmark = NEEDS_KVM

MiB = 1 << 20
FILE_OFF = 1 << 30              # memory-file offset of the test's own 2 MiB runs
VA1 = 0x10000000000            # 2 MiB aligned, far from the filler
FILLER = 0x100000000


@pytest.fixture
def kvm():
    from pysentry.platform.kvm.kvm import KvmPlatform
    from pysentry.sentry.mm.memfile import MemoryFile
    p = KvmPlatform(MemoryFile())
    p.ready()
    yield p
    p.shutdown()


def _fill_pool(lib, a):
    """Map one page at every 2 MiB until the pool has no table page left."""
    va, n = FILLER, 0
    while lib.pk_as_map(a.handle, va, 4096, 4096, 3) == 0:
        n, va = n + 1, va + 2 * MiB
    assert n > 1000
    return n


def _entry_frame(a, va):
    return a.lookup(va) & 0x000FFFFFFFFFF000


def test_an_unmap_with_the_pool_empty_keeps_no_linked_table_and_frees_nothing_twice(kvm):
    from pysentry.native._kvm import lib
    a = kvm.new_address_space()
    a.map_memfile(VA1, 2 * MiB, FILE_OFF, 3)
    a.map_memfile(VA1 + 2 * MiB, 2 * MiB, FILE_OFF + 2 * MiB, 3)
    _fill_pool(lib, a)
    # The first 2 MiB empties its table (unlinked and kept); the rest of the range covers
    # part of the next table, which a swap would rebuild on a fresh page: there is none.
    assert lib.pk_as_unmap(a.handle, VA1, 2 * MiB + 100 * 4096) == 0
    assert a.lookup(VA1) == 0 and a.lookup(VA1 + 2 * MiB + 99 * 4096) == 0
    assert _entry_frame(a, VA1 + 2 * MiB + 100 * 4096) == FILE_OFF + 2 * MiB + 100 * 4096
    a.release()
    # Every pool page handed out again, to two address spaces by turns: a page given to
    # two tables would show one region's entry in the other's place.
    spaces = [kvm.new_address_space(), kvm.new_address_space()]
    bases = [0x200000000000, 0x300000000000]
    made = []
    while True:
        i = len(made)
        s, va = i % 2, bases[i % 2] + (i // 2) * 2 * MiB
        off = ((i % 4000) + 1) * 4096
        if lib.pk_as_map(spaces[s].handle, va, 4096, off, 3) != 0:
            break
        made.append((s, va, off))
    assert len(made) > 1000
    wrong = [(s, hex(va)) for s, va, off in made if _entry_frame(spaces[s], va) != off]
    assert wrong == []


def test_a_map_with_the_pool_empty_leaves_no_entries_and_counts_a_dropped_range(kvm):
    from pysentry.native._kvm import lib
    a = kvm.new_address_space()
    _fill_pool(lib, a)
    before = a.dropped_ranges
    # Needs leaf tables it cannot have: nothing of it may stay entered.
    a.map_memfile(VA1, 8 * MiB, FILE_OFF, 3)
    assert a.dropped_ranges == before + 1
    assert all(a.lookup(VA1 + k * 4096) == 0 for k in range(0, 2048, 97))
    # mprotect of the filler's pages needs no new page either.
    assert lib.pk_as_protect(a.handle, FILLER, 64 * MiB, 1) == 0
    assert _entry_frame(a, FILLER) == 4096 and not a.lookup(FILLER) & 2      # read-only now
    a.release()
