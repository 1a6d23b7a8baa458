"""python3 -m bench {coverage,io,micro} [--quick] — run from the repository root."""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
DOC = os.path.join(os.path.dirname(HERE), "docs", "compatibility.md")


def _runtimes(names):
    from .runtimes import standard_runtimes
    rts = standard_runtimes()
    if names:
        wanted = set(names.split(","))
        unknown = wanted - {r.name for r in rts}
        if unknown:
            raise SystemExit(f"unknown runtime(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(r.name for r in rts)}")
        rts = [r for r in rts if r.name in wanted or r.name == "native"]
    return rts


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, helptext in (("coverage", "syscall coverage: static table + measured corpus"),
                           ("io", "I/O overhead and latency against native, gVisor, floors")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--quick", action="store_true", help="a reduced set (under a minute)")
        p.add_argument("--runtimes", help="comma-separated subset (native is always kept)")
        p.add_argument("--out", default=RESULTS, help="directory for the generated results")
        if name == "coverage":
            p.add_argument("--doc", default=DOC, help="where to write compatibility.md")
            p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
        else:
            p.add_argument("--only", help="comma-separated measurement keys")
    m = sub.add_parser("micro", help="pytest-benchmark micro-benchmarks (bench/micro)")
    m.add_argument("pytest_args", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["micro"]:            # everything after `micro` goes to pytest as is
        return subprocess.call([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                                os.path.join(HERE, "micro"), *argv[1:]])
    args = ap.parse_args(argv)

    if args.cmd == "io":
        from .io_run import run_io
        from .report_io import write_io
        data = run_io(quick=args.quick, only=set(args.only.split(",")) if args.only else None,
                      runtimes=_runtimes(args.runtimes))
        data = write_io(data, args.out)
        print(f"wrote {os.path.join(args.out, 'io.md')} and io.json, charts: "
              f"{', '.join(data['charts'])}")
        missed = [t for t in data["targets"] if t["met"] is False]
        for t in data["targets"]:
            state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
            print(f"  target [{state}] {t['runtime']}: {t['target']} — {t['detail']}")
        print(f"{len(missed)} target(s) missed")
        return 0
    if args.cmd == "coverage":
        from .coverage_run import run_coverage
        from .report_coverage import write_coverage
        data = run_coverage(quick=args.quick, runtimes=_runtimes(args.runtimes), jobs=args.jobs)
        write_coverage(data, args.out, args.doc)
        for rt, summary in data["summary"].items():
            print(f"  {rt}: {summary['passing']} of {summary['tested']} tested syscalls match "
                  f"native ({summary['total']} x86-64 syscalls)")
        print(f"wrote {args.doc}, {os.path.join(args.out, 'coverage.json')}, coverage.png")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
