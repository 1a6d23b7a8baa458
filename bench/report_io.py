"""The I/O report: io.json (everything measured), io.md (tables, ratios, targets), charts.

Ratios are always "this runtime's figure divided by the other's". For a latency (lower is
better) a ratio above 1 means slower; for a throughput (higher is better) a ratio below 1
means slower. Targets are judged here from the medians, stated beside the figure, and
never tuned: a missing or failed figure makes a target "not measured", not met.
"""
import json
import os
import platform as _stdlib_platform
import subprocess
from dataclasses import dataclass

from .png import bar_chart

PYSENTRY = ("pysentry-ptrace", "pysentry-kvm")


def _median(data, key, runtime):
    for m in data["measurements"]:
        if m["key"] == key:
            cell = m["values"].get(runtime)
            if cell and cell["status"] == "ok":
                return cell["median"]
    return None


def _unit(data, key):
    for m in data["measurements"]:
        if m["key"] == key:
            return m["unit"]
    return ""


def _cell(data, key, runtime):
    for m in data["measurements"]:
        if m["key"] == key:
            return m["values"].get(runtime)
    return None


def _why_missing(data, key, runtime):
    for rt in data["runtimes"]:
        if rt["name"] == runtime and not rt["available"]:
            return f"{runtime} unavailable: {rt['reason']}"
    cell = _cell(data, key, runtime)
    if cell is None:
        return f"{key} not run for {runtime}"
    if cell["status"] == "failed":
        return f"{runtime} failed: {cell['error']}"
    return f"no {key} figure for {runtime}"


@dataclass
class Target:
    text: str          # the target as the issue states it
    key: str           # measurement
    runtime: str       # the pysentry runtime judged
    other: str         # the runtime compared against
    factor: float      # figure must be <= factor*other (lower better) or >= (higher better)
    better: str
    strict: bool = True  # factor 1.0, lower better: "faster than" (<), else "no slower" (<=)

    def judge(self, data):
        mine = _median(data, self.key, self.runtime)
        ref = _median(data, self.key, self.other) if self.other else self.factor
        if mine is None:
            return None, _why_missing(data, self.key, self.runtime)
        if ref is None:
            return None, _why_missing(data, self.key, self.other)
        bound = ref * self.factor if self.other else ref
        met = mine <= bound if self.better == "lower" else mine >= bound
        if self.better == "lower" and self.other and self.factor == 1.0 and self.strict:
            met = mine < bound          # "below"/"faster than": strictly
        unit = _unit(data, self.key)
        if not self.other:
            return met, f"{mine:.4g} {unit}; limit {bound:.4g} {unit}"
        if self.factor == 1.0:
            return met, f"{mine:.4g} {unit}; {self.other} {ref:.4g} {unit}"
        return met, (f"{mine:.4g} {unit}; limit {bound:.4g} {unit} "
                     f"= {self.factor:g}× {self.other}'s {ref:.4g}")


def targets(runtime="pysentry-ptrace"):
    out = [
        Target("getppid round trip ≤ 1.5× the ptrace floor", "getppid", runtime,
               "ptrace-floor", 1.5, "lower"),
        Target("getppid round trip below gVisor's", "getppid", runtime, "gvisor", 1.0, "lower"),
    ]
    for where in ("volume", "tmpfs"):
        for op in ("seqread", "seqwrite"):
            out.append(Target(f"{op} 1 MiB blocks ({where}) ≥ 0.8× native", f"{op}-1m-{where}",
                              runtime, "native", 0.8, "higher"))
        out.append(Target(f"seqread 4 KiB blocks ({where}) ≥ gVisor's", f"seqread-4k-{where}",
                          runtime, "gvisor", 1.0, "higher"))
        out.append(Target(f"random 4 KiB reads ({where}) ≥ gVisor's (latency ≤)",
                          f"randread-4k-{where}", runtime, "gvisor", 1.0, "lower"))
    out += [
        Target("start-up of /bin/true faster than gVisor's", "startup", runtime, "gvisor", 1.0,
               "lower"),
        Target("fork+exec+wait faster than gVisor's", "forkexec", runtime, "gvisor", 1.0, "lower"),
        Target("idle memory of the sandbox ≤ 60 MiB", "memory", runtime, "", 60.0, "lower"),
        Target("CPU-bound loop within 5% of native", "cpuloop", runtime, "native", 1.05, "lower"),
    ]
    if runtime == "pysentry-kvm":
        out += kvm_targets()
    return out


# What a reader must know to read a figure honestly: how the runtime produced it.
FIGURE_NOTES = {
    ("getppid", "pysentry-kvm"): "answered in C by the KVM platform, not by the Python kernel "
                                 "(docs/kvm.md, \"Syscalls served in C\")",
}


def kvm_targets():
    """Issue 4's targets that compare the KVM platform with its floor or with ptrace."""
    kvm, ptrace = "pysentry-kvm", "pysentry-ptrace"
    return [
        Target("getppid round trip on KVM ≤ 1.3× the KVM floor (getppid is answered in C)",
               "getppid", kvm, "kvm-floor",
               1.3, "lower"),
        Target("mmap/touch/munmap 1 MiB on KVM ≥ 2× faster than on ptrace", "mmaploop", kvm,
               ptrace, 0.5, "lower"),
        Target("start-up of /bin/true on KVM no slower than on ptrace", "startup", kvm, ptrace,
               1.0, "lower", strict=False),
    ]


def judged_targets(data):
    keys = {m["key"] for m in data["measurements"]}
    out = []
    for rt in PYSENTRY:
        if not any(r["name"] == rt and r["available"] for r in data["runtimes"]):
            continue
        for t in targets(rt):
            if t.key not in keys:
                continue
            if rt != "pysentry-ptrace" and t.other == "ptrace-floor":
                continue         # the ptrace floor says nothing about the KVM platform
            met, detail = t.judge(data)
            out.append({"runtime": rt, "target": t.text, "key": t.key,
                        "met": met, "detail": detail})
    return out


def floor_context(data) -> str:
    """A fact a reader of the KVM rows needs, when this run shows it: the KVM floor's bare
    syscall trap already costs more than gVisor's whole getppid ('' otherwise)."""
    floor = _median(data, "getppid", "kvm-floor")
    gvisor = _median(data, "getppid", "gvisor")
    if floor is None or gvisor is None or floor <= gvisor:
        return ""
    return (f"On this run the KVM floor's bare syscall trap ({floor:.3g} µs) costs more than "
            f"gVisor's whole getppid ({gvisor:.3g} µs): pysentry-kvm's targets against gVisor "
            "on syscall-bound figures measure this host's virtualization first "
            "(docs/kvm.md, \"The host we have\" and \"Rewritten syscall sites\").")


def host_info():
    info = {"kernel": _stdlib_platform.release(), "machine": _stdlib_platform.machine(),
            "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except OSError:
        pass
    try:
        v = subprocess.run(["runsc", "--version"], capture_output=True, text=True).stdout
        info["runsc"] = v.splitlines()[0] if v else ""
    except OSError:
        pass
    if os.path.exists("/sys/module/kvm_pvm"):
        info["kvm"] = "kvm-pvm (Pagetable-based VM: runs only PVM-aware guests)"
    return info


def _fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def markdown(data) -> str:
    names = [r["name"] for r in data["runtimes"]]
    live = [r for r in data["runtimes"] if r["available"]]
    lines = ["# I/O overhead and latency", "",
             "Generated by `python3 -m bench io" + (" --quick" if data["quick"] else "")
             + "`; do not edit by hand. See [bench/README.md](../README.md) for how to read it.",
             ""]
    host = data.get("host", {})
    if host:
        lines += ["Host: " + ", ".join(f"{k} {v}" for k, v in host.items()) + ".", ""]
    s = data["sizes"]
    lines += [f"Repetitions: {s['reps']} per runtime (start-up {s['startup_reps']}, memory "
              f"{s['memory_reps']}), runtimes interleaved; file size {s['file_bytes'] >> 20} MiB; "
              f"latency loops {s['loop_ms']} ms each. Figures are medians with [min–max]. "
              f"Total time {data['elapsed_s']} s.", "",
              "Ratios: figure ÷ native's and figure ÷ gVisor's. For latencies (µs, ms, MiB) "
              "above 1× is worse; for throughputs (MiB/s) below 1× is worse.", "",
              "## Runtimes", "", "| runtime | how | status |", "|---|---|---|"]
    for r in data["runtimes"]:
        status = "available" if r["available"] else f"**unavailable**: {r['reason']}"
        lines.append(f"| {r['name']} | {r['label']} | {status} |")
    lines += ["", "## Targets", ""]
    tj = data.get("targets", [])
    if not tj:
        lines.append("No pysentry runtime was available: no target could be judged.")
    else:
        lines += ["| runtime | target | figure | result |", "|---|---|---|---|"]
        for t in tj:
            res = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
            lines.append(f"| {t['runtime']} | {t['target']} | {t['detail']} | {res} |")
    context = floor_context(data)
    if context:
        lines += ["", context]
    lines += ["", "## Figures", ""]
    for m in data["measurements"]:
        lines += [f"### {m['title']} ({m['unit']}, {m['better']} is better)", "",
                  "| runtime | median [min–max] | × native | × gVisor | note |",
                  "|---|---|---|---|---|"]
        nat = _median(data, m["key"], "native")
        gv = _median(data, m["key"], "gvisor")
        for r in live:
            cell = m["values"].get(r["name"], {"status": "n/a"})
            if cell["status"] == "ok":
                fig = f"{_fmt(cell['median'])} [{_fmt(cell['min'])}–{_fmt(cell['max'])}]"
                note = []
                if (m["key"], r["name"]) in FIGURE_NOTES:
                    note.append(FIGURE_NOTES[m["key"], r["name"]])
                if cell.get("fs"):
                    note.append("fs " + "/".join(cell["fs"]))
                if cell.get("pss_mib"):
                    note.append(f"Pss sum {_fmt(min(cell['pss_mib']))}–{_fmt(max(cell['pss_mib']))} MiB, "
                                f"{cell.get('processes')} processes")
                lines.append(f"| {r['name']} | {fig} | {_ratio(cell['median'], nat)} | "
                             f"{_ratio(cell['median'], gv)} | {'; '.join(note)} |")
            elif cell["status"] == "failed":
                lines.append(f"| {r['name']} | **FAILED** ({cell['failures']}/{cell['runs']} runs) "
                             f"| – | – | {cell['error']} |")
            # "n/a": the runtime does not run this measurement (the floors): no row.
        lines.append("")
    charts = data.get("charts", [])
    if charts:
        lines += ["## Charts", ""] + [f"![{c}]({c})" for c in charts] + [""]
    return "\n".join(lines)


CHART_GROUPS = (
    ("io-latency.png", "Latency (lower is better)", ("µs",), "µs per operation"),
    ("io-throughput.png", "Throughput (higher is better)", ("MiB/s",), "MiB/s"),
    ("io-process.png", "Processes (lower is better)", ("ms", "MiB"), "ms (fork/exec, start-up) / MiB (memory)"),
)


def charts(data) -> dict:
    series = [r["name"] for r in data["runtimes"] if r["available"]]
    out = {}
    for name, title, units, unit_text in CHART_GROUPS:
        groups = []
        for m in data["measurements"]:
            if m["unit"] not in units:
                continue
            vals = {rt: (c["median"] if c["status"] == "ok" else "FAILED")
                    for rt, c in m["values"].items() if c["status"] != "n/a"}
            groups.append((m["key"], vals))
        if groups:
            out[name] = bar_chart(title, groups, series, unit=unit_text)
    return out


def write_io(data, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    data = dict(data)
    data.setdefault("host", host_info())
    data["targets"] = judged_targets(data)
    pngs = charts(data)
    for name, blob in pngs.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(blob)
    data["charts"] = sorted(pngs)
    with open(os.path.join(out_dir, "io.json"), "w") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(out_dir, "io.md"), "w") as f:
        f.write(markdown(data))
    return data
