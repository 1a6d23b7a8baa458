"""Real programs: busybox, dash and coreutils in the sandbox, compared with native runs."""
import os
import shutil

import pytest

from conftest import assert_same, run_native, run_sandbox

BUSYBOX = "/bin/busybox"


def test_busybox_sh_hello_ls_pid():
    script = "echo hello; ls /; echo $$"
    nat = run_native([BUSYBOX, "sh", "-c", script])
    box = run_sandbox([BUSYBOX, "sh", "-c", script])
    assert box.returncode == 0, box.stderr
    nat_lines = nat.stdout.splitlines()
    box_lines = box.stdout.splitlines()
    # Everything but $$ (the last line) is the same; $$ is 1 inside the sandbox.
    assert box_lines[:-1] == nat_lines[:-1]
    assert box_lines[-1] == b"1"


DASH_SCRIPT = r'''
set -e
f() { echo "in f: $1"; return 3; }
f arg || echo "f returned $?"
x=$(echo sub | tr a-z A-Z); echo "subst $x"
( cd /tmp && pwd )
echo one two three | while read a b c; do echo "$c $b $a"; done
echo redirected > /tmp/pysentry_dash_test.$$ ; cat < /tmp/pysentry_dash_test.$$ ; rm /tmp/pysentry_dash_test.$$
trap 'echo trapped USR1' USR1
kill -USR1 $$
sleep 0.1 & p=$!
wait $p; echo "waited $?"
(exit 7); echo "subshell $?"
for i in 1 2 3; do printf '%s,' "$i"; done; echo
case abc in a*) echo matched;; esac
echo done >&2
'''


def test_dash_script_pipes_subshells_traps_jobs():
    assert_same(["/bin/sh", "-c", DASH_SCRIPT])


@pytest.mark.parametrize("argv", [
    ["ls", "-la", "--time-style=+%s", "/usr/share/doc/coreutils"],
    ["cat", "/etc/os-release"],
    ["sort", "/etc/passwd"],
    ["sed", "-n", "s/:.*//p", "/etc/passwd"],
    ["awk", "-F:", "{print $1, NF}", "/etc/passwd"],
    ["find", "/usr/share/doc/coreutils", "-maxdepth", "1"],
    ["sha256sum", "/bin/busybox"],
    ["tar", "-cf", "-", "-C", "/usr/share/doc", "coreutils"],
    ["gzip", "-c", "-n", "/etc/services"],
])
def test_dynamic_coreutils_byte_identical(argv):
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed on this machine")
    assert_same(argv)


def test_python3_threads_subprocess_fork_signal_tempfile_json():
    """Debian's python3 (dynamically linked) running the issue's workload."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("Debian's python3 is not installed")
    script = os.path.join(os.path.dirname(__file__), "progs", "python_workload.py")
    # The sandbox's /tmp is its own: give the script from a path outside /tmp.
    visible = "/var/tmp/pysentry-test-build/python_workload.py"
    os.makedirs(os.path.dirname(visible), exist_ok=True)
    with open(script) as src, open(visible, "w") as dst:
        dst.write(src.read())
    assert_same([python, visible])


CPYTHON_MODULES = ["test_json", "test_tempfile", "test_subprocess", "test_fnmatch", "test_glob", "test_pty",
                   "test_select", "test_fcntl", "test_mmap", "test_fileio", "test_wait4",
                   "test_posix", "test_time", "test_shutil", "test_threading", "test_stat"]


def test_cpython_regression_modules_pass_inside():
    """CPython's own regression tests for these modules pass inside the sandbox."""
    if not os.path.exists("/usr/lib/python3.11/test/test_subprocess.py"):
        pytest.skip("libpython3.11-testsuite is not installed")
    box = run_sandbox(["/usr/bin/python3", "-m", "test", *CPYTHON_MODULES], timeout=900,
                      cwd="/var/tmp")
    out = box.stdout.decode(errors="replace")
    assert box.returncode == 0 and "Tests result: SUCCESS" in out, out[-4000:]
