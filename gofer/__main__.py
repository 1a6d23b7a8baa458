"""`python3 -m pysentry.gofer [options] ROOT`: serve ROOT over 9P2000.L.

Transports: `--fd N` serves the already-connected unix socket N (production: one end of a
socketpair made by launch.start_gofer) and exits when it closes; `--listen HOST:PORT`
accepts TCP connections (interop tests; port 0 picks one). Once ready the gofer prints
`listening HOST:PORT` (TCP) or `ready` on stdout.
"""
import os
import resource
import signal
import socket
import sys

from . import confine as confinement, hostcalls, hostfs
from .export import Export
from .hostfs import ProcFds
from .server import Server


DEFAULT_MSIZE = 1 << 20
# The flags launch.gofer_args may add between --parent-pid and ROOT, in its order, and the
# option each sets.
_LAUNCH_FLAGS = (("--ro", "ro", True), ("--no-donate", "donate", False),
                 ("--confine", "confine", True))


def _quick_args(argv):
    """The options of the command line launch.gofer_args builds (`--fd N --parent-pid P
    [--ro] [--no-donate] [--confine] ROOT`) as parse_args gives them, without importing
    argparse (~3 ms of every gofer start); None for any other command line."""
    if len(argv) < 5 or argv[0] != "--fd" or argv[2] != "--parent-pid":
        return None
    fd, parent_pid, rest = argv[1], argv[3], argv[4:]
    if not (fd.isdigit() and parent_pid.isdigit()):
        return None
    values = {"ro": False, "donate": True, "confine": False}
    for flag, name, value in _LAUNCH_FLAGS:
        if rest[0] == flag:
            values[name] = value
            rest = rest[1:]
            if not rest:
                return None
    root = rest[0]
    if len(rest) != 1 or root.startswith("-"):
        return None
    from types import SimpleNamespace
    return SimpleNamespace(root=root, fd=int(fd), listen=None, parent_pid=int(parent_pid),
                           msize=DEFAULT_MSIZE, debug=False, **values)


def parse_args(argv):
    quick = _quick_args(argv)
    if quick is not None:
        return quick
    import argparse
    p = argparse.ArgumentParser(prog="python3 -m pysentry.gofer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="directory to serve")
    transport = p.add_mutually_exclusive_group(required=True)
    transport.add_argument("--fd", type=int, help="inherited connected unix socket fd")
    transport.add_argument("--listen", metavar="HOST:PORT", help="listen on TCP")
    p.add_argument("--ro", action="store_true", help="refuse every mutation with EROFS")
    p.add_argument("--no-donate", dest="donate", action="store_false",
                   help="never pass host fds to the client (SCM_RIGHTS)")
    p.add_argument("--confine", action="store_true",
                   help="namespaces, pivot_root into ROOT, drop capabilities, no_new_privs")
    p.add_argument("--parent-pid", type=int,
                   help="die (SIGKILL) when this parent process exits")
    p.add_argument("--msize", type=int, default=DEFAULT_MSIZE, help="largest msize offered")
    p.add_argument("--debug", action="store_true", help="log protocol problems to stderr")
    return p.parse_args(argv)


def _tie_to_parent(parent_pid: int) -> None:
    hostcalls.prctl(hostcalls.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:      # the parent died before the prctl took effect
        os._exit(1)


def _open_transport(args):
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        if sock.family != socket.AF_UNIX:
            raise SystemExit("--fd must be a unix socket")
        return sock, None
    host, _, port = args.listen.rpartition(":")
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host.strip("[]"), int(port)))
    listener.listen(64)
    return None, listener


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.parent_pid is not None:
        _tie_to_parent(args.parent_pid)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    root_path = os.path.realpath(args.root)
    procfds = ProcFds()
    hostfs.forbid_pseudo_filesystems()
    sock, listener = _open_transport(args)
    if args.confine:
        confinement.confine(root_path, ro=args.ro)
        root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        root_fd = os.open(root_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    export = Export(root_fd, names=("", "/", root_path, args.root), ro=args.ro,
                    procfds=procfds, max_msize=args.msize)
    server = Server(export, donate=args.donate, log=sys.stderr if args.debug else None)
    if sock is not None:
        server.add_connection(sock)
        print("ready", flush=True)
        server.serve(until_idle=True)
    else:
        server.add_listener(listener)
        host, port = listener.getsockname()[:2]
        print(f"listening {host}:{port}", flush=True)
        server.serve(until_idle=False)
    return 0


if __name__ == "__main__":
    status = main()
    # Nothing is left to tear down that the kernel does not do at exit, and the sentry
    # waits for this exit: skip the interpreter's finalisation.
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(status)
