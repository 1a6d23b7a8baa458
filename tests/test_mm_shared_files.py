"""MAP_SHARED file mappings are coherent: between processes, with read()/write(), and with
the file itself (write-back on msync, fsync, munmap and exit).

Differential tests run the programs natively and in pysentry (native Linux, whose page
cache makes all of this true, is the oracle); the in-process tests check the FileMap's
own invariants (sparse write-back, span reuse, ENOMEM past the span) on a tmpfs file.
"""
import errno
import os
import pathlib
import random
import shutil
import signal
import uuid

import pytest

from conftest import BUILD, assert_same, compile_c, run_native, run_sandbox
from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.mm import filemap
from pysentry.sentry.mm.addrspace import PROT_READ, PROT_WRITE, AddressSpace
from pysentry.sentry.mm.pageranges import PageRanges
from pysentry.sentry.mm.memfile import PAGE, MemoryFile
from pysentry.sentry.vfs.context import Creds
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.vfs import VirtualFS

# Not under /tmp: the sandbox's /tmp is its own tmpfs.
HOST_SCRATCH = pathlib.Path("/var/tmp/pysentry-test-mm-shared")


def _scratch():
    d = HOST_SCRATCH / uuid.uuid4().hex[:8]
    d.mkdir(parents=True)
    return d


# ---- differential: programs natively and inside -----------------------------------------
def test_two_processes_share_a_dev_shm_object():
    """shm_open + mmap in a parent and in an exec'd child (no inherited mapping); pwrite
    and pread against those mappings; two mappings in one process."""
    assert_same([compile_c("mm_shared_shm")])


def test_memfd_shared_with_forked_and_execd_children():
    assert_same([compile_c("mm_shared_memfd")])


@pytest.mark.parametrize("where", ["/dev/shm", "/tmp", "/var/tmp"])
def test_read_write_truncate_mremap_coherent_with_mappings(where):
    """On the sandbox's tmpfs mounts and on the root overlay (a copied-up host file)."""
    assert_same([compile_c("mm_shared_coherence"), where])


def test_coherence_on_a_volume():
    d = _scratch()
    try:
        prog = compile_c("mm_shared_coherence")
        nat = run_native([prog, str(d)])
        box = run_sandbox([prog, "/vol"], "--volume", f"{d}:/vol")
        assert box.returncode == nat.returncode == 0, box.stderr
        assert box.stdout == nat.stdout
    finally:
        shutil.rmtree(d)


def _volume_run(mode):
    """Run mm_shared_volume natively and inside; return both outputs and host files."""
    d = _scratch()
    try:
        prog = compile_c("mm_shared_volume")
        nat = run_native([prog, str(d), str(d), mode])
        native_file = (d / mode).read_bytes()
        (d / mode).unlink()
        # Two volumes of one directory: /vol2's inode is not /vol's, so reading through it
        # shows what reached the host file, not what the mapping holds.
        box = run_sandbox([prog, "/vol", "/vol2", mode], "--volume", f"{d}:/vol",
                          "--volume", f"{d}:/vol2")
        box_file = (d / mode).read_bytes()
        return nat, box, native_file, box_file
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("mode", ["msync", "fsync", "munmap", "exit"])
def test_stores_reach_the_host_file(mode):
    nat, box, native_file, box_file = _volume_run(mode)
    assert box.returncode == nat.returncode == 0, box.stderr
    assert box.stdout == nat.stdout
    assert box_file == native_file
    assert b"third page stored" in box_file


def test_stores_of_a_process_alive_at_sandbox_exit_reach_the_host_file():
    """The child still maps the file when init exits: the sandbox writes it back as it ends."""
    d = _scratch()
    try:
        prog = compile_c("mm_shared_volume")
        nat = run_native([prog, str(d), str(d), "linger"])
        try:
            native_file = (d / "linger").read_bytes()
        finally:
            os.kill(int(nat.stdout), signal.SIGKILL)     # the native child lingers; end it
        (d / "linger").unlink()
        box = run_sandbox([prog, "/vol", "/vol", "linger"], "--volume", f"{d}:/vol")
        assert box.returncode == 0, box.stderr
        assert (d / "linger").read_bytes() == native_file
        assert b"third page stored" in native_file
    finally:
        shutil.rmtree(d)


def test_python_multiprocessing_shared_memory():
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("Debian's python3 is not installed")
    script = pathlib.Path(__file__).parent / "progs" / "mm_shared_python.py"
    # Outside /tmp, which inside the sandbox is its own tmpfs.
    visible = BUILD / script.name
    BUILD.mkdir(parents=True, exist_ok=True)
    visible.write_text(script.read_text())
    assert_same([python, str(visible)])


def test_sqlite_wal_readers_see_other_processes_commits():
    """sqlite's WAL index is a shared mapping of the -shm file, made by each process."""
    python = "/usr/bin/python3"
    if not os.path.exists(python) or shutil.which("sqlite3") is None:
        pytest.skip("Debian's python3 and the sqlite3 tool are needed")
    script = pathlib.Path(__file__).parent / "progs" / "mm_shared_sqlite.py"
    visible = BUILD / script.name
    BUILD.mkdir(parents=True, exist_ok=True)
    visible.write_text(script.read_text())
    d = _scratch()
    try:
        assert_same([python, str(visible), str(d)])
    finally:
        shutil.rmtree(d)


# ---- in-process: the FileMap's own invariants -----------------------------------------------
class _NoPlatform:
    """An address space's platform half that maps nothing: these tests touch memory only
    through the kernel's own view (AddressSpace.read/write)."""

    def map_memfile(self, *a):
        pass

    unmap = protect = map_memfile

    def release(self):
        pass


@pytest.fixture(scope="module")
def memfile():
    return MemoryFile()


@pytest.fixture
def tmpfile():
    v = VirtualFS(TmpFS())
    ctx = v.root_context(Creds())
    desc = v.openat(ctx, None, b"/f", os.O_CREAT | os.O_RDWR, 0o644)
    yield desc
    filemap.sync(desc.inode)
    desc.decref()


def _aspace(memfile):
    return AddressSpace(memfile, _NoPlatform(), 1 << 47)


def _map(mm, desc, addr, length, off=0, prot=PROT_READ | PROT_WRITE, shared=True):
    with filemap.mapping(desc, mm.memfile, off, length) as fm:
        mm.map_file_pages(addr, length, prot, shared, fm.region, off // PAGE, b"/f", off, 0,
                          0, maywrite=desc.writable)
    return fm


def test_page_ranges_behave_as_a_set_of_pages():
    rnd = random.Random(7)
    ranges, model = PageRanges(), set()
    for _ in range(400):
        lo = rnd.randrange(0, 60)
        hi = lo + rnd.randrange(0, 12)
        if rnd.random() < 0.5:
            ranges.add(lo, hi)
            model |= set(range(lo, hi))
        got_gaps = {p for a, b in ranges.gaps(lo, hi) for p in range(a, b)}
        assert got_gaps == set(range(lo, hi)) - model
        pieces = ranges.split(lo, hi)
        assert [p for a, b, _ in pieces for p in range(a, b)] == list(range(lo, hi))
        assert all((p in model) == inside for a, b, inside in pieces for p in range(a, b))
        runs = ranges.runs
        assert all(b1 < a2 for (_, b1), (a2, _) in zip(runs, runs[1:]))   # merged, sorted


def test_stores_reach_the_inode_only_at_write_back(memfile, tmpfile):
    desc = tmpfile
    desc.write([memoryview(b"x" * 100)], 0)
    mm = _aspace(memfile)
    _map(mm, desc, 0x100000, 2 * PAGE)
    mm.write(0x100000 + 10, b"STORE")
    got = bytearray(100)
    assert desc.read([memoryview(got)], 0) == 100
    assert got[10:15] == b"STORE"                       # read() is coherent at once
    raw = bytearray(100)
    desc.inode.read(0, [memoryview(raw)])
    assert raw[10:15] == b"xxxxx"                       # the filesystem: not yet
    desc.fsync()
    desc.inode.read(0, [memoryview(raw)])
    assert raw[10:15] == b"STORE"
    mm.write(0x100000 + 20, b"AGAIN")
    mm.unmap(0x100000, 2 * PAGE)                        # the last unmap writes back...
    desc.inode.read(0, [memoryview(raw)])
    assert raw[20:25] == b"AGAIN"
    assert desc.inode not in filemap._live              # ...and the FileMap is gone


def test_write_back_keeps_a_sparse_file_sparse(memfile, tmpfile):
    desc = tmpfile
    size = 64 << 20
    desc.truncate(size)
    mm = _aspace(memfile)
    _map(mm, desc, 0x10000000, size)
    mm.write(0x10000000 + 1000 * PAGE + 5, b"one store")
    mm.unmap(0x10000000, size)
    fs = desc.inode.fs
    assert fs.pages_used == 1                           # the one stored page, not 16384
    got = bytearray(9)
    desc.read([memoryview(got)], 1000 * PAGE + 5)
    assert got == b"one store"


def test_fork_shares_the_pages_and_spans_are_reused(memfile, tmpfile):
    desc = tmpfile
    desc.truncate(PAGE)
    parent = _aspace(memfile)
    fm = _map(parent, desc, 0x200000, PAGE)
    child = parent.fork(_NoPlatform())
    child.write(0x200000, b"from child")
    assert parent.read(0x200000, 10) == b"from child"
    parent.release()
    assert desc.inode in filemap._live                  # the child still maps it
    child.release()
    assert desc.inode not in filemap._live
    assert filemap._idle.get(desc.inode) is fm          # idle: its pages are kept
    desc.write([memoryview(b"by write()")], 0)          # a write through the sentry drops it
    assert desc.inode not in filemap._idle
    bump = memfile._bump
    mm = _aspace(memfile)
    again = _map(mm, desc, 0x200000, PAGE)
    assert again is not fm and again.region.off == fm.region.off   # the span came back
    assert memfile._bump == bump
    assert mm.read(0x200000, 10) == b"by write()"
    mm.release()


def test_an_idle_file_map_is_taken_back_only_while_the_file_is_unchanged(memfile, tmpfile):
    desc = tmpfile
    desc.write([memoryview(b"first" * 1000)], 0)
    mm = _aspace(memfile)
    fm = _map(mm, desc, 0x700000, 2 * PAGE, prot=PROT_READ, shared=False)
    mm.release()
    assert filemap._idle.get(desc.inode) is fm
    mm = _aspace(memfile)
    assert _map(mm, desc, 0x700000, 2 * PAGE, prot=PROT_READ, shared=False) is fm
    assert desc.inode not in filemap._idle              # live again, not both
    mm.release()
    # Behind the FileMap's back (as a host change seen by stat() would be): new attributes,
    # so the idle pages are not used again.
    desc.inode.write(0, [memoryview(b"SECOND")])
    mm = _aspace(memfile)
    again = _map(mm, desc, 0x700000, 2 * PAGE, prot=PROT_READ, shared=False)
    assert again is not fm
    assert mm.read(0x700000, 8) == b"SECONDir"
    mm.release()
    got = bytearray(6)
    desc.read([memoryview(got)], 0)                     # read() while idle: the filesystem
    assert got == b"SECOND"


def test_idle_file_maps_are_bounded(memfile):
    v = VirtualFS(TmpFS())
    ctx = v.root_context(Creds())
    descs = []
    for i in range(filemap.IDLE_MAX_FILES + 3):
        d = v.openat(ctx, None, b"/f%d" % i, os.O_CREAT | os.O_RDWR, 0o644)
        d.write([memoryview(b"x" * PAGE)], 0)
        mm = _aspace(memfile)
        _map(mm, d, 0x100000, PAGE, prot=PROT_READ, shared=False)
        mm.release()
        descs.append(d)
    assert len(filemap._idle) <= filemap.IDLE_MAX_FILES
    assert descs[-1].inode in filemap._idle and descs[0].inode not in filemap._idle
    for d in descs:
        d.decref()


def test_read_only_private_mappings_share_file_pages_until_written(memfile, tmpfile):
    desc = tmpfile
    desc.write([memoryview(b"text" * 1024)], 0)
    a, b = _aspace(memfile), _aspace(memfile)
    _map(a, desc, 0x500000, PAGE, prot=PROT_READ, shared=False)
    fm = _map(b, desc, 0x600000, PAGE, prot=PROT_READ, shared=False)
    page = fm.region.off
    assert a.find(0x500000).frame(0x500000) == b.find(0x600000).frame(0x600000) == page
    with pytest.raises(SysError):                       # not writable: EFAULT for the kernel
        a.write(0x500000, b"x")
    a.protect(0x500000, PAGE, PROT_READ | PROT_WRITE)
    a.write(0x500000, b"TEXT")                          # copy-on-write, even with no fork
    assert a.read(0x500000, 8) == b"TEXTtext"
    assert b.read(0x600000, 8) == b"texttext"
    got = bytearray(8)
    desc.read([memoryview(got)], 0)
    assert got == b"texttext"
    assert not fm.dirty                                 # private stores never write back
    a.release()
    b.release()
    assert desc.inode not in filemap._live


def test_mapping_past_the_span_is_enomem(memfile, tmpfile):
    desc = tmpfile
    mm = _aspace(memfile)
    fm = _map(mm, desc, 0x300000, PAGE)
    with pytest.raises(SysError) as e:
        _map(mm, desc, 0x400000, PAGE, off=fm.span)
    assert e.value.errno == errno.ENOMEM
    mm.release()
