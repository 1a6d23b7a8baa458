"""Syscall dispatch (Kernel._syscall with a fake task), copy-in/copy-out through
AddressSpace.read/write, and ELF parsing + load planning."""
import os

import pytest

from pysentry.sentry.kernel.kernel import Kernel
from pysentry.sentry.kernel.task import Task
from pysentry.sentry.mm.addrspace import PROT_READ, PROT_WRITE, AddressSpace
from pysentry.sentry.mm.elf import default_load_bias, parse_elf, plan_load
from pysentry.sentry.mm.memfile import MemoryFile

SYS_GETPPID, SYS_GETPID = 110, 39


class FakeRegs:
    orig_rax = rax = rdi = rsi = rdx = r10 = r8 = r9 = rip = 0


class FakeContext:
    """A platform context that never runs anything: resume() only counts."""

    def __init__(self):
        self.regs = FakeRegs()
        self.task = None
        self.resumed = 0

    def resume(self):
        self.resumed += 1


class FakePlatform:
    name = "fake"
    xcr0 = 3
    xstate_size = 512
    max_user_address = 0x7FFFFFFFF000

    def __init__(self):
        self._r, self._w = os.pipe()

    def event_fd(self):
        return self._r


class FakeAddressSpace:
    """The platform half of an address space: mappings are not needed to copy in or out."""

    def map_memfile(self, *a):
        pass

    def unmap(self, *a):
        pass

    def protect(self, *a):
        pass

    def release(self):
        pass


@pytest.fixture(scope="module")
def kernel_and_task():
    k = Kernel(FakePlatform(), memfile=None, vfs=None)
    parent = k.new_group(None, 1)
    tg = k.new_group(parent, 2)
    ctx = FakeContext()
    t = Task(k, 2, tg, ctx, mm=None, fdtable=None, fs=None)
    tg.tasks.append(t)
    tg.leader = t
    k.tasks[2] = t
    return k, t


@pytest.mark.parametrize("nr,expect", [(SYS_GETPPID, 1), (SYS_GETPID, 2)])
def test_syscall_dispatch(benchmark, kernel_and_task, nr, expect):
    k, t = kernel_and_task
    regs = t.ctx.regs

    def one():
        regs.orig_rax = nr
        k._syscall(t)
        return regs.rax
    assert benchmark(one) == expect
    assert t.ctx.resumed > 0


@pytest.fixture(scope="module")
def aspace():
    mf = MemoryFile(size=1 << 30)
    mm = AddressSpace(mf, FakeAddressSpace(), FakePlatform.max_user_address)
    mm.map_anon(0x10000000, 1 << 20, PROT_READ | PROT_WRITE, False)
    return mm


@pytest.mark.parametrize("size", [8, 4096, 65536])
def test_copy_out(benchmark, aspace, size):
    data = bytes(range(256)) * (size // 256) or b"12345678"
    benchmark(aspace.write, 0x10000000 + 100, data)
    assert aspace.read(0x10000000 + 100, len(data)) == data


@pytest.mark.parametrize("size", [8, 4096, 65536])
def test_copy_in(benchmark, aspace, size):
    aspace.write(0x10000000, b"\x5a" * size)
    assert benchmark(aspace.read, 0x10000000, size) == b"\x5a" * size


def _elf_bytes():
    with open("/bin/true", "rb") as f:
        return f.read()


def test_elf_parse_and_plan(benchmark):
    data = _elf_bytes()

    def load():
        image = parse_elf(data[:4096], lambda off, n: data[off:off + n], file_size=len(data))
        bias = default_load_bias(image)
        return plan_load(image, bias if bias is not None else 0x555555554000)
    plan = benchmark(load)
    assert len(plan) >= 2 and plan.entry > 0
