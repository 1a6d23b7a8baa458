"""The ptrace platform's stubs, checked from the host while a sandbox runs."""
import os
import signal
import subprocess
import time

import pytest

from conftest import compile_c, sandbox_cmd


def _status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = open(f"/proc/{p}/task/{p}/children").read().split()
        except OSError:
            continue
        for k in map(int, kids):
            out.append(k)
            todo.append(k)
    return out


@pytest.fixture
def running_sandbox():
    prog = compile_c(r'''
#include <unistd.h>
#include <stdio.h>
int main(void){ puts("ready"); fflush(stdout); sleep(30); return 0; }''')
    p = subprocess.Popen(sandbox_cmd([prog]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        assert p.stdout.readline() == b"ready\n"
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def _stubs(sentry_pid):
    stubs = []
    for pid in _descendants(sentry_pid):
        try:
            st = _status(pid)
        except OSError:
            continue
        # A stub being torn down (an address space released at exec) is not confined any
        # less, but it may already have dropped its fds: look at live ones only.
        if st.get("TracerPid") == str(sentry_pid) and st.get("State", "")[:1] not in "ZX":
            stubs.append(pid)
    return stubs


def test_stubs_are_confined(running_sandbox):
    sentry = running_sandbox.pid
    stubs = _stubs(sentry)
    assert stubs, "no traced stub processes found"
    sentry_sid = os.getsid(sentry)
    for pid in stubs:
        st = _status(pid)
        assert st["CapEff"] == "0000000000000000", st["CapEff"]
        assert st["CapPrm"] == "0000000000000000"
        assert st["CapBnd"] == "0000000000000000"
        assert st["NoNewPrivs"] == "1"
        assert os.getsid(pid) != sentry_sid
        # Only the stub page and what the sandbox mapped; never the host's libraries.
        maps = open(f"/proc/{pid}/maps").read()
        assert "libc" not in maps and "python" not in maps and "[vdso]" not in maps, maps
        # Its only open fd is the memory file.
        fds = os.listdir(f"/proc/{pid}/fd")
        assert len(fds) == 1 and "memfd:pysentry-memory" in os.readlink(f"/proc/{pid}/fd/{fds[0]}")


def test_stubs_die_with_the_sentry(running_sandbox):
    sentry = running_sandbox.pid
    stubs = _stubs(sentry)
    assert stubs
    os.kill(sentry, signal.SIGKILL)
    running_sandbox.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p for p in stubs if os.path.exists(f"/proc/{p}") and
                 _status(p).get("State", "").split()[0] not in ("Z", "X")]
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"stubs outlived the sentry: {alive}")


# ---- the platform in-process: batches, stub reuse (no sandbox around it) ---------------
PAGE = 4096
BASE = 0x10000000


@pytest.fixture
def ptrace_platform():
    from pysentry.platform.ptrace.ptrace import PtracePlatform
    from pysentry.sentry.mm.memfile import MemoryFile
    mf = MemoryFile(1 << 30)
    pf = PtracePlatform(mf)
    try:
        yield pf
    finally:
        pf.shutdown()


def _maps(pid):
    """{start: (end, perms, file offset)} of the stub's mappings below the stub page."""
    from pysentry.native._ptrace import lib
    out = {}
    for line in open(f"/proc/{pid}/maps"):
        rng, perms, off = line.split()[:3]
        lo, hi = (int(x, 16) for x in rng.split("-"))
        if lo < lib.PS_STUB_BASE:
            out[lo] = (hi, perms, int(off, 16))
    return out


def _peek(pid, addr, n):
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return f.read(n)


def test_a_batch_runs_in_order_when_it_ends(ptrace_platform):
    pf = ptrace_platform
    a = pf.new_address_space()
    off = pf.memfile.alloc(4)
    pf.memfile.view[off:off + 5] = b"hello"
    with a.batch():
        a.map_memfile(BASE, 4 * PAGE, off, 3)
        a.protect(BASE + PAGE, PAGE, 1)
        a.unmap(BASE + 3 * PAGE, PAGE)
        a.unmap(0x50000000, PAGE)                 # nothing there: harmless
        with a.batch():                            # nested: still deferred
            a.map_memfile(BASE + 8 * PAGE, PAGE, off, 1)
        assert _maps(a.pid) == {}
    assert _maps(a.pid) == {BASE: (BASE + PAGE, "rw-s", off),
                            BASE + PAGE: (BASE + 2 * PAGE, "r--s", off + PAGE),
                            BASE + 2 * PAGE: (BASE + 3 * PAGE, "rw-s", off + 2 * PAGE),
                            BASE + 8 * PAGE: (BASE + 9 * PAGE, "r--s", off)}
    assert _peek(a.pid, BASE + 8 * PAGE, 5) == b"hello"


def test_a_failed_call_in_a_batch_is_the_stubs_failure(ptrace_platform):
    from pysentry.platform.ptrace.ptrace import StubError
    pf = ptrace_platform
    a = pf.new_address_space()
    off = pf.memfile.alloc(1)
    with pytest.raises(StubError):
        with a.batch():
            a.map_memfile(BASE, PAGE, off, 1)
            a.map_memfile(BASE + 1, PAGE, off, 1)       # unaligned: EINVAL
            a.map_memfile(BASE + 2 * PAGE, PAGE, off, 1)
    assert list(_maps(a.pid)) == [BASE]                  # stopped at the failure


def test_a_long_batch_takes_several_round_trips(ptrace_platform):
    from pysentry.platform.ptrace.ptrace import BATCH_MAX
    pf = ptrace_platform
    a = pf.new_address_space()
    off = pf.memfile.alloc(1)
    n = 2 * BATCH_MAX + 5
    with a.batch():
        for i in range(n):
            a.map_memfile(BASE + 2 * i * PAGE, PAGE, off, 1)
    assert sorted(_maps(a.pid)) == [BASE + 2 * i * PAGE for i in range(n)]


def test_a_released_stub_is_reused_emptied_with_its_thread(ptrace_platform):
    from pysentry.native._ptrace import lib
    pf = ptrace_platform
    a = pf.new_address_space()
    off = pf.memfile.alloc(1)
    a.map_memfile(BASE, PAGE, off, 3)
    ctx = pf.new_context(a)
    tid = ctx.tid
    ctx.release()                        # stopped: parked in its stub, not exited
    a.release()
    assert a.pid == 0 and pf.spare
    b = pf.new_address_space()
    ctx = pf.new_context(b)
    assert ctx.tid == tid and b.pid == tid_group(tid)
    assert list(_maps(b.pid)) == [BASE]  # the old mapping is still there, but...
    # ...nothing runs in the stub before it is gone: resume empties the stub first. The
    # thread runs one int3 of the stub page and stops.
    ctx.regs.rip = lib.ps_stub_syscall_addr() + 2
    ctx.resume()
    _, status = os.waitpid(tid, 0x40000000)
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTRAP
    ctx.running = False
    assert _maps(b.pid) == {}
    b.map_memfile(BASE, PAGE, off, 1)    # and it serves its new user
    assert list(_maps(b.pid)) == [BASE]


def tid_group(tid):
    return int(_status(tid)["Tgid"])
