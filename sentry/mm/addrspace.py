"""Application address spaces: VMAs over runs of the memory file, copy-on-write fork.

Model:
- a Region is a contiguous run of the memory file created for one mmap (or one ELF
  segment, the heap, the stack). Its pages are the VMA's pages, in order. A Region is
  referenced by VMAs of one or more address spaces (after fork); `users` counts VMAs per
  address space;
- a private VMA page whose Region is used by another address space is copy-on-write: the
  first write copies it into a single frame recorded in `Vma.overrides` (frames there are
  refcounted in the MemoryFile, since a later fork shares them too);
- a MAP_SHARED file VMA uses the Region of the file's FileMap (filemap.py), whose page i is
  page i of the file, so every shared mapping of a file in any address space is the same
  memory; `rpg` is then the file page of `start`. Such a VMA never has overrides, and it
  may only become writable if the file was opened for writing (`maywrite`, VM_MAYWRITE).
  A read-only MAP_PRIVATE file VMA (program text) uses that Region too: a FileMap's Region
  always counts as shared with others, so a private VMA over it is copy-on-write;
- the platform's mappings are a cache of this model: VMAs are mapped into the platform on a
  fault (one host mapping for the Region run, plus one per override), or, on a platform
  that maps without a round trip, a fresh writable one when mmap or brk makes it
  (`map_anon`, enter_now); anything mapped there agrees with the model, with permissions
  no wider than it, and nothing is mapped there outside VMAs marked `mapped`. Changes to
  the model (munmap, mprotect, COW break, fork) update the platform before the operation
  returns. A fault maps every VMA not yet mapped, not only the faulting one, in one
  platform batch: a program touches most of its mappings soon (a fresh exec: text, data,
  bss, stack), and one batched round trip costs less than a fault for each.

The VMA count (vm.max_map_count):
- the sandbox presents Linux's limit on VMAs per address space, counted on the model's
  own VMAs so that the answer does not depend on the platform: mmap and brk fail with
  ENOMEM when the count is already above the limit, a split by munmap, mprotect or a
  MAP_FIXED mapping when it would take the count above it, and mremap when the count is
  within 3 of it (Linux's rules, `_check_*`). The limit is `map_limit`;
- a platform whose host has a limit of its own (ptrace: every model VMA is a host VMA
  of the stub) says how many host VMAs the model may use (`host_map_limit`). The model
  then keeps `len(vmas) + 2 * noverrides` under it: each private copy mapped over a VMA
  splits its host mapping into at most two more. `map_limit` is set below that bound with
  room for some copies, and when a copy-on-write break or a new VMA would pass it, VMAs
  with copies are *privatized* (given a Region of their own holding what they show, one
  host mapping again) instead of failing: the program never meets the host's limit, and
  a fault never has to fail for it.
"""
import bisect
import contextlib
import errno
import os

from ..kernel.errors import SysError
from .memfile import PAGE

PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE = 0x01, 0x02
MAP_FIXED, MAP_ANONYMOUS = 0x10, 0x20
MAP_GROWSDOWN, MAP_FIXED_NOREPLACE = 0x0100, 0x100000
SEGV_MAPERR, SEGV_ACCERR = 1, 2

MMAP_MIN_ADDR = 0x10000
USER_PTR_MAX = 0x7ffffffff000      # the highest address Linux's access_ok accepts
COW_HOT_MAX = 16

# vm.max_map_count of the Linux the sandbox presents (Linux's default), unless the sentry's
# environment sets PYSENTRY_MAX_MAP_COUNT (tests use a small one; values below 64 are
# raised to 64 so that a program can still start).
DEFAULT_MAX_MAP_COUNT = 65530
MIN_MAX_MAP_COUNT = 64
# Host VMAs that the map limit leaves over on a platform with a host limit, for private
# copies before the first privatization (each copy may cost two).
COW_MAP_RESERVE = 64
# Bytes of a VMA that a privatization copies without looking for holes (_copy_data).
COPY_WHOLE_MAX = 64 * PAGE
# The largest fresh writable anonymous mapping entered into a platform that maps locally
# when it is made (AddressSpace.map_anon, enter_now) rather than at the next fault.
ENTER_NOW_MAX = 64 << 20


def _sysctl_max_map_count() -> int:
    try:
        value = int(os.environ.get("PYSENTRY_MAX_MAP_COUNT", DEFAULT_MAX_MAP_COUNT))
    except ValueError:
        value = DEFAULT_MAX_MAP_COUNT
    return max(value, MIN_MAX_MAP_COUNT)


SYSCTL_MAX_MAP_COUNT = _sysctl_max_map_count()


def max_map_count(platform_as) -> int:
    """The VMA limit of an address space on this platform: the sysctl value, lowered so
    that the model's VMAs (at most one over the limit, as on Linux) plus room for private
    copies fit the host VMAs the platform has (`host_map_limit`, optional in the seam)."""
    host = getattr(platform_as, "host_map_limit", None)
    if host is None:
        return SYSCTL_MAX_MAP_COUNT
    return max(min(SYSCTL_MAX_MAP_COUNT, host - 1 - COW_MAP_RESERVE), MIN_MAX_MAP_COUNT)


def _batch(pas):
    """The platform's batch() (optional in the seam; test doubles may lack it)."""
    batch = getattr(pas, "batch", None)
    return batch() if batch is not None else contextlib.nullcontext()


def page_down(x: int) -> int:
    return x & ~(PAGE - 1)


def page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


def _note_hot(pages: dict, page: int) -> None:
    pages[page] = None
    if len(pages) > COW_HOT_MAX:
        del pages[next(iter(pages))]


def _copy_data(mf, src: int, dst: int, length: int) -> None:
    """Copy [src, src+length) of the memory file to dst (a fresh run, reading as zeros)
    only where the source holds data: a large mapping touched sparsely is mostly holes,
    and copying those would allocate them. A small one is copied whole: finding the
    holes (lseek over the whole memory file's pages) costs more than copying it."""
    if length <= COPY_WHOLE_MAX:
        mf.view[dst:dst + length] = mf.view[src:src + length]
        return
    for a, b in mf.data_runs(src, src + length):
        mf.view[dst + (a - src):dst + (b - src)] = mf.view[a:b]


class Region:
    __slots__ = ("memfile", "off", "npages", "users")
    filemap = None            # the FileMap owning this Region, for file pages (filemap.py)

    def __init__(self, memfile, npages: int):
        self.memfile = memfile
        self.off = memfile.alloc(npages)
        self.npages = npages
        self.users: dict = {}

    def add_user(self, aspace):
        self.users[aspace] = self.users.get(aspace, 0) + 1

    def drop_user(self, aspace):
        n = self.users.get(aspace, 0) - 1
        if n > 0:
            self.users[aspace] = n
            return
        self.users.pop(aspace, None)
        if not self.users:
            self.last_user_gone()

    def last_user_gone(self):
        """Anonymous memory: nobody maps it any more, so it goes back to the host."""
        self.memfile.release(self.off, self.npages)

    def shared_with_others(self, aspace) -> bool:
        return len(self.users) > 1 or aspace not in self.users

    def note_writable(self):
        """A shared VMA that can store into this Region appeared (a FileMap must then be
        written back; anonymous memory has nothing to do)."""


class Vma:
    __slots__ = ("start", "end", "prot", "shared", "region", "rpg", "overrides", "name",
                 "file", "foff", "dev", "ino", "mapped", "growsdown", "maywrite",
                 "dontfork", "wipeonfork")

    def __init__(self, start, end, prot, shared, region, rpg, name=b"", file=None, foff=0,
                 dev=0, ino=0):
        self.start, self.end, self.prot, self.shared = start, end, prot, shared
        self.region, self.rpg = region, rpg       # rpg: page index of `start` inside region
        self.overrides: dict[int, int] = {}       # page address -> private frame offset
        self.name, self.file, self.foff, self.dev, self.ino = name, file, foff, dev, ino
        self.mapped = False
        self.growsdown = False
        self.maywrite = True      # mprotect may add PROT_WRITE (false: shared, read-only fd)
        self.dontfork = False     # MADV_DONTFORK: a fork's child does not get this range
        self.wipeonfork = False   # MADV_WIPEONFORK: a fork's child gets it zero-filled

    def frame(self, addr: int) -> int:
        f = self.overrides.get(addr)
        if f is not None:
            return f
        return self.region.off + (self.rpg + ((addr - self.start) >> 12)) * PAGE

    def clone_for(self, start, end):
        """The part [start, end) of this VMA as a new Vma object (same Region)."""
        v = Vma(start, end, self.prot, self.shared, self.region,
                self.rpg + ((start - self.start) >> 12), self.name, self.file,
                self.foff + (start - self.start) if self.file is not None else self.foff,
                self.dev, self.ino)
        v.overrides = {a: f for a, f in self.overrides.items() if start <= a < end}
        v.growsdown = self.growsdown
        v.maywrite = self.maywrite
        v.dontfork = self.dontfork
        v.wipeonfork = self.wipeonfork
        return v

    def continues(self, a: "Vma") -> bool:
        """Whether this VMA starts where `a` ends and is the same mapping continued (same
        Region pages in order, same attributes), so that the two may be one VMA, as Linux
        merges them (vma_merge)."""
        return (a.end == self.start and a.region is self.region
                and self.rpg == a.rpg + ((a.end - a.start) >> 12)
                and a.prot == self.prot and a.shared == self.shared and a.name == self.name
                and a.file == self.file and a.dev == self.dev and a.ino == self.ino
                and (a.file is None or self.foff == a.foff + (a.end - a.start))
                and a.mapped == self.mapped and a.growsdown == self.growsdown
                and a.maywrite == self.maywrite and a.dontfork == self.dontfork
                and a.wipeonfork == self.wipeonfork)


class AddressSpace:
    def __init__(self, memfile, platform_as, max_addr: int):
        self.memfile = memfile
        self.pas = platform_as
        self.max_addr = max_addr
        self.vmas: list[Vma] = []
        self._starts: list[int] = []
        self.map_limit = max_map_count(platform_as)
        # Host VMAs the model may use (None: the platform has no such limit), and the
        # number of private copies in all VMAs (`Vma.overrides`), kept together under it.
        self.host_map_budget = getattr(platform_as, "host_map_limit", None)
        self.noverrides = 0
        self.brk_start = self.brk = 0
        self.mmap_base = page_down(max_addr - (1 << 32))   # below stack + gap
        self.stack_top = 0
        self.users = 1            # tasks (threads/vfork children) running in it
        self.exe_name = b""
        self.arg_start = self.arg_end = self.env_start = self.env_end = 0
        self.auxv = b""
        self.start_code = self.end_code = self.start_data = self.end_data = 0
        self.start_stack = 0
        self.exe_location = None
        # Pages whose copy-on-write copies were made on faults (insertion-ordered, bounded):
        # after the next fork they are copied at once instead (fork(); the parent of a
        # fork+exec loop stores into the same few pages every time).
        self.cow_hot: dict[int, None] = {}
        # The same for the pages our fork children copied (`cow_sink` of a child is its
        # parent's `child_cow_hot`): a child's first stores are as predictable.
        self.child_cow_hot: dict[int, None] = {}
        self.cow_sink: dict[int, None] | None = None

    # ---- VMA bookkeeping -------------------------------------------------------------
    def _index(self):
        self._starts = [v.start for v in self.vmas]

    def find(self, addr: int) -> Vma | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            v = self.vmas[i]
            if addr < v.end:
                return v
        return None

    def _insert(self, v: Vma):
        i = bisect.bisect_left(self._starts, v.start)
        self.vmas.insert(i, v)
        self._starts.insert(i, v.start)
        v.region.add_user(self)
        if v.shared and v.prot & PROT_WRITE:
            v.region.note_writable()

    def _overlapping(self, start, end) -> list[Vma]:
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        out = []
        while i < len(self.vmas) and self.vmas[i].start < end:
            if self.vmas[i].end > start:
                out.append(self.vmas[i])
            i += 1
        return out

    def _remove_range(self, start, end, release_platform=True):
        """Remove [start, end) from the model (and the platform), splitting VMAs at edges."""
        hit = self._overlapping(start, end)
        if not hit:
            return
        platform_has_some = any(v.mapped for v in hit)
        for v in hit:
            i = self.vmas.index(v)
            del self.vmas[i]
            del self._starts[i]
            keep = []
            if v.start < start:
                keep.append(v.clone_for(v.start, start))
            if v.end > end:
                keep.append(v.clone_for(end, v.end))
            gone_lo, gone_hi = max(v.start, start), min(v.end, end)
            for a, f in list(v.overrides.items()):
                if gone_lo <= a < gone_hi:
                    self.memfile.frame_unref(f)
                    self.noverrides -= 1
            for k in keep:
                k.mapped = v.mapped
                self._insert(k)
            # Exclusively owned base pages that nobody maps any more go back to the host.
            # When this drop is the anonymous Region's last use, drop_user releases the whole
            # run instead, and the memory file may recycle it with its pages still resident.
            last_use = (not keep and v.region.filemap is None
                        and v.region.users.get(self) == 1 and len(v.region.users) == 1)
            if not last_use and not v.region.shared_with_others(self) and not v.shared:
                off = v.region.off + (v.rpg + ((gone_lo - v.start) >> 12)) * PAGE
                self.memfile.release_inplace(off, (gone_hi - gone_lo) >> 12)
            v.region.drop_user(self)
        if release_platform and platform_has_some:
            self.pas.unmap(start, end - start)

    # ---- the VMA count (vm.max_map_count) ---------------------------------------------
    def _splits_inside(self, start: int, end: int) -> int:
        """1 if removing [start, end) leaves a piece of one VMA on each side (one VMA
        more), else 0."""
        v = self.find(start)
        return 1 if v is not None and v.start < start and end < v.end else 0

    def _check_new_vma(self, start: int, end: int) -> None:
        """Before a new mapping at [start, end), as Linux's mmap and brk: ENOMEM if the
        count is already above the limit, or if replacing what is there would split a VMA
        with the count at the limit. Then room for it among the host's VMAs."""
        n = len(self.vmas)
        split = self._splits_inside(start, end)
        if n > self.map_limit or split and n >= self.map_limit:
            raise SysError(errno.ENOMEM)
        self._make_host_room(split + 1)

    def _check_splits(self, nsplits: int) -> None:
        """Splits by munmap or mprotect may not take the count above the limit (Linux
        refuses each split made with the count at the limit)."""
        if nsplits and len(self.vmas) + nsplits > self.map_limit:
            raise SysError(errno.ENOMEM)
        self._make_host_room(nsplits)

    def check_mremap(self, moving: bool) -> None:
        """Before mremap changes anything: a move needs the count 3 below the limit, as
        Linux's move_vma does; a growth in place maps a new VMA (checked as mmap)."""
        n = len(self.vmas)
        if n >= self.map_limit - 3 if moving else n > self.map_limit:
            raise SysError(errno.ENOMEM)

    def _host_overflow(self, vmas_added: int, overrides_added: int = 0) -> int:
        """How many host VMAs the model would need beyond the platform's budget (<= 0:
        it fits)."""
        if self.host_map_budget is None:
            return 0
        return (len(self.vmas) + vmas_added + 2 * (self.noverrides + overrides_added)
                - self.host_map_budget)

    def _make_host_room(self, vmas_added: int) -> None:
        """Privatize VMAs with private copies, most copies first, until the host's VMAs
        can take `vmas_added` more. Always possible: the map limit is below the budget.
        It frees COW_MAP_RESERVE more than needed, so that the scan of every VMA is not
        made again for each new VMA or copy of a program that stays at the limit."""
        need = self._host_overflow(vmas_added)
        if need <= 0:
            return
        need += COW_MAP_RESERVE
        for v in sorted((v for v in self.vmas if v.overrides),
                        key=lambda v: len(v.overrides), reverse=True):
            need -= 2 * len(v.overrides)
            self._privatize(v)
            if need <= 0:
                return

    def _privatize(self, v: Vma) -> None:
        """Give private VMA v a Region of its own holding what it shows now, its private
        copies folded in: one host mapping again, instead of up to 1 + 2 per copy. This
        is copy-on-write done early for the whole VMA; only the copies the host's VMA
        limit would otherwise make impossible are done this way. Never inside a platform
        batch(): the write-protection below must be in force before the copy, or a store
        by another thread of ours in between would be lost."""
        mf = self.memfile
        length = v.end - v.start
        if v.mapped and v.prot & PROT_WRITE:
            self.pas.protect(v.start, length, v.prot & ~PROT_WRITE)
        region = Region(mf, length >> 12)
        src = v.region.off + v.rpg * PAGE
        _copy_data(mf, src, region.off, length)
        for a, f in v.overrides.items():
            dst = region.off + (a - v.start)
            mf.view[dst:dst + PAGE] = mf.view[f:f + PAGE]
            mf.frame_unref(f)
        self.noverrides -= len(v.overrides)
        v.overrides = {}
        old = v.region
        v.region, v.rpg = region, 0
        region.add_user(self)
        # As in _remove_range: base pages of ours alone that nobody maps any more go back
        # to the host, unless dropping the Region's last use releases all of it.
        last_use = old.filemap is None and old.users.get(self) == 1 and len(old.users) == 1
        if not last_use and old.filemap is None and not old.shared_with_others(self):
            mf.release_inplace(src, length >> 12)
        old.drop_user(self)
        if v.mapped:
            self.pas.map_memfile(v.start, length, region.off, v.prot)

    # ---- placement -------------------------------------------------------------------
    def find_free(self, length: int, hint: int = 0) -> int:
        if hint:
            hint = page_down(hint)
            if (MMAP_MIN_ADDR <= hint and hint + length <= self.max_addr
                    and not self._overlapping(hint, hint + length)):
                return hint
        top = self.mmap_base
        for v in reversed(self.vmas):
            if v.start >= top:
                continue
            if v.end <= top - length:
                if top - length >= MMAP_MIN_ADDR:
                    return top - length
            top = min(top, v.start)
        if top - length >= MMAP_MIN_ADDR:
            return top - length
        raise SysError(errno.ENOMEM)

    # ---- mapping operations ----------------------------------------------------------
    def map_anon(self, addr: int, length: int, prot: int, shared: bool, name=b"",
                 fixed=True, enter_now=False) -> Vma:
        """Place a fresh zero-filled VMA at exactly [addr, addr+length).

        enter_now (mmap and brk of the program): a writable one of at most ENTER_NOW_MAX is
        entered at once into a platform whose mappings need no round trip to a host
        (`maps_locally`, KVM). The program's next step is to store into it, and that first
        store would otherwise be a fault round trip only to enter it (KVM: ~0.1 ms; the
        price is a guest write to take the entries away if it is unmapped untouched).
        Larger ones are left to the next fault: a big reservation is more often trimmed or
        mprotected before use. On ptrace entering costs a round trip to the stub, as much
        as the fault it spares, and more when the mapping goes untouched: not done."""
        self._check_new_vma(addr, addr + length)
        self._remove_range(addr, addr + length)
        region = Region(self.memfile, length >> 12)
        v = Vma(addr, addr + length, prot, shared, region, 0, name)
        self._insert(v)
        if (enter_now and prot & PROT_WRITE and length <= ENTER_NOW_MAX
                and getattr(self.pas, "maps_locally", False)):
            self._map_into_platform(v)
        return v

    def map_file_private(self, addr, length, prot, fill, name, foff, dev, ino, shared=False):
        """A file-backed mapping: the file's bytes are copied into a fresh Region by
        `fill(dst_memoryview)`; bytes past the file's end stay zero."""
        v = self.map_anon(addr, length, prot, shared, name)
        v.file, v.foff, v.dev, v.ino = True, foff, dev, ino
        fill(self.memfile.view[v.region.off:v.region.off + length])
        return v

    def map_file_pages(self, addr, length, prot, shared, region, rpg, name, foff, dev, ino,
                       maywrite: bool = True) -> Vma:
        """A file mapping over a FileMap's region from file page rpg on: MAP_SHARED, or
        MAP_PRIVATE (then copy-on-write over the file's pages)."""
        if rpg + (length >> 12) > region.npages:
            raise SysError(errno.ENOMEM)
        self._check_new_vma(addr, addr + length)
        self._remove_range(addr, addr + length)
        v = Vma(addr, addr + length, prot, shared, region, rpg, name, True, foff, dev, ino)
        v.maywrite = maywrite
        self._insert(v)
        return v

    def unmap(self, addr: int, length: int):
        if addr % PAGE or length <= 0:
            raise SysError(errno.EINVAL)
        end = page_up(addr + length)
        if end > self.max_addr:
            raise SysError(errno.EINVAL)
        self._check_splits(self._splits_inside(addr, end))
        self._remove_range(addr, end)

    def protect(self, addr: int, length: int, prot: int):
        if addr % PAGE:
            raise SysError(errno.EINVAL)
        end = page_up(addr + length)
        if not self.covers(addr, end):
            raise SysError(errno.ENOMEM)         # Linux: any part of the range unmapped
        hit = self._overlapping(addr, end)
        if prot & PROT_WRITE and any(not v.maywrite for v in hit):
            raise SysError(errno.EACCES)
        # VMAs that already have the protection are left whole, as Linux leaves them.
        hit = [v for v in hit if v.prot != prot]
        self._check_splits(sum((v.start < addr) + (end < v.end) for v in hit))
        for v in hit:
            self._split_at(v, addr, end)
        for v in self._overlapping(addr, end):
            if v.prot == prot:
                continue
            v.prot = prot
            if v.shared and prot & PROT_WRITE:
                v.region.note_writable()
            if v.mapped:
                self.pas.protect(v.start, v.end - v.start, self._platform_prot(v))
                self._fix_override_prots(v)
        self._merge_around(addr, end)

    def _split_at(self, v: Vma, lo: int, hi: int):
        """Split v so that lo and hi (when inside v) are VMA boundaries."""
        parts = []
        cuts = sorted({c for c in (lo, hi) if v.start < c < v.end})
        if not cuts:
            return
        bounds = [v.start] + cuts + [v.end]
        i = self.vmas.index(v)
        del self.vmas[i]
        del self._starts[i]
        for a, b in zip(bounds, bounds[1:]):
            p = v.clone_for(a, b)
            p.mapped = v.mapped
            parts.append(p)
        for p in parts:
            self._insert(p)
        v.region.drop_user(self)

    def _merge_around(self, start: int, end: int) -> None:
        """Join the VMAs touching [start, end) with their neighbours where one continues
        the other (a range split by mprotect or madvise and set back): Linux merges them,
        and an mremap or the VMA count sees one VMA. Only the model changes: the platform
        maps ranges, not VMAs. `mapped` must agree (continues()), so the platform state
        of the joined VMA stays exact."""
        i = max(bisect.bisect_right(self._starts, start) - 2, 0)
        while i + 1 < len(self.vmas) and self.vmas[i].start <= end:
            a, b = self.vmas[i], self.vmas[i + 1]
            if b.continues(a):
                a.end = b.end
                a.overrides.update(b.overrides)
                del self.vmas[i + 1]
                del self._starts[i + 1]
                b.region.drop_user(self)        # a still uses it: nothing is released
                continue
            i += 1

    def advise_fork(self, addr: int, length: int, dontfork=None, wipeonfork=None) -> None:
        """MADV_[DONT|DO]FORK and MADV_[WIPE|KEEP]ONFORK over [addr, addr+length): the
        VMAs are split to the range and marked; WIPEONFORK only on private anonymous
        memory (EINVAL). Like madvise, the mapped parts are changed and a hole in the
        range is then ENOMEM."""
        end = addr + length
        hit = self._overlapping(addr, end)
        if wipeonfork and any(v.shared or v.file for v in hit):
            raise SysError(errno.EINVAL)
        hit = [v for v in hit if (dontfork is not None and v.dontfork != dontfork)
               or (wipeonfork is not None and v.wipeonfork != wipeonfork)]
        self._check_splits(sum((v.start < addr) + (end < v.end) for v in hit))
        for v in hit:
            self._split_at(v, addr, end)
        for v in self._overlapping(addr, end):
            if dontfork is not None:
                v.dontfork = dontfork
            if wipeonfork is not None:
                v.wipeonfork = wipeonfork
        self._merge_around(addr, end)
        if not self.covers(addr, end):
            raise SysError(errno.ENOMEM)

    def covers(self, start: int, end: int) -> bool:
        """Whether every page of [start, end) is in some VMA."""
        covered = start
        for v in self._overlapping(start, end):
            if v.start > covered:
                return False
            covered = v.end
        return covered >= end

    def _platform_prot(self, v: Vma) -> int:
        prot = v.prot
        if prot & PROT_WRITE and not v.shared and v.region.shared_with_others(self):
            prot &= ~PROT_WRITE
        return prot

    def _fix_override_prots(self, v: Vma):
        if not v.overrides:
            return
        with _batch(self.pas):
            for a, f in v.overrides.items():
                prot = v.prot
                if self.memfile.frame_shared(f) and not v.shared:
                    prot &= ~PROT_WRITE
                self.pas.map_memfile(a, PAGE, f, prot)

    def _map_into_platform(self, v: Vma):
        base = v.region.off + v.rpg * PAGE
        self.pas.map_memfile(v.start, v.end - v.start, base, self._platform_prot(v))
        if v.overrides:
            self._fix_override_prots(v)
        v.mapped = True

    def map_all(self):
        """Map every VMA not yet mapped (PROT_NONE ones never are), in one platform batch,
        when the platform says that is cheap (`map_ahead`); otherwise leave them to faults."""
        if not getattr(self.pas, "map_ahead", False):
            return
        with _batch(self.pas):
            for u in self.vmas:
                if not u.mapped and u.prot != PROT_NONE:
                    self._map_into_platform(u)

    # ---- faults ----------------------------------------------------------------------
    def handle_fault(self, addr: int, code: int) -> bool:
        """Make the faulting access succeed if the model allows it; False means SIGSEGV.
        So it is too when the memory for it cannot be had: the memory file is full, or
        the host refused a mapping (`dropped_ranges`, ptrace), which would otherwise
        fault again at once, forever."""
        v = self.find(addr)
        if v is None or v.prot == PROT_NONE:
            return False
        dropped = getattr(self.pas, "dropped_ranges", 0)
        try:
            ok = self._resolve_fault(v, addr, code)
        except SysError:
            return False
        return ok and getattr(self.pas, "dropped_ranges", 0) == dropped

    def _resolve_fault(self, v: Vma, addr: int, code: int) -> bool:
        if not v.mapped:
            if getattr(self.pas, "map_ahead", False):
                self.map_all()
            else:
                self._map_into_platform(v)
            return True
        if code == SEGV_MAPERR and getattr(self.pas, "dropped_ranges", 0):
            # Mapped in the model, yet the platform has nothing there: it dropped the
            # range (the host refused to map it). Map the VMA again as the model says.
            self._map_into_platform(v)
            return True
        if not (v.prot & PROT_WRITE):
            return False
        if v.shared:
            # Shared pages are never copy-on-write: the platform lost or narrowed the
            # mapping behind the model's back; map it again as the model says.
            self._map_into_platform(v)
            return True
        # Mapped, writable in the model, yet it faulted: a write to a COW-protected page.
        page = page_down(addr)
        self._break_cow(v, page)
        return True

    def _break_cow(self, v: Vma, page: int):
        mf = self.memfile
        f = v.overrides.get(page)
        if f is not None and not mf.frame_shared(f):
            self.pas.map_memfile(page, PAGE, f, v.prot)
            return
        if f is None and not v.region.shared_with_others(self):
            # Region exclusively ours again (the other process exited or exec'd):
            # upgrade the whole VMA in one go.
            self.pas.protect(v.start, v.end - v.start, v.prot)
            self._fix_override_prots(v)
            return
        if f is None and self._host_overflow(0, 1) > 0:
            # One more copy would pass the host's VMA limit: copy the whole VMA instead
            # (then mapped writable, as it is ours alone).
            self._privatize(v)
            return
        old = v.frame(page)
        new = mf.alloc(1)
        mf.view[new:new + PAGE] = mf.view[old:old + PAGE]
        if f is not None:
            mf.frame_unref(f)
        else:
            self.noverrides += 1
        v.overrides[page] = new
        self.pas.map_memfile(page, PAGE, new, v.prot)
        _note_hot(self.cow_hot, page)
        if self.cow_sink is not None:
            _note_hot(self.cow_sink, page)

    def _precopy(self, page: int):
        """Break copy-on-write of one page now, if it is private, writable and shared."""
        v = self.find(page)
        if v is None or v.shared or not v.prot & PROT_WRITE:
            return
        f = v.overrides.get(page)
        if f is None and self._host_overflow(0, 1) > 0:
            return        # it would privatize v, inside fork's batch: leave it to a fault
        if f is not None and self.memfile.frame_shared(f) or (
                f is None and v.region.shared_with_others(self)):
            self._break_cow_for_kernel(v, page)

    # ---- fork ------------------------------------------------------------------------
    def fork(self, platform_as, sp: int | None = None) -> "AddressSpace":
        """The child's copy-on-write copy. `sp`, the forking thread's stack pointer: both
        sides store on that stack page at once, so it is copied now rather than on the
        first fault of each (with the parent's recently copied pages, `cow_hot`)."""
        child = AddressSpace(self.memfile, platform_as, self.max_addr)
        for attr in ("brk_start", "brk", "mmap_base", "stack_top", "exe_name", "arg_start",
                     "arg_end", "env_start", "env_end", "auxv", "start_code", "end_code",
                     "start_data", "end_data", "start_stack", "exe_location"):
            setattr(child, attr, getattr(self, attr))
        for v in self.vmas:
            if v.dontfork:
                continue
            if v.wipeonfork:
                # The child's range is fresh zero-filled memory (it keeps the flag).
                c = Vma(v.start, v.end, v.prot, False, Region(self.memfile, (v.end - v.start) >> 12),
                        0, v.name)
                c.growsdown, c.wipeonfork = v.growsdown, True
                child._insert(c)
                continue
            c = v.clone_for(v.start, v.end)
            for f in c.overrides.values():
                self.memfile.frame_ref(f)
            child._insert(c)
            child.noverrides += len(c.overrides)
        # Our private writable mappings become copy-on-write.
        with _batch(self.pas):
            for v in self.vmas:
                if v.mapped and not v.shared and v.prot & PROT_WRITE:
                    self.pas.protect(v.start, v.end - v.start, v.prot & ~PROT_WRITE)
        # Pre-copies only once the write-protection is in force: other threads of ours
        # keep running, and a store they made between a copy and the protection would be
        # lost to our side (it would land in the page the child keeps).
        if sp is not None:
            with _batch(self.pas):
                for page in {**self.cow_hot, page_down(sp): None}:
                    self._precopy(page)
                for page in {**self.child_cow_hot, page_down(sp): None}:
                    child._precopy(page)
        child.cow_sink = self.child_cow_hot
        return child

    def release(self):
        for v in self.vmas:
            for f in v.overrides.values():
                self.memfile.frame_unref(f)
            v.region.drop_user(self)
        self.vmas = []
        self._starts = []
        self.noverrides = 0
        self.pas.release()

    def zero_range(self, v: Vma, lo: int, hi: int):
        """MADV_DONTNEED on a private mapping: anonymous pages read as zero afterwards;
        pages over a FileMap drop their private copies and show the file again."""
        for a in [a for a in v.overrides if lo <= a < hi]:
            self.memfile.frame_unref(v.overrides.pop(a))
            self.noverrides -= 1
        if (v.region.filemap is None and v.region.shared_with_others(self)
                and self._host_overflow(0, (hi - lo) >> 12) > 0):
            # A zero copy per page would pass the host's VMA limit: the VMA gets a Region
            # of its own instead, whose pages in the range are then given back.
            self._privatize(v)
        if v.region.filemap is not None:
            pass
        elif v.region.shared_with_others(self):
            for a in range(lo, hi, PAGE):
                f = self.memfile.alloc(1)
                v.overrides[a] = f
            self.noverrides += (hi - lo) >> 12
        else:
            off = v.region.off + (v.rpg + ((lo - v.start) >> 12)) * PAGE
            self.memfile.release_inplace(off, (hi - lo) >> 12)
        if v.mapped:
            self.pas.unmap(lo, hi - lo)
            self.pas.map_memfile(lo, hi - lo, v.region.off + (v.rpg + ((lo - v.start) >> 12)) * PAGE,
                                 self._platform_prot(v))
            for a in range(lo, hi, PAGE):
                if a in v.overrides:
                    self.pas.map_memfile(a, PAGE, v.overrides[a], v.prot)

    # ---- brk -------------------------------------------------------------------------
    def set_brk(self, new: int) -> int:
        if new < self.brk_start:
            return self.brk
        old_top, new_top = page_up(self.brk), page_up(new)
        if new_top > old_top:
            if self._overlapping(old_top, new_top):
                return self.brk
            try:
                self.map_anon(old_top, new_top - old_top, PROT_READ | PROT_WRITE, False,
                              b"[heap]", enter_now=True)
            except SysError:
                return self.brk         # brk(2) fails by returning the old break
        elif new_top < old_top:
            self._remove_range(new_top, old_top)
        self.brk = new
        return new

    # ---- access from the kernel (copy-in / copy-out) ---------------------------------
    def _page_frame(self, page: int, write: bool) -> int:
        v = self.find(page)
        if v is None:
            raise SysError(errno.EFAULT)
        if write:
            if not v.prot & PROT_WRITE:
                raise SysError(errno.EFAULT)
            if not v.shared:
                f = v.overrides.get(page)
                shared = (self.memfile.frame_shared(f) if f is not None
                          else v.region.shared_with_others(self))
                if shared:
                    self._break_cow_for_kernel(v, page)
        elif v.prot == PROT_NONE:
            raise SysError(errno.EFAULT)
        return v.frame(page)

    def _break_cow_for_kernel(self, v, page):
        if v.mapped:
            self._break_cow(v, page)
            return
        mf = self.memfile
        f = v.overrides.get(page)
        if f is None and self._host_overflow(0, 1) > 0:
            self._privatize(v)              # as in _break_cow
            return
        old = v.frame(page)
        new = mf.alloc(1)
        mf.view[new:new + PAGE] = mf.view[old:old + PAGE]
        if f is not None:
            mf.frame_unref(f)
        else:
            self.noverrides += 1
        v.overrides[page] = new

    def private_code_frame(self, addr: int) -> int | None:
        """The memory-file offset of the frame holding addr's page, once that frame is this
        address space's alone, for a platform that patches the program's code in place (KVM
        rewrites trapped syscall sites; on Linux ptrace's POKETEXT breaks copy-on-write of a
        text page the same way). None when the page must not be patched: unmapped,
        PROT_NONE, or MAP_SHARED (the bytes would reach the file and every other mapping of
        it). A page still the file's, or shared with another address space since a fork, is
        copied first; the copy then goes with the VMA (fork shares it copy-on-write again,
        munmap/mprotect/exec treat it as any private copy)."""
        page = page_down(addr)
        v = self.find(page)
        if v is None or v.shared or v.prot == PROT_NONE:
            return None
        f = v.overrides.get(page)
        shared = (self.memfile.frame_shared(f) if f is not None
                  else v.region.shared_with_others(self))
        if shared:
            self._break_cow_for_kernel(v, page)
        return v.frame(page)

    def views(self, addr: int, length: int, write: bool, partial: bool = False) -> list:
        """Memoryviews over [addr, addr+length) in the memory file, split at page frames
        (contiguous frames are merged). EFAULT if any byte is not accessible; with
        `partial`, only if the first one is not: a range that becomes inaccessible part-way
        gives the views of its accessible beginning (what Linux's copy routines deliver
        before they fault, so that read/write return a short count)."""
        if length <= 0:
            return []
        end = addr + length
        if addr < 0 or end > self.max_addr:
            # A range reaching past user space is EFAULT as a whole, partial or not (Linux's
            # access_ok refuses it before copying anything).
            raise SysError(errno.EFAULT)
        # Fast path, the common case of a syscall buffer: the range lies in one VMA with no
        # private copies and nothing to break, so it is one run of the memory file.
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            v = self.vmas[i]
            if (end <= v.end and not v.overrides and v.prot != PROT_NONE
                    and (not write or (v.prot & PROT_WRITE
                                       and (v.shared or not v.region.shared_with_others(self))))):
                off = v.region.off + v.rpg * PAGE + (addr - v.start)
                return [self.memfile.view[off:off + length]]
        return self._views_by_pieces(addr, end, write, partial)

    def _views_by_pieces(self, addr: int, end: int, write: bool, partial: bool) -> list:
        """views() across VMAs, private copies or copy-on-write pages."""
        pieces = []               # (memory-file offset, length), in address order
        try:
            self._collect_pieces(pieces, addr, end, write)
        except SysError as e:
            # The pieces collected so far are the accessible beginning of the range.
            if not (partial and e.errno == errno.EFAULT and pieces):
                raise
        # Merge pieces that are contiguous in the memory file into one view each.
        mv = self.memfile.view
        off, ln = pieces[0]
        if len(pieces) == 1:
            return [mv[off:off + ln]]
        out = []
        for f, n in pieces[1:]:
            if off + ln == f:
                ln += n
            else:
                out.append(mv[off:off + ln])
                off, ln = f, n
        out.append(mv[off:off + ln])
        return out

    def _collect_pieces(self, pieces: list, cur: int, end: int, write: bool) -> None:
        """Append (memory-file offset, length) pieces for [cur, end) in address order,
        breaking copy-on-write for kernel stores; EFAULT at the first inaccessible page."""
        while cur < end:
            v = self.find(cur)
            if v is None:
                raise SysError(errno.EFAULT)
            stop = min(end, v.end)
            if (not v.overrides and v.prot != PROT_NONE
                    and (not write or (v.prot & PROT_WRITE
                                       and (v.shared or not v.region.shared_with_others(self))))):
                # No private copies and nothing to break: the part of the range inside
                # this VMA is one run of the memory file.
                pieces.append((v.region.off + v.rpg * PAGE + (cur - v.start), stop - cur))
                cur = stop
                continue
            # Page by page inside this VMA (private copies, or copy-on-write to break for a
            # store): the checks of _page_frame, made once for the VMA.
            if write:
                if not v.prot & PROT_WRITE:
                    raise SysError(errno.EFAULT)
                breaks = not v.shared
                region_shared = breaks and v.region.shared_with_others(self)
            elif v.prot == PROT_NONE:
                raise SysError(errno.EFAULT)
            else:
                breaks = False
            frame_shared = self.memfile.frame_shared
            first, mark, region = cur, len(pieces), v.region
            ov, base = v.overrides, region.off + v.rpg * PAGE - v.start    # as Vma.frame
            page = page_down(cur)
            while cur < stop:
                n = min(page + PAGE, stop) - cur
                f = ov.get(page)
                if breaks and (frame_shared(f) if f is not None else region_shared):
                    self._break_cow_for_kernel(v, page)
                    if v.region is not region:
                        # Privatized (the host's VMA limit): the frames taken so far in
                        # this VMA were freed. Start it again on its new Region.
                        del pieces[mark:]
                        cur, region, region_shared = first, v.region, False
                        ov, base = v.overrides, region.off + v.rpg * PAGE - v.start
                        page = page_down(cur)
                        continue
                    f = ov.get(page)
                pieces.append(((base + page if f is None else f) + (cur - page), n))
                cur += n
                page += PAGE

    def read(self, addr: int, length: int) -> bytes:
        vs = self.views(addr, length, False)
        return vs[0].tobytes() if len(vs) == 1 else b"".join(vs)

    def write(self, addr: int, data) -> None:
        data = memoryview(data)
        pos = 0
        for v in self.views(addr, len(data), True):
            v[:] = data[pos:pos + len(v)]
            pos += len(v)

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string; ENAMETOOLONG past `limit`, EFAULT on bad memory."""
        out = bytearray()
        while True:
            chunk_len = PAGE - (addr % PAGE)
            chunk = self.read(addr, chunk_len)
            i = chunk.find(b"\0")
            if i >= 0:
                out += chunk[:i]
                if len(out) >= limit:
                    raise SysError(errno.ENAMETOOLONG)
                return bytes(out)
            out += chunk
            if len(out) >= limit:
                raise SysError(errno.ENAMETOOLONG)
            addr += chunk_len

    # ---- /proc/PID/maps ----------------------------------------------------------------
    def maps_text(self) -> bytes:
        lines = []
        for v in self.vmas:
            perms = (("r" if v.prot & PROT_READ else "-") + ("w" if v.prot & PROT_WRITE else "-")
                     + ("x" if v.prot & PROT_EXEC else "-") + ("s" if v.shared else "p"))
            dev = f"{(v.dev >> 8) & 0xfff:02x}:{v.dev & 0xff:02x}" if v.file else "00:00"
            head = (f"{v.start:08x}-{v.end:08x} {perms} {v.foff if v.file else 0:08x} {dev} "
                    f"{v.ino if v.file else 0}")
            name = v.name.decode("utf-8", "surrogateescape")
            lines.append(head + (" " * max(1, 73 - len(head)) + name if name else ""))
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape") if lines else b""
