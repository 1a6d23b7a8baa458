"""The command line's quick parse (no argparse import on the common path) must give what
argparse gives, and must leave every other command line to argparse."""
import pytest

from pysentry.sentry import cli

QUICK = [
    ["run", "--", "/bin/true"],
    ["run", "--platform=ptrace", "--", "/bin/true"],
    ["run", "--platform=kvm", "--strace", "--", "/bin/sh", "-c", "echo hi"],
    ["run", "--debug", "--platform=kvm", "--platform=ptrace", "--", "ls", "-l", "--", "x"],
    ["run", "--strace", "--debug", "--", "--", "--strace"],
    ["run", "--", "-h"],
]

NOT_QUICK = [
    ["run", "/bin/true"],                       # no "--": argparse's REMAINDER rules
    ["run", "--platform", "kvm", "--", "/bin/true"],
    ["run", "--plat=kvm", "--", "/bin/true"],    # an abbreviation argparse accepts
    ["run", "--rootfs=/", "--", "/bin/true"],
    ["run", "-v", "/tmp:/tmp", "--", "/bin/true"],
    ["run", "--"],
    ["run", "-h", "--", "x"],
    ["syscalls"],
    ["run", "--platform=kvm"],
]


@pytest.mark.parametrize("argv", QUICK, ids=" ".join)
def test_quick_parse_matches_argparse(argv):
    quick = cli._quick_parse(argv)
    assert quick is not None
    full = cli._parser().parse_args(argv)
    assert vars(quick) == vars(full)


@pytest.mark.parametrize("argv", NOT_QUICK, ids=" ".join)
def test_other_command_lines_go_to_argparse(argv):
    assert cli._quick_parse(argv) is None


def test_log_messages_keep_the_command_line_format():
    """logging is imported only when something is logged (sentry/logger.py); the first
    message must still carry the format and level the command line configured."""
    from conftest import compile_c, run_sandbox
    prog = compile_c(r'''
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void){ printf("%ld\n", syscall(SYS_kexec_load, 0, 0, 0, 0)); return 0; }''')
    debug = run_sandbox([prog], "--debug")
    assert debug.returncode == 0 and debug.stdout == b"-1\n"
    assert b"pysentry: INFO: unsupported syscall kexec_load -> EPERM\n" in debug.stderr
    quiet = run_sandbox([prog])
    assert quiet.returncode == 0 and quiet.stdout == b"-1\n" and quiet.stderr == b""
