"""pysentry's command line: `pysentry run -- CMD...`, `pysentry syscalls`."""
import os
import sys

# `run` options the quick parse below understands, exactly as spelled: each sets one
# attribute of the arguments. Anything else goes to argparse.
_QUICK_RUN_FLAGS = {
    "--platform=ptrace": ("platform", "ptrace"),
    "--platform=kvm": ("platform", "kvm"),
    "--strace": ("strace", True),
    "--debug": ("debug", True),
}


def _volume(spec):
    import argparse
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise argparse.ArgumentTypeError(f"--volume wants HOST:GUEST[:ro], got {spec!r}")
    ro = len(parts) == 3 and parts[2] == "ro"
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise argparse.ArgumentTypeError(f"--volume mode must be ro or rw, got {parts[2]!r}")
    if not os.path.isdir(parts[0]):
        raise argparse.ArgumentTypeError(f"--volume: {parts[0]} is not a directory")
    return os.path.realpath(parts[0]), parts[1].encode(), ro


def _ensure_standard_fds() -> None:
    """Open /dev/null on any of fds 0-2 we were started without, before anything else gets
    one of those numbers: otherwise a gofer socket or the memory file would become the
    sandbox's stdin/stdout/stderr. sys.stdin/stdout/stderr then exist too."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:       # Python started without it
            setattr(sys, name, open(fd, mode, closefd=False))


def _quick_parse(argv):
    """The arguments of the common command lines (`run [--platform=P] [--strace] [--debug]
    -- CMD...`) as argparse would give them, without importing argparse (~5 ms with
    building the parser); None for any other command line, which argparse then parses."""
    if len(argv) < 3 or argv[0] != "run":
        return None
    values = {"cmd": "run", "platform": "ptrace", "rootfs": "/", "volume": [],
              "strace": False, "debug": False}
    for i, arg in enumerate(argv[1:], 1):
        if arg == "--":
            if i + 1 == len(argv):
                return None         # no command: argparse says so
            from types import SimpleNamespace
            # argparse's REMAINDER keeps the "--"; main drops it.
            return SimpleNamespace(command=argv[i:], **values)
        flag = _QUICK_RUN_FLAGS.get(arg)
        if flag is None:
            return None
        values[flag[0]] = flag[1]
    return None


def _parser():
    import argparse
    ap = argparse.ArgumentParser(prog="pysentry", description="A user-space application kernel.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a command inside a sandbox")
    run.add_argument("--platform", default="ptrace", choices=["ptrace", "kvm"])
    run.add_argument("--rootfs", default="/", help="host directory served as / (read-only, "
                     "under a writable in-memory overlay)")
    run.add_argument("--volume", "-v", action="append", type=_volume, default=[],
                     help="HOST:GUEST[:ro], a host directory whose writes reach the host")
    run.add_argument("--strace", action="store_true", help="print every application syscall")
    run.add_argument("--debug", action="store_true")
    run.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("syscalls", help="print the syscall table with support levels")
    return ap


def main(argv=None):
    _ensure_standard_fds()
    args = _quick_parse(sys.argv[1:] if argv is None else argv)
    if args is None:
        args = _parser().parse_args(argv)
    # Level numbers of logging.DEBUG and WARNING: logging itself is imported only when
    # something is logged (sentry/logger.py).
    from .logger import configure
    configure(level=10 if getattr(args, "debug", False) else 30,
              format="pysentry: %(levelname)s: %(message)s")
    if args.cmd == "syscalls":
        from .syscalls.table import load_all
        for e in sorted(load_all().values(), key=lambda e: e.nr):
            extra = f"  ({e.note})" if e.note else ""
            if e.support == "unsupported":
                import errno
                extra = f"  -> {errno.errorcode.get(e.errno, e.errno)}" + extra
            print(f"{e.nr:4d} {e.name:<24} {e.support}{extra}")
        return 0
    cmd = args.command
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        _parser().error("run needs a command: pysentry run -- /bin/sh")
    if not os.path.isdir(args.rootfs):
        _parser().error(f"--rootfs {args.rootfs} is not a directory")
    # Gofers first, forked while this process holds nothing of a sandbox yet; they get
    # ready while the sentry's modules load (gofer/launch.py). build_vfs starts gofers
    # with these same arguments and adopts them.
    from ..gofer import launch
    launch.prestart_gofer(args.rootfs, ro=True)
    for host, _, ro in args.volume:
        launch.prestart_gofer(host, ro=ro)
    try:
        return _run(args, cmd)
    finally:
        launch.discard_prestarted()


def _run(args, cmd):
    from .sandbox import Sandbox
    argv_b = [os.fsencode(a) for a in cmd]
    env = [os.fsencode(f"{k}={v}") for k, v in os.environ.items()]
    cwd = os.fsencode(os.getcwd()) if args.rootfs == "/" else b"/"
    if not argv_b[0].startswith(b"/") and b"/" not in argv_b[0]:
        # Resolve like a shell does, inside the sandbox's root.
        for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
            cand = os.path.join(args.rootfs, d.lstrip("/"), cmd[0])
            if os.path.isfile(cand) and os.access(cand, os.X_OK):
                argv_b[0] = os.fsencode(os.path.join(d, cmd[0]))
                break
    sb = Sandbox(argv_b, env, cwd=cwd, platform=args.platform, rootfs=args.rootfs,
                 volumes=args.volume, strace=sys.stderr if args.strace else None)
    code = sb.run()
    sys.stdout.flush()
    unsupported = sb.kernel.unsupported_counts
    if unsupported and (args.debug or args.strace):
        summary = ", ".join(f"{n} x{c}" for n, c in unsupported.most_common())
        print(f"pysentry: unsupported syscalls made: {summary}", file=sys.stderr)
    return code


def exit_now(status) -> None:
    """Exit without the interpreter's finalisation (tens of ms of freeing objects one by
    one): by the time main returns the sandbox is torn down, its gofers reaped and the
    terminal restored; only our own buffered output is left to flush. Under a profiler,
    tracer or coverage tool the normal exit runs instead, so that they write their data."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(status)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    finally:
        os._exit(0 if status is None else status if isinstance(status, int) else 1)


def console() -> None:
    """The `pysentry` console script."""
    exit_now(main())


if __name__ == "__main__":
    console()
