"""Memory of a whole sandbox: every process descended from the one we started.

For each process: VmHWM (its peak resident set) from /proc/PID/status and Pss (resident
memory with shared pages divided among their users) from /proc/PID/smaps_rollup. The sum
of VmHWM is what the issue asks for ("peak RSS of the sentry, gofer and stubs"); it counts
pages shared between processes (pysentry's memory file is mapped by the sentry and every
stub) once per process, so the Pss sum is reported beside it.
"""
import os


def children_map() -> dict:
    kids: dict[int, list] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def tree(root: int) -> list:
    kids = children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _kib_field(path: str, name: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def usage(root: int) -> dict:
    """Memory of the process tree under root, in KiB, with the process count."""
    pids = tree(root)
    hwm = sum(_kib_field(f"/proc/{p}/status", "VmHWM") for p in pids)
    pss = sum(_kib_field(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
    return {"processes": len(pids), "peak_rss_kib": hwm, "pss_kib": pss}
