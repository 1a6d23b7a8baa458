"""Starting a gofer for the sentry: `start_gofer(root) -> (process, client socket)`.

Two ways to start one, with the same result (a separate process serving ROOT on one end of
a fresh unix socketpair, confined by gofer/confine.py when asked, that inherits only that
socket, runs in its own session so no terminal signal reaches it, and dies with us through
PR_SET_PDEATHSIG(SIGKILL), checked against our pid so a parent dying during start-up
cannot be missed):

- `start_gofer` on its own runs `python3 -m pysentry.gofer --fd N ROOT`: a fresh
  interpreter, whatever the caller's state.
- `prestart_gofer`, called by the command line before it imports the sentry, forks the
  gofer from the still-small launcher process instead. The child skips a second interpreter
  start and imports the gofer's modules while the parent imports the sentry's (the two
  overlap); `start_gofer` with the same arguments later adopts it. Forking is only safe
  this early: nothing of the sandbox exists yet (no memory file, no stub, no program), so
  the copy of our memory the child gets holds nothing the sandboxed program could reach,
  and it closes every inherited fd but its socket. Its confinement is the same code path
  as the interpreter-started gofer's (gofer/__main__.main).

PDEATHSIG fires when the *thread* that forked exits: call both from the main thread. The
returned socket is blocking and is what `pysentry.gofer.p9.client.Client` takes.
"""
import os
import select
import signal
import socket
import sys

# (realpath(root), ro, donate, confine) -> (GoferProcess, our socket, ready pipe read end)
_prestarted: dict = {}


class GoferExited(RuntimeError):
    pass


class GoferProcess:
    """A gofer we forked: the part of subprocess.Popen's interface callers use (pid,
    returncode, poll, wait(timeout), kill). Waiting with a timeout sleeps on a pidfd,
    so the exit is noticed the moment it happens rather than at the next polling tick."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None
        self._pidfd = os.pidfd_open(pid)

    def _reaped(self, status: int) -> int:
        self.returncode = os.waitstatus_to_exitcode(status)
        os.close(self._pidfd)
        self._pidfd = -1
        return self.returncode

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status)
        return self.returncode

    def wait(self, timeout=None) -> int:
        if self.returncode is not None:
            return self.returncode
        if timeout is not None:
            waiter = select.poll()
            waiter.register(self._pidfd, select.POLLIN)
            if not waiter.poll(max(0, int(timeout * 1000))):
                import subprocess
                raise subprocess.TimeoutExpired(f"gofer {self.pid}", timeout)
        _, status = os.waitpid(self.pid, 0)
        return self._reaped(status)

    def kill(self) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)


def gofer_command(root: str, fd: int, *, ro: bool, donate: bool, confine: bool) -> list:
    return [sys.executable, "-m", "pysentry.gofer", *gofer_args(root, fd, ro=ro,
                                                                 donate=donate, confine=confine)]


def gofer_args(root: str, fd: int, *, ro: bool, donate: bool, confine: bool) -> list:
    args = ["--fd", str(fd), "--parent-pid", str(os.getpid())]
    if ro:
        args.append("--ro")
    if not donate:
        args.append("--no-donate")
    if confine:
        args.append("--confine")
    args.append(os.fspath(root))
    return args


def _key(root, ro, donate, confine) -> tuple:
    return os.path.realpath(os.fspath(root)), bool(ro), bool(donate), bool(confine)


def _read_ready(ready_fd: int) -> bool:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(ready_fd, 64)
        if not chunk:
            break
        line += chunk
    return line.strip() == b"ready"


# == forked early ==========================================================================

def prestart_gofer(root, ro: bool = False, donate: bool = True, confine: bool = True) -> None:
    """Fork a gofer for `root` now; `start_gofer` with the same arguments adopts it. Only
    for a launcher that has created nothing of the sandbox yet (see the module docstring)."""
    key = _key(root, ro, donate, confine)
    if key in _prestarted:
        return
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ready_r, ready_w = os.pipe()
    args = gofer_args(key[0], theirs.fileno(), ro=ro, donate=donate, confine=confine)
    for stream in (sys.stdout, sys.stderr):     # the child must not write our buffers again
        if stream is not None:
            stream.flush()
    pid = os.fork()
    if pid == 0:
        _run_forked_gofer(theirs.fileno(), ready_w, args)      # never returns
    os.close(ready_w)
    theirs.close()
    try:
        _prestarted[key] = (GoferProcess(pid), ours, ready_r)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        ours.close()
        os.close(ready_r)
        raise


def _fd_limit() -> int:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(soft, hard if hard != resource.RLIM_INFINITY else soft, 1024)


def _run_forked_gofer(sock_fd: int, ready_fd: int, args: list) -> None:
    """In the child: stdin from /dev/null, stdout is the ready pipe, stderr stays ours;
    every other fd is closed and the socket ends up as fd 3. Never returns."""
    code = 1
    try:
        os.setsid()
        import fcntl
        sock_fd = fcntl.fcntl(sock_fd, fcntl.F_DUPFD, 3)
        ready_fd = fcntl.fcntl(ready_fd, fcntl.F_DUPFD, 3)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(ready_fd, 1)
        os.dup2(sock_fd, 3)
        os.closerange(4, _fd_limit())
        # Our sys.stdout may be None (started without fd 1) or buffer for another file.
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        if sys.stderr is None:
            sys.stderr = open(2, "w", buffering=1, closefd=False)
        args[args.index("--fd") + 1] = "3"
        from .__main__ import main
        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
        finally:
            os._exit(code)


def discard_prestarted() -> None:
    """Stop gofers prestarted but never adopted (their socket closing ends them)."""
    while _prestarted:
        _, (proc, ours, ready_r) = _prestarted.popitem()
        ours.close()
        os.close(ready_r)
        proc.kill()
        proc.wait()


def _adopt(key) -> tuple | None:
    entry = _prestarted.pop(key, None)
    if entry is None:
        return None
    proc, ours, ready_r = entry
    try:
        ready = _read_ready(ready_r)
    finally:
        os.close(ready_r)
    if not ready:
        ours.close()
        proc.kill()
        raise GoferExited(f"gofer failed to start (exit status {proc.wait()})")
    return proc, ours


# == a fresh interpreter ===================================================================

def start_gofer(root, ro: bool = False, donate: bool = True, confine: bool = True,
                stderr=None) -> tuple:
    if stderr is None:
        adopted = _adopt(_key(root, ro, donate, confine))
        if adopted is not None:
            return adopted
    import subprocess
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        cmd = gofer_command(root, theirs.fileno(), ro=ro, donate=donate, confine=confine)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr, close_fds=True, pass_fds=(theirs.fileno(),),
                                start_new_session=True)   # no terminal signals reach the gofer
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    try:
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            raise GoferExited(f"gofer failed to start (exit status {proc.wait()})")
    except BaseException:
        ours.close()
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    return proc, ours
