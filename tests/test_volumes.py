"""Where writes land: the overlay keeps them, a volume passes them to the host."""
import os
import pathlib
import uuid

from conftest import run_sandbox

# Not under /tmp: the sandbox's /tmp is its own tmpfs.
HOST_SCRATCH = pathlib.Path("/var/tmp/pysentry-test-volumes")


def _scratch():
    d = HOST_SCRATCH / uuid.uuid4().hex[:8]
    d.mkdir(parents=True)
    return d


def test_writes_outside_a_volume_do_not_reach_the_host():
    d = _scratch()
    (d / "existing").write_text("host content\n")
    script = f"echo new > {d}/created; echo changed > {d}/existing; rm -f {d}/gone; cat {d}/existing"
    (d / "gone").write_text("x")
    box = run_sandbox(["/bin/sh", "-c", script])
    assert box.returncode == 0, box.stderr
    assert box.stdout == b"changed\n"          # the sandbox sees its own change
    assert not (d / "created").exists()        # ...the host does not
    assert (d / "existing").read_text() == "host content\n"
    assert (d / "gone").exists()


def test_writes_inside_a_volume_reach_the_host():
    d = _scratch()
    (d / "in").write_text("from host\n")
    box = run_sandbox(["/bin/sh", "-c", "cat /vol/in; echo from box > /vol/out; mkdir /vol/sub; "
                       "mv /vol/in /vol/sub/moved"], "--volume", f"{d}:/vol")
    assert box.returncode == 0, box.stderr
    assert box.stdout == b"from host\n"
    assert (d / "out").read_text() == "from box\n"
    assert (d / "sub" / "moved").read_text() == "from host\n"


def test_read_only_volume_refuses_writes():
    d = _scratch()
    box = run_sandbox(["/bin/sh", "-c", "echo x > /vol/f"], "--volume", f"{d}:/vol:ro")
    assert box.returncode != 0
    assert b"Read-only file system" in box.stderr
    assert not (d / "f").exists()


def test_rootfs_option_serves_another_root():
    d = _scratch()
    (d / "bin").mkdir()
    os.link("/bin/busybox", d / "bin" / "busybox") if os.stat("/bin/busybox").st_dev == os.stat(d).st_dev \
        else (d / "bin" / "busybox").write_bytes(pathlib.Path("/bin/busybox").read_bytes())
    os.chmod(d / "bin" / "busybox", 0o755)
    (d / "marker").write_text("in the other root\n")
    box = run_sandbox(["/bin/busybox", "sh", "-c", "busybox cat /marker; busybox ls /"], "--rootfs", str(d))
    assert box.returncode == 0, box.stderr
    lines = box.stdout.decode().split()
    assert lines[:4] == ["in", "the", "other", "root"]
    assert "bin" in lines and "marker" in lines
