"""ELF loading, planning half: parse an x86-64 executable and say what to map where.

Pure functions, no memory manager: `parse_elf` turns the first bytes of a file (plus a
reader for the rest) into an `ElfImage`; `plan_load` turns an image and a load bias into
the list of `Mapping`s execve must create; `parse_shebang` handles `#!` scripts. The
caller (execve) owns lookups, permission checks, choosing the bias and the actual mapping.

Everything read from the file is adversarial: any malformation is reported as
SysError(ENOEXEC), never as an IndexError/struct.error escaping from here. The checks are
those Linux's fs/binfmt_elf.c makes plus the ones a copying loader needs to stay in bounds
(segments inside the file, no overlapping or overflowing PT_LOADs).
"""
from __future__ import annotations

import errno
import struct
from typing import Callable, NamedTuple

from ..kernel.errors import SysError
from ..kernel.record import FrozenRecord

PAGE_SIZE = 4096
# One past the highest user address with 4-level paging (Linux TASK_SIZE_MAX on x86-64).
TASK_SIZE = 0x7FFFFFFFF000
# Where Linux puts a PIE (ET_DYN with PT_INTERP) when randomization is off:
# (TASK_SIZE / 3 * 2) rounded down to a page.
ELF_ET_DYN_BASE = 0x555555554000

ET_EXEC = 2
ET_DYN = 3
EM_X86_64 = 62
ELFCLASS64 = 2
ELFDATA2LSB = 1

PT_LOAD = 1
PT_INTERP = 3
PT_PHDR = 6
PT_GNU_STACK = 0x6474E551

PF_X = 1
PF_W = 2
PF_R = 4

PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4

PATH_MAX = 4096
EHDR_SIZE = 64
PHDR_SIZE = 56
# Linux refuses program header tables larger than one page (load_elf_phdrs).
MAX_PHDR_TABLE = PAGE_SIZE

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
assert _EHDR.size == EHDR_SIZE and _PHDR.size == PHDR_SIZE


def _noexec(why: str) -> SysError:
    return SysError(errno.ENOEXEC, f"bad ELF: {why}")


def page_down(addr: int) -> int:
    return addr & ~(PAGE_SIZE - 1)


def page_up(addr: int) -> int:
    return (addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def _is_pow2_or_zero(n: int) -> bool:
    return n & (n - 1) == 0


class LoadSegment(FrozenRecord):
    """One PT_LOAD program header, validated (file-relative, before any bias)."""
    _fields = ("vaddr", "memsz", "filesz", "offset", "prot", "align")

    def __init__(self, vaddr: int, memsz: int, filesz: int, offset: int, prot: int,
                 align: int):
        init = object.__setattr__
        init(self, "vaddr", vaddr)
        init(self, "memsz", memsz)
        init(self, "filesz", filesz)
        init(self, "offset", offset)
        init(self, "prot", prot)        # PROT_READ | PROT_WRITE | PROT_EXEC
        init(self, "align", align)


class ElfImage(FrozenRecord):
    _fields = ("e_type", "entry", "phoff", "phdrs", "phnum", "phent", "segments", "interp",
               "stack_exec", "phdr_vaddr", "file_size")

    def __init__(self, e_type: int, entry: int, phoff: int, phdrs: bytes, phnum: int,
                 phent: int, segments: tuple, interp: bytes | None, stack_exec: bool,
                 phdr_vaddr: int | None, file_size: int | None):
        init = object.__setattr__
        init(self, "e_type", e_type)            # ET_EXEC or ET_DYN
        init(self, "entry", entry)              # e_entry, before bias
        init(self, "phoff", phoff)
        init(self, "phdrs", phdrs)              # the raw program header table (phnum * phent)
        init(self, "phnum", phnum)
        init(self, "phent", phent)              # always PHDR_SIZE (56)
        init(self, "segments", segments)        # LoadSegments (PT_LOAD), ascending, disjoint
        init(self, "interp", interp)            # PT_INTERP path without its NUL, or None
        # PT_GNU_STACK has PF_X (no PT_GNU_STACK: False on x86-64)
        init(self, "stack_exec", stack_exec)
        init(self, "phdr_vaddr", phdr_vaddr)    # PT_PHDR's p_vaddr if present
        # as given to parse_elf (None: unknown, bounds unchecked)
        init(self, "file_size", file_size)


def parse_elf(header: bytes, read_at: Callable[[int, int], bytes],
              file_size: int | None = None) -> ElfImage:
    """Validate an ELF64 x86-64 executable and describe it.

    `header` is the start of the file: at least 4 KiB, or the whole file if it is shorter
    (then its length is the file size unless `file_size` says otherwise). `read_at(offset,
    size)` returns exactly `size` bytes at `offset` for data past `header`; it may raise
    SysError (e.g. EIO), which propagates. Raises SysError(ENOEXEC) for anything else wrong.
    """
    header = bytes(header)
    if file_size is None and len(header) < PAGE_SIZE:
        file_size = len(header)
    if file_size is not None:
        if file_size < 0:
            raise ValueError("negative file size")
        header = header[:file_size]

    def read(offset: int, size: int) -> bytes:
        if offset + size <= len(header):
            return header[offset:offset + size]
        data = read_at(offset, size)
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != size:
            raise _noexec(f"short read of {size} bytes at offset {offset}")
        return bytes(data)

    def check_in_file(offset: int, size: int, what: str) -> None:
        if file_size is not None and offset + size > file_size:
            raise _noexec(f"{what} extends past the end of the file")

    if len(header) < EHDR_SIZE:
        raise _noexec("file shorter than an ELF header")
    (ident, e_type, e_machine, _e_version, e_entry, e_phoff, _e_shoff, _e_flags,
     _e_ehsize, e_phentsize, e_phnum, _e_shentsize, _e_shnum, _e_shstrndx) = \
        _EHDR.unpack_from(header, 0)
    if ident[:4] != b"\x7fELF":
        raise _noexec("no ELF magic")
    if ident[4] != ELFCLASS64:
        raise _noexec("not ELFCLASS64")
    if ident[5] != ELFDATA2LSB:
        raise _noexec("not little-endian")
    if e_type not in (ET_EXEC, ET_DYN):
        raise _noexec(f"e_type {e_type} is not ET_EXEC or ET_DYN")
    if e_machine != EM_X86_64:
        raise _noexec(f"e_machine {e_machine} is not x86-64")
    if e_phentsize != PHDR_SIZE:
        raise _noexec(f"e_phentsize {e_phentsize} != {PHDR_SIZE}")
    table_size = e_phnum * PHDR_SIZE
    if e_phnum == 0 or table_size > MAX_PHDR_TABLE:
        raise _noexec(f"e_phnum {e_phnum} out of range")
    if e_phoff + table_size > 1 << 64:
        raise _noexec("program header table overflows")
    check_in_file(e_phoff, table_size, "program header table")
    phdrs = read(e_phoff, table_size)

    segments: list[LoadSegment] = []
    interp_hdr = None
    stack_exec = False
    phdr_vaddr = None
    for i in range(e_phnum):
        (p_type, p_flags, p_offset, p_vaddr, _p_paddr, p_filesz, p_memsz,
         p_align) = _PHDR.unpack_from(phdrs, i * PHDR_SIZE)
        if not _is_pow2_or_zero(p_align):
            raise _noexec(f"phdr {i}: p_align {p_align:#x} is not a power of two")
        if p_offset + p_filesz > 1 << 64:
            raise _noexec(f"phdr {i}: file range overflows")
        check_in_file(p_offset, p_filesz, f"phdr {i}")
        if p_type == PT_LOAD:
            segments.append(_check_load(i, p_flags, p_offset, p_vaddr, p_filesz,
                                        p_memsz, p_align))
        elif p_type == PT_INTERP:
            if interp_hdr is None:          # Linux honours the first one only
                interp_hdr = (p_offset, p_filesz)
        elif p_type == PT_GNU_STACK:
            stack_exec = bool(p_flags & PF_X)   # the last one wins, as in Linux
        elif p_type == PT_PHDR:
            phdr_vaddr = p_vaddr

    if not any(seg.memsz for seg in segments):
        raise _noexec("no PT_LOAD segment with memory")
    _check_disjoint(segments)
    if e_type == ET_EXEC and e_entry >= TASK_SIZE:
        raise _noexec("entry point outside user space")

    interp = None
    if interp_hdr is not None:
        offset, size = interp_hdr
        if size < 2 or size > PATH_MAX:
            raise _noexec("PT_INTERP size out of range")
        raw = read(offset, size)
        if raw[-1] != 0:
            raise _noexec("PT_INTERP path is not NUL-terminated")
        interp = raw[:raw.index(0)]     # the kernel uses it as a C string

    return ElfImage(e_type=e_type, entry=e_entry, phoff=e_phoff, phdrs=phdrs,
                    phnum=e_phnum, phent=e_phentsize, segments=tuple(segments),
                    interp=interp, stack_exec=stack_exec, phdr_vaddr=phdr_vaddr,
                    file_size=file_size)


def _check_load(i, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align) -> LoadSegment:
    if p_filesz > p_memsz:
        raise _noexec(f"PT_LOAD {i}: p_filesz > p_memsz")
    if p_vaddr % PAGE_SIZE != p_offset % PAGE_SIZE:
        raise _noexec(f"PT_LOAD {i}: p_vaddr and p_offset disagree modulo the page size")
    if p_vaddr >= TASK_SIZE or p_memsz > TASK_SIZE - p_vaddr:
        raise _noexec(f"PT_LOAD {i}: outside user space")
    prot = ((PROT_READ if p_flags & PF_R else 0) | (PROT_WRITE if p_flags & PF_W else 0)
            | (PROT_EXEC if p_flags & PF_X else 0))
    return LoadSegment(vaddr=p_vaddr, memsz=p_memsz, filesz=p_filesz, offset=p_offset,
                       prot=prot, align=p_align)


def _check_disjoint(segments: list[LoadSegment]) -> None:
    # The ELF spec orders PT_LOADs by p_vaddr; ET_DYN placement relies on the first and
    # last ones bounding the image. Byte ranges may not overlap; sharing a page is legal
    # (the later mapping then replaces the shared page, as MAP_FIXED does in Linux).
    prev_end = None
    for seg in segments:
        if seg.memsz == 0:
            continue
        if prev_end is not None and seg.vaddr < prev_end:
            raise _noexec("PT_LOAD segments overlap or are out of order")
        prev_end = seg.vaddr + seg.memsz


class Span(NamedTuple):
    """The page-aligned vaddr range the image covers (before bias) and its alignment."""
    low: int
    high: int
    align: int      # largest power-of-two p_align among PT_LOADs, at least a page

    @property
    def size(self) -> int:
        return self.high - self.low


def image_span(image: ElfImage) -> Span:
    """What an ET_DYN caller must reserve: map `size` bytes at an `align`-aligned address
    A, then use load_bias = A - low."""
    loads = [s for s in image.segments if s.memsz]      # parse_elf ensures one
    low = page_down(min(s.vaddr for s in loads))
    high = page_up(max(s.vaddr + s.memsz for s in loads))
    align = max([PAGE_SIZE] + [s.align for s in image.segments if s.align > PAGE_SIZE])
    return Span(low, high, align)


def default_load_bias(image: ElfImage) -> int | None:
    """The bias Linux picks with randomization off, or None for "wherever mmap would put
    it" (an ET_DYN run without interpreter: ld.so itself, static-pie). Like any bias it
    may be negative (an ET_DYN linked above ELF_ET_DYN_BASE); only vaddr + bias must land
    in user space."""
    if image.e_type == ET_EXEC:
        return 0
    span = image_span(image)
    if image.interp is None and span.align <= PAGE_SIZE:
        return None
    # Linux subtracts the first PT_LOAD's unaligned p_vaddr, then rounds down.
    return page_down((ELF_ET_DYN_BASE & ~(span.align - 1)) - image.segments[0].vaddr)


class Mapping(FrozenRecord):
    """One mapping execve creates. Contents: `file_bytes` bytes of the file starting at
    `file_offset` land at `start`; everything after them up to `start + length` is zero.
    An anonymous mapping has file_bytes == 0."""
    _fields = ("start", "length", "prot", "file_offset", "file_bytes")

    def __init__(self, start: int, length: int, prot: int, file_offset: int,
                 file_bytes: int):
        init = object.__setattr__
        init(self, "start", start)              # page aligned
        init(self, "length", length)            # page multiple, > 0
        init(self, "prot", prot)
        init(self, "file_offset", file_offset)  # page aligned
        init(self, "file_bytes", file_bytes)

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def is_anonymous(self) -> bool:
        return self.file_bytes == 0


class LoadPlan(list):
    """The Mappings to create, in order (a later one replaces any page it shares with an
    earlier one), plus what the kernel records about the loaded image. All addresses
    include the load bias."""

    def __init__(self, mappings, *, load_bias, entry, phdr_addr, brk_start,
                 start_code, end_code, start_data, end_data):
        super().__init__(mappings)
        self.load_bias = load_bias
        self.entry = entry                  # AT_ENTRY / where the image starts running
        self.phdr_addr = phdr_addr          # AT_PHDR; 0 if no PT_LOAD maps the table
        self.brk_start = brk_start          # page-aligned end of the image
        self.start_code = start_code        # as in /proc/pid/stat and prctl(PR_SET_MM)
        self.end_code = end_code
        self.start_data = start_data
        self.end_data = end_data

    def __repr__(self):
        return (f"LoadPlan({list.__repr__(self)}, load_bias={self.load_bias:#x}, "
                f"entry={self.entry:#x}, phdr_addr={self.phdr_addr:#x}, "
                f"brk_start={self.brk_start:#x})")


def plan_load(image: ElfImage, load_bias: int) -> LoadPlan:
    """Mappings for every PT_LOAD of `image` moved by `load_bias` (0 for ET_EXEC).

    Per segment, as Linux's elf_load does: the file pages covering [vaddr, vaddr+filesz)
    mapped with the segment's protection, the tail of the last file page after filesz
    zeroed when memsz > filesz, then anonymous pages up to vaddr+memsz. Those extra pages
    are created by vm_brk in Linux and are therefore read-write (plus exec if the segment
    is executable) whatever the segment says; we do the same.
    Raises SysError(EINVAL) if the biased image leaves user space, as Linux does.
    """
    if load_bias % PAGE_SIZE:
        raise ValueError("load bias must be page aligned")
    if image.e_type == ET_EXEC and load_bias:
        raise ValueError("an ET_EXEC image is loaded at bias 0")
    mappings: list[Mapping] = []
    for seg in image.segments:
        if seg.memsz == 0:
            continue
        start = seg.vaddr + load_bias
        if start < 0 or start + seg.memsz > TASK_SIZE:
            raise SysError(errno.EINVAL, "segment outside user space after bias")
        mappings.extend(_segment_mappings(seg, start, image.file_size))

    entry = image.entry + load_bias
    if not 0 <= entry < TASK_SIZE:
        raise SysError(errno.EINVAL, "entry point outside user space after bias")

    phdr_addr = 0
    for seg in image.segments:
        if seg.offset <= image.phoff < seg.offset + seg.filesz:
            phdr_addr = image.phoff - seg.offset + seg.vaddr + load_bias
            break

    start_code, end_code, start_data, end_data = (1 << 64) - 1, 0, 0, 0
    for seg in image.segments:
        if seg.prot & PROT_EXEC:
            start_code = min(start_code, seg.vaddr)
            end_code = max(end_code, seg.vaddr + seg.filesz)
        start_data = max(start_data, seg.vaddr)
        end_data = max(end_data, seg.vaddr + seg.filesz)
    if start_code == (1 << 64) - 1:
        start_code = 0
    brk = max(s.vaddr + s.memsz for s in image.segments)
    return LoadPlan(mappings, load_bias=load_bias, entry=entry, phdr_addr=phdr_addr,
                    brk_start=page_up(brk + load_bias),
                    start_code=start_code + load_bias, end_code=end_code + load_bias,
                    start_data=start_data + load_bias, end_data=end_data + load_bias)


def _segment_mappings(seg: LoadSegment, start: int, file_size: int | None) -> list[Mapping]:
    out = []
    page_start = page_down(start)
    lead = start - page_start           # file bytes before the segment in its first page
    file_end = page_up(start + seg.filesz)
    if seg.filesz:
        if seg.memsz > seg.filesz:
            copy = lead + seg.filesz    # the rest of the last page is bss: zero
        else:
            # Like an mmap of the file: the whole last page shows file contents, up to EOF.
            copy = file_end - page_start
            if file_size is not None:
                copy = min(copy, file_size - (seg.offset - lead))
        out.append(Mapping(start=page_start, length=file_end - page_start, prot=seg.prot,
                           file_offset=seg.offset - lead, file_bytes=copy))
        anon_start = file_end
    else:
        anon_start = page_start
    anon_end = page_up(start + seg.memsz)
    if anon_end > anon_start:
        prot = PROT_READ | PROT_WRITE | (seg.prot & PROT_EXEC)
        out.append(Mapping(start=anon_start, length=anon_end - anon_start, prot=prot,
                           file_offset=0, file_bytes=0))
    return out


# --- #! scripts ---------------------------------------------------------------------

BINPRM_BUF_SIZE = 256


def parse_shebang(first_bytes: bytes) -> tuple[bytes, bytes | None] | None:
    """Interpret a `#!` line exactly as Linux's fs/binfmt_script.c does.

    `first_bytes` is the start of the file (only the first 256 bytes matter). Returns None
    if the file does not start with `#!` (not a script), otherwise (interpreter, argument
    or None). Raises SysError(ENOEXEC) for a `#!` line Linux rejects: no interpreter name,
    or no newline within 256 bytes and the interpreter name possibly truncated.
    The argument is everything after the name and its following blanks, with trailing
    blanks removed: it is passed as one argv entry, never split. Only space and tab are
    blanks (a CR stays in the argument), and a NUL ends either string.
    """
    if first_bytes[:2] != b"#!":
        return None
    # The kernel works on a zero-filled 256-byte buffer; we mirror its index arithmetic.
    buf = bytes(first_bytes[:BINPRM_BUF_SIZE]).ljust(BINPRM_BUF_SIZE, b"\0")
    last = BINPRM_BUF_SIZE - 1

    def blank(i):
        return buf[i] in b" \t"

    def next_non_blank(i, j):
        while i <= j:
            if not blank(i):
                return i
            i += 1
        return None

    def next_terminator(i, j):
        while i <= j:
            if blank(i) or buf[i] == 0:
                return i
            i += 1
        return None

    end = buf.find(b"\n")
    if end < 0:
        first = next_non_blank(2, last)
        if first is None:
            raise SysError(errno.ENOEXEC, "#! line is all blanks")
        if next_terminator(first, last) is None:
            raise SysError(errno.ENOEXEC, "#! interpreter name truncated")
        end = last
    while blank(end - 1):
        end -= 1
    name = next_non_blank(2, end)
    if name is None or name == end:
        raise SysError(errno.ENOEXEC, "#! line names no interpreter")
    arg = None
    sep = next_terminator(name, end)
    if sep is not None and buf[sep] != 0:
        arg = next_non_blank(sep, end)
    line = buf[:end]                     # the kernel NULs the byte at `end`

    def c_string(i, stop):
        s = line[i:stop]
        nul = s.find(b"\0")
        return s if nul < 0 else s[:nul]

    interpreter = c_string(name, sep if sep is not None else end)
    return interpreter, (c_string(arg, end) if arg is not None else None)
