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
