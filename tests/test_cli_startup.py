"""The command line started with some of fds 0-2 closed: those become /dev/null for the
sandbox (before, the memory file or a gofer socket took the free number and the sandboxed
program read the sandbox's memory as its stdin, or wrote into the 9P stream)."""
import os
import subprocess
import sys


def _run_with_closed(fd: int, script: str):
    def close_it():
        os.close(fd)
    return subprocess.run([sys.executable, "-m", "pysentry.sentry.cli", "run", "--",
                           "/bin/sh", "-c", script],
                          stdin=None if fd == 0 else subprocess.DEVNULL,
                          stdout=None if fd == 1 else subprocess.PIPE,
                          stderr=None if fd == 2 else subprocess.PIPE,
                          preexec_fn=close_it, timeout=60)


def test_closed_stdin_reads_as_empty():
    out = _run_with_closed(0, "wc -c; ls -l /proc/self/fd/0")
    assert out.returncode == 0, out.stderr
    count, listing = out.stdout.decode().split("\n", 1)
    assert count.strip() == "0"
    assert listing.rstrip().endswith("/dev/null")


def test_closed_stdout_and_stderr_still_run_the_program():
    for fd in (1, 2):
        out = _run_with_closed(fd, "echo to-stdout; echo to-stderr >&2; exit 3")
        assert out.returncode == 3, (out.stdout, out.stderr)
        kept = out.stderr if fd == 1 else out.stdout
        assert kept == (b"to-stderr\n" if fd == 1 else b"to-stdout\n")
