"""Pieces of the KVM platform checked without running an application: the exception to
signal rules, the page tables the sentry builds, and the error a host without KVM gets."""
import os
import signal
import struct

import pytest

from pysentry.platform.kvm import faults


def test_page_faults_report_cr2_and_present_bit():
    assert faults.translate(14, 0x6, 0x1234, 0x400000) == (signal.SIGSEGV, faults.SEGV_MAPERR, 0x1234)
    assert faults.translate(14, 0x7, 0x1234, 0x400000) == (signal.SIGSEGV, faults.SEGV_ACCERR, 0x1234)
    assert faults.translate(14, 0x25, 0x10, 0)[1] == faults.SEGV_PKUERR


def test_instruction_faults_report_rip_or_nothing_as_linux_does():
    assert faults.translate(0, 0, 0, 0x401000) == (signal.SIGFPE, faults.FPE_INTDIV, 0x401000)
    assert faults.translate(6, 0, 0, 0x401000) == (signal.SIGILL, faults.ILL_ILLOPN, 0x401000)
    assert faults.translate(13, 0, 0, 0x401000) == (signal.SIGSEGV, faults.SI_KERNEL, 0)
    assert faults.translate(3, 0, 0, 0x401001) == (signal.SIGTRAP, faults.SI_KERNEL, 0)
    assert faults.translate(17, 0, 0, 0x401000) == (signal.SIGBUS, faults.BUS_ADRALN, 0)


def test_simd_exception_code_comes_from_unmasked_mxcsr_bits():
    fp = bytearray(512)
    struct.pack_into("<HH", fp, 0, 0x37F, 0)
    mxcsr = (0x1F80 & ~(1 << 9)) | 0x4          # divide-by-zero unmasked and raised
    struct.pack_into("<I", fp, 24, mxcsr)
    assert faults.translate(19, 0, 0, 0x400, bytes(fp)) == (signal.SIGFPE, faults.FPE_FLTDIV, 0x400)
    struct.pack_into("<HH", fp, 0, 0x37F & ~1, 0x1)   # x87 invalid, unmasked
    assert faults.translate(16, 0, 0, 0x400, bytes(fp)) == (signal.SIGFPE, faults.FPE_FLTINV, 0x400)


def test_no_kvm_is_a_one_line_error_naming_the_fix(monkeypatch):
    from pysentry.platform.kvm import kvm
    monkeypatch.setattr(kvm.os.path, "exists", lambda p: False)
    with pytest.raises(SystemExit) as e:
        kvm.open_platform(None)
    msg = str(e.value)
    assert "/dev/kvm" in msg and "--platform=ptrace" in msg and "\n" not in msg
    monkeypatch.setattr(kvm.os.path, "exists", lambda p: True)
    monkeypatch.setattr(kvm.os, "access", lambda p, m: False)
    with pytest.raises(SystemExit) as e:
        kvm.open_platform(None)
    assert "permission" in str(e.value) and "--platform=ptrace" in str(e.value)


needs_kvm = pytest.mark.skipif(not os.path.exists("/dev/kvm"),
                               reason="no /dev/kvm on this host: the KVM platform cannot run")


P, W, NX, PROTNONE = 1, 2, 1 << 63, 0x200


@needs_kvm
def test_page_tables_follow_the_mappings(platform):
    a = platform.new_address_space()
    base, off = 0x10000000, 0x200000
    stats0 = platform.stats()
    a.map_memfile(base, 16 * 4096, off, 3)                       # fresh: host writes only
    e = a.lookup(base + 4096)
    assert e & P and e & W and e & NX and (e & 0xFFFFFFFFFF000) == off + 4096
    assert platform.stats()["maintenance_runs"] == stats0["maintenance_runs"]
    a.protect(base, 4096, 1)                                      # narrower: a guest write
    assert not a.lookup(base) & W
    runs = platform.stats()["maintenance_runs"]
    assert runs == stats0["maintenance_runs"] + 1
    a.protect(base + 4096, 4096, 0)                               # PROT_NONE keeps the frame
    e = a.lookup(base + 4096)
    assert not e & P and e & PROTNONE and (e & 0xFFFFFFFFFF000) == off + 4096
    a.protect(base + 4096, 4096, 5)
    e = a.lookup(base + 4096)
    assert e & P and not e & NX and not e & W
    a.unmap(base, 16 * 4096)                                      # many entries: table swapped
    assert a.lookup(base) == 0 and a.lookup(base + 15 * 4096) == 0
    assert platform.stats()["tables_replaced"] >= 1
    a.release()


@needs_kvm
def test_bad_ranges_are_refused_not_crashes(platform):
    a = platform.new_address_space()
    with pytest.raises(OSError):
        a.map_memfile(0x1001, 4096, 0, 3)                         # unaligned
    with pytest.raises(OSError):
        a.map_memfile(platform.max_user_address, 4096, 0, 3)      # the kernel half
    with pytest.raises(OSError):
        a.map_memfile(0x10000, 4096, platform.memfile.size, 3)    # past the memory file
    a.release()


def _readable(fd) -> bool:
    import select
    return bool(select.select([fd], [], [], 0)[0])


@needs_kvm
def test_event_fd_is_drained_only_by_collecting_and_spin_times_out(platform):
    from pysentry.native._kvm import lib
    efd = platform.event_fd()
    assert not _readable(efd)
    lib.pk_vm_wake(platform.vm)                 # what a released context does
    assert _readable(efd)
    assert list(platform.poll_events()) == []   # nothing stopped, but the wakeup is consumed
    assert not _readable(efd)
    # No vCPU is running: a busy-wait finds nothing and returns after its budget.
    assert lib.pk_vm_spin(platform.vm, 200) == 0
    platform.resumed = True
    assert platform.spin_for_event() is False
