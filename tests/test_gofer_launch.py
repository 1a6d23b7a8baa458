"""start_gofer: the gofer inherits only its socket and dies with the process that
started it (PR_SET_PDEATHSIG)."""
import os
import subprocess
import sys
import textwrap
import time

from pysentry.gofer.launch import start_gofer
from pysentry.gofer.p9.client import Client


def _fd_targets(pid: int) -> set:
    base = f"/proc/{pid}/fd"
    return {os.readlink(os.path.join(base, n)) for n in os.listdir(base)}


def test_gofer_inherits_no_unrelated_fds(tmp_path):
    r, w = os.pipe()
    os.set_inheritable(r, True)
    os.set_inheritable(w, True)
    (tmp_path / "root").mkdir()
    stray = os.open(tmp_path / "unrelated", os.O_RDWR | os.O_CREAT)
    os.set_inheritable(stray, True)
    proc, sock = start_gofer(str(tmp_path / "root"), confine=False)
    try:
        Client(sock).attach()
        theirs = _fd_targets(proc.pid)
        ours = {os.readlink(f"/proc/self/fd/{fd}") for fd in (r, w, stray)}
        assert not theirs & ours
        assert sum(t.startswith("socket:") for t in theirs) == 1
    finally:
        for fd in (r, w, stray):
            os.close(fd)
        sock.close()
        proc.wait(timeout=10)


STARTER = textwrap.dedent("""
    import sys
    from pysentry.gofer.launch import start_gofer
    proc, sock = start_gofer(sys.argv[1], confine=False)
    print(proc.pid, flush=True)
    sys.stdin.read()          # keep running until the test kills us
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def test_gofer_dies_with_its_parent(tmp_path):
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        gofer_pid = int(starter.stdout.readline())
        assert _alive(gofer_pid)
    finally:
        starter.kill()
        starter.wait()
        starter.stdin.close()
        starter.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(gofer_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(gofer_pid)
