"""Memory: mmap, munmap, mprotect, mremap, brk, madvise."""
import errno

from ..kernel.errors import SysError
from ..mm.addrspace import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE,
                            MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE, page_up)
from ..mm import filemap
from ..mm.memfile import PAGE
from ..vfs.file import RegularFile
from .table import syscall, PARTIAL

MAP_SHARED_VALIDATE, MAP_GROWSDOWN, MAP_STACK, MAP_NORESERVE = 0x03, 0x100, 0x20000, 0x4000
MAP_POPULATE, MAP_HUGETLB = 0x8000, 0x40000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MADV_DONTNEED, MADV_FREE, MADV_REMOVE = 4, 8, 9
MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK = 10, 11, 18, 19
MADV_DONTNEED_LOCKED = 24
# The advice Linux accepts (madvise_behavior_valid), but for MADV_HWPOISON/SOFT_OFFLINE
# (memory-failure testing on host pages: refused, as by a kernel without
# CONFIG_MEMORY_FAILURE) and the guard-page advice of 6.13 (not modelled).
MADV_VALID = frozenset(range(0, 5)) | frozenset(range(8, 26))
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4


@syscall("mmap", ("ptr", "size", "flags:prot", "flags:map", "fd", "hex"), ret="hex",
         support=PARTIAL,
         note="shared file mappings: file offsets up to the FileMap's span (>= 256 MiB); "
              "no SIGBUS past EOF (zeros); writable MAP_PRIVATE file mappings are copied "
              "at mmap")
def sys_mmap(t, addr, length, prot, flags, fd, off):
    mm = t.mm
    if length == 0 or off % PAGE or addr % PAGE and flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        raise SysError(errno.EINVAL)
    kind = flags & 0x03
    if kind not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise SysError(errno.EINVAL)
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
        raise SysError(errno.EINVAL)
    if flags & MAP_HUGETLB:
        raise SysError(errno.EINVAL)
    length = page_up(length)
    if length >= mm.max_addr:
        raise SysError(errno.ENOMEM)
    desc = None
    if not flags & MAP_ANONYMOUS:
        desc = t.fdtable.get(fd & 0xffffffff)
        if not desc.readable or desc.location is None:
            raise SysError(errno.EACCES if desc.location is not None else errno.ENODEV)
        if kind != MAP_PRIVATE and prot & PROT_WRITE and not desc.writable:
            raise SysError(errno.EACCES)
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr + length > mm.max_addr or addr < 0x1000:
            raise SysError(errno.EPERM if addr < 0x1000 else errno.ENOMEM)
        if flags & MAP_FIXED_NOREPLACE and not flags & MAP_FIXED and mm._overlapping(addr, addr + length):
            raise SysError(errno.EEXIST)
        start = addr
    else:
        start = mm.find_free(length, addr)
    shared = kind != MAP_PRIVATE
    if desc is None:
        mm.map_anon(start, length, prot, shared, b"/dev/zero (deleted)" if shared else b"",
                    enter_now=True)
        return start
    st = desc.stat()
    name = desc.location.path_from(t.fs.root)
    # Shared mappings, and private ones that cannot be written yet (program text), map the
    # file's pages in its FileMap: the latter copy-on-write, so exec after exec of the
    # same libraries reads and stores their text once.
    if isinstance(desc, RegularFile) and (shared or not prot & PROT_WRITE):
        with filemap.mapping(desc, mm.memfile, off, length) as fm:
            mm.map_file_pages(start, length, prot, shared, fm.region, off // PAGE, name, off,
                              st.dev, st.ino, maywrite=desc.writable or not shared)
        return start

    def fill(dst):
        desc.pread_for_mmap(off, dst)
    # A writable MAP_PRIVATE mapping gets a copy of the file's bytes (through its FileMap
    # when it has one, so it sees stores of shared mappings): it is written at once (data,
    # relocations), and a fault per page to copy it would cost more than the copy.
    # A shared mapping of a device (/dev/zero) is shared anonymous memory holding what the
    # device gives.
    mm.map_file_private(start, length, prot, fill, name, off, st.dev, st.ino, shared=shared)
    return start


@syscall("munmap", ("ptr", "size"))
def sys_munmap(t, addr, length, *_):
    t.mm.unmap(addr, length)
    return 0


@syscall("mprotect", ("ptr", "size", "flags:prot"))
def sys_mprotect(t, addr, length, prot, *_):
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | 0x01000000 | 0x02000000):
        raise SysError(errno.EINVAL)
    if length == 0:
        return 0
    t.mm.protect(addr, length, prot & 7)
    return 0


@syscall("brk", ("ptr",), ret="hex")
def sys_brk(t, addr, *_):
    return t.mm.set_brk(addr)


@syscall("madvise", ("ptr", "size", "int"), support=PARTIAL,
         note="DONTNEED/FREE zero private pages, REMOVE zeroes shared anonymous memory (not "
              "a file's), DONTFORK/WIPEONFORK shape fork; hints are accepted; HWPOISON, "
              "SOFT_OFFLINE and the guard-page advice are EINVAL")
def sys_madvise(t, addr, length, advice, *_):
    advice &= 0xffffffff
    advice = advice - (1 << 32) if advice >> 31 else advice
    if advice not in MADV_VALID or addr % PAGE:
        raise SysError(errno.EINVAL)
    end = page_up(addr + length)
    if end >> 64:
        raise SysError(errno.EINVAL)          # the range wraps
    if end == addr:
        return 0
    mm = t.mm
    if advice in (MADV_DONTFORK, MADV_DOFORK):
        mm.advise_fork(addr, end - addr, dontfork=advice == MADV_DONTFORK)
        return 0
    if advice in (MADV_WIPEONFORK, MADV_KEEPONFORK):
        mm.advise_fork(addr, end - addr, wipeonfork=advice == MADV_WIPEONFORK)
        return 0
    hit = mm._overlapping(addr, end)
    if advice in (MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE, MADV_REMOVE):
        # Checked for every VMA before any is changed: Linux stops at the first it refuses.
        for v in hit:
            if advice == MADV_FREE and (v.shared or v.file):
                raise SysError(errno.EINVAL)      # only private anonymous memory
            if advice == MADV_REMOVE:
                if not v.shared:
                    raise SysError(errno.EINVAL)  # only shared (file or shmem) memory
                if not (v.maywrite and v.prot & PROT_WRITE):
                    raise SysError(errno.EACCES)
        for v in hit:
            if v.prot == 0 and advice != MADV_REMOVE:
                continue
            lo, hi = max(v.start, addr), min(v.end, end)
            if not v.shared:
                mm.zero_range(v, lo, hi)
            elif advice == MADV_REMOVE and v.region.filemap is None:
                # Shared anonymous memory is shmem: the pages go back to the host (a hole
                # in the memory file) and read as zero for every sharer, as Linux frees
                # them; nothing is written or allocated.
                off = v.region.off + (v.rpg + ((lo - v.start) >> 12)) * PAGE
                mm.memfile.release_inplace(off, (hi - lo) >> 12)
    if not mm.covers(addr, end):
        raise SysError(errno.ENOMEM)              # a hole in the range, as Linux reports
    return 0


@syscall("mremap", ("ptr", "size", "size", "flags", "ptr"), ret="hex", support=PARTIAL,
         note="moves private and anonymous memory by copying; shared file mappings keep "
              "their pages")
def sys_mremap(t, old, old_len, new_len, flags, new_addr, _a5):
    mm = t.mm
    if old % PAGE or flags & ~7 or new_len == 0:
        raise SysError(errno.EINVAL)
    old_len, new_len = page_up(old_len), page_up(new_len)
    v = mm.find(old)
    if v is None or old + old_len > v.end:
        raise SysError(errno.EFAULT)
    if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
        raise SysError(errno.EINVAL)
    fm = v.region.filemap
    if fm is not None and v.shared:
        return _mremap_shared_file(mm, v, fm, old, old_len, new_len, flags, new_addr)
    if old_len == 0:
        raise SysError(errno.EINVAL)     # duplicating needs a shared mapping
    if new_len <= old_len and not flags & MREMAP_FIXED:
        if new_len < old_len:
            mm.unmap(old + new_len, old_len - new_len)
        return old
    if not flags & MREMAP_FIXED and not mm._overlapping(old + old_len, old + new_len) \
            and old + new_len <= mm.max_addr:
        dest = old
    elif flags & MREMAP_MAYMOVE:
        dest = new_addr if flags & MREMAP_FIXED else mm.find_free(new_len)
    else:
        raise SysError(errno.ENOMEM)
    mm.check_mremap(moving=dest != old)     # before anything changes: the VMA count
    data = mm.read(old, min(old_len, new_len))
    prot, shared, name = v.prot, v.shared, v.name
    mm.unmap(old, old_len)
    nv = mm.map_anon(dest, new_len, prot, shared, name)
    mm.memfile.view[nv.region.off:nv.region.off + len(data)] = data
    return dest


def _mremap_shared_file(mm, v, fm, old, old_len, new_len, flags, new_addr):
    """Resize or move a shared file mapping: the new VMA maps the same FileMap pages (a
    copy would stop sharing them). old_len 0 makes a second mapping of the same pages."""
    if old_len == 0 and not flags & MREMAP_MAYMOVE:
        raise SysError(errno.EINVAL)
    if new_len < old_len and not flags & MREMAP_FIXED:
        mm.unmap(old + new_len, old_len - new_len)
        return old
    if old_len and not flags & MREMAP_FIXED and old + new_len <= mm.max_addr \
            and not mm._overlapping(old + old_len, old + new_len):
        dest = old
    elif flags & MREMAP_MAYMOVE:
        dest = new_addr if flags & MREMAP_FIXED else mm.find_free(new_len)
        if flags & MREMAP_FIXED and (dest % PAGE or dest + new_len > mm.max_addr
                                     or dest < old + old_len and old < dest + new_len):
            raise SysError(errno.EINVAL)
    else:
        raise SysError(errno.ENOMEM)
    mm.check_mremap(moving=dest != old)
    delta = old - v.start
    foff = v.foff + delta
    rpg = v.rpg + (delta >> 12)
    with fm.pinned():
        fm.mirror(rpg * PAGE, new_len)
        if old_len:
            mm.unmap(old, old_len)
        mm.map_file_pages(dest, new_len, v.prot, True, fm.region, rpg, v.name, foff, v.dev,
                          v.ino, maywrite=v.maywrite)
    return dest


@syscall("msync", ("ptr", "size", "flags"), support=PARTIAL,
         note="MS_ASYNC writes back at once, like MS_SYNC; MS_INVALIDATE is a no-op")
def sys_msync(t, addr, length, flags, *_):
    if addr % PAGE or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) \
            or flags & (MS_ASYNC | MS_SYNC) == MS_ASYNC | MS_SYNC:
        raise SysError(errno.EINVAL)
    mm = t.mm
    end = page_up(addr + length)
    if end < addr or end > mm.max_addr:
        raise SysError(errno.ENOMEM)
    covered = addr
    todo = []
    for v in mm._overlapping(addr, end):
        if v.start > covered:
            raise SysError(errno.ENOMEM)      # a hole in the range (Linux checks as it goes)
        covered = v.end
        fm = v.region.filemap
        if fm is not None and v.shared and flags & (MS_ASYNC | MS_SYNC):
            lo, hi = max(v.start, addr), min(v.end, end)
            todo.append((fm, v.rpg * PAGE + (lo - v.start), hi - lo))
    if covered < end:
        raise SysError(errno.ENOMEM)
    for fm, foff, n in todo:
        if fm.dirty:
            fm.write_back(foff, foff + n)
    return 0


def _lock_range(t, addr, length):
    """mlock/munlock's range: the start rounded down to its page (no EINVAL), ENOMEM for
    a hole. Locking itself has no effect here: the memory file is never swapped by the
    sentry (the host may swap it)."""
    end = page_up(addr + length)
    start = addr & ~(PAGE - 1)
    if end >> 64:
        raise SysError(errno.EINVAL)          # the range wraps
    if end > start and not t.mm.covers(start, end):
        raise SysError(errno.ENOMEM)
    return 0


@syscall("mlock", ("ptr", "size"), support=PARTIAL,
         note="ranges are checked; nothing is pinned (the host may swap the memory file)")
def sys_mlock(t, addr, length, *_):
    return _lock_range(t, addr, length)


@syscall("munlock", ("ptr", "size"))
def sys_munlock(t, addr, length, *_):
    return _lock_range(t, addr, length)


MLOCK_ONFAULT = 1
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4


@syscall("mlock2", ("ptr", "size", "flags"), support=PARTIAL,
         note="as mlock: ranges and flags checked, nothing pinned")
def sys_mlock2(t, addr, length, flags, *_):
    if flags & ~MLOCK_ONFAULT:
        raise SysError(errno.EINVAL)
    return _lock_range(t, addr, length)


@syscall("mlockall", ("flags",), support=PARTIAL, note="flags checked, nothing pinned")
def sys_mlockall(t, flags, *_):
    flags &= 0xffffffff
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) \
            or flags == MCL_ONFAULT:
        raise SysError(errno.EINVAL)
    return 0


@syscall("munlockall", ())
def sys_munlockall(t, *_):
    return 0


@syscall("mincore", ("ptr", "size", "ptr"))
def sys_mincore(t, addr, length, vec, *_):
    if addr % PAGE:
        raise SysError(errno.EINVAL)
    n = page_up(length) // PAGE
    if not t.mm.covers(addr, addr + n * PAGE):
        raise SysError(errno.ENOMEM)
    t.mm.write(vec, b"\1" * n)
    return 0
