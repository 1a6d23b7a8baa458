"""`python3 -m bench coverage`: the syscall table's claims, and what the corpus observes.

Static coverage comes from the syscall table (sentry/syscalls/table.py), which lists every
number in the machine's asm/unistd_64.h. Measured coverage runs each C program of
bench/coverage natively and in every available sandbox runtime. Each output line is
"SYSCALL what: value" (see bench/coverage/cov.h); a syscall passes in a runtime only if
every line native Linux printed for it appears, identical and in the same order, in that
runtime's output, and the runtime printed no other line for it.
"""
import collections
import errno as errno_mod
import pathlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from . import build
from .families import family
from .runner import spawn
from .runtimes import FLOOR, NATIVE, probe, standard_runtimes

CORPUS = build.HERE / "coverage"
QUICK_PROGRAMS = ("events", "fsmeta", "signal")
MAX_DIFFS = 3          # differing lines kept per syscall and runtime


def static_coverage():
    from pysentry.sentry.syscalls.table import load_all
    entries = []
    for e in sorted(load_all().values(), key=lambda e: e.nr):
        entries.append({"nr": e.nr, "name": e.name, "support": e.support, "note": e.note,
                        "errno": errno_mod.errorcode.get(e.errno, str(e.errno))
                        if e.support == "unsupported" else "",
                        "family": family(e.name)})
    counts = collections.Counter(e["support"] for e in entries)
    return {"total": len(entries), "full": counts["full"], "partial": counts["partial"],
            "unsupported": counts["unsupported"], "entries": entries}


def parse_lines(text: str, known: set) -> dict:
    """Lines grouped by the syscall they name; lines naming nothing known go under '?'."""
    by_tag = collections.defaultdict(list)
    for line in text.splitlines():
        tag = line.split(" ", 1)[0].rstrip(":")
        by_tag[tag if tag in known else "?"].append(line)
    return by_tag


def _keyed(lines):
    """Lines keyed by their "SYSCALL what" part (repeats numbered), in order."""
    out, seen = {}, collections.Counter()
    for line in lines:
        what = line.split(": ", 1)[0]
        seen[what] += 1
        out[(what, seen[what])] = line
    return out


def compare(native: dict, other: dict) -> dict:
    """Per syscall in the native output: None if the runtime printed exactly the same lines,
    else up to MAX_DIFFS (native line or None, runtime line or None) pairs, matched by what
    each line observes, so that one missing line does not misalign the rest."""
    out = {}
    for tag, want in native.items():
        if tag == "?":
            continue
        got = other.get(tag, [])
        if got == want:
            out[tag] = None
            continue
        w, g = _keyed(want), _keyed(got)
        diffs = [(line, g.get(key)) for key, line in w.items() if g.get(key) != line]
        diffs += [(None, line) for key, line in g.items() if key not in w]
        if not diffs:                          # same lines, different order
            diffs = [(want[0], got[0])]
        out[tag] = diffs[:MAX_DIFFS]
    return out


def _run_program(binary, rt, timeout):
    cmd = rt.wrap([binary])
    rc, out, err, wall = spawn(cmd, timeout, cwd="/")
    return {"exit": rc, "stdout": out.decode(errors="replace"),
            "stderr_tail": err.decode(errors="replace").strip().splitlines()[-3:],
            "wall_s": round(wall, 2)}


def run_coverage(quick=False, runtimes=None, jobs=2, programs=None, log=None, timeout=None):
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.monotonic()
    static = static_coverage()
    known = {e["name"] for e in static["entries"]}
    sources = sorted(CORPUS.glob("*.c"))
    if programs:
        sources = [s for s in sources if s.stem in programs]
    elif quick:
        sources = [s for s in sources if s.stem in QUICK_PROGRAMS]
    binaries = {s.stem: build.compile_c(s, static=True) for s in sources}
    runtimes = standard_runtimes() if runtimes is None else runtimes
    runtimes = [rt for rt in runtimes if rt.kind != FLOOR]
    iobench = build.compile_c(build.HERE / "iobench.c", static=True)
    for rt in runtimes:
        if rt.available is None:
            probe(rt, iobench)
        log(f"runtime {rt.name}: " + ("available" if rt.available else f"unavailable ({rt.reason})"))
    native = next(rt for rt in runtimes if rt.kind == NATIVE)
    sandboxes = [rt for rt in runtimes if rt.available and rt.kind != NATIVE]
    timeout = timeout or (30 if quick else 90)

    # Native first (it defines what is tested), then every sandbox, in parallel.
    raw = {}
    for name, binary in binaries.items():
        raw[(name, "native")] = _run_program(binary, native, timeout)
    tasks = [(name, rt) for name in binaries for rt in sandboxes]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_run_program, binaries[name], rt, timeout): (name, rt.name)
                   for name, rt in tasks}
        for fut, key in futures.items():
            raw[key] = fut.result()
            log(f"{key[0]} in {key[1]}: exit {raw[key]['exit']} ({raw[key]['wall_s']} s)")

    syscalls = {}
    program_rows = []
    for name in binaries:
        nat = raw[(name, "native")]
        nat_lines = parse_lines(nat["stdout"], known)
        row = {"name": name, "native_exit": nat["exit"], "syscalls": sorted(t for t in nat_lines if t != "?"),
               "unattributed_native_lines": nat_lines.get("?", []), "runtimes": {}}
        for tag in row["syscalls"]:
            s = syscalls.setdefault(tag, {"programs": [], "lines": 0, "results": {}, "diffs": {}})
            s["programs"].append(name)
            s["lines"] += len(nat_lines[tag])
        for rt in sandboxes:
            got = raw[(name, rt.name)]
            verdict = compare(nat_lines, parse_lines(got["stdout"], known))
            row["runtimes"][rt.name] = {
                "exit": got["exit"], "stderr_tail": got["stderr_tail"],
                "matching": sum(v is None for v in verdict.values()),
                "differing": sorted(t for t, v in verdict.items() if v is not None)}
            for tag, diffs in verdict.items():
                s = syscalls[tag]
                prev = s["results"].get(rt.name, "pass")
                s["results"][rt.name] = "pass" if diffs is None and prev == "pass" else "fail"
                if diffs:
                    s["diffs"].setdefault(rt.name, []).extend(
                        {"program": name, "native": a, "got": b} for a, b in diffs)
        program_rows.append(row)

    summary = {}
    implemented = {e["name"] for e in static["entries"] if e["support"] != "unsupported"}
    for rt in sandboxes:
        passing = sorted(n for n, s in syscalls.items() if s["results"].get(rt.name) == "pass")
        summary[rt.name] = {"passing": len(passing), "tested": len(syscalls),
                            "total": static["total"],
                            "implemented_passing": len(set(passing) & implemented)}
    untested = sorted(implemented - set(syscalls))
    return {"quick": quick, "elapsed_s": round(time.monotonic() - t0, 1), "static": static,
            "runtimes": [{"name": rt.name, "label": rt.label, "available": bool(rt.available),
                          "reason": rt.reason} for rt in runtimes],
            "programs": program_rows, "syscalls": syscalls, "summary": summary,
            "implemented_untested": untested}
