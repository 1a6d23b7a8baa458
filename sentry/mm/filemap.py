"""The page cache of a regular file while it is mapped MAP_SHARED.

Every MAP_SHARED mapping of a file, in every address space, maps the same pages: one
`FileMap` per inode, owning one Region of the memory file in which page i is page i of
the file. Mappings are then coherent with each other for free (they are the same memory),
and read()/write() of the file are made coherent with them by routing regular-file I/O
through this module (`read`, `write`, `resized`, `sync`; file.py and attrs.py call them).

Invariants of a FileMap:
- `region` reserves `span` bytes for file offsets [0, span). The memory file is sparse, so
  the reservation costs nothing until pages are touched. A mapping that reaches past the
  span is ENOMEM; read()/write() past it simply bypass the FileMap.
- `mirrored`: the pages the region holds for the file, i.e. every page some mapping has
  covered while this FileMap lived (filled from the file when first covered). Below the
  file size, a mirrored page of the region holds the authoritative bytes of the file
  (stores through mappings land there first); elsewhere the filesystem's bytes are
  authoritative and the region page is an untouched hole.
- region bytes at or past the file size are unspecified: a program may store past EOF
  through a mapping (Linux raises SIGBUS for whole pages past EOF; we do not). Whenever
  the size changes, the bytes between the old and new size are zeroed, so such stores
  never become file content.
- write() is written through: the filesystem gets the bytes at once (its size, times and
  space accounting stay its own business) and the mirrored part is copied into the
  region. So only stores made through mappings can be missing from the filesystem.
- `dirty`: some writable shared mapping existed since the last full write-back. Write-back
  (msync, fsync, the last unmap, sandbox exit) writes the mirrored pages below the size
  that hold data in the memory file (holes there read as zero and are zero in the file
  too, so they are skipped); without `dirty` it has nothing to do.
- the FileMap lives while a VMA uses its region or an operation pins it; at the end it is
  written back and goes *idle* (below), or is closed: its memory returned, and its span
  kept for the next FileMap of that size. It holds a reference on one open description of
  the file (Linux's vm_file), so the filesystem keeps the file open (gofer handles) until
  it closes.
- idle FileMaps (`_idle`, least recently used first, bounded in number and mirrored bytes)
  keep their mirrored pages so that the next mapping of the same file (the next exec of
  the same program or library) does not read them again. An idle FileMap is not in
  `_live`: read()/write() of the file go to the filesystem as for an unmapped file, and
  any write or size change through the sentry drops it. It is taken back only if the
  file's size, mtime and ctime are still those it was filled under (a file changed behind
  the sentry's back in a shared mount shows new attributes once stat() fetches them, which
  mmap does first). In an exclusive mount (the default) the attributes are the sentry's
  own and are not fetched again, as the mount's contract is that the sandbox is the file's
  only writer; so a host-side change made while the FileMap is idle is not seen by the
  next mmap, although read(2) through the donated host fd would see it until then.

Known divergences: pages past EOF read as zero instead of raising SIGBUS; files changed
behind the sentry's back (a shared gofer mount) are not re-read while mapped; MADV_REMOVE
does not punch the file.
"""
from __future__ import annotations

import contextlib
import errno
import os
import weakref
from collections import OrderedDict

from ..kernel.errors import SysError
from ..logger import log
from ..vfs import iov
from .addrspace import PROT_WRITE, Region, page_down, page_up
from .memfile import PAGE
from .pageranges import PageRanges

MIN_SPAN = 256 << 20           # file offsets a FileMap can map: at least this...
SPAN_SHARE_OF_MEMFILE = 16     # ...and at most 1/16 of the memory file, unless one mapping needs more
IO_CHUNK = 1 << 20             # bytes per filesystem call when filling or writing back

# The live FileMaps by inode (identity). A file belongs to one sandbox, so to one memory file.
_live: dict = {}
# Spans of retired FileMaps, per memory file and size in pages, to reuse (the memory file's
# bump allocator never reuses multi-page runs).
_spare: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# Idle FileMaps by inode, least recently used first (see the module docstring).
_idle: "OrderedDict" = OrderedDict()
IDLE_MAX_FILES = 16
IDLE_MAX_BYTES = 64 << 20      # mirrored bytes kept by idle FileMaps, all together


class FileRegion(Region):
    """The Region of a FileMap: when the last VMA using it goes, the FileMap retires (instead
    of the pages simply being freed, as for anonymous memory)."""
    __slots__ = ("filemap",)

    def __init__(self, memfile, off: int, npages: int, filemap: "FileMap"):
        # Not Region.__init__: the span may be a recycled one rather than a fresh allocation.
        self.memfile, self.off, self.npages = memfile, off, npages
        self.users = {}
        self.filemap = filemap

    def last_user_gone(self):
        self.filemap.retire()

    def note_writable(self):
        self.filemap.dirty = True

    def shared_with_others(self, aspace) -> bool:
        # The file's pages belong to the page cache, never to one private mapping: a
        # private VMA over them copies a page before its first store.
        return True


class FileMap:
    def __init__(self, inode, memfile, span: int, holder):
        self.inode = inode
        self.memfile = memfile
        self.span = span
        npages = span // PAGE
        spare = _spare.get(memfile, {}).get(npages)
        off = spare.pop() if spare else memfile.alloc(npages)
        self.region = FileRegion(memfile, off, npages, self)
        self.mirrored = PageRanges()
        self.dirty = False
        self.pins = 0
        self.closed = False
        self.holder = holder          # an open description of the file, kept while we live
        holder.incref()
        self.filled_under = None      # (size, mtime_ns, ctime_ns) when it went idle

    # ---- the bytes of the region ---------------------------------------------------------
    def _view(self, lo: int, hi: int) -> memoryview:
        base = self.region.off
        return self.memfile.view[base + lo:base + hi]

    def _zero(self, lo: int, hi: int) -> None:
        """Make file offsets [lo, hi) of the region read as zero (clamped to the span)."""
        hi = min(hi, self.span)
        if lo >= hi:
            return
        first_whole, last_whole = page_up(lo), page_down(hi)
        if first_whole >= last_whole:
            self._view(lo, hi)[:] = bytes(hi - lo)
            return
        if lo < first_whole:
            self._view(lo, first_whole)[:] = bytes(first_whole - lo)
        self.memfile.release_inplace(self.region.off + first_whole,
                                     (last_whole - first_whole) // PAGE)
        if last_whole < hi:
            self._view(last_whole, hi)[:] = bytes(hi - last_whole)

    def _runs(self, lo: int, hi: int) -> list[tuple[int, int, bool]]:
        """Byte range [lo, hi) cut into (a, b, mirrored) pieces."""
        if lo >= hi:
            return []
        out = []
        for pa, pb, inside in self.mirrored.split(lo // PAGE, (hi + PAGE - 1) // PAGE):
            a, b = max(pa * PAGE, lo), min(pb * PAGE, hi)
            if a < b:
                out.append((a, b, inside))
        return out

    # ---- mirroring -----------------------------------------------------------------------
    def mirror(self, offset: int, length: int) -> None:
        """Make file pages [offset, offset+length) part of the region, filling the ones not
        yet mirrored from the file. ENOMEM past the span."""
        end = offset + length
        if end > self.span:
            raise SysError(errno.ENOMEM)
        size = self.inode.size
        for lo, hi in self.mirrored.gaps(offset // PAGE, page_up(end) // PAGE):
            self._fill(lo * PAGE, min(hi * PAGE, size))
            self.mirrored.add(lo, hi)

    def _fill(self, lo: int, hi: int) -> None:
        """Copy the file's data extents in [lo, hi) into the (still hole) region pages."""
        for a, b in _data_extents_of_file(self.inode, lo, hi):
            pos = a
            while pos < b:
                n = min(IO_CHUNK, b - pos)
                got = self.inode.read(pos, [self._view(pos, pos + n)])
                if got <= 0:
                    return          # the file is shorter than it said: the rest reads as zero
                pos += got

    # ---- read()/write() of the file while mapped ------------------------------------------
    def read(self, offset: int, dst) -> int:
        want = min(iov.total(dst), self.inode.size - offset)
        if want <= 0:
            return 0
        done = 0
        for a, b, inside in self._runs(offset, offset + want):
            part = _views_slice(dst, a - offset, b - a)
            if inside:
                iov.copy_into(part, self._view(a, b))
                done += b - a
                continue
            got = self.inode.read(a, part)
            done += got
            if got < b - a:
                break
        return done

    def written(self, old_size: int, offset: int, src, n: int) -> None:
        """The filesystem took n bytes of `src` at `offset`: mirror them."""
        self.resized(old_size)
        for a, b, inside in self._runs(offset, min(offset + n, self.span)):
            if inside:
                dst = self._view(a, b)
                pos = 0
                for v in _views_slice(src, a - offset, b - a):
                    dst[pos:pos + len(v)] = v
                    pos += len(v)

    def resized(self, old_size: int) -> None:
        """The file's size changed from old_size: whatever lies between the two sizes reads
        as zero now (cut off by a truncation, or a gap a growth exposes)."""
        new = self.inode.size
        if new != old_size:
            self._zero(min(old_size, new), max(old_size, new))

    # ---- write-back ------------------------------------------------------------------------
    def write_back(self, lo: int = 0, hi: int | None = None) -> None:
        """Write file offsets [lo, hi) of the mirrored pages to the filesystem."""
        size = self.inode.size
        hi = min(size if hi is None else hi, size, self.span)
        for a, b, inside in self._runs(lo, hi) if lo < hi else ():
            if not inside:
                continue
            for da, db in self._data_extents_of_region(a, b):
                pos = da
                while pos < db:
                    n = min(IO_CHUNK, db - pos)
                    put = self.inode.write(pos, [self._view(pos, pos + n)])
                    if put <= 0:
                        raise SysError(errno.EIO)
                    pos += put

    def _data_extents_of_region(self, lo: int, hi: int):
        """Sub-ranges of file offsets [lo, hi) whose region pages hold data (not holes)."""
        base = self.region.off
        for a, b in self.memfile.data_runs(base + lo, base + hi):
            yield a - base, b - base

    def sync(self) -> None:
        """Write the whole file back (fsync, sandbox exit); the FileMap stays dirty only if
        a writable mapping can still store into it."""
        if not self.dirty:
            return
        self.write_back()
        self.dirty = self._writable_mapped()

    def _writable_mapped(self) -> bool:
        region = self.region
        return any(v.region is region and v.prot & PROT_WRITE
                   for aspace in region.users for v in aspace.vmas)

    # ---- lifetime ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def pinned(self):
        """Keep the FileMap alive across an operation that may drop its last VMA before
        adding the next (mmap over an old mapping of the same file, mremap)."""
        self.pins += 1
        try:
            yield self
        finally:
            self.pins -= 1
            if not self.region.users:
                self.retire()

    def retire(self) -> None:
        """No mapping uses the region any more: write back, then go idle (or free)."""
        if self.pins or self.region.users or self.closed:
            return
        try:
            self.sync()
        except SysError as exc:
            # Like a failed background write-back in Linux: the stores are lost. There is no
            # caller left to tell (munmap and exit succeed regardless).
            log.warning("write-back of a shared file mapping failed: %s", os.strerror(exc.errno))
            self.close()
            return
        except BaseException:
            self.close()
            raise
        self._go_idle()

    def mirrored_bytes(self) -> int:
        return len(self.mirrored) * PAGE

    def _go_idle(self) -> None:
        inode = self.inode
        if _live.get(inode) is self:
            del _live[inode]
        # An unlinked file is kept no longer than its last user needs it.
        if self.dirty or not inode.nlink or self.mirrored_bytes() > IDLE_MAX_BYTES:
            self.close()
            return
        self.filled_under = (inode.size, inode.mtime_ns, inode.ctime_ns)
        older = _idle.get(inode)
        if older is not None and older is not self:
            older.close()             # one idle FileMap per file (another sandbox's, here)
        _idle[inode] = self
        _idle.move_to_end(inode)
        _trim_idle()

    def _take_back(self) -> bool:
        """Leave the idle set for reuse: False (and closed) if the file changed since."""
        _idle.pop(self.inode, None)
        inode = self.inode
        if self.filled_under != (inode.size, inode.mtime_ns, inode.ctime_ns):
            self.close()
            return False
        self.filled_under = None
        return True

    def close(self) -> None:
        """Forget the FileMap: I/O goes straight to the filesystem again."""
        if self.closed:
            return
        self.closed = True
        if _live.get(self.inode) is self:
            del _live[self.inode]
        if _idle.get(self.inode) is self:
            del _idle[self.inode]
        region = self.region
        if not region.users:        # else the sandbox is ending with processes still in it
            self.memfile.release_inplace(region.off, region.npages)
            _spare.setdefault(self.memfile, {}).setdefault(region.npages, []).append(region.off)
        holder, self.holder = self.holder, None
        holder.decref()


def _trim_idle() -> None:
    """Close the least recently used idle FileMaps beyond the bounds."""
    total = sum(fm.mirrored_bytes() for fm in _idle.values())
    while _idle and (len(_idle) > IDLE_MAX_FILES or total > IDLE_MAX_BYTES):
        fm = next(iter(_idle.values()))
        total -= fm.mirrored_bytes()
        fm.close()


def drop_idle(inode) -> None:
    """The file is being changed through the sentry (its idle pages are out of date), or
    is being executed (the idle FileMap's description may be the last writer)."""
    fm = _idle.get(inode)
    if fm is not None:
        fm.close()


def _span_for(memfile, size: int, end: int) -> int:
    want = max(MIN_SPAN, 2 * max(size, end))
    span = 1 << (want - 1).bit_length()
    cap = memfile.size // SPAN_SHARE_OF_MEMFILE
    if span > cap:
        span = max(cap, page_up(end))
    return span


def _data_extents_of_file(inode, lo: int, hi: int):
    """Sub-ranges of [lo, hi) that may hold data in the file (SEEK_DATA/SEEK_HOLE, which
    every filesystem answers at least with "all of it")."""
    pos = lo
    while pos < hi:
        try:
            a = inode.seek_data(pos)
        except SysError as exc:
            if exc.errno == errno.ENXIO:
                return
            yield pos, hi           # no hole information: assume data
            return
        if a >= hi:
            return
        try:
            b = min(inode.seek_hole(a), hi)
        except SysError:
            b = hi
        if b <= a:
            b = hi
        yield a, b
        pos = b


def _views_slice(views, skip: int, n: int) -> list:
    """Memoryviews covering bytes [skip, skip+n) of the concatenation of `views`."""
    out = []
    for v in views:
        if n <= 0:
            break
        if skip >= len(v):
            skip -= len(v)
            continue
        part = v[skip:skip + n]
        skip = 0
        out.append(part)
        n -= len(part)
    return out


# ---- the entry points ---------------------------------------------------------------------
@contextlib.contextmanager
def mapping(desc, memfile, offset: int, length: int):
    """The FileMap of desc's file (created on first use), pinned, with file range
    [offset, offset+length) mirrored: map its region, then leave the block."""
    inode = desc.inode
    fm = _live.get(inode)
    if fm is None:
        idle = _idle.get(inode)
        if idle is not None and idle.memfile is memfile and idle._take_back():
            fm = _live[inode] = idle
    if fm is not None and fm.memfile is not memfile:
        raise SysError(errno.EBUSY)     # mapped by another sandbox living in this process
    if fm is None:
        end = offset + length
        fm = FileMap(inode, memfile, _span_for(memfile, inode.size, end), desc)
        _live[inode] = fm
    with fm.pinned():
        fm.mirror(offset, length)
        yield fm


def read(inode, offset: int, dst) -> int:
    fm = _live.get(inode)
    if fm is None:
        return inode.read(offset, dst)
    return fm.read(offset, dst)


def write(inode, offset: int, src) -> int:
    fm = _live.get(inode)
    if fm is None:
        if _idle:
            drop_idle(inode)
        return inode.write(offset, src)
    old = inode.size
    n = inode.write(offset, src)
    fm.written(old, offset, src, n)
    return n


def resized(inode, old_size: int) -> None:
    """The inode's size was changed (truncate): keep its FileMap, if any, in step."""
    drop_idle(inode)
    fm = _live.get(inode)
    if fm is not None:
        fm.resized(old_size)


def zeroed(inode, lo: int, hi: int) -> None:
    """The filesystem made [lo, hi) of the file read as zeros without a write()
    (fallocate PUNCH_HOLE, ZERO_RANGE): mappings see the zeros too, and the whole pages
    of the range give their memory back."""
    drop_idle(inode)
    fm = _live.get(inode)
    if fm is not None:
        fm._zero(lo, hi)


def sync(inode) -> None:
    """fsync: stores made through shared mappings reach the filesystem."""
    fm = _live.get(inode)
    if fm is not None:
        fm.sync()


def shutdown(memfile) -> None:
    """The sandbox owning `memfile` is ending: write every FileMap back and forget it."""
    for fm in [fm for fm in _idle.values() if fm.memfile is memfile]:
        fm.close()
    for fm in [fm for fm in _live.values() if fm.memfile is memfile]:
        try:
            if fm.dirty:
                fm.write_back()
        except SysError as exc:
            log.warning("write-back of a shared file mapping failed: %s", os.strerror(exc.errno))
        fm.close()
