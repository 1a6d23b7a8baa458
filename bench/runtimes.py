"""The runtimes a benchmark compares, and how to tell whether each one works here.

A runtime turns a program's argv into a command line. Sandboxes (pysentry on each platform,
gVisor's runsc) and native Linux run any program; the two *floors* are C programs of their
own that run only the syscall round trip. Availability is decided by running a probe, never
assumed: a runtime that is missing or fails its probe is reported as unavailable with the
reason, and takes no part in the measurements.

How gVisor is run (checked on Debian 12's runsc 0.0~20221219, as root): `runsc
--network=none --platform=ptrace do CMD` works without --ignore-cgroups. `do` puts the host
root under a memory-backed overlay; for a host volume (writes must reach the host) the
overlay is turned off with `do -force-overlay=false`. As non-root runsc needs
`--rootless`/`--TESTONLY-unsafe-nonroot`, which this harness does not try: the probe then
reports gVisor unavailable.
"""
import os
import shutil
import sys
from dataclasses import dataclass, field

from . import build
from .runner import run, spawn

NATIVE, SANDBOX, FLOOR = "native", "sandbox", "floor"
PROBE_TIMEOUT = 90


@dataclass
class Runtime:
    name: str
    label: str
    kind: str
    available: bool | None = None     # None: not probed yet
    reason: str = ""                  # why unavailable (or a note when available)
    binary: str = ""                  # floors: their compiled program
    extra: dict = field(default_factory=dict)

    def wrap(self, argv, volume: str | None = None) -> list:
        """The command line running argv in this runtime; `volume` is a host directory
        that must be visible, writable, at the same path inside."""
        raise NotImplementedError

    def tmpfs_dir(self) -> str:
        """A directory on a memory filesystem of this runtime."""
        return "/tmp/pysentry-bench"


class Native(Runtime):
    def __init__(self):
        super().__init__("native", "native Linux", NATIVE)

    def wrap(self, argv, volume=None):
        return list(argv)

    def tmpfs_dir(self):
        return "/dev/shm/pysentry-bench"    # the host's /tmp is a disk filesystem


class Pysentry(Runtime):
    def __init__(self, platform: str, python: str = sys.executable):
        super().__init__(f"pysentry-{platform}", f"pysentry --platform={platform}", SANDBOX)
        self.platform = platform
        self.python = python

    def wrap(self, argv, volume=None):
        cmd = [self.python, "-m", "pysentry.sentry.cli", "run", f"--platform={self.platform}"]
        if volume:
            cmd += ["--volume", f"{volume}:{volume}"]
        return cmd + ["--", *argv]


class Gvisor(Runtime):
    def __init__(self, runsc: str = "runsc"):
        super().__init__("gvisor", "gVisor runsc --platform=ptrace", SANDBOX)
        self.runsc = runsc

    def wrap(self, argv, volume=None):
        cmd = [self.runsc, "--network=none", "--platform=ptrace", "do"]
        if volume:
            cmd.append("-force-overlay=false")
        return cmd + list(argv)


class Floor(Runtime):
    """A floor program: `BINARY getppid MS` prints iobench's RESULT line."""

    def __init__(self, name, label, source):
        super().__init__(name, label, FLOOR)
        self.source = source

    def wrap(self, argv, volume=None):
        raise TypeError(f"{self.name} runs only its own program")

    def command(self, ms: int) -> list:
        return [self.binary, "getppid", str(int(ms))]


class Command(Runtime):
    """A runtime given as a command prefix (tests use it to stand in for broken ones)."""

    def __init__(self, name, prefix, kind=SANDBOX):
        super().__init__(name, name, kind)
        self.prefix = list(prefix)

    def wrap(self, argv, volume=None):
        return self.prefix + list(argv)


def standard_runtimes() -> list:
    return [
        Native(),
        Pysentry("ptrace"),
        Pysentry("kvm"),
        Gvisor(),
        Floor("ptrace-floor", "ptrace floor (C tracer, PTRACE_SYSEMU)",
              build.HERE / "ptrace_floor.c"),
        Floor("kvm-floor", "KVM floor (C, ring-3 syscall trapped by a ring-0 stub)",
              build.HERE / "kvm_floor.c"),
    ]


def _precheck(rt: Runtime) -> str:
    """A reason the runtime cannot work here without trying it, or ''."""
    if isinstance(rt, Pysentry) and rt.platform == "kvm" or rt.name == "kvm-floor":
        if not os.path.exists("/dev/kvm"):
            return "no /dev/kvm on this machine"
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return "/dev/kvm is not usable by this user"
    if isinstance(rt, Gvisor) and shutil.which(rt.runsc) is None:
        return "runsc is not installed (Debian package runsc)"
    return ""


def probe(rt: Runtime, iobench: str, timeout: float = PROBE_TIMEOUT) -> Runtime:
    """Decide rt.available by running it; sets rt.reason on failure."""
    reason = _precheck(rt)
    if reason:
        rt.available, rt.reason = False, reason
        return rt
    if rt.kind == FLOOR:
        try:
            rt.binary = build.compile_c(rt.source, static=False)
        except build.BuildError as e:
            rt.available, rt.reason = False, f"does not build: {e}"
            return rt
        out = run(rt.command(20), timeout)
        rt.available, rt.reason = out.ok, ("" if out.ok else out.error)
        return rt
    try:
        rc, stdout, stderr, _ = spawn(rt.wrap([iobench, "probe"]), timeout)
    except OSError as e:
        rt.available, rt.reason = False, f"cannot start: {e.strerror}"
        return rt
    text = stdout.decode(errors="replace")
    if rc == 0 and "PROBE ok" in text.splitlines():
        rt.available, rt.reason = True, ""
        return rt
    from .runner import failure_reason
    why = "timed out" if rc is None else failure_reason(text, stderr.decode(errors="replace"), rc)
    rt.available, rt.reason = False, f"probe failed: {why}"
    return rt
