/* The ptrace floor: what a syscall round trip through PTRACE_SYSEMU costs on this host,
 * with nothing else in the way.
 *
 *   ptrace_floor getppid MS
 *
 * A forked child runs the same timed getppid loop as iobench; the parent is the smallest
 * tracer that can serve it: at each syscall stop it reads the registers, writes its answer
 * (its own pid: the child's real parent, so the child can verify it) into rax alone with
 * PTRACE_POKEUSER, the cheapest register write, and resumes with PTRACE_SYSEMU. Any sentry
 * needs at least those three requests per syscall, so this is the floor for the ptrace
 * platform. It waits for each stop the way the sentry does, by
 * polling waitpid for up to SPIN_USEC before sleeping in it (a tracee traps back within
 * microseconds, sooner than a sleeping tracer is woken), so the floor is the best a C
 * tracer does here, not a slower one.
 *
 * The child times itself with clock_gettime through the vDSO (no syscall, so no stop) and
 * leaves its result in a shared page; its final exit_group is the signal to stop. Prints
 * the same RESULT line as iobench.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_SYSEMU
#define PTRACE_SYSEMU 31
#endif

struct shared { long long ops; long long ns; int bad; };

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void child(struct shared *out, long long ms, pid_t expect) {
    long long ops = 0, batch = 1;
    int64_t t0 = now_ns(), limit = ms * 1000000, el = 0;
    while (el < limit) {
        int64_t before = el;
        for (long long i = 0; i < batch; i++)
            if (syscall(SYS_getppid) != expect) out->bad = 1;
        ops += batch;
        el = now_ns() - t0;
        if ((el - before) * 32 < limit && batch < 65536) batch *= 2;
    }
    out->ops = ops;
    out->ns = el;
    syscall(SYS_exit_group, 0);       /* the tracer ends us here */
}

#define SPIN_USEC 30

static long elapsed_usec(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000000L + (now.tv_nsec - t0->tv_nsec) / 1000;
}

/* The next stop of pid: polled for up to SPIN_USEC, then waited for. */
static pid_t wait_stop(pid_t pid, int *status) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        pid_t r = waitpid(pid, status, __WALL | WNOHANG);
        if (r != 0) return r;
    } while (elapsed_usec(&t0) < SPIN_USEC);
    return waitpid(pid, status, __WALL);
}

int main(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "getppid") != 0) {
        printf("ERROR usage: ptrace_floor getppid MS\n");
        return 1;
    }
    long long ms = atoll(argv[2]);
    struct shared *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                             -1, 0);
    if (sh == MAP_FAILED) { printf("ERROR mmap: %s\n", strerror(errno)); return 1; }
    memset(sh, 0, sizeof *sh);
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) { printf("ERROR fork: %s\n", strerror(errno)); return 1; }
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) _exit(3);
        raise(SIGSTOP);
        child(sh, ms, me);
        _exit(4);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
        printf("ERROR ptrace: child did not stop\n");
        return 1;
    }
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
    if (ptrace(PTRACE_SYSEMU, pid, 0, 0) != 0) {
        printf("ERROR PTRACE_SYSEMU: %s\n", strerror(errno));
        return 1;
    }
    struct user_regs_struct regs;
    for (;;) {
        if (wait_stop(pid, &status) != pid) { printf("ERROR waitpid: %s\n", strerror(errno)); return 1; }
        if (WIFEXITED(status) || WIFSIGNALED(status)) { printf("ERROR child died early\n"); return 1; }
        int sig = WSTOPSIG(status);
        if (sig != (SIGTRAP | 0x80)) {
            printf("ERROR unexpected stop: signal %d\n", sig);
            kill(pid, SIGKILL);
            return 1;
        }
        ptrace(PTRACE_GETREGS, pid, 0, &regs);
        if (regs.orig_rax == SYS_exit_group) break;
        unsigned long answer = regs.orig_rax == SYS_getppid ? (unsigned long)me : (unsigned long)-ENOSYS;
        ptrace(PTRACE_POKEUSER, pid, (void *)offsetof(struct user_regs_struct, rax), (void *)answer);
        ptrace(PTRACE_SYSEMU, pid, 0, 0);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (sh->bad || sh->ops == 0) { printf("ERROR verify: wrong getppid answers\n"); return 1; }
    printf("RESULT mode=getppid ops=%lld ns=%lld bytes=0 fs=-\n", sh->ops, sh->ns);
    return 0;
}
