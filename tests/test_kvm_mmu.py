"""Guest page tables on the KVM platform: a VMA is entered into the guest tables whole on its
first fault (eagerly, pages never touched included), so these check what that must not
change: unmapped pages fault at the right address, copy-on-write after fork holds for
pages the parent never touched, and eager entries cost no memory until touched.
Native Linux is the oracle where a program's output is compared."""
import os
import subprocess


from conftest import NEEDS_KVM, memory_file_bytes, compile_c, run_native, run_sandbox, sandbox_cmd

pytestmark = NEEDS_KVM


def same_on_kvm(src):
    prog = compile_c(src)
    nat = run_native([prog])
    box = run_sandbox([prog], "--platform=kvm")
    assert box.stdout == nat.stdout, (nat.stdout, box.stdout, box.stderr[-2000:])
    assert box.returncode == nat.returncode == 0, (nat.returncode, box.returncode,
                                                    box.stderr[-2000:])
    return box


def test_munmap_of_an_eagerly_mapped_range_faults_at_the_address_touched():
    # Half the pages were touched (present in the guest and resident), half only entered
    # eagerly; after munmap both kinds must fault with SEGV_MAPERR at the exact address,
    # and a new mapping at the same place must read zeros, never the old bytes.
    src = r'''
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#define SIZE (1 << 20)
static sigjmp_buf jb;
static volatile uintptr_t want;
static void h(int sig, siginfo_t *si, void *uc) {
    printf("sig=%d code=%d exact=%d\n", sig, si->si_code, (uintptr_t)si->si_addr == want);
    siglongjmp(jb, 1);
}
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    for (int round = 0; round < 3; round++) {
        unsigned char *p = mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (int i = 0; i < 128; i++) p[i * 4096 + 7] = (unsigned char)(i + 1);
        long sum = 0;
        for (int i = 0; i < 256; i++) sum += p[i * 4096 + 7];
        printf("round %d sum %ld\n", round, sum);
        munmap(p, SIZE);
        size_t probes[] = {5 * 4096 + 7, 200 * 4096 + 9, SIZE - 1};
        for (int k = 0; k < 3; k++) {
            want = (uintptr_t)(p + probes[k]);
            if (!sigsetjmp(jb, 1)) { (void)*(volatile unsigned char *)(p + probes[k]); puts("no fault"); }
            if (!sigsetjmp(jb, 1)) { *(volatile unsigned char *)(p + probes[k]) = 1; puts("no fault"); }
        }
        unsigned char *q = mmap(p, SIZE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        long left = 0;
        for (int i = 0; i < 256; i++) left += q[i * 4096 + 7];
        printf("remapped %d leftover %ld\n", q == p, left);
        munmap(q, SIZE);
    }
    return 0;
}'''
    box = same_on_kvm(src)
    assert box.stdout.count(b"exact=1") == 18 and b"no fault" not in box.stdout


def test_fork_keeps_copy_on_write_for_pages_mapped_but_never_touched():
    # The parent touches only some pages of a 1 MiB mapping before fork; the rest are in its
    # guest tables without ever having been written. Writes on either side after fork, to
    # touched and untouched pages alike, must stay invisible to the other side.
    src = r'''
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#define SIZE (1 << 20)
static unsigned char *p;
static void show(const char *who) {
    printf("%s: %d %d %d %d\n", who, p[0], p[10 * 4096], p[100 * 4096], p[255 * 4096]);
    fflush(stdout);
}
int main(void) {
    p = mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 64; i++) p[i * 4096] = (unsigned char)(i + 1);
    int go[2], done[2];
    pipe(go); pipe(done);
    pid_t c = fork();
    if (c == 0) {
        char b;
        read(go[0], &b, 1);                       /* the parent has written by now */
        show("child sees");
        p[10 * 4096] = 111; p[100 * 4096] = 112;
        show("child wrote");
        write(done[1], "x", 1);
        _exit(0);
    }
    p[0] = 201; p[255 * 4096] = 202;              /* a touched and an untouched page */
    show("parent wrote");
    write(go[1], "x", 1);
    char b; read(done[0], &b, 1);
    int st; waitpid(c, &st, 0);
    show("parent after");
    return 0;
}'''
    box = same_on_kvm(src)
    assert b"child sees: 1 11 0 0\n" in box.stdout
    assert b"parent after: 201 11 0 202\n" in box.stdout


def test_eagerly_mapped_pages_cost_no_memory_until_touched():
    # 64 MiB mapped, its VMA entered into the guest tables by the first touch; only the
    # pages really written may be allocated in the memory file.
    src = r'''
#include <stdio.h>
#include <sys/mman.h>
#define SIZE (64 << 20)
int main(void) {
    char *p = mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char c;
    puts("mapped"); fflush(stdout); (void)fread(&c, 1, 1, stdin);
    for (long i = 0; i < 16; i++) p[i * (SIZE / 16)] = 1;   /* 16 pages, 4 MiB apart */
    puts("touched"); fflush(stdout); (void)fread(&c, 1, 1, stdin);
    long n = 0;
    for (long i = 0; i < SIZE; i += 4096) n += p[i];          /* reads: every page */
    printf("read %ld\n", n); fflush(stdout);
    return 0;
}'''
    prog = compile_c(src)
    p = subprocess.Popen(sandbox_cmd([prog], "--platform=kvm"), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"mapped\n"
        before = memory_file_bytes(p.pid)
        p.stdin.write(b"\n"); p.stdin.flush()
        assert p.stdout.readline() == b"touched\n"
        touched = memory_file_bytes(p.pid)
        p.stdin.write(b"\n"); p.stdin.flush()
        out, err = p.communicate(timeout=120)
        assert out == b"read 16\n", err[-2000:]
        # 16 pages written: 64 KiB, and some slack for the program's own stack and stdio.
        assert touched - before < 1 << 20, (before, touched)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def test_mmap_loop_page_table_work_is_counted_not_guessed(platform):
    # What one iteration of mmap 1 MiB / touch / munmap costs the page tables: entering the
    # run is host writes only and allocates nothing; the munmap is one guest batch (the
    # leaf-table swap and its scrubs), however many entries were present.
    a = platform.new_address_space()
    base = 0x7F0000000000
    blocks0 = os.fstat(platform.memfile.fd).st_blocks
    runs0 = platform.stats()["maintenance_runs"]
    for i in range(4):
        off = (1 << 30) + i * (1 << 20)
        a.map_memfile(base, 1 << 20, off, 3)
        assert a.lookup(base + 255 * 4096) & 1
        assert platform.stats()["maintenance_runs"] == runs0 + i
        a.unmap(base, 1 << 20)
        assert a.lookup(base) == 0 and a.lookup(base + 255 * 4096) == 0
        assert platform.stats()["maintenance_runs"] == runs0 + i + 1
    assert os.fstat(platform.memfile.fd).st_blocks == blocks0
    a.release()
