"""Setting the KVM platform up: the VM is created in the background while the sandbox is put
together, a context takes its vCPU only when it first needs one, and guest memory gets its
KVM slots piece by piece as it is first used (docs/kvm.md, "Start-up")."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from conftest import NEEDS_KVM, compile_c, run_native, run_sandbox

pytestmark = NEEDS_KVM


def _run_with_kvm_replaced_by(path):
    """`pysentry run --platform=kvm -- /bin/true` in a mount namespace where /dev/kvm is
    `path` (bind-mounted over it), so it exists and passes the permission check but is no
    KVM device. Skips where this host does not let us make the namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a mount namespace")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot make a mount namespace here: " + probe.stderr.decode()[-200:])
    script = ('mount --bind "$1" /dev/kvm || exit 99; shift; exec "$@"')
    cmd = ["unshare", "-m", "sh", "-c", script, "sh", path, sys.executable, "-m",
           "pysentry.sentry.cli", "run", "--platform=kvm", "--", "/bin/true"]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    if r.returncode == 99:
        pytest.skip("cannot bind-mount over /dev/kvm here")
    return r


def _assert_one_line_kvm_error(r, cause):
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    assert r.stdout == b""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("pysentry: --platform=kvm unavailable: "), err
    assert cause in lines[0] and lines[0].endswith("use --platform=ptrace"), err


def test_a_kvm_device_that_cannot_be_opened_is_a_one_line_error():
    # A socket cannot be opened (ENXIO): the background creation fails at its first step,
    # after the sandbox's gofers started, and the run still ends with one line and status 1.
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        try:
            r = _run_with_kvm_replaced_by(path)
        finally:
            s.close()
    _assert_one_line_kvm_error(r, "/dev/kvm: " + os.strerror(6))


def test_a_device_that_is_not_kvm_is_a_one_line_error():
    # /dev/null opens but answers no KVM ioctl: the failure comes later in the creation.
    _assert_one_line_kvm_error(_run_with_kvm_replaced_by("/dev/null"), "KVM API version")


def test_a_context_takes_its_vcpu_on_first_use(platform):
    # vCPU 0 is the maintenance vCPU; a context that is released without ever running (the
    # sandbox's first context, replaced by its execve) must not have created another.
    a = platform.new_address_space()
    ctx = platform.new_context(a)
    assert platform.stats()["vcpus"] == 1
    ctx.release()
    assert platform.stats()["vcpus"] == 1 and platform.live_contexts == 0
    ctx = platform.new_context(a)
    ctx.set_fpstate(platform.initial_fpstate)
    assert platform.stats()["vcpus"] == 2
    # A fresh context reads the clean FPU state of a new thread (fcw 0x37f, mxcsr 0x1f80),
    # whichever call takes the vCPU.
    other = platform.new_context(a)
    fp = other.get_fpstate()
    assert fp[0:2] == (0x37F).to_bytes(2, "little")
    assert fp[24:28] == (0x1F80).to_bytes(4, "little")
    ctx.release()
    other.release()
    again = platform.new_context(a)          # the pool's vCPUs are reused
    again.get_fpstate()
    assert platform.stats()["vcpus"] == 3
    again.release()
    a.release()


def test_contexts_beyond_the_vcpu_limit_are_refused_at_creation(platform):
    a = platform.new_address_space()
    made = [platform.new_context(a) for _ in range(511)]
    with pytest.raises(OSError) as e:
        platform.new_context(a)
    assert e.value.errno == 11                  # EAGAIN, as a clone that finds no vCPU gets
    made.pop().release()
    platform.new_context(a).release()           # room again
    for ctx in made:
        ctx.release()
    a.release()


MEMORY_PIECES = r'''
#include <stdio.h>
#include <sys/mman.h>
#define GiB (1UL << 30)
int main(void) {
    /* 1.5 GiB, one byte written every 48 MiB: memory-file offsets in many 64 MiB pieces
     * of the file, each a KVM slot of its own. */
    unsigned char *p = mmap(0, GiB + GiB / 2, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { puts("mmap failed"); return 1; }
    unsigned long step = 48UL << 20, sum = 0, n = 0;
    for (unsigned long off = 4096; off < GiB + GiB / 2; off += step)
        p[off] = (unsigned char)(off >> 20);
    for (unsigned long off = 4096; off < GiB + GiB / 2; off += step, n++)
        sum += p[off] + p[off - 1];
    printf("%lu pages, sum %lu\n", n, sum);
    /* Page tables for 40 GiB of mappings: more than the first 64 MiB of the table pool. */
    unsigned char *q[2];
    for (int i = 0; i < 2; i++) {
        q[i] = mmap(0, 20 * GiB, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (q[i] == MAP_FAILED) { puts("big mmap failed"); return 1; }
        q[i][20 * GiB - 1] = 7;
        q[i][0] = 5;
    }
    printf("%d %d %d %d\n", q[0][0], q[0][20 * GiB - 1], q[1][0], q[1][20 * GiB - 1]);
    return 0;
}
'''


def test_memory_far_into_the_file_and_many_table_pages_get_their_slots():
    prog = compile_c(MEMORY_PIECES)
    nat = run_native([prog])
    box = run_sandbox([prog], "--platform=kvm")
    assert box.stdout == nat.stdout, (nat.stdout, box.stdout, box.stderr[-2000:])
    assert box.returncode == nat.returncode == 0, box.stderr[-2000:]


def _modules(tmp_path, present):
    """A fake /sys/module holding the given {module: {param: value}}."""
    root = tmp_path / "module"
    for module, params in present.items():
        (root / module / "parameters").mkdir(parents=True)
        for name, value in params.items():
            (root / module / "parameters" / name).write_text(value + "\n")
    return str(root)


@pytest.mark.parametrize("present, paging", [
    ({"kvm_pvm": {}}, "shadow"),
    ({"kvm_intel": {"ept": "N"}}, "shadow"),
    ({"kvm_amd": {"npt": "0"}}, "shadow"),
    ({"kvm_intel": {"ept": "Y"}}, "tdp"),
    ({"kvm_amd": {"npt": "1"}}, "tdp"),
    ({}, "unknown"),
])
def test_guest_paging_is_read_from_the_kvm_modules(tmp_path, present, paging):
    from pysentry.platform.kvm import kvm
    assert kvm.guest_paging(_modules(tmp_path, present)) == paging


def test_a_host_with_hardware_walked_guest_tables_is_refused_in_one_line(tmp_path, monkeypatch):
    from pysentry.platform.kvm import kvm
    monkeypatch.setattr(kvm, "SYS_MODULE", _modules(tmp_path, {"kvm_intel": {"ept": "Y"}}))
    monkeypatch.delenv("PYSENTRY_KVM_ANY_HOST", raising=False)
    with pytest.raises(SystemExit) as e:
        kvm.open_platform(None)
    msg = str(e.value)
    assert "this host's paging is tdp" in msg and msg.endswith("use --platform=ptrace")
    assert "\n" not in msg


def test_this_host_shadows_guest_tables():
    # The platform's tests run here only because this host's KVM is one it is built for.
    from pysentry.platform.kvm import kvm
    assert kvm.guest_paging() == "shadow"
