"""The benchmark harness (bench/): results are parsed strictly, broken runtimes are reported
as broken (never as fast), reports and charts are produced from what was measured.

Fast by design: tiny sizes, fake runtimes made of shell scripts, no sandbox start-ups
except where a real program has to run natively.
"""
import json
import os
import struct
import sys
import zlib

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))          # bench/ is a top-level folder, not an installed package

from bench import build, coverage_run, io_plan, io_run, report_coverage, report_io  # noqa: E402
from bench.png import bar_chart  # noqa: E402
from bench.runner import BadOutput, parse_result, run  # noqa: E402
from bench.runtimes import Command, Native, probe  # noqa: E402

GOOD = "RESULT mode=getppid ops=1000 ns=200000 bytes=0 fs=-\n"


@pytest.fixture(scope="module")
def iobench():
    return build.compile_c(build.HERE / "iobench.c", static=True)


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


# ---- parsing a RESULT line -------------------------------------------------------------

def test_parse_result_reads_every_field():
    r = parse_result("noise\n" + GOOD)
    assert r == {"mode": "getppid", "ops": 1000, "ns": 200000, "bytes": 0, "fs": "-"}


@pytest.mark.parametrize("text", [
    "",                                                    # silence
    GOOD + GOOD,                                           # two results
    "RESULT mode=getppid ops=0 ns=5 bytes=0 fs=-\n",       # no work done
    "RESULT mode=getppid ops=10 ns=0 bytes=0 fs=-\n",      # no time taken
    "RESULT mode=getppid ops=ten ns=5 bytes=0 fs=-\n",     # not a number
    "RESULT mode=getppid ops=10 ns=5 fs=-\n",              # a field missing
    "RESULT mode=getppid ops=10 ns=5 bytes=0 fs=- x\n",    # malformed item
])
def test_parse_result_rejects_anything_else(text):
    with pytest.raises(BadOutput):
        parse_result(text)


# ---- running: failures carry their reason --------------------------------------------

def test_silent_success_is_a_failure_not_a_fast_result():
    out = run(["/bin/true"], timeout=10)
    assert not out.ok and out.result is None
    assert "expected one RESULT line, got 0" in out.error


def test_error_line_is_the_reason(tmp_path):
    prog = script(tmp_path, "err", "echo 'ERROR verify: a block read back wrong data'; exit 1")
    out = run([prog], timeout=10)
    assert not out.ok and out.error == "verify: a block read back wrong data"


def test_crash_is_reported_with_its_signal(tmp_path):
    prog = script(tmp_path, "crash", "kill -SEGV $$")
    out = run([prog], timeout=10)
    assert not out.ok and "signal 11" in out.error


def test_hang_is_a_timeout_and_the_group_is_killed(tmp_path):
    marker = tmp_path / "alive"
    prog = script(tmp_path, "hang", f"(sleep 30; touch {marker}) & sleep 30")
    out = run([prog], timeout=0.5)
    assert not out.ok and "timed out" in out.error
    assert out.wall_s < 10


def test_iobench_verifies_what_it_reads(tmp_path, iobench):
    data = tmp_path / "data"
    ok = run([iobench, "seqread", str(data), str(1 << 20), "4096"], timeout=30)
    assert ok.ok, ok.error
    assert ok.result["bytes"] == 1 << 20 and ok.result["ops"] == 256
    with open(data, "r+b") as f:          # corrupt one block's tag
        f.seek(4096 * 7)
        f.write(b"\xff" * 8)
    bad = run([iobench, "seqread", str(data), str(1 << 20), "4096"], timeout=30)
    assert not bad.ok and "wrong data" in bad.error


def test_iobench_mmaploop_and_cpuloop_report_what_the_plan_derives(iobench):
    plan = {m.key: m for m in io_plan.measurements()}
    loop = run([iobench, "mmaploop", "20"], timeout=30)
    assert loop.ok, loop.error
    assert loop.result["mode"] == "mmaploop" and loop.result["ops"] >= 1
    per_iter_ms = plan["mmaploop"].derive(loop.result)
    assert per_iter_ms == pytest.approx(loop.result["ns"] / loop.result["ops"] / 1e6)
    cpu = run([iobench, "cpuloop", "1000003"], timeout=30)
    assert cpu.ok, cpu.error
    assert cpu.result["ops"] == 1000003
    # The CPU loop is reported as the time of the whole run, not per step.
    assert plan["cpuloop"].derive(cpu.result) == pytest.approx(cpu.result["ns"] / 1e6)
    assert plan["cpuloop"].args(io_plan.QUICK, "") == [str(io_plan.QUICK.cpu_steps)]


def test_iobench_cpuloop_rejects_zero_steps(iobench):
    out = run([iobench, "cpuloop", "0"], timeout=30)
    assert not out.ok and "at least one step" in out.error


# ---- runtimes: availability comes from a probe ----------------------------------------

def test_native_passes_the_probe(iobench):
    rt = probe(Native(), iobench)
    assert rt.available, rt.reason


def test_runtime_that_does_not_run_programs_is_unavailable(iobench):
    rt = probe(Command("fake", ["/bin/true"]), iobench)
    assert rt.available is False
    assert "probe failed" in rt.reason


def test_missing_runtime_binary_is_unavailable(iobench):
    rt = probe(Command("ghost", ["/nonexistent/runtime"]), iobench)
    assert rt.available is False and "cannot start" in rt.reason


def test_ptrace_floor_measures_a_round_trip(iobench):
    from bench.runtimes import standard_runtimes
    floor = next(r for r in standard_runtimes() if r.name == "ptrace-floor")
    probe(floor, iobench)
    if not floor.available:
        pytest.skip(f"ptrace floor unavailable here: {floor.reason}")
    out = run(floor.command(20), timeout=30)
    assert out.ok and out.result["mode"] == "getppid" and out.result["ops"] > 0


# ---- the io run: a runtime broken after its probe is reported broken ----------------

def test_io_run_reports_broken_runtime_as_failed(tmp_path, monkeypatch, iobench):
    # Passes the probe (it really runs `iobench probe`), then runs nothing: exit 0, silence.
    liar = script(tmp_path, "liar", 'case "$2" in probe) exec "$@";; esac\nexit 0')
    monkeypatch.setattr(io_run, "VOLUME_DIR", str(tmp_path / "vol"))
    rts = [Native(), Command("liar", [liar])]
    data = io_run.run_io(quick=True, only={"getppid", "startup", "stat-tmpfs"}, runtimes=rts,
                         log=lambda m: None)
    by_key = {m["key"]: m["values"] for m in data["measurements"]}
    assert by_key["getppid"]["native"]["status"] == "ok"
    assert by_key["getppid"]["native"]["median"] > 0
    for key in ("getppid", "startup", "stat-tmpfs"):
        cell = by_key[key]["liar"]
        assert cell["status"] == "failed", (key, cell)
        assert "median" not in cell
    assert "/bin/false" in by_key["startup"]["liar"]["error"]
    out = report_io.write_io(data, str(tmp_path / "out"))
    md = (tmp_path / "out" / "io.md").read_text()
    assert "| liar | **FAILED** (2/2 runs)" in md
    json.loads((tmp_path / "out" / "io.json").read_text())
    assert out["charts"] and all((tmp_path / "out" / c).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                                 for c in out["charts"])


# ---- reports ---------------------------------------------------------------------------

def _cell(v):
    return {"status": "ok", "median": v, "min": v, "max": v, "n": 1, "samples": [v]}


def _synthetic():
    rts = ["native", "pysentry-ptrace", "gvisor", "ptrace-floor"]
    return {
        "quick": True, "sizes": io_plan.QUICK.__dict__, "elapsed_s": 1.0, "host": {"cpus": 2},
        "runtimes": [{"name": n, "label": n, "kind": "x", "available": True, "reason": ""} for n in rts]
        + [{"name": "pysentry-kvm", "label": "kvm", "kind": "sandbox", "available": False,
            "reason": "probe failed: no KVM"}],
        "measurements": [
            {"key": "getppid", "title": "getppid", "unit": "µs", "better": "lower",
             "values": {"native": _cell(0.2), "pysentry-ptrace": _cell(30.0), "gvisor": _cell(20.0),
                        "ptrace-floor": _cell(15.0)}},
            {"key": "seqread-1m-tmpfs", "title": "seq read", "unit": "MiB/s", "better": "higher",
             "values": {"native": _cell(1000.0), "pysentry-ptrace": _cell(900.0),
                        "gvisor": {"status": "failed", "error": "boom", "failures": 1, "runs": 2,
                                   "samples": [1.0]}, "ptrace-floor": {"status": "n/a"}}},
            {"key": "memory", "title": "memory", "unit": "MiB", "better": "lower",
             "values": {"native": _cell(1.0), "pysentry-ptrace": _cell(50.0), "gvisor": _cell(70.0),
                        "ptrace-floor": {"status": "n/a"}}},
        ]}


def test_targets_are_judged_from_medians_and_never_from_missing_figures():
    got = {(t["target"]): t for t in report_io.judged_targets(_synthetic())}
    assert got["getppid round trip ≤ 1.5× the ptrace floor"]["met"] is False     # 30 > 22.5
    assert got["getppid round trip below gVisor's"]["met"] is False              # 30 > 20
    assert got["seqread 1 MiB blocks (tmpfs) ≥ 0.8× native"]["met"] is True      # 900 ≥ 800
    assert got["idle memory of the sandbox ≤ 60 MiB"]["met"] is True
    # gVisor failed on seqread: a comparison with it cannot be judged.
    assert all(t["runtime"] == "pysentry-ptrace" for t in got.values())


def _with_kvm():
    data = _synthetic()
    data["runtimes"][-1].update(available=True, reason="")
    data["runtimes"].append({"name": "kvm-floor", "label": "kvm floor", "kind": "floor",
                             "available": True, "reason": ""})
    vals = data["measurements"][0]["values"]
    vals.update({"pysentry-kvm": _cell(40.0), "kvm-floor": _cell(32.0)})       # 40 ≤ 41.6
    data["measurements"] += [
        {"key": "mmaploop", "title": "mmap loop", "unit": "ms", "better": "lower",
         "values": {"native": _cell(0.7), "pysentry-ptrace": _cell(1.5),
                    "pysentry-kvm": _cell(0.76)}},                      # 0.76 > 0.5 × 1.5
        {"key": "cpuloop", "title": "cpu loop", "unit": "ms", "better": "lower",
         "values": {"native": _cell(400.0), "pysentry-ptrace": _cell(419.0),
                    "pysentry-kvm": _cell(421.0)}},                     # limit 420
        {"key": "startup", "title": "start-up", "unit": "ms", "better": "lower",
         "values": {"native": _cell(1.0), "pysentry-ptrace": _cell(300.0),
                    "pysentry-kvm": _cell(300.0)}},                     # equal: no slower
    ]
    return data


def test_kvm_targets_compare_with_the_kvm_floor_ptrace_and_native():
    got = {(t["runtime"], t["target"]): t for t in report_io.judged_targets(_with_kvm())}
    kvm = "pysentry-kvm"
    assert got[(kvm, "getppid round trip on KVM ≤ 1.3× the KVM floor (getppid is answered in C)")]["met"] is True
    assert got[(kvm, "mmap/touch/munmap 1 MiB on KVM ≥ 2× faster than on ptrace")]["met"] is False
    assert got[(kvm, "start-up of /bin/true on KVM no slower than on ptrace")]["met"] is True
    assert got[(kvm, "CPU-bound loop within 5% of native")]["met"] is False
    assert got[("pysentry-ptrace", "CPU-bound loop within 5% of native")]["met"] is True
    # The ptrace floor judges only the ptrace platform; KVM targets only KVM.
    assert (kvm, "getppid round trip ≤ 1.5× the ptrace floor") not in got
    assert not any(rt == "pysentry-ptrace" and "KVM" in text for rt, text in got)


def test_kvm_targets_are_not_measured_without_ptrace():
    data = _with_kvm()
    for m in data["measurements"]:
        m["values"].pop("pysentry-ptrace", None)
    data["runtimes"] = [r for r in data["runtimes"] if r["name"] != "pysentry-ptrace"]
    got = {t["target"]: t for t in report_io.judged_targets(data)}
    t = got["mmap/touch/munmap 1 MiB on KVM ≥ 2× faster than on ptrace"]
    assert t["met"] is None and "pysentry-ptrace" in t["detail"]


def test_io_markdown_states_unavailable_and_failed_plainly(tmp_path):
    data = report_io.write_io(_synthetic(), str(tmp_path))
    md = (tmp_path / "io.md").read_text()
    assert "| pysentry-kvm | kvm | **unavailable**: probe failed: no KVM |" in md
    assert "| gvisor | **FAILED** (1/2 runs) | – | – | boom |" in md
    assert ("| pysentry-ptrace | getppid round trip ≤ 1.5× the ptrace floor | 30 µs; limit 22.5 µs "
            "= 1.5× ptrace-floor's 15 | **missed** |") in md
    assert "150.00×" in md      # 30 µs ÷ native's 0.2 µs
    assert data["charts"]


def test_png_chart_is_a_valid_image():
    blob = bar_chart("t", [("g", {"a": 1.0, "b": None})], ["a", "b"], unit="µs")
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", blob[16:24])
    idat_len = struct.unpack(">I", blob[33:37])[0]
    raw = zlib.decompress(blob[41:41 + idat_len])
    assert len(raw) == h * (1 + 3 * w)


# ---- coverage --------------------------------------------------------------------------

def test_compare_credits_a_syscall_only_for_identical_lines():
    known = {"open", "read", "close"}
    native = coverage_run.parse_lines("open a: 3\nopen b: -1 ENOENT\nread x: 4\nclose y: 0\n", known)
    other = coverage_run.parse_lines("open a: 3\nopen b: -1 EACCES\nread x: 4\n", known)
    verdict = coverage_run.compare(native, other)
    assert verdict["read"] is None
    assert verdict["open"] == [("open b: -1 ENOENT", "open b: -1 EACCES")]
    assert verdict["close"] == [("close y: 0", None)]       # missing output fails too


def test_compare_matches_lines_by_what_they_observe():
    known = {"mremap"}
    native = coverage_run.parse_lines("mremap grow: ok\nmremap kept: 1\nmremap flags: EINVAL\n", known)
    other = coverage_run.parse_lines("mremap grow: EFAULT\nmremap flags: EINVAL\n", known)
    assert coverage_run.compare(native, other)["mremap"] == [
        ("mremap grow: ok", "mremap grow: EFAULT"), ("mremap kept: 1", None)]


def test_static_coverage_covers_every_header_number():
    from pysentry.sentry.syscalls.table import NUMBERS
    st = coverage_run.static_coverage()
    assert st["total"] == len(NUMBERS) > 300
    assert st["full"] + st["partial"] + st["unsupported"] == st["total"]
    assert {e["name"] for e in st["entries"]} == set(NUMBERS)


def test_coverage_run_fails_a_runtime_that_prints_nothing(tmp_path, iobench):
    liar = script(tmp_path, "liar", 'case "$2" in probe) exec "$@";; esac\nexit 0')
    data = coverage_run.run_coverage(runtimes=[Native(), Command("liar", [liar])],
                                     programs=("socket",), log=lambda m: None, timeout=30)
    assert data["syscalls"], "the native run exercised nothing"
    assert all(s["results"]["liar"] == "fail" for s in data["syscalls"].values())
    assert data["summary"]["liar"]["passing"] == 0
    doc = tmp_path / "compat.md"
    report_coverage.write_coverage(data, str(tmp_path), str(doc))
    text = doc.read_text()
    assert "never edit by hand" in text
    assert "| liar | 0 |" in text
    assert (tmp_path / "coverage.png").read_bytes()[:4] == b"\x89PNG"


def test_the_kvm_floor_is_put_beside_gvisor_only_when_it_is_above_it(tmp_path):
    data = _with_kvm()                   # kvm-floor 32 µs, gVisor 20 µs
    md = report_io.markdown(data)
    assert "KVM floor's bare syscall trap (32 µs) costs more than gVisor's whole getppid (20 µs)" in md
    data["measurements"][0]["values"]["kvm-floor"] = _cell(18.0)
    assert "bare syscall trap" not in report_io.markdown(data)
