/* Resource usage as a program reads it: getrusage (self, thread, children, bad who),
 * times, wait4's and waitid's rusage, the process CPU clock, ru_maxrss, across an exited
 * thread, a reaped child and an exec. Prints only facts that hold natively (booleans and
 * errnos), since the amounts themselves vary from run to run.
 *   rusage            (the whole test)
 *   rusage exec MS    (after the exec: prints whether the time burnt before it counts) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long ns_of(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Burn `ms` of this thread's CPU time (bounded by 20x that in wall time, so that a
 * runtime whose CPU clock does not advance fails the checks instead of hanging). */
static void burn(long ms) {
    long long start = ns_of(CLOCK_THREAD_CPUTIME_ID), wall = ns_of(CLOCK_MONOTONIC);
    volatile unsigned long x = 1;
    while (ns_of(CLOCK_THREAD_CPUTIME_ID) - start < ms * 1000000LL
           && ns_of(CLOCK_MONOTONIC) - wall < ms * 20000000LL)
        for (int i = 0; i < 100000; i++) x = x * 6364136223846793005UL + 1;
}

static long long ru_ms(const struct rusage *ru) {
    return (ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000LL
           + (ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1000;
}

static void *burner(void *arg) { burn((long)arg); return NULL; }

static const char *yes(int b) { return b ? "yes" : "no"; }

int main(int argc, char **argv) {
    struct rusage ru;
    if (argc == 3 && strcmp(argv[1], "exec") == 0) {
        getrusage(RUSAGE_SELF, &ru);
        printf("after exec, self counts the time before it: %s\n", yes(ru_ms(&ru) >= atol(argv[2]) * 8 / 10));
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t th;
    pthread_create(&th, NULL, burner, (void *)300L);
    pthread_join(th, NULL);
    burn(100);
    struct rusage self, thread;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_THREAD, &thread);
    printf("self counts the exited thread: %s\n", yes(ru_ms(&self) >= 320));
    printf("thread counts only itself: %s\n", yes(ru_ms(&thread) >= 80 && ru_ms(&thread) < ru_ms(&self) - 200));
    long long proc = ns_of(CLOCK_PROCESS_CPUTIME_ID) / 1000000;
    printf("process CPU clock counts the exited thread: %s\n", yes(proc >= 320));
    printf("maxrss positive: %s\n", yes(self.ru_maxrss > 0));
    char *big = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(big, 1, 64 << 20);
    getrusage(RUSAGE_SELF, &ru);
    printf("maxrss after touching 64 MiB: %s\n", yes(ru.ru_maxrss >= 64 * 1024));
    munmap(big, 64 << 20);
    getrusage(RUSAGE_SELF, &ru);
    printf("maxrss is a peak: %s\n", yes(ru.ru_maxrss >= 64 * 1024));

    getrusage(RUSAGE_CHILDREN, &ru);
    printf("children before any: %s\n", yes(ru_ms(&ru) == 0));
    pid_t c = fork();
    if (c == 0) { burn(200); _exit(0); }
    struct rusage child;
    int st;
    wait4(c, &st, 0, &child);
    printf("wait4 rusage counts the child: %s\n", yes(ru_ms(&child) >= 160));
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("children counts the reaped child: %s\n", yes(ru_ms(&ru) >= 160));
    struct tms tm;
    times(&tm);
    long hz = sysconf(_SC_CLK_TCK);
    printf("times: self %s, children %s\n", yes(tm.tms_utime + tm.tms_stime >= 32 * hz / 100),
           yes(tm.tms_cutime + tm.tms_cstime >= 16 * hz / 100));

    c = fork();
    if (c == 0) {
        /* A grandchild reaped by the child counts for the child's parent too. */
        pid_t g = fork();
        if (g == 0) { burn(200); _exit(0); }
        waitpid(g, NULL, 0);
        _exit(0);
    }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    syscall(SYS_waitid, P_PID, c, &si, WEXITED, &child);
    printf("waitid rusage counts the grandchild: %s\n", yes(ru_ms(&child) >= 160));

    printf("bad who 5: %s\n", getrusage(5, &ru) < 0 ? strerrorname_np(errno) : "ok");
    printf("bad who -2: %s\n", getrusage(-2, &ru) < 0 ? strerrorname_np(errno) : "ok");

    c = fork();
    if (c == 0) {
        burn(200);
        execl("/proc/self/exe", argv[0], "exec", "200", (char *)NULL);
        _exit(99);
    }
    waitpid(c, &st, 0);
    printf("exec child exit: %d\n", WEXITSTATUS(st));
    return 0;
}
