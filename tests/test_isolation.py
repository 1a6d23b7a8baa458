"""The sandbox cannot reach the host's kernel filesystems or its processes."""
import os

from conftest import run_sandbox
from pysentry.gofer.launch import start_gofer
from pysentry.gofer.p9.client import Client
from pysentry.sentry.kernel.errors import SysError


def test_gofer_refuses_host_kernel_filesystems():
    proc, sock = start_gofer("/", ro=True)
    try:
        c = Client(sock)
        root = c.attach()
        for name in ("proc", "sys", "dev"):
            try:
                c.walk(root, [name])
            except SysError as e:
                assert e.errno == 13, (name, e)       # EACCES
            else:
                raise AssertionError(f"the gofer served the host's /{name}")
        c.walk(root, ["etc"])                           # ordinary directories still work
        c.close()
    finally:
        sock.close()
        proc.kill()
        proc.wait()


def test_sandbox_sees_no_host_proc_or_sys():
    host_pids = {p for p in os.listdir("/proc") if p.isdigit()}
    box = run_sandbox(["/bin/sh", "-c", "ls /proc; echo --; ls /sys"])
    assert box.returncode == 0, box.stderr
    inside = set(box.stdout.decode().split())
    # Whatever /proc holds inside, it is not the host's process list.
    assert not (host_pids - {"1"}) & inside
    sys_part = box.stdout.decode().split("--", 1)[1].split()
    assert sys_part == [] or "devices" not in sys_part
