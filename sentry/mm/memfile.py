"""The memory file: one memfd that backs every byte of application memory.

The sentry maps the whole file once (MAP_SHARED), so copy-in/copy-out are slices of that
mapping, and platforms map ranges of the same file into application address spaces.

Allocation is in pages. Invariants:
- a freed range is hole-punched (MADV_REMOVE) before reuse, so a fresh allocation reads
  as zeros, which is what anonymous memory must be;
- contiguous allocations come from a bump pointer, so a whole VMA is one run of the file
  and maps into a stub with a single host mmap; single pages freed by COW are recycled.
"""
import mmap
import os

from ..kernel.errors import SysError
import errno

PAGE = 4096
FILE_SIZE = 1 << 40          # sparse: only touched pages cost memory


class MemoryFile:
    def __init__(self, size: int = FILE_SIZE):
        self.fd = os.memfd_create("pysentry-memory", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.size = size
        self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.map)
        self._bump = PAGE            # offset 0 is never handed out: 0 means "no frame"
        self._free_pages: list[int] = []
        self.refs: dict[int, int] = {}   # page frame offset -> refcount, for single frames

    def alloc(self, npages: int) -> int:
        if npages == 1 and self._free_pages:
            # Multi-page runs always come from the bump pointer so that a VMA stays one run.
            return self._free_pages.pop()
        off = self._bump
        if off + npages * PAGE > self.size:
            raise SysError(errno.ENOMEM)
        self._bump = off + npages * PAGE
        return off

    def release(self, off: int, npages: int) -> None:
        """Give pages back: their memory is returned to the host and they read as zero."""
        if npages <= 0:
            return
        self.map.madvise(mmap.MADV_REMOVE, off, npages * PAGE)
        self._free_pages.extend(range(off, off + npages * PAGE, PAGE))

    def release_inplace(self, off: int, npages: int) -> None:
        """Return the memory of pages inside a live run (they read as zero afterwards) without
        making their offsets allocatable: the run still owns them."""
        if npages > 0:
            self.map.madvise(mmap.MADV_REMOVE, off, npages * PAGE)

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
