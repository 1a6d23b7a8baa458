"""Running one measured command and judging what came back.

A run counts only if the program exited 0 and printed exactly one well-formed RESULT line
with positive counts; anything else (a crash, a timeout, an ERROR line, silence) is a
failure with its reason, so a broken runtime can never look like a fast one.
"""
import os
import signal
import subprocess
import time
from dataclasses import dataclass

RESULT_FIELDS = ("mode", "ops", "ns", "bytes", "fs")


@dataclass
class Outcome:
    ok: bool
    result: dict | None
    error: str
    wall_s: float
    returncode: int | None = None


class BadOutput(Exception):
    pass


def parse_result(stdout: str) -> dict:
    """The fields of the single RESULT line; BadOutput if there is not exactly one valid one."""
    lines = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
    if len(lines) != 1:
        raise BadOutput(f"expected one RESULT line, got {len(lines)}")
    fields = {}
    for item in lines[0].split()[1:]:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadOutput(f"malformed RESULT item {item!r}")
        fields[key] = value
    if set(fields) != set(RESULT_FIELDS):
        raise BadOutput(f"RESULT fields {sorted(fields)} are not {sorted(RESULT_FIELDS)}")
    try:
        for key in ("ops", "ns", "bytes"):
            fields[key] = int(fields[key])
    except ValueError as e:
        raise BadOutput(f"RESULT has a non-integer count: {e}") from None
    if fields["ops"] <= 0 or fields["ns"] <= 0 or fields["bytes"] < 0:
        raise BadOutput("RESULT has a non-positive count or time")
    return fields


def failure_reason(proc_stdout: str, proc_stderr: str, returncode) -> str:
    for line in proc_stdout.splitlines():
        if line.startswith("ERROR "):
            return line[len("ERROR "):]
    tail = [l for l in proc_stderr.strip().splitlines() if l.strip()]
    last = tail[-1].strip()[:200] if tail else "no output"
    if returncode is not None and returncode < 0:
        return f"killed by signal {-returncode}: {last}"
    return f"exit status {returncode}: {last}"


def spawn(cmd, timeout: float, cwd=None):
    """Run cmd with its own process group, output captured, stdin empty. On timeout the
    whole group is killed. Returns (returncode or None on timeout, stdout, stderr, wall s)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err, time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return None, out, err, time.perf_counter() - t0


def run(cmd, timeout: float, cwd=None) -> Outcome:
    try:
        rc, out, err, wall = spawn(cmd, timeout, cwd)
    except OSError as e:
        return Outcome(False, None, f"cannot run {cmd[0]}: {e.strerror}", 0.0)
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    if rc is None:
        return Outcome(False, None, f"timed out after {timeout:g} s", wall)
    if rc != 0:
        return Outcome(False, None, failure_reason(out, err, rc), wall, rc)
    try:
        return Outcome(True, parse_result(out), "", wall, 0)
    except BadOutput as e:
        return Outcome(False, None, f"{e} ({failure_reason(out, err, 0)})", wall, 0)
