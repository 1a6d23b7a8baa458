"""Starting a gofer for the sentry: `start_gofer(root) -> (process, client socket)`.

The gofer runs as `python3 -m pysentry.gofer --fd N ROOT` on one end of a fresh unix
socketpair. It inherits only that socket (close_fds plus pass_fds), and ties its life to
ours with PR_SET_PDEATHSIG(SIGKILL), checked against our pid so a parent dying during
start-up cannot be missed. Note PDEATHSIG fires when the *thread* that spawned it exits:
call this from the sentry's main thread.

The returned socket is blocking and is what `pysentry.gofer.p9.client.Client` takes.
"""
import os
import socket
import subprocess
import sys


def gofer_command(root: str, fd: int, *, ro: bool, donate: bool, confine: bool) -> list:
    cmd = [sys.executable, "-m", "pysentry.gofer", "--fd", str(fd),
           "--parent-pid", str(os.getpid())]
    if ro:
        cmd.append("--ro")
    if not donate:
        cmd.append("--no-donate")
    if confine:
        cmd.append("--confine")
    cmd.append(os.fspath(root))
    return cmd


def start_gofer(root, ro: bool = False, donate: bool = True, confine: bool = True,
                stderr=None) -> tuple:
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
            raise RuntimeError(f"gofer failed to start (exit status {proc.wait()})")
    except BaseException:
        ours.close()
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    return proc, ours
