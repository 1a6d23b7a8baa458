/* Memory syscalls: mmap/munmap/mprotect/mremap/brk/madvise, COW fork, faults. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <setjmp.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <errno.h>

static sigjmp_buf jb;
static volatile uintptr_t fault_addr; static volatile int fault_code, fault_sig;
static void on_fault(int s, siginfo_t *si, void *uc) {
    fault_sig = s; fault_addr = (uintptr_t)si->si_addr; fault_code = si->si_code; siglongjmp(jb, 1);
}
#define TRY(expr) (sigsetjmp(jb, 1) == 0 ? ((expr), 0) : 1)

int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault; sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0); sigaction(SIGBUS, &sa, 0);
    long pg = sysconf(_SC_PAGESIZE);
    char *p = mmap(0, 16 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap ok %d zero %d\n", p != MAP_FAILED, p[5 * pg] == 0);
    memset(p, 'a', 16 * pg);
    printf("munmap middle %d\n", munmap(p + 4 * pg, 2 * pg));
    int f = TRY(p[4 * pg + 10] = 1);
    printf("fault in hole %d sig %d off %ld code %d\n", f, fault_sig, (long)(fault_addr - (uintptr_t)p), fault_code);
    printf("mprotect ro %d\n", mprotect(p, pg, PROT_READ));
    f = TRY(p[100] = 2);
    printf("write ro faults %d code %d read ok %c\n", f, fault_code, p[100]);
    mprotect(p + pg, pg, PROT_NONE);
    f = TRY(fault_code = p[pg + 3]);
    printf("read PROT_NONE faults %d code %d off %ld\n", f, fault_code, (long)(fault_addr - (uintptr_t)p));
    printf("mprotect unmapped %d errno %d\n", mprotect(p + 4 * pg, pg, PROT_READ), errno);
    char *q = mremap(p + 8 * pg, 8 * pg, 64 * pg, MREMAP_MAYMOVE);
    printf("mremap grow %d keeps %c new zero %d\n", q != MAP_FAILED, q[7 * pg], q[40 * pg]);
    madvise(q, pg, MADV_DONTNEED);
    printf("dontneed zero %d\n", q[0] == 0);
    void *b0 = sbrk(0); sbrk(1 << 20); char *bp = b0; bp[(1 << 20) - 1] = 5;
    printf("brk grow ok %d\n", bp[(1 << 20) - 1] == 5);
    /* COW: the child writes, the parent does not see it; and the other way round. */
    char *heap = mmap(0, 64 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(heap, 1, 64 * pg);
    int *shared = mmap(0, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t c = fork();
    if (c == 0) { memset(heap, 2, 64 * pg); shared[0] = 42 + heap[0]; _exit(heap[63 * pg]); }
    heap[0] = 9;
    int st; waitpid(c, &st, 0);
    printf("cow parent %d %d child exit %d shared %d\n", heap[0], heap[10], WEXITSTATUS(st), shared[0]);
    f = TRY(*(volatile int *)0 = 1);
    printf("null write faults %d addr %lx\n", f, (unsigned long)fault_addr);
    printf("bad munmap %d errno %d\n", munmap((void *)1, pg), errno);
    printf("mmap zero len %d errno %d\n", mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED, errno);
    return 0;
}
