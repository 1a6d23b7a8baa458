"""Confinement of the production gofer (`--confine`).

Checked from outside on a running confined gofer: its root is the export root, it is in
its own mount/network/IPC/UTS namespaces, it holds only the four file capabilities (also
in its bounding set) and has no_new_privs. Checked from inside by running the same
confine() in a child that then tries to reach a file outside the root by every path
available to it, and to reach a loopback listener in the host's network namespace.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from pysentry.gofer.confine import KEEP_CAPS
from pysentry.gofer.launch import start_gofer
from pysentry.gofer.p9.client import Client

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="confinement tests run as root")


@pytest.fixture
def layout(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.txt").write_bytes(b"inside\n")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"SECRET\n")
    return root, secret


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_running_gofer_is_confined(layout):
    root, _ = layout
    proc, sock = start_gofer(str(root), confine=True)
    try:
        client = Client(sock)
        client.attach()                     # served after confinement
        status = _status(proc.pid)
        keep = sum(1 << cap for cap in KEEP_CAPS)
        assert int(status["CapEff"], 16) == keep
        assert int(status["CapPrm"], 16) == keep
        assert int(status["CapBnd"], 16) == keep
        assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        for ns in ("mnt", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{proc.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
        gofer_root = os.stat(f"/proc/{proc.pid}/root")
        assert (gofer_root.st_dev, gofer_root.st_ino) == (os.stat(root).st_dev,
                                                          os.stat(root).st_ino)
        assert sorted(os.listdir(f"/proc/{proc.pid}/root")) == ["inside.txt"]
        client.close()
    finally:
        sock.close()
        proc.wait(timeout=10)


PROBE = textwrap.dedent("""
    import encodings.idna, json, os, socket, sys   # nothing can be imported once confined
    from pysentry.gofer.confine import confine
    root, secret, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    confine(root)
    results = {}
    for path in (secret, "/.." + secret, "/../../" + os.path.basename(secret),
                 "/proc/self/root" + secret, "/proc/1/root" + secret, "/etc/passwd"):
        try:
            with open(path, "rb") as f:
                results[path] = f.read().decode()
        except OSError as exc:
            results[path] = exc.errno
    results["listdir"] = sorted(os.listdir("/"))
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        results["connect"] = "connected"
    except OSError as exc:
        results["connect"] = exc.errno
    print(json.dumps(results))
""")


def test_confined_process_cannot_open_outside_its_root(layout):
    root, secret = layout
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        out = subprocess.run([sys.executable, "-c", PROBE, str(root), str(secret),
                              str(listener.getsockname()[1])],
                             capture_output=True, timeout=60, check=True).stdout
    finally:
        listener.close()
    results = json.loads(out)
    assert results.pop("listdir") == ["inside.txt"]
    assert results.pop("connect") != "connected"       # no route out of its netns
    for path, outcome in results.items():
        assert isinstance(outcome, int), f"{path} was readable: {outcome!r}"
