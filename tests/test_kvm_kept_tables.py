"""Kept leaf tables and mappings entered at mmap (docs/kvm.md, "Page tables"): a leaf table
whose whole 2 MiB is unmapped is kept, and linked back only by a mapping that writes exactly
its entries; anything else must see the mapping it asked for. Native Linux is the oracle
for the programs; the platform's counters show that the path under test was taken."""
import ast
import re

import pytest

from conftest import NEEDS_KVM, PLATFORMS, compile_c, run_native, run_sandbox

BASE = 0x7F0000000000            # 2 MiB aligned, nothing else mapped in these tests
MiB = 1 << 20
PTE_P, PTE_W = 1, 2
PTE_ADDR = 0x000FFFFFFFFFF000


def frames(a, va, npages):
    """The frames (memory-file offsets) and writability of npages entries from va."""
    return [(a.lookup(va + i * 4096) & PTE_ADDR, bool(a.lookup(va + i * 4096) & PTE_W))
            for i in range(npages)]


@NEEDS_KVM
def test_a_kept_table_comes_back_only_for_the_same_entries(platform):
    a = platform.new_address_space()
    off = 1 << 30
    same = [(off + i * 4096, True) for i in range(256)]
    s0 = platform.stats()
    a.map_memfile(BASE, MiB, off, 3)
    a.unmap(BASE, MiB)
    assert platform.stats()["tables_kept"] == s0["tables_kept"] + 1
    assert a.lookup(BASE) == 0 and a.lookup(BASE + 255 * 4096) == 0

    # The same mapping again: linked back by the host alone, no guest run.
    runs = platform.stats()["maintenance_runs"]
    a.map_memfile(BASE, MiB, off, 3)
    assert platform.stats()["tables_relinked"] == s0["tables_relinked"] + 1
    assert platform.stats()["maintenance_runs"] == runs
    assert frames(a, BASE, 256) == same and a.lookup(BASE + 256 * 4096) == 0

    # Different protection, frames or extent: a fresh table with exactly what was asked.
    for args, want in (((BASE, MiB, off, 1), [(f, False) for f, _ in same]),
                       ((BASE, MiB, off + 2 * MiB, 3),
                        [(off + 2 * MiB + i * 4096, True) for i in range(256)]),
                       ((BASE, MiB // 2, off, 3), same[:128] + [(0, False)] * 128)):
        a.unmap(BASE, MiB)
        a.map_memfile(BASE, MiB, off, 3)                 # kept again, with `same`
        a.unmap(BASE, MiB)
        relinked = platform.stats()["tables_relinked"]
        a.map_memfile(*args)
        assert platform.stats()["tables_relinked"] == relinked, args
        assert frames(a, BASE, 256) == want, args
    a.release()


@NEEDS_KVM
def test_a_table_swapped_out_comes_back_beside_another_mapping(platform):
    # A neighbour keeps the 2 MiB's table from emptying: each unmap swaps the table out
    # (one guest write) and the same mapping again swaps it back, neighbour included.
    a = platform.new_address_space()
    off, noff = 1 << 30, (1 << 30) + 4 * MiB
    neighbour = [(noff + i * 4096, True) for i in range(4)]
    a.map_memfile(BASE + MiB, 4 * 4096, noff, 3)
    a.map_memfile(BASE, MiB, off, 3)
    a.unmap(BASE, MiB)
    assert frames(a, BASE, 1) == [(0, False)] and frames(a, BASE + MiB, 4) == neighbour
    s0 = platform.stats()
    a.map_memfile(BASE, MiB, off, 3)
    s1 = platform.stats()
    assert s1["tables_relinked"] == s0["tables_relinked"] + 1
    assert s1["maintenance_runs"] == s0["maintenance_runs"] + 1      # the swap back
    assert frames(a, BASE, 256) == [(off + i * 4096, True) for i in range(256)]
    assert frames(a, BASE + MiB, 4) == neighbour
    a.unmap(BASE, MiB)                      # back to the table of the neighbour alone
    assert platform.stats()["tables_relinked"] == s1["tables_relinked"] + 1
    a.map_memfile(BASE, MiB, off + 2 * MiB, 3)            # other frames: no kept table
    assert platform.stats()["tables_relinked"] == s1["tables_relinked"] + 1
    assert frames(a, BASE, 2) == [(off + 2 * MiB + i * 4096, True) for i in range(2)]
    assert frames(a, BASE + MiB, 4) == neighbour
    a.release()


@NEEDS_KVM
def test_kept_tables_are_bounded_and_the_oldest_goes_first(platform):
    a = platform.new_address_space()
    n = 10                                       # more than an address space keeps (8)
    for i in range(n):
        a.map_memfile(BASE + i * 2 * MiB, MiB, (1 << 30) + i * MiB, 3)
    for i in range(n):
        a.unmap(BASE + i * 2 * MiB, MiB)
    relinked = platform.stats()["tables_relinked"]
    for i in range(n):
        a.map_memfile(BASE + i * 2 * MiB, MiB, (1 << 30) + i * MiB, 3)
        assert frames(a, BASE + i * 2 * MiB, 2) == [((1 << 30) + i * MiB + k * 4096, True)
                                                    for k in range(2)]
    assert platform.stats()["tables_relinked"] == relinked + 8
    a.release()


@NEEDS_KVM
def test_a_kept_table_belongs_to_its_address_space(platform):
    a, b = platform.new_address_space(), platform.new_address_space()
    a.map_memfile(BASE, MiB, 1 << 30, 3)
    a.unmap(BASE, MiB)
    relinked = platform.stats()["tables_relinked"]
    b.map_memfile(BASE, MiB, 1 << 30, 3)         # the same entries, another address space
    assert platform.stats()["tables_relinked"] == relinked
    assert frames(b, BASE, 1) == [(1 << 30, True)]
    b.release()
    a.release()                                  # frees its kept table too


@NEEDS_KVM
def test_fresh_mmaps_are_entered_at_once_and_only_when_small_and_writable(platform):
    from pysentry.sentry.mm.addrspace import (ENTER_NOW_MAX, PROT_READ, PROT_WRITE,
                                              AddressSpace)
    mm = AddressSpace(platform.memfile, platform.new_address_space(),
                      platform.max_user_address)
    rw = PROT_READ | PROT_WRITE
    small = mm.map_anon(BASE, MiB, rw, False, enter_now=True)
    ro = mm.map_anon(BASE + 4 * MiB, MiB, PROT_READ, False, enter_now=True)
    big = mm.map_anon(BASE + 8 * MiB, ENTER_NOW_MAX + 4096, rw, False, enter_now=True)
    kernel = mm.map_anon(BASE + 2 * ENTER_NOW_MAX, MiB, rw, False)
    assert [v.mapped for v in (small, ro, big, kernel)] == [True, False, False, False]
    assert mm.pas.lookup(BASE) & (PTE_P | PTE_W) == PTE_P | PTE_W
    assert mm.pas.lookup(BASE + 4 * MiB) == 0 and mm.pas.lookup(BASE + 8 * MiB) == 0
    mm.brk_start = mm.brk = BASE + 3 * ENTER_NOW_MAX        # the heap grows: entered too
    assert mm.set_brk(mm.brk + 3 * 4096) == BASE + 3 * ENTER_NOW_MAX + 3 * 4096
    assert mm.find(mm.brk_start).mapped and mm.pas.lookup(mm.brk_start + 2 * 4096) & PTE_W
    mm.release()


LOOP = r'''
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#define AT ((unsigned char *)0x300000000000)      /* 2 MiB aligned: a leaf table of its own */
#define SIZE (1 << 20)
static sigjmp_buf jb;
static void h(int sig, siginfo_t *si, void *uc) { siglongjmp(jb, si->si_code); }
static unsigned char *map(int prot) {
    return mmap(AT, SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}
static long nonzero(unsigned char *p) {
    long n = 0;
    for (int i = 0; i < SIZE; i += 4096) n += p[i] != 0 || p[i + 4095] != 0;
    return n;
}
static void fill(unsigned char *p, int tag) {
    for (int i = 0; i < SIZE; i += 4096) { p[i] = (unsigned char)tag; p[i + 1] = (unsigned char)(i >> 12); }
}
static long sum(unsigned char *p) {       /* 256 * tag when every page holds its fill */
    long s = 0;
    for (int i = 0; i < SIZE; i += 4096) s += p[i] + (p[i + 1] != (unsigned char)(i >> 12)) * 1000;
    return s;
}
static void try_store(unsigned char *p, const char *what) {
    int code = sigsetjmp(jb, 1);
    if (!code) { p[4096 * 7] = 1; printf("%s: stored\n", what); }
    else printf("%s: SIGSEGV code %d\n", what, code);
}
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    for (int round = 0; round < 6; round++) {       /* the same mapping over and over */
        unsigned char *p = map(PROT_READ | PROT_WRITE);
        printf("round %d nonzero %ld ", round, nonzero(p));
        fill(p, round);
        printf("sum %ld\n", sum(p));
        munmap(p, SIZE);
    }
    unsigned char *p = map(PROT_READ);             /* read-only where a writable one was */
    printf("read-only nonzero %ld\n", nonzero(p));
    try_store(p, "read-only");
    munmap(p, SIZE);
    p = map(PROT_READ | PROT_WRITE);               /* and writable again, then narrowed */
    fill(p, 7);
    mprotect(p, SIZE, PROT_READ);
    try_store(p, "mprotected");
    printf("after mprotect sum %ld\n", sum(p));
    munmap(p, SIZE);
    try_store(AT, "unmapped");
    unsigned char *n = mmap(AT + SIZE, 4 * 4096, PROT_READ | PROT_WRITE,     /* a neighbour */
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    memset(n, 'N', 4 * 4096);
    for (int round = 0; round < 4; round++) {       /* the same mapping beside it */
        p = map(PROT_READ | PROT_WRITE);
        printf("beside %d nonzero %ld ", round, nonzero(p));
        fill(p, round + 11);
        printf("sum %ld\n", sum(p));
        munmap(p, SIZE);
    }
    p = map(PROT_READ | PROT_WRITE);               /* protection flipped back and forth */
    fill(p, 5);
    for (int round = 0; round < 3; round++) {
        mprotect(p, SIZE, PROT_READ);
        try_store(p, "flipped read-only");
        mprotect(p, SIZE, PROT_READ | PROT_WRITE);
        try_store(p, "flipped writable");
    }
    printf("flipped sum %ld neighbour %d\n", sum(p) - 1, n[0] == 'N' && n[4 * 4096 - 1] == 'N');
    munmap(p, SIZE);
    munmap(n, 4 * 4096);
    p = map(PROT_READ | PROT_WRITE);               /* fork: each side its own memory */
    fill(p, 9);
    munmap(p, SIZE);
    pid_t child = fork();
    p = map(PROT_READ | PROT_WRITE);
    long z = nonzero(p);
    fill(p, child ? 20 : 40);
    if (!child) { usleep(20000); _exit(sum(p) == 256 * 40 ? 0 : 1); }
    int st; waitpid(child, &st, 0);
    printf("fork nonzero %ld parent sum %ld child ok %d\n", z, sum(p),
           WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}'''


@pytest.mark.parametrize("platform_name", PLATFORMS)
def test_the_same_mapping_over_and_over_sees_what_linux_shows(platform_name):
    prog = compile_c(LOOP)
    nat = run_native([prog])
    box = run_sandbox([prog], f"--platform={platform_name}", "--debug")
    assert box.stdout == nat.stdout, (nat.stdout, box.stdout, box.stderr[-2000:])
    assert box.returncode == nat.returncode == 0, box.stderr[-2000:]
    if platform_name != "kvm":
        return
    m = re.search(rb"KVM platform statistics: (\{.*\})", box.stderr)
    assert m, box.stderr[-2000:]
    stats = ast.literal_eval(m.group(1).decode())
    assert stats["tables_relinked"] >= 5, stats   # the rounds after the first came back
