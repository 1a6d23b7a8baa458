"""The command line: the syscall table listing, exit statuses, argument errors."""
import subprocess
import sys

from conftest import compile_c, run_sandbox


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pysentry.sentry.cli", *args],
                          capture_output=True, timeout=60)


def test_syscalls_lists_every_number_with_support():
    out = cli("syscalls")
    assert out.returncode == 0
    lines = out.stdout.decode().splitlines()
    names = {l.split()[1]: l.split()[2] for l in lines}
    assert names["read"] == "full"
    assert names["mmap"] == "partial"
    assert "unsupported" in names["io_uring_setup"]
    assert len(lines) > 300


def test_exit_status_is_first_process_status():
    prog = compile_c("int main(void){return 42;}")
    assert run_sandbox([prog]).returncode == 42


def test_missing_program_is_a_clear_error():
    box = run_sandbox(["/nonexistent/prog"])
    assert box.returncode != 0
    assert b"cannot execute" in box.stderr


def test_run_without_command_is_a_usage_error():
    out = cli("run")
    assert out.returncode == 2
    assert b"needs a command" in out.stderr


def test_strace_prints_decoded_calls():
    prog = compile_c(r'''
#include <unistd.h>
#include <fcntl.h>
int main(void){ int fd = open("/nonexistent-file", O_RDONLY); write(1, "x", 1); return fd < 0 ? 0 : 1; }''')
    box = run_sandbox([prog], "--strace")
    assert box.returncode == 0
    err = box.stderr.decode()
    assert "openat(AT_FDCWD, '/nonexistent-file'" in err and "ENOENT" in err, err[-2000:]
    assert "write(1" in err
