"""Gofers forked early by the command line (launch.prestart_gofer) instead of started as a
fresh interpreter: checked from outside on a running `pysentry run`, they are as confined
as interpreter-started ones, hold no fd of ours but their socket, never saw the sandbox's
memory file, and die with the sentry; and start_gofer adopts exactly the prestarted gofer
whose arguments match."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pysentry.gofer.confine import KEEP_CAPS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="gofer confinement needs root")


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _fds(pid: int) -> dict:
    base = f"/proc/{pid}/fd"
    out = {}
    for name in os.listdir(base):
        try:
            out[int(name)] = os.readlink(os.path.join(base, name))
        except FileNotFoundError:
            pass
    return out


def _children(pid: int) -> list:
    kids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def _alive(pid: int) -> bool:
    try:
        return _status(pid)["State"][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def running_sandbox(tmp_path):
    """A `pysentry run` with a volume, sleeping; an extra fd of ours is inherited by it."""
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "marker").write_bytes(b"in the volume\n")
    stray = os.open(tmp_path / "stray-file", os.O_RDWR | os.O_CREAT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pysentry.sentry.cli", "run", "-v", f"{volume}:/vol:ro",
         "--", "/bin/sh", "-c", "cat /vol/marker; exec sleep 30"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, pass_fds=(stray,))
    try:
        assert proc.stdout.readline() == b"in the volume\n"
        yield proc, volume, os.readlink(f"/proc/self/fd/{stray}")
    finally:
        os.close(stray)
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _gofers(sentry_pid: int) -> list:
    # The stubs are the children that hold the sandbox's memory file; the rest are gofers.
    return [pid for pid in _children(sentry_pid)
            if not any("memfd:" in t for t in _fds(pid).values())]


def test_prestarted_gofers_are_confined_and_isolated(running_sandbox):
    proc, volume, stray = running_sandbox
    gofers = _gofers(proc.pid)
    assert len(gofers) == 2                 # the root filesystem and the volume
    keep = sum(1 << cap for cap in KEEP_CAPS)
    roots = set()
    for pid in gofers:
        status = _status(pid)
        assert int(status["CapEff"], 16) == keep
        assert int(status["CapBnd"], 16) == keep
        assert int(status["CapAmb"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        for ns in ("mnt", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[3]) == pid   # own session
        fds = _fds(pid)
        assert fds[0] == "/dev/null" and fds[3].startswith("socket:")
        assert sum(t.startswith("socket:") for t in fds.values()) == 1
        assert stray not in fds.values()
        with open(f"/proc/{pid}/maps") as f:
            assert "memfd:" not in f.read()  # never mapped the sandbox's memory
        st = os.stat(f"/proc/{pid}/root")
        roots.add((st.st_dev, st.st_ino))
    vst = os.stat(volume)
    assert (vst.st_dev, vst.st_ino) in roots   # the volume's gofer is pivoted into it


def test_prestarted_gofers_die_with_the_sentry(running_sandbox):
    proc, _, _ = running_sandbox
    gofers = _gofers(proc.pid)
    assert gofers and all(_alive(pid) for pid in gofers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _wait_for(lambda: not any(_alive(pid) for pid in gofers))


ADOPTION = textwrap.dedent("""
    import os, sys
    from pysentry.gofer import launch
    from pysentry.gofer.p9.client import Client
    root, other = sys.argv[1], sys.argv[2]
    launch.prestart_gofer(root, ro=True, confine=False)
    launch.prestart_gofer(other, ro=True, confine=False)
    forked = {key: entry[0].pid for key, entry in launch._prestarted.items()}
    proc, sock = launch.start_gofer(root, ro=True, confine=False)
    adopted = proc.pid == forked[launch._key(root, True, True, False)]
    client = Client(sock)
    client.walk(client.attach(), ["hello"])     # served from the right root
    client.close()
    status = proc.wait(timeout=10)
    # Different arguments: not adopted, a fresh interpreter instead.
    proc2, sock2 = launch.start_gofer(root, ro=False, confine=False)
    fresh = proc2.pid not in forked.values()
    sock2.close()
    proc2.wait(timeout=10)
    leftover = forked[launch._key(other, True, True, False)]
    launch.discard_prestarted()
    gone = not os.path.exists(f"/proc/{leftover}") or open(f"/proc/{leftover}/stat").read().split()[2] == "Z"
    print(adopted, status, fresh, gone, launch._prestarted == {})
""")


def test_start_gofer_adopts_only_a_matching_prestarted_gofer(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello").write_bytes(b"hi")
    other = tmp_path / "other"
    other.mkdir()
    out = subprocess.run([sys.executable, "-c", ADOPTION, str(root), str(other)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "0", "True", "True", "True"]
