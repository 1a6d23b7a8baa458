"""`python3 -m bench io`: every measurement on every available runtime, interleaved.

Order: for each measurement, for each repetition, every runtime once (the order rotated per
repetition), so slow drift of the machine spreads over all runtimes alike. A cell is a
number only if every repetition succeeded; otherwise it is reported as failed with the
reason of the first failure.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

from . import build, memory
from .io_plan import FULL, QUICK, TMPFS, VOLUME, measurements
from .runner import run, spawn
from .runtimes import FLOOR, NATIVE, probe, standard_runtimes
from .stats import summarize

VOLUME_DIR = os.environ.get("PYSENTRY_BENCH_VOLUME", "/var/tmp/pysentry-bench-volume")
# A runtime that timed out this many times is not run again in this invocation: every
# later figure of it is reported failed with that reason, and the time budget holds.
MAX_TIMEOUTS = 2


class Cell:
    """One runtime's figures for one measurement."""

    def __init__(self):
        self.samples: list[float] = []
        self.errors: list[str] = []
        self.fs: set[str] = set()
        self.extra: dict = {}

    def to_json(self, status_if_empty="n/a"):
        if self.errors:
            return {"status": "failed", "error": self.errors[0], "failures": len(self.errors),
                    "runs": len(self.errors) + len(self.samples), "samples": self.samples}
        if not self.samples:
            return {"status": status_if_empty}
        s = summarize(self.samples)
        out = {"status": "ok", "median": s.median, "min": s.low, "max": s.high, "n": s.n,
               "samples": self.samples}
        if self.fs:
            out["fs"] = sorted(self.fs)
        out.update(self.extra)
        return out


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


def _rotated(items, k):
    k %= max(len(items), 1)
    return items[k:] + items[:k]


def _directory(rt, where):
    if where == VOLUME:
        return VOLUME_DIR
    if where == TMPFS:
        return rt.tmpfs_dir()
    return None


def measure_program(rt, m, sizes, iobench):
    """One run of an iobench mode (or a floor); returns (value, fs) or raises RuntimeError."""
    # Write back what earlier runs left dirty (the write measurements leave 256 MiB), so
    # that no run pays for the previous runtime's writeback: host-wide, and it was a
    # sample in five at 1/5 of the others' throughput, whichever runtime came next.
    os.sync()
    if rt.kind == FLOOR:
        out = run(rt.command(sizes.loop_ms), sizes.timeout_s)
    else:
        directory = _directory(rt, m.where)
        argv = [iobench, m.mode, *m.args(sizes, directory)]
        out = run(rt.wrap(argv, volume=VOLUME_DIR if m.where == VOLUME else None),
                  sizes.timeout_s)
    if not out.ok:
        raise RuntimeError(out.error)
    if out.result["mode"] != m.mode:
        raise RuntimeError(f"RESULT is for mode {out.result['mode']}, not {m.mode}")
    return m.derive(out.result), out.result["fs"]


def check_runs_programs(rt, sizes):
    """`/bin/false` must come back as exit status 1: a runtime that exits 0 without
    running the program would otherwise look like the fastest start-up of all."""
    if "runs_programs" not in rt.extra:
        rc, _, err, _ = spawn(rt.wrap(["/bin/false"]), sizes.timeout_s)
        rt.extra["runs_programs"] = (rc == 1, f"/bin/false came back with status {rc}, not 1")
    ok, why = rt.extra["runs_programs"]
    if not ok:
        raise RuntimeError(why)


def measure_startup(rt, sizes):
    check_runs_programs(rt, sizes)
    rc, out, err, wall = spawn(rt.wrap(["/bin/true"]), sizes.timeout_s)
    if rc != 0:
        why = "timed out" if rc is None else f"exit status {rc}: " + \
            (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1][:200]
        raise RuntimeError(why)
    return wall * 1e3


def measure_memory(rt, sizes):
    """Start `sleep`, sample the process tree's memory while it idles, let it finish."""
    proc = subprocess.Popen(rt.wrap(["/bin/sleep", str(sizes.idle_s)]), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        time.sleep(sizes.idle_s * 0.75)
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"exited early with status {proc.returncode}: "
                               f"{err[-1][:200] if err else 'no output'}")
        use = memory.usage(proc.pid)
        rc = proc.wait(timeout=sizes.timeout_s)
        if rc != 0:
            raise RuntimeError(f"sleep exited with status {rc}")
    except subprocess.TimeoutExpired:
        raise RuntimeError("timed out") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return use["peak_rss_kib"] / 1024, use


def takes_part(rt, m):
    if rt.kind == FLOOR:
        return m.floors
    return True


def run_io(quick=False, only=None, runtimes=None, log=_progress):
    """Run the plan; returns the report data (see report_io.write_io)."""
    sizes = QUICK if quick else FULL
    t_start = time.monotonic()
    iobench = build.compile_c(build.HERE / "iobench.c", static=True)
    plan = [m for m in measurements() if (m.quick or not quick) and (not only or m.key in only)]
    runtimes = standard_runtimes() if runtimes is None else runtimes
    for rt in runtimes:
        if rt.available is None:
            probe(rt, iobench)
        log(f"runtime {rt.name}: " + ("available" if rt.available else f"unavailable ({rt.reason})"))
    live = [rt for rt in runtimes if rt.available]
    os.makedirs(VOLUME_DIR, exist_ok=True)
    cells = {m.key: {rt.name: Cell() for rt in live} for m in plan}
    total = sum((sizes.startup_reps if m.mode == "startup" else
                 sizes.memory_reps if m.mode == "memory" else sizes.reps)
                * sum(takes_part(rt, m) for rt in live) for m in plan)
    done = 0
    try:
        for m in plan:
            reps = {"startup": sizes.startup_reps, "memory": sizes.memory_reps}.get(m.mode, sizes.reps)
            for rep in range(reps):
                for rt in _rotated(live, rep):
                    if not takes_part(rt, m):
                        continue
                    done += 1
                    cell = cells[m.key][rt.name]
                    if rt.extra.get("timeouts", 0) >= MAX_TIMEOUTS:
                        cell.errors.append(f"not run: {rt.name} timed out {MAX_TIMEOUTS} times "
                                           "earlier in this run")
                        log(f"[{done}/{total}] {m.key} {rt.name} #{rep + 1}: skipped (hung before)")
                        continue
                    try:
                        if m.mode == "startup":
                            value = measure_startup(rt, sizes)
                        elif m.mode == "memory":
                            value, use = measure_memory(rt, sizes)
                            cell.extra.setdefault("pss_mib", []).append(use["pss_kib"] / 1024)
                            cell.extra["processes"] = use["processes"]
                        else:
                            value, fs = measure_program(rt, m, sizes, iobench)
                            if fs != "-":
                                cell.fs.add(fs)
                        cell.samples.append(value)
                        shown = f"{value:.4g} {m.unit}"
                    except RuntimeError as e:
                        cell.errors.append(str(e))
                        if "timed out" in str(e):
                            rt.extra["timeouts"] = rt.extra.get("timeouts", 0) + 1
                        shown = f"FAILED: {e}"
                    log(f"[{done}/{total} {time.monotonic() - t_start:5.0f}s] {m.key} "
                        f"{rt.name} #{rep + 1}: {shown}")
    finally:
        shutil.rmtree(VOLUME_DIR, ignore_errors=True)
        for rt in live:
            if rt.kind == NATIVE:
                shutil.rmtree(rt.tmpfs_dir(), ignore_errors=True)
    return {
        "quick": quick,
        "sizes": sizes.__dict__,
        "elapsed_s": round(time.monotonic() - t_start, 1),
        "runtimes": [{"name": rt.name, "label": rt.label, "kind": rt.kind,
                      "available": bool(rt.available), "reason": rt.reason} for rt in runtimes],
        "measurements": [
            {"key": m.key, "title": m.title, "unit": m.unit, "better": m.better,
             "values": {rt.name: (cells[m.key][rt.name].to_json() if takes_part(rt, m)
                                  else {"status": "n/a"}) for rt in live}}
            for m in plan],
    }
