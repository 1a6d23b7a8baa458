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
    box = run_sandbox(["/bin/sh", "-c", "ls /proc; echo @@; cat /proc/1/cmdline; echo; echo @@; ls /sys"])
    assert box.returncode == 0, box.stderr
    listing, cmdline, sys_part = box.stdout.decode().split("@@\n")
    # /proc is the sandbox's: its pid 1 is our shell and it holds only our few processes.
    assert cmdline.strip().split("\0")[0] == "/bin/sh"
    pids = [p for p in listing.split() if p.isdigit()]
    assert 1 <= len(pids) <= 5, pids
    assert "devices" not in sys_part.split()
