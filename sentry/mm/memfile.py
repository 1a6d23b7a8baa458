"""The memory file: one memfd that backs every byte of application memory.

The sentry maps the whole file once (MAP_SHARED), so copy-in/copy-out are slices of that
mapping, and platforms map ranges of the same file into application address spaces.

Allocation is in runs of pages. Invariants:
- every allocation reads as zeros, which is what anonymous memory must be;
- a run is one contiguous piece of the file, so a whole VMA maps into a stub (or a guest
  page table) as one range;
- a freed run is mapped nowhere that can execute (its users unmapped it first; a pooled
  ptrace stub may keep stale mappings, but runs nothing until they are removed), so
  handing its offsets out again exposes nothing.

Freed runs go first to a small *recycle* cache, still holding their host pages: a program
that maps and unmaps the same size over and over (malloc's mmap threshold, stacks of
short-lived threads, fork+exec) gets them back after one memset instead of a host page
fault per page (and, under KVM, a hypervisor fault per page: docs/kvm.md). The cache is
capped at RECYCLE_PAGES; beyond that, and for runs larger than the cap, pages are
hole-punched (MADV_REMOVE) and their memory goes back to the host at once.
Punched free space is kept as coalesced extents and reused best-fit, so a long-running
program that maps and unmaps does not walk the bump pointer to the end of the file.
"""
import bisect
import errno
import mmap
import os

from ..kernel.errors import SysError

PAGE = 4096
FILE_SIZE = 1 << 40          # sparse: only touched pages cost memory
RECYCLE_PAGES = 4096         # 16 MiB of freed memory may stay resident for reuse
ZERO_WHOLE_PAGES = 64        # recycled runs up to this size are cleared without a hole search


class _Extents:
    """Free, hole-punched runs of the file: coalesced, found best-fit."""

    def __init__(self):
        self.by_start: dict[int, int] = {}       # offset -> npages
        self.by_end: dict[int, int] = {}         # end offset -> start offset
        self.by_size: list[tuple[int, int]] = []  # sorted (npages, offset)

    def _drop(self, off: int) -> int:
        n = self.by_start.pop(off)
        del self.by_end[off + n * PAGE]
        i = bisect.bisect_left(self.by_size, (n, off))
        del self.by_size[i]
        return n

    def _add(self, off: int, n: int) -> None:
        self.by_start[off] = n
        self.by_end[off + n * PAGE] = off
        bisect.insort(self.by_size, (n, off))

    def put(self, off: int, n: int) -> None:
        end = off + n * PAGE
        if end in self.by_start:                 # merge with the run after
            n += self._drop(end)
        before = self.by_end.get(off)
        if before is not None:                   # merge with the run before
            n += self._drop(before)
            off = before
        self._add(off, n)

    def take(self, n: int) -> int | None:
        i = bisect.bisect_left(self.by_size, (n, 0))
        if i == len(self.by_size):
            return None
        size, off = self.by_size[i]
        self._drop(off)
        if size > n:
            self._add(off + n * PAGE, size - n)
        return off

    def pages(self) -> int:
        return sum(self.by_start.values())


class MemoryFile:
    def __init__(self, size: int = FILE_SIZE, recycle_pages: int = RECYCLE_PAGES):
        self.fd = os.memfd_create("pysentry-memory", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.size = size
        self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.map)
        # A read-only anonymous mapping reads as the host's zero page: the source that
        # clears a recycled run without allocating anything.
        self._zeros = memoryview(mmap.mmap(-1, max(recycle_pages, 1) * PAGE, mmap.MAP_PRIVATE,
                                           mmap.PROT_READ))
        self._bump = PAGE            # offset 0 is never handed out: 0 means "no frame"
        self._clean = _Extents()
        # Recycle cache: offset -> npages in the order freed (oldest first), and the same
        # runs by size (each an insertion-ordered set) for an exact-size reuse.
        self._recycle_cap = recycle_pages
        self._recycled: dict[int, int] = {}
        self._recycled_by_size: dict[int, dict[int, None]] = {}
        self._recycled_pages = 0
        self.refs: dict[int, int] = {}   # page frame offset -> refcount, for single frames

    def alloc(self, npages: int) -> int:
        """A run of npages reading as zeros."""
        if npages <= 0:
            raise SysError(errno.EINVAL)
        bucket = self._recycled_by_size.get(npages)
        if bucket:
            off, _ = bucket.popitem()            # the most recently freed: warmest in cache
            self._forget_recycled(off, npages, bucket)
            self._zero_recycled(off, npages)
            return off
        off = self._clean.take(npages)
        if off is not None:
            return off
        if self._bump + npages * PAGE > self.size and self._recycled:
            self._punch_recycled(len(self._recycled))
            off = self._clean.take(npages)
            if off is not None:
                return off
        off = self._bump
        if off + npages * PAGE > self.size:
            raise SysError(errno.ENOMEM)
        self._bump = off + npages * PAGE
        return off

    def _zero_recycled(self, off: int, npages: int) -> None:
        """Make a recycled run read as zeros. A large run is cleared only where the file
        holds data: a big mapping touched sparsely (an 8 MiB stack, of which a program
        uses a few pages) is mostly holes, and storing zeros there would allocate them."""
        n = npages * PAGE
        if npages <= ZERO_WHOLE_PAGES:
            self.view[off:off + n] = self._zeros[:n]
            return
        for a, b in self.data_runs(off, off + n):
            self.view[a:b] = self._zeros[:b - a]

    def data_runs(self, start: int, end: int):
        """The runs [a, b) of [start, end) where the file holds data (not holes), in
        order (SEEK_DATA/SEEK_HOLE)."""
        pos = start
        while pos < end:
            try:
                a = os.lseek(self.fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    return                       # no data past pos at all
                raise
            if a >= end:
                return
            b = min(os.lseek(self.fd, a, os.SEEK_HOLE), end)
            yield a, b
            pos = b

    def release(self, off: int, npages: int) -> None:
        """Give a whole run back. Its pages may stay resident in the recycle cache (zeroed
        when handed out again) or go back to the host at once."""
        if npages <= 0:
            return
        if npages > self._recycle_cap:
            self.map.madvise(mmap.MADV_REMOVE, off, npages * PAGE)
            self._clean.put(off, npages)
            return
        self._recycled[off] = npages
        self._recycled_by_size.setdefault(npages, {})[off] = None
        self._recycled_pages += npages
        excess = self._recycled_pages - self._recycle_cap
        if excess > 0:
            self._punch_recycled(excess)

    def release_inplace(self, off: int, npages: int) -> None:
        """Return the memory of pages inside a live run (they read as zero afterwards) without
        making their offsets allocatable: the run still owns them."""
        if npages > 0:
            self.map.madvise(mmap.MADV_REMOVE, off, npages * PAGE)

    def _forget_recycled(self, off: int, npages: int, bucket: dict) -> None:
        del self._recycled[off]
        if not bucket:
            del self._recycled_by_size[npages]
        self._recycled_pages -= npages

    def _punch_recycled(self, at_least_pages: int) -> None:
        """Hole-punch the oldest recycled runs until at_least_pages pages are gone."""
        while at_least_pages > 0 and self._recycled:
            off = next(iter(self._recycled))
            npages = self._recycled[off]
            bucket = self._recycled_by_size[npages]
            del bucket[off]
            self._forget_recycled(off, npages, bucket)
            self.map.madvise(mmap.MADV_REMOVE, off, npages * PAGE)
            self._clean.put(off, npages)
            at_least_pages -= npages

    def stats(self) -> dict:
        """Allocator state, for tests and /proc-style reporting."""
        return {"bump": self._bump, "recycled_pages": self._recycled_pages,
                "free_pages": self._clean.pages()}

    # Single-frame refcounting (COW copies made after fork are shared again by a later fork).
    def frame_ref(self, off: int) -> None:
        self.refs[off] = self.refs.get(off, 1) + 1

    def frame_unref(self, off: int) -> None:
        n = self.refs.get(off, 1) - 1
        if n <= 0:
            self.refs.pop(off, None)
            self.release(off, 1)
        else:
            self.refs[off] = n

    def frame_shared(self, off: int) -> bool:
        return self.refs.get(off, 1) > 1
