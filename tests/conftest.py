"""Shared test helpers: compile C programs at test time, run them natively and in pysentry.

Differential tests run the same program both ways and compare what a user observes.
"""
import hashlib
import os
import pathlib
import re
import subprocess
import sys

import resource

import pytest

# Tests crash programs on purpose (natively too): no core files in the working tree.
# Only the soft limit: some peers (diod) insist on setting their own and fail otherwise.
resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROGS = pathlib.Path(__file__).resolve().parent / "progs"
# Not under /tmp: the sandbox has its own tmpfs there, so host files in /tmp are invisible.
BUILD = pathlib.Path(os.environ.get("PYSENTRY_TEST_BUILD", "/var/tmp/pysentry-test-build"))
SANDBOX_TIMEOUT = 120

# The KVM platform needs /dev/kvm; tests of it skip, with this reason, where it is absent.
NEEDS_KVM = pytest.mark.skipif(not os.path.exists("/dev/kvm"),
                               reason="no /dev/kvm on this host: the KVM platform cannot run")
# Both platforms, for tests parametrized over them.
PLATFORMS = ["ptrace", pytest.param("kvm", marks=NEEDS_KVM)]


def compile_c(name_or_src: str, static: bool = True, extra=()) -> str:
    """Compile tests/progs/NAME.c (or C source text) once per content; return the binary."""
    is_name = "\n" not in name_or_src and "(" not in name_or_src
    src_path = PROGS / f"{name_or_src}.c" if is_name else None
    src = src_path.read_text() if src_path is not None else name_or_src
    flags = ["-O1", "-pthread", "-Wall", "-Wno-unused-result"] + (["-static"] if static else []) + list(extra)
    key = hashlib.sha256((src + repr(flags)).encode()).hexdigest()[:16]
    BUILD.mkdir(parents=True, exist_ok=True)
    out = BUILD / f"{src_path.stem if src_path is not None else 'prog'}-{key}"
    if not out.exists():
        c = BUILD / f"{key}.c"
        c.write_text(src)
        subprocess.run(["gcc", *flags, "-o", str(out) + ".tmp", str(c)], check=True,
                       capture_output=True)
        os.rename(str(out) + ".tmp", out)
    return str(out)


def sandbox_cmd(argv, *opts):
    return [sys.executable, "-m", "pysentry.sentry.cli", "run", *opts, "--", *argv]


def run_sandbox(argv, *opts, input=None, timeout=SANDBOX_TIMEOUT, cwd=None, env=None):
    return subprocess.run(sandbox_cmd(argv, *opts), input=input, capture_output=True,
                          timeout=timeout, cwd=cwd, env=env)


def run_native(argv, input=None, timeout=60, cwd=None, env=None):
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, cwd=cwd,
                          env=env)


def assert_same(argv, *opts, input=None, cwd=None, env=None, check_stderr=True):
    """Run natively and in the sandbox; stdout, exit status (and stderr) must match."""
    nat = run_native(argv, input=input, cwd=cwd, env=env)
    box = run_sandbox(argv, *opts, input=input, cwd=cwd, env=env)
    assert box.stdout == nat.stdout, (
        f"stdout differs\n--- native ---\n{nat.stdout[-3000:]!r}\n--- sandbox ---\n"
        f"{box.stdout[-3000:]!r}\n--- sandbox stderr ---\n{box.stderr[-3000:].decode(errors='replace')}")
    if check_stderr:
        assert box.stderr == nat.stderr, (nat.stderr[-2000:], box.stderr[-2000:])
    assert box.returncode == nat.returncode, (nat.returncode, box.returncode,
                                             box.stderr[-3000:].decode(errors="replace"))
    return box


def assert_same_stdout(native, box):
    """A program that checks things itself and prints what it saw: it ran cleanly natively,
    and in the sandbox it printed the same and exited 0."""
    assert native.returncode == 0, native.stderr.decode(errors="replace")
    assert box.stdout == native.stdout, (
        f"--- native ---\n{native.stdout.decode()[-3000:]}\n--- sandbox ---\n"
        f"{box.stdout.decode()[-3000:]}\n{box.stderr.decode(errors='replace')[-2000:]}")
    assert box.returncode == 0


def run_native_and_on_volume(prog, tmp_path, platform):
    """`prog DIR` natively in a host directory, and in the sandbox in a volume at /vol (a
    host directory of the same filesystem next to it): (native, sandbox) results."""
    native_dir, volume = tmp_path / "native", tmp_path / "volume"
    native_dir.mkdir()
    volume.mkdir()
    return (run_native([prog, str(native_dir)]),
            run_sandbox([prog, "/vol"], f"--platform={platform}", "--volume", f"{volume}:/vol"))


KVM_STATS = re.compile(rb"KVM platform statistics: (\{.*\})")


def kvm_stats(stderr: bytes) -> dict:
    """The KVM platform's statistics from a `--debug` run's stderr (a dict of ints that
    KvmPlatform.shutdown prints)."""
    m = KVM_STATS.search(stderr)
    assert m, stderr[-2000:]
    return eval(m.group(1), {})


def run_kvm_like_native(src, env_extra=None):
    """Compile src, run it natively and on KVM with --debug (PYSENTRY_KVM_DIRECT only as
    env_extra sets it); output and status must match: (sandbox result, its statistics)."""
    prog = compile_c(src)
    nat = run_native([prog])
    env = {k: v for k, v in os.environ.items() if k != "PYSENTRY_KVM_DIRECT"}
    env.update(env_extra or {})
    box = run_sandbox([prog], "--platform=kvm", "--debug", env=env)
    assert box.stdout == nat.stdout, (nat.stdout, box.stdout, box.stderr[-2000:])
    assert box.returncode == nat.returncode, (nat.returncode, box.returncode, box.stderr[-2000:])
    return box, kvm_stats(box.stderr)


@pytest.fixture
def cc():
    return compile_c


# ---- a sandbox tmpfs and a host tmpfs file to compare it with (tmpfs tests) ------------
HOST_SHM = "/dev/shm"


@pytest.fixture
def vfs():
    """A VirtualFS over a fresh TmpFS, with root credentials."""
    from pysentry.sentry.vfs.context import Creds
    from pysentry.sentry.vfs.tmpfs import TmpFS
    from pysentry.sentry.vfs.vfs import VirtualFS
    v = VirtualFS(TmpFS())
    return v, v.root_context(Creds())


@pytest.fixture
def host_file():
    """A scratch file on the host's tmpfs (elsewhere if there is none): fd and path."""
    import tempfile
    fd, path = tempfile.mkstemp(dir=HOST_SHM if os.path.isdir(HOST_SHM) else None)
    yield fd, path
    os.close(fd)
    os.unlink(path)


# ---- the KVM platform on its own memory file, and the sentry's memory use ---------------
@pytest.fixture
def platform():
    """A KVM platform (tests that use it skip without /dev/kvm) on a memory file of its own."""
    from pysentry.platform.kvm.kvm import KvmPlatform
    from pysentry.sentry.mm.memfile import MemoryFile
    mf = MemoryFile()
    p = KvmPlatform(mf)
    try:
        yield p
    finally:
        p.shutdown()
        mf.view.release()
        mf.map.close()
        os.close(mf.fd)


def memory_file_bytes(pid: int) -> int:
    """Bytes the memory file of the sentry `pid` holds (its allocated blocks)."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if "pysentry-memory" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                return os.stat(f"/proc/{pid}/fd/{fd}").st_blocks * 512
        except OSError:
            continue
    raise AssertionError("no memory file open in the sentry")
