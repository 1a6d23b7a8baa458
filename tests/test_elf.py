"""ELF parsing and load planning, checked against native Linux.

Oracles: `readelf` for what the headers say; for what gets mapped, a native process of
the same binary stopped by ptrace right after execve (before its first instruction), with
address randomization off: its /proc/pid/maps, /proc/pid/mem, /proc/pid/auxv and
/proc/pid/stat must agree with plan_load page for page and byte for byte. #! parsing is
compared with what a native execve passes to the interpreter.
"""
import ctypes
import errno
import os
import random
import re
import shutil
import signal
import struct
import subprocess
from contextlib import contextmanager

import pytest

from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.mm import elf
from pysentry.sentry.mm.elf import (ELF_ET_DYN_BASE, ET_DYN, ET_EXEC, PAGE_SIZE,
                                    PROT_EXEC, PROT_READ, PROT_WRITE, default_load_bias,
                                    image_span, parse_elf, parse_shebang, plan_load)

AT_PHDR, AT_PHNUM, AT_BASE, AT_ENTRY = 3, 5, 7, 9
ADDR_NO_RANDOMIZE = 0x0040000
PTRACE_TRACEME = 0

HELLO_C = r"""
#include <stdio.h>
int data_var = 5;
char bss_buf[100000];
int main(void) { printf("%d\n", data_var + bss_buf[5]); return 0; }
"""

ARGV_C = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        for (char *p = argv[i]; *p; p++) printf("%02x", (unsigned char)*p);
        printf("\n");
    }
    return 0;
}
"""

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


# --- helpers -------------------------------------------------------------------------

def load_file(path):
    with open(path, "rb") as f:
        data = f.read()
    reads = []

    def read_at(offset, size):
        reads.append((offset, size))
        return data[offset:offset + size]

    image = parse_elf(data[:PAGE_SIZE], read_at, len(data))
    return data, image, reads


def parse_bytes(data, file_size=None):
    return parse_elf(data[:PAGE_SIZE], lambda o, n: data[o:o + n],
                     len(data) if file_size is None else file_size)


def readelf_segments(path):
    out = subprocess.run(["readelf", "-lhW", path], check=True, capture_output=True,
                         text=True).stdout
    loads, interp, stack_flags = [], None, None
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            flags = line[line.index(f[6]):].split()[:-1]   # "R", "R E", "RW" ...
            flags = "".join(flags)
            loads.append((int(f[2], 16), int(f[5], 16), int(f[4], 16), int(f[1], 16),
                          flags))
        elif f and f[0] == "GNU_STACK":
            stack_flags = "".join(line.split()[6:-1])
        m = re.search(r"Requesting program interpreter: (.*)\]", line)
        if m:
            interp = m.group(1).encode()
    entry = int(re.search(r"Entry point address:\s+(0x[0-9a-f]+)", out).group(1), 16)
    return loads, interp, stack_flags, entry


def prot_of(flags):
    return ((PROT_READ if "R" in flags else 0) | (PROT_WRITE if "W" in flags else 0)
            | (PROT_EXEC if "E" in flags or "x" in flags else 0))


@contextmanager
def stopped_at_exec(path, argv=None):
    """A native process of `path`, ASLR off, stopped by ptrace at its exec."""
    libc = ctypes.CDLL(None, use_errno=True)

    def child_setup():
        libc.personality(ADDR_NO_RANDOMIZE)
        if libc.ptrace(PTRACE_TRACEME, 0, None, None) != 0:
            os._exit(126)

    proc = subprocess.Popen(argv or [path], executable=path, preexec_fn=child_setup,
                            env={}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, status = os.waitpid(proc.pid, 0)
        assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTRAP, status
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def native_snapshot(pid):
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) > 5 else ""
            maps.append((start, end, prot_of(parts[1].upper().replace("X", "E")),
                         int(parts[2], 16), path))
    with open(f"/proc/{pid}/auxv", "rb") as f:
        raw = f.read()
    auxv = dict(struct.iter_unpack("<QQ", raw))
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read().rsplit(")", 1)[1].split()
    # Field numbers from proc(5), counted from 1 with pid and comm before ")".
    field = lambda n: int(stat[n - 3])    # noqa: E731
    record = {"start_code": field(26), "end_code": field(27), "start_data": field(45),
              "end_data": field(46), "start_brk": field(47)}
    return maps, auxv, record


def read_mem(pid, addr, size):
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return f.read(size)


def plan_pages(plan):
    """page -> (prot, file offset or None); later mappings replace earlier ones."""
    pages = {}
    for m in plan:
        for page in range(m.start, m.end, PAGE_SIZE):
            off = None if m.is_anonymous else m.file_offset + (page - m.start)
            pages[page] = (m.prot, off)
    return pages


def plan_contents(plan, data):
    mem = {}
    for m in plan:
        content = data[m.file_offset:m.file_offset + m.file_bytes].ljust(m.length, b"\0")
        for i, page in enumerate(range(m.start, m.end, PAGE_SIZE)):
            mem[page] = content[i * PAGE_SIZE:(i + 1) * PAGE_SIZE]
    return mem


def native_pages(maps, path, lo, hi):
    pages = {}
    for start, end, prot, offset, mpath in maps:
        for page in range(max(start, lo), min(end, hi), PAGE_SIZE):
            pages[page] = (prot, offset + (page - start) if mpath == path else None)
    return pages


def assert_matches_native(pid, path, data, image, plan, maps, skip_contents=()):
    span = image_span(image)
    lo, hi = span.low + plan.load_bias, span.high + plan.load_bias
    ours = plan_pages(plan)
    assert native_pages(maps, os.path.realpath(path), lo, hi) == ours
    for page, content in plan_contents(plan, data).items():
        if page in skip_contents:
            continue
        assert read_mem(pid, page, PAGE_SIZE) == content, f"page {page:#x} differs"


# --- real binaries -------------------------------------------------------------------

@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    if shutil.which("gcc") is None or shutil.which("readelf") is None:
        pytest.skip("needs gcc and readelf to build and inspect real binaries")
    d = tmp_path_factory.mktemp("elf")
    (d / "hello.c").write_text(HELLO_C)
    (d / "argv.c").write_text(ARGV_C)
    out = {}
    for name, flags in {"static": ["-static", "-no-pie"], "static_pie": ["-static-pie"],
                        "pie": ["-pie"], "nopie": ["-no-pie"]}.items():
        out[name] = str(d / f"hello_{name}")
        subprocess.run(["gcc", "-O1", *flags, "-o", out[name], str(d / "hello.c")],
                       check=True)
    out["argv"] = str(d / "argv")
    subprocess.run(["gcc", "-O1", "-static", "-o", out["argv"], str(d / "argv.c")],
                   check=True)
    out["dir"] = str(d)
    return out


@needs_gcc
@pytest.mark.parametrize("kind", ["static", "static_pie", "pie", "nopie", "/bin/true",
                                  "/lib64/ld-linux-x86-64.so.2"])
def test_parse_agrees_with_readelf(binaries, kind):
    path = binaries.get(kind, kind)
    data, image, reads = load_file(path)
    loads, interp, stack_flags, entry = readelf_segments(path)
    assert [(s.vaddr, s.memsz, s.filesz, s.offset, s.prot) for s in image.segments] == \
        [(v, m, f, o, prot_of(fl)) for v, m, f, o, fl in loads]
    assert image.interp == interp
    assert image.entry == entry
    assert image.stack_exec == ("E" in (stack_flags or ""))
    assert image.phent == 56 and len(image.phdrs) == 56 * image.phnum
    assert image.phdrs == data[image.phoff:image.phoff + len(image.phdrs)]
    assert image.e_type == (ET_EXEC if kind in ("static", "nopie") else ET_DYN)
    # Only what lies past the 4 KiB header is read through read_at.
    assert all(off + n > PAGE_SIZE for off, n in reads)


@needs_gcc
@pytest.mark.parametrize("kind", ["static", "pie", "nopie"])
def test_plan_matches_native_exec(binaries, kind):
    path = binaries[kind]
    data, image, _ = load_file(path)
    bias = default_load_bias(image)
    plan = plan_load(image, bias)
    with stopped_at_exec(path) as pid:
        maps, auxv, record = native_snapshot(pid)
        assert auxv[AT_ENTRY] == plan.entry
        assert auxv[AT_PHDR] == plan.phdr_addr
        assert auxv[AT_PHNUM] == image.phnum
        assert record == {"start_code": plan.start_code, "end_code": plan.end_code,
                          "start_data": plan.start_data, "end_data": plan.end_data,
                          "start_brk": plan.brk_start}
        assert_matches_native(pid, path, data, image, plan, maps)
        if image.interp:
            # The interpreter is an ET_DYN without PT_INTERP, placed by mmap: take its
            # bias from AT_BASE and check its mappings too.
            idata, iimage, _ = load_file(image.interp.decode())
            assert iimage.interp is None and default_load_bias(iimage) is None
            iplan = plan_load(iimage, auxv[AT_BASE] - image_span(iimage).low)
            assert_matches_native(pid, image.interp.decode(), idata, iimage, iplan, maps)
    if kind == "pie":
        assert bias == ELF_ET_DYN_BASE


@needs_gcc
def test_static_pie_plan_matches_native_exec(binaries):
    path = binaries["static_pie"]
    data, image, _ = load_file(path)
    assert image.interp is None and default_load_bias(image) is None
    with stopped_at_exec(path) as pid:
        maps, auxv, _ = native_snapshot(pid)
        plan = plan_load(image, auxv[AT_ENTRY] - image.entry)   # mmap chose the bias
        assert auxv[AT_PHDR] == plan.phdr_addr
        assert_matches_native(pid, path, data, image, plan, maps)


# --- hand-made ELF files -------------------------------------------------------------

EXIT_CODE = bytes.fromhex("b83c00000031ff0f05")       # mov eax,60; xor edi,edi; syscall


def make_elf(segments, *, e_type=ET_EXEC, entry=None, extra=(), size=None,
             ident=None, machine=62, phentsize=56, phnum=None):
    """segments: dicts with vaddr, offset, filesz, memsz, flags ("RWX" letters), data.
    extra: raw (p_type, p_flags, offset, vaddr, filesz, memsz, align) tuples."""
    phdrs = []
    for s in segments:
        flags = (4 if "R" in s["flags"] else 0) | (2 if "W" in s["flags"] else 0) | \
                (1 if "X" in s["flags"] else 0)
        phdrs.append(struct.pack("<IIQQQQQQ", 1, flags, s["offset"], s["vaddr"],
                                 s["vaddr"], s["filesz"], s["memsz"], s.get("align", 4096)))
    for p_type, p_flags, off, vaddr, filesz, memsz, align in extra:
        phdrs.append(struct.pack("<IIQQQQQQ", p_type, p_flags, off, vaddr, vaddr, filesz,
                                 memsz, align))
    if entry is None:
        entry = segments[0]["vaddr"] + 0x100 if segments else 0
    ident = ident or b"\x7fELF\x02\x01\x01" + bytes(9)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", ident, e_type, machine, 1, entry, 64, 0, 0,
                       64, phentsize, len(phdrs) if phnum is None else phnum, 64, 0, 0)
    end = max([s["offset"] + len(s.get("data", b"")) for s in segments] + [size or 0,
                                                                          0x200])
    out = bytearray(end)
    for s in segments:
        d = s.get("data", b"")
        out[s["offset"]:s["offset"] + len(d)] = d
    table = b"".join(phdrs)                 # headers last: segment 0 usually covers them
    out[:64 + len(table)] = ehdr + table
    return bytes(out[:size] if size else out)


def code_segment(vaddr=0x400000, filesz=0x200, flags="RX"):
    data = bytearray(filesz)
    data[0x100:0x100 + len(EXIT_CODE)] = EXIT_CODE
    data[0x120:0x130] = b"headers-and-code"
    return {"vaddr": vaddr, "offset": 0, "filesz": filesz, "memsz": filesz,
            "flags": flags, "data": bytes(data)}


def pattern(n, seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def run_crafted(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o755)
    return str(path)


def test_bss_tail_and_extra_pages_match_native(tmp_path):
    # A data segment that starts mid-page, ends its file part mid-page and has 3 pages of
    # bss; file bytes follow it in the file (they must not show through).
    data_seg = {"vaddr": 0x601234, "offset": 0x1234, "filesz": 0x800, "memsz": 0x3800,
                "flags": "RW", "data": pattern(0x800 + 0x500, 3)}
    blob = make_elf([code_segment(), data_seg])
    path = run_crafted(tmp_path, "bss", blob)
    image = parse_bytes(blob)
    plan = plan_load(image, 0)
    file_map, anon_map = plan[1], plan[2]
    assert (file_map.start, file_map.length, file_map.file_offset) == (0x601000, 0x1000,
                                                                        0x1000)
    assert file_map.file_bytes == 0x234 + 0x800
    assert (anon_map.start, anon_map.end, anon_map.file_bytes) == (0x602000, 0x605000, 0)
    assert plan.brk_start == 0x605000
    with stopped_at_exec(path) as pid:
        maps, auxv, record = native_snapshot(pid)
        assert auxv[AT_PHDR] == plan.phdr_addr == 0x400040
        assert record["start_brk"] == plan.brk_start
        assert_matches_native(pid, path, blob, image, plan, maps)


def test_text_tail_shows_file_bytes_like_mmap(tmp_path):
    # memsz == filesz: the rest of the last page is whatever the file holds (mmap), up to
    # EOF, then zero.
    seg = code_segment(filesz=0x180)
    blob = make_elf([seg], size=0x300)
    blob = blob[:0x180] + pattern(0x180, 9)
    path = run_crafted(tmp_path, "tail", blob)
    image = parse_bytes(blob)
    plan = plan_load(image, 0)
    assert [(m.start, m.length, m.file_bytes) for m in plan] == [(0x400000, 0x1000, 0x300)]
    with stopped_at_exec(path) as pid:
        maps, _, _ = native_snapshot(pid)
        assert_matches_native(pid, path, blob, image, plan, maps)


def test_bss_only_segment_and_readonly_bss_match_native(tmp_path):
    # A PT_LOAD with no file bytes at all, and a read-only one with a bss part: Linux
    # creates the extra pages with vm_brk, read-write whatever the segment says.
    ro_seg = {"vaddr": 0x700000, "offset": 0x2000, "filesz": 0x100, "memsz": 0x2100,
              "flags": "R", "data": pattern(0x100, 5)}
    bss_seg = {"vaddr": 0x800000, "offset": 0x2000, "filesz": 0, "memsz": 0x1800,
               "flags": "RW"}
    blob = make_elf([code_segment(), ro_seg, bss_seg], size=0x2100)
    blob += pattern(0x300, 77)          # file bytes after the read-only segment's part
    path = run_crafted(tmp_path, "robss", blob)
    image = parse_bytes(blob)
    plan = plan_load(image, 0)
    assert [(m.start, m.end, m.prot, m.file_bytes) for m in plan[1:]] == [
        (0x700000, 0x701000, PROT_READ, 0x100),
        (0x701000, 0x703000, PROT_READ | PROT_WRITE, 0),
        (0x800000, 0x802000, PROT_READ | PROT_WRITE, 0)]
    with stopped_at_exec(path) as pid:
        maps, _, record = native_snapshot(pid)
        assert record["start_brk"] == plan.brk_start == 0x802000
        # Deliberate divergence: Linux cannot zero the bss tail of the *read-only* page
        # (its clear_user faults and is ignored), so file bytes stay visible there. We
        # zero it, as the ELF spec intends; everything else must be identical.
        assert_matches_native(pid, path, blob, image, plan, maps,
                              skip_contents={0x700000})
        native = read_mem(pid, 0x700000, PAGE_SIZE)
        ours = plan_contents(plan, blob)[0x700000]
        assert native[:0x100] == ours[:0x100] == pattern(0x100, 5)
        assert native[0x100:0x400] == blob[0x2100:0x2400] and not any(ours[0x100:])


def test_elf_without_gnu_stack_and_with_exec_stack():
    blob = make_elf([code_segment()])
    assert parse_bytes(blob).stack_exec is False
    blob = make_elf([code_segment()], extra=[(elf.PT_GNU_STACK, 7, 0, 0, 0, 0, 16)])
    assert parse_bytes(blob).stack_exec is True


def test_pie_bias_and_span():
    segs = [code_segment(vaddr=0), {"vaddr": 0x2010, "offset": 0x1010, "filesz": 0x10,
                                    "memsz": 0x2000, "flags": "RW", "data": bytes(0x10),
                                    "align": 0x200000}]
    interp = b"/lib/ld.so\0"
    blob = bytearray(make_elf(segs, e_type=ET_DYN,
                              extra=[(elf.PT_INTERP, 4, 0x180, 0x180, len(interp),
                                      len(interp), 1)]))
    blob[0x180:0x180 + len(interp)] = interp
    image = parse_bytes(bytes(blob))
    assert image.interp == b"/lib/ld.so"
    assert image_span(image) == (0, 0x5000, 0x200000)
    bias = default_load_bias(image)
    assert bias == ELF_ET_DYN_BASE & ~0x1FFFFF
    plan = plan_load(image, bias)
    assert plan.entry == bias + 0x100 and plan.brk_start == bias + 0x5000
    assert plan[0].start == bias and plan.phdr_addr == bias + 64
    with pytest.raises(ValueError):
        plan_load(image, bias + 1)
    with pytest.raises(SysError) as e:
        plan_load(image, elf.TASK_SIZE - 0x1000)
    assert e.value.errno == errno.EINVAL


# --- malformed input -----------------------------------------------------------------

def good():
    return make_elf([code_segment()])


def patched(blob, offset, fmt, value):
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


PH0 = 64          # first program header
MALFORMED_LINUX_ALSO_REJECTS = {
    "bad magic": patched(good(), 0, "<B", 0x7E),
    "core file": patched(good(), 16, "<H", 4),
    "relocatable": patched(good(), 16, "<H", 1),
    "i386 machine": patched(good(), 18, "<H", 3),
    "phentsize 32": patched(good(), 54, "<H", 32),
    "phnum 0": patched(good(), 56, "<H", 0),
    "phnum too big": patched(good(), 56, "<H", 74),
    "interp not NUL-terminated": make_elf(
        [code_segment()], extra=[(elf.PT_INTERP, 4, 0x120, 0x400120, 8, 8, 1)]),
    "interp too long": make_elf(
        [code_segment()], extra=[(elf.PT_INTERP, 4, 0x0, 0x400000, 4097, 4097, 1)],
        size=0x1100),
    "interp too short": make_elf(
        [code_segment()], extra=[(elf.PT_INTERP, 4, 0x1FF, 0x4001FF, 1, 1, 1)]),
}
MALFORMED_OURS_ONLY = {
    # Linux accepts these and the program crashes later (SIGBUS/SIGSEGV) or behaves
    # oddly; a copying loader must refuse them up front.
    "big endian": patched(good(), 5, "<B", 2),
    "32-bit class": patched(good(), 4, "<B", 1),    # Linux checks only e_machine
    "file too short": good()[:40],
    "phdrs past EOF": patched(good(), 32, "<Q", 0x1F0),
    "segment past EOF": patched(good(), PH0 + 32, "<Q", 0x10000),
    "filesz > memsz": patched(good(), PH0 + 40, "<Q", 0x100),
    "align not power of two": patched(good(), PH0 + 48, "<Q", 0x3000),
    "vaddr/offset incongruent": patched(good(), PH0 + 16, "<Q", 0x400010),
    "beyond user space": patched(good(), PH0 + 16, "<Q", 0x7FFFFFFFF000),
    "overflowing memsz": patched(good(), PH0 + 40, "<Q", (1 << 64) - 1),
    "no PT_LOAD": patched(good(), PH0, "<I", 4),
    "only an empty PT_LOAD": patched(patched(good(), PH0 + 32, "<Q", 0), PH0 + 40, "<Q", 0),
    "overlapping segments": make_elf([code_segment(), {**code_segment(), "vaddr": 0x400000,
                                                       "flags": "RW"}]),
    "out of order": make_elf([code_segment(0x600000), code_segment(0x400000)]),
    "entry in kernel space": make_elf([code_segment()], entry=0xFFFFFFFF81000000),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_LINUX_ALSO_REJECTS))
def test_malformed_rejected_like_linux(tmp_path, name):
    blob = MALFORMED_LINUX_ALSO_REJECTS[name]
    with pytest.raises(SysError) as e:
        parse_bytes(blob)
    assert e.value.errno == errno.ENOEXEC
    path = run_crafted(tmp_path, "bad", blob)
    with pytest.raises(OSError) as native:
        subprocess.run([path], env={}, capture_output=True)
    assert native.value.errno == errno.ENOEXEC


@pytest.mark.parametrize("name", sorted(MALFORMED_OURS_ONLY))
def test_malformed_rejected(name):
    with pytest.raises(SysError) as e:
        parse_bytes(MALFORMED_OURS_ONLY[name])
    assert e.value.errno == errno.ENOEXEC


def test_the_unmodified_crafted_file_is_accepted():
    # Guards the malformed cases: each differs from this good file in one field only.
    image = parse_bytes(good())
    assert plan_load(image, 0)[0].start == 0x400000


def test_short_read_and_reader_errors():
    blob = good()
    big = blob + bytes(PAGE_SIZE * 2)
    moved = bytearray(big)
    table = blob[64:64 + 56]
    moved[PAGE_SIZE + 8:PAGE_SIZE + 8 + 56] = table
    struct.pack_into("<Q", moved, 32, PAGE_SIZE + 8)       # phdrs past the first page
    moved = bytes(moved)
    image = parse_elf(moved[:PAGE_SIZE], lambda o, n: moved[o:o + n], len(moved))
    assert image.phoff == PAGE_SIZE + 8
    with pytest.raises(SysError) as e:                      # reader returns short
        parse_elf(moved[:PAGE_SIZE], lambda o, n: moved[o:o + n - 1], len(moved))
    assert e.value.errno == errno.ENOEXEC

    def failing(o, n):
        raise SysError(errno.EIO)
    with pytest.raises(SysError) as e:                      # reader's error propagates
        parse_elf(moved[:PAGE_SIZE], failing, len(moved))
    assert e.value.errno == errno.EIO


def test_random_corruption_never_crashes(binaries):
    """Mutated headers either parse and plan, or fail with ENOEXEC/EINVAL, nothing else."""
    with open(binaries["static"], "rb") as f:
        original = f.read()
    rng = random.Random(1234)
    hot = list(range(0, 64 + 56 * 12))          # ELF header and program headers
    outcomes = set()
    for _ in range(3000):
        b = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            pos = rng.choice(hot)
            b[pos] = rng.choice([0, 0xFF, rng.randrange(256), b[pos] ^ (1 << rng.randrange(8))])
        b = bytes(b)
        cut = rng.choice([len(b), len(b), rng.randrange(len(b) + 1)])
        b = b[:cut]
        try:
            image = parse_elf(b[:PAGE_SIZE], lambda o, n: b[o:o + n], len(b))
            bias = default_load_bias(image)
            plan = plan_load(image, bias if bias is not None else 0x10000000)
            for m in plan:
                assert m.start % PAGE_SIZE == 0 and m.length % PAGE_SIZE == 0
                assert m.length > 0 and m.file_offset % PAGE_SIZE == 0
                assert m.file_bytes <= m.length
                assert m.file_offset + m.file_bytes <= len(b)
            outcomes.add("ok")
        except SysError as e:
            assert e.errno in (errno.ENOEXEC, errno.EINVAL)
            outcomes.add(e.errno)
    assert {"ok", errno.ENOEXEC} <= outcomes      # the mutations hit both paths


# --- #! scripts ----------------------------------------------------------------------

def shebang_cases(interp):
    i = interp.encode()
    return {
        "plain": b"#!" + i + b"\necho\n",
        "arg": b"#!" + i + b" -x\n",
        "blanks around": b"#! \t" + i + b" \t -a  b \t c \t \n",
        "tab separator": b"#!" + i + b"\targ\n",
        "crlf keeps cr": b"#!" + i + b" arg\r\n",
        "cr in name": b"#!" + i + b"\r\n",
        "nul in arg": b"#!" + i + b" ab\0cd\n",
        "nul ends name": b"#!" + i + b"\0 ignored\n",
        "no newline, short file": b"#!" + i + b" tail",
        "no newline, long arg": b"#!" + i + b" " + b"a" * 400,
        "newline at 255": b"#!" + i + b" " + b"b" * (252 - len(i)) + b"\n",
        "name fills the buffer": b"#!" + b"/" * (254 - len(i)) + i + b"x" * 10,
        "name ends at 254, blank at 255": b"#!" + b"/" * (253 - len(i)) + i + b" zz",
        "name ends at 255": b"#!" + b"/" * (253 - len(i)) + i + b"\n",
        "empty": b"#!\n",
        "only blanks": b"#!   \t \n",
        "only blanks, no newline": b"#!" + b" " * 300,
        "not a script": b"\x7fELF",
    }


@needs_gcc
@pytest.mark.parametrize("case", sorted(shebang_cases("/x")))
def test_shebang_matches_native_execve(binaries, tmp_path, case):
    interp = binaries["argv"]
    content = shebang_cases(interp)[case]
    script = run_crafted(tmp_path, "script", content)
    try:
        res = subprocess.run([script], env={}, capture_output=True, check=True)
        native = [bytes.fromhex(x) for x in res.stdout.decode().split()]
        native_err = None
    except OSError as e:
        native, native_err = None, e.errno
    try:
        parsed = parse_shebang(content)
        ours_err = None
    except SysError as e:
        parsed, ours_err = None, e.errno
    if case == "not a script":
        assert parsed is None and ours_err is None and native_err == errno.ENOEXEC
        return
    if native_err == errno.ENOENT:
        # The line parses; the interpreter it names (with its CR) does not exist.
        assert ours_err is None and not os.path.exists(parsed[0])
        return
    assert ours_err == native_err
    if native is not None:
        name, arg = parsed
        assert native == [name] + ([arg] if arg is not None else []) + [script.encode()]


def test_shebang_examples():
    assert parse_shebang(b"#!/bin/sh\n") == (b"/bin/sh", None)
    assert parse_shebang(b"#! /usr/bin/env  python3 -u  \n") == (b"/usr/bin/env",
                                                                   b"python3 -u")
    assert parse_shebang(b"#!/bin/sh") == (b"/bin/sh", None)
    assert parse_shebang(b"#") is None and parse_shebang(b"") is None
    with pytest.raises(SysError) as e:
        parse_shebang(b"#!" + b"a" * 300)
    assert e.value.errno == errno.ENOEXEC


def test_records_compare_hash_and_stay_frozen_like_frozen_dataclasses():
    """elf's records are kernel/record.py FrozenRecords (no dataclasses at start-up): equal
    by value to the same class only, hashable by value, immutable, with a field repr."""
    a = elf.Mapping(0x400000, PAGE_SIZE, 5, 0, 100)
    b = elf.Mapping(0x400000, PAGE_SIZE, 5, 0, 100)
    c = elf.Mapping(start=0x400000, length=PAGE_SIZE, prot=5, file_offset=0, file_bytes=0)
    assert a == b and hash(a) == hash(b) and len({a, b, c}) == 2
    assert a != c and c.is_anonymous and a.end == 0x400000 + PAGE_SIZE
    seg = elf.LoadSegment(0x400000, PAGE_SIZE, 100, 0, 5, PAGE_SIZE)
    assert a != seg and a != (0x400000, PAGE_SIZE, 5, 0, 100)
    for record, field in ((a, "start"), (seg, "vaddr")):
        with pytest.raises(AttributeError):
            setattr(record, field, 0)
        with pytest.raises(AttributeError):
            delattr(record, field)
    assert getattr(a, "start") == 0x400000
    assert repr(c) == ("Mapping(start=4194304, length=4096, prot=5, file_offset=0, "
                       "file_bytes=0)")
