"""vm.max_map_count: a program that maps VMAs until the limit gets ENOMEM and goes on, as on
Linux, and the host's own VMA limit (ptrace: every VMA is a VMA of the stub process) is
never the one to fail first.

The differential tests run tests/progs/mapcount.c natively (against the host's limit) and
in the sandbox (against the sandbox's: PYSENTRY_MAX_MAP_COUNT, small so the test is fast,
or the default one sized under the host's). The model tests drive AddressSpace over a
simulated host that counts VMAs as Linux merges them.
"""
import errno
import os

import pytest

from conftest import PLATFORMS, compile_c, run_native, run_sandbox
from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.mm.addrspace import (COW_MAP_RESERVE, PROT_READ, PROT_WRITE, SEGV_ACCERR,
                                          SEGV_MAPERR, AddressSpace, max_map_count)
from pysentry.sentry.mm.memfile import PAGE, MemoryFile

SMALL_LIMIT = 2000


def _host_limit() -> int:
    with open("/proc/sys/vm/max_map_count") as f:
        return int(f.read())


def _run_both(sandbox_limit: int, platform: str, env_limit=None, child_stores=300):
    prog = compile_c("mapcount")
    nat = run_native([prog, str(_host_limit()), str(child_stores)])
    env = dict(os.environ)
    if env_limit is not None:
        env["PYSENTRY_MAX_MAP_COUNT"] = str(env_limit)
    box = run_sandbox([prog, str(sandbox_limit), str(child_stores)],
                      f"--platform={platform}", env=env)
    return nat, box


@pytest.mark.parametrize("platform", PLATFORMS)
def test_mapping_to_the_limit_gives_enomem_and_the_program_goes_on(platform):
    nat, box = _run_both(SMALL_LIMIT, platform, env_limit=SMALL_LIMIT)
    assert nat.returncode == 0, nat.stderr
    assert b"mmap until it fails: ENOMEM" in nat.stdout
    assert box.stdout == nat.stdout, box.stderr[-3000:].decode(errors="replace")
    assert box.returncode == 0
    assert b"internal error" not in box.stderr


def test_default_limit_stays_under_the_hosts_on_ptrace():
    # The review's reproducer: one-page mappings up to the limit, then touching them all
    # (every one becomes a host VMA of the stub), fork and copy-on-write stores at the
    # limit. The sandbox's limit is the host's less the stub's own VMAs and room for
    # private copies; past that room, copies are made by privatizing whole VMAs.
    from pysentry.platform.ptrace.ptrace import STUB_OWN_MAPS, _host_max_map_count

    class Stub:
        host_map_limit = _host_max_map_count() - STUB_OWN_MAPS
    limit = max_map_count(Stub)
    assert limit < _host_limit()
    nat, box = _run_both(limit, "ptrace")
    assert nat.returncode == 0, nat.stderr
    assert box.stdout == nat.stdout, box.stderr[-3000:].decode(errors="replace")
    assert box.returncode == 0


# The sentry with the model's limit and host budget switched off, as before they existed:
# the stub then meets the host's vm.max_map_count itself.
_UNLIMITED_SENTRY = """
import sys
from pysentry.sentry.mm import addrspace
addrspace.max_map_count = lambda pas: 10 ** 9
addrspace.AddressSpace._host_overflow = lambda self, vmas_added, overrides_added=0: 0
from pysentry.sentry import cli
sys.exit(cli.main(["run", "--platform=ptrace", "--", *sys.argv[1:]]))
"""


def test_a_mapping_the_host_refuses_is_sigsegv_not_an_internal_error():
    # Past the host's limit the stub's mmaps fail with ENOMEM: the platform unmaps those
    # ranges and goes on, and the fault that needed one is the program's SIGSEGV (it used
    # to be a StubError: "internal error", the task killed with SIGSYS).
    import subprocess
    import sys
    prog = compile_c("mapcount")
    r = subprocess.run([sys.executable, "-c", _UNLIMITED_SENTRY, prog,
                        str(_host_limit() + 1000), "8"], capture_output=True, timeout=120)
    assert r.returncode == 128 + 11, (r.returncode, r.stderr[-3000:])
    assert b"internal error" not in r.stderr


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_sysctl_shows_the_sandbox_limit(platform):
    env = dict(os.environ, PYSENTRY_MAX_MAP_COUNT=str(SMALL_LIMIT))
    box = run_sandbox(["/bin/cat", "/proc/sys/vm/max_map_count"], f"--platform={platform}",
                      env=env)
    assert (box.returncode, box.stdout) == (0, b"%d\n" % SMALL_LIMIT), box.stderr
    # Unset, ptrace shows the limit sized under the host's, KVM Linux's default.
    env.pop("PYSENTRY_MAX_MAP_COUNT")
    box = run_sandbox(["/bin/cat", "/proc/sys/vm/max_map_count"], f"--platform={platform}",
                      env=env)
    from pysentry.platform.ptrace.ptrace import STUB_OWN_MAPS
    want = (min(65530, _host_limit() - STUB_OWN_MAPS - 1 - COW_MAP_RESERVE)
            if platform == "ptrace" else 65530)
    assert box.stdout == b"%d\n" % want


def test_the_knob_below_the_minimum_is_raised_to_it():
    prog = compile_c("mapcount")
    env = dict(os.environ, PYSENTRY_MAX_MAP_COUNT="5")
    box = run_sandbox([prog, "64", "8"], env=env)
    assert box.returncode == 0, box.stderr[-3000:]
    assert b"count near the limit: yes" in box.stdout


# ---- the model over a simulated host --------------------------------------------------
class HostSim:
    """The host half of an address space, page by page, and the VMAs it would make:
    adjacent pages are one VMA when their memory-file offsets follow on and their
    protections agree (Linux merges such file mappings)."""
    map_ahead = False

    def __init__(self, host_map_limit=None):
        self.host_map_limit = host_map_limit
        self.pages: dict[int, tuple[int, int]] = {}
        self.most = 0

    def map_memfile(self, addr, length, offset, prot):
        for i in range(0, length, PAGE):
            self.pages[addr + i] = (offset + i, prot)
        self.most = max(self.most, self.vmas())

    def unmap(self, addr, length):
        for i in range(0, length, PAGE):
            self.pages.pop(addr + i, None)

    def protect(self, addr, length, prot):
        for i in range(0, length, PAGE):
            if addr + i in self.pages:
                self.pages[addr + i] = (self.pages[addr + i][0], prot)
        self.most = max(self.most, self.vmas())

    def release(self):
        self.pages.clear()

    def vmas(self) -> int:
        n, prev = 0, None
        for a in sorted(self.pages):
            off, prot = self.pages[a]
            if prev != (a - PAGE, off - PAGE, prot):
                n += 1
            prev = (a, off, prot)
        return n


@pytest.fixture(scope="module")
def memfile():
    return MemoryFile(size=1 << 32)


RW = PROT_READ | PROT_WRITE
BASE = 0x10000000


def _aspace(memfile, host_map_limit=None) -> AddressSpace:
    return AddressSpace(memfile, HostSim(host_map_limit), 1 << 47)


def _recount(mm) -> int:
    return sum(len(v.overrides) for v in mm.vmas)


def test_model_limit_rules(memfile):
    mm = _aspace(memfile)
    assert mm.map_limit == max_map_count(mm.pas)
    mm.map_limit = 10
    mm.map_anon(BASE, 3 * PAGE, RW, False)
    i = 0
    while True:                 # one-page VMAs with gaps, as mmap would place them
        try:
            mm.map_anon(BASE + (4 + 2 * i) * PAGE, PAGE, RW, False)
        except SysError as e:
            assert e.errno == errno.ENOMEM
            break
        i += 1
    assert len(mm.vmas) == 11                  # Linux's mmap stops one above the limit
    before = [(v.start, v.end, v.prot) for v in mm.vmas]
    for op in (lambda: mm.protect(BASE, PAGE, PROT_READ),
               lambda: mm.unmap(BASE + PAGE, PAGE),
               lambda: mm.map_anon(BASE + PAGE, PAGE, RW, False),     # MAP_FIXED inside
               lambda: mm.check_mremap(moving=True)):
        with pytest.raises(SysError) as e:
            op()
        assert e.value.errno == errno.ENOMEM
    assert [(v.start, v.end, v.prot) for v in mm.vmas] == before
    mm.brk_start = mm.brk = BASE + 0x100000
    assert mm.set_brk(mm.brk + PAGE) == BASE + 0x100000      # brk keeps the old break
    # Whole VMAs can still be changed, unmapped or replaced; the same protection splits
    # nothing (Linux leaves such VMAs alone).
    mm.protect(BASE, 3 * PAGE, RW)
    mm.protect(BASE + 4 * PAGE, PAGE, PROT_READ)
    mm.unmap(BASE + 4 * PAGE, PAGE)
    mm.unmap(BASE + 6 * PAGE, PAGE)
    mm.protect(BASE, PAGE, PROT_READ)          # count 9 + 1 split: at the limit, allowed
    assert len(mm.vmas) == 10
    mm.release()


def _filled_parent(memfile, host_limit, nvmas, pages):
    mm = _aspace(memfile, host_limit)
    for i in range(nvmas):
        start = BASE + i * (pages + 1) * PAGE
        mm.map_anon(start, pages * PAGE, RW, False)
        for p in range(pages):
            mm.write(start + p * PAGE, b"P%d.%d" % (i, p))
        assert mm.handle_fault(start, SEGV_MAPERR)       # mapped in the host
    return mm


def _check_host(mm):
    assert mm.noverrides == _recount(mm)
    assert mm.pas.vmas() <= mm.pas.host_map_limit
    assert mm.pas.most <= mm.pas.host_map_limit


def test_cow_breaks_beyond_the_host_budget_privatize_vmas(memfile):
    host_limit = 200
    parent = _filled_parent(memfile, host_limit, nvmas=20, pages=16)
    assert parent.map_limit == host_limit - 1 - COW_MAP_RESERVE
    child = parent.fork(HostSim(host_limit))
    for v in child.vmas[::2]:
        child.handle_fault(v.start, SEGV_MAPERR)          # half mapped in the child's host
    # Every page of the child is stored into: faults on mapped VMAs, kernel writes on
    # the others. One private copy each would be 20 + 2 * 320 host VMAs.
    for v in list(child.vmas):
        for a in range(v.start, v.end, PAGE):
            if child.find(a).mapped:
                assert child.handle_fault(a, SEGV_ACCERR)
            child.write(a, b"C%x" % a)
            _check_host(child)
    assert any(not v.region.shared_with_others(child) for v in child.vmas)   # privatized
    for i, v in enumerate(parent.vmas):
        for p in range(16):
            a = v.start + p * PAGE
            mine, theirs = b"P%d.%d" % (i, p), b"C%x" % a
            assert parent.read(a, len(mine)) == mine
            assert child.read(a, len(theirs)) == theirs
    # New VMAs in the child: room is made by privatizing the VMAs with copies.
    for j in range(parent.map_limit - len(child.vmas)):
        child.map_anon(BASE + 0x1000000 + j * 2 * PAGE, PAGE, RW, False)
        child.handle_fault(BASE + 0x1000000 + j * 2 * PAGE, SEGV_MAPERR)
        _check_host(child)
    child.release()
    parent.release()


def test_madvise_zeroing_beyond_the_host_budget(memfile):
    host_limit = 100
    parent = _filled_parent(memfile, host_limit, nvmas=4, pages=64)
    child = parent.fork(HostSim(host_limit))
    for v in child.vmas:
        child.handle_fault(v.start, SEGV_MAPERR)
    v = child.vmas[1]
    child.zero_range(v, v.start + PAGE, v.end - PAGE)    # 62 zero copies would not fit
    _check_host(child)
    assert child.read(v.start, 4) == b"P1.0"
    assert child.read(v.start + PAGE, 8) == bytes(8)
    assert child.read(v.end - PAGE, 5) == b"P1.63"
    assert parent.read(v.start + PAGE, 4) == b"P1.1"
    child.release()
    parent.release()


def test_the_map_limit_leaves_room_under_the_host_budget():
    class Pas:
        host_map_limit = 65522
    assert max_map_count(Pas) == 65522 - 1 - COW_MAP_RESERVE
    assert max_map_count(object()) >= 64        # no host limit: the sysctl value
