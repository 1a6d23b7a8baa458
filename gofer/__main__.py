"""`python3 -m pysentry.gofer [options] ROOT`: serve ROOT over 9P2000.L.

Transports: `--fd N` serves the already-connected unix socket N (production: one end of a
socketpair made by launch.start_gofer) and exits when it closes; `--listen HOST:PORT`
accepts TCP connections (interop tests; port 0 picks one). Once ready the gofer prints
`listening HOST:PORT` (TCP) or `ready` on stdout.
"""
import argparse
import os
import resource
import signal
import socket
import sys

from . import confine as confinement, hostcalls, hostfs
from .export import Export
from .hostfs import ProcFds
from .server import Server


def parse_args(argv):
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
    p.add_argument("--msize", type=int, default=1 << 20, help="largest msize offered")
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
