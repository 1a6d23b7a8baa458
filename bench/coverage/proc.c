/* Processes: ids, creation, exec, exit and wait, scheduling, limits, misc system calls. */
#include "cov.h"
#include <linux/futex.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <asm/prctl.h>

static char *const true_argv[] = {"sh", "-c", "exit 3", NULL};
static char *const no_env[] = {NULL};

/* An exec that should fail, tried in a child: if it wrongly succeeds, only the child is
 * replaced, and the line says what it became. */
#define EXEC_FAILS(sys, what, call)                                           \
    do {                                                                      \
        pid_t c_ = fork();                                                    \
        if (c_ == 0) { R(sys, what, call); _exit(0); }                        \
        const char *e_ = ended(c_);                                           \
        if (strcmp(e_, "exit 0") != 0) SAY(sys, what, "ran: %s", e_);         \
    } while (0)

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("execve argv: %s %s\n", argv[0][0] ? "named" : "empty", argv[1]);
        return 9;
    }
    setup("proc");
    /* ids */
    long pid = SC(getpid), tid = SC(gettid), ppid = SC(getppid);
    SAY(getpid, "positive", "%s", YES(pid > 0));
    SAY(gettid, "equals getpid in a single thread", "%s", YES(tid == pid));
    SAY(getppid, "not negative", "%s", YES(ppid >= 0));
    SAY(getpgid, "own equals getpgrp", "%s", YES(SC(getpgid, 0) == SC(getpgrp)));
    R(getpgid, "missing pid", SC(getpgid, 999999));
    SAY(getpgrp, "positive", "%s", YES(SC(getpgrp) > 0));
    SAY(getsid, "own positive", "%s", YES(SC(getsid, 0) > 0));
    R(getsid, "missing pid", SC(getsid, 999999));

    /* fork / vfork / clone / clone3 / exit / exit_group / wait4 / waitid */
    long c = SC(fork);
    if (c == 0) {
        SAY(fork, "child sees parent as getppid", "%s", YES(SC(getppid) == pid));
        SC(exit_group, 4);
    }
    int st = 0;
    R(wait4, "returns the child", SC(wait4, c, &st, 0, NULL) == c);
    SAY(wait4, "status", "exited %s code %d", YES(WIFEXITED(st)), WEXITSTATUS(st));
    R(wait4, "no children", SC(wait4, -1, &st, 0, NULL));
    R(wait4, "bad options", SC(wait4, -1, &st, 0x1000000, NULL));
    c = vfork();
    if (c == 0) _exit(5);
    SAY(vfork, "child", "%s", ended(c));
    c = SC(clone, SIGCHLD, 0, 0, 0, 0);
    if (c == 0) SC(exit, 6);
    SAY(exit, "status 6 seen by the parent", "%s", ended(c));
    c = SC(clone, SIGCHLD, 0, 0, 0, 0);
    if (c == 0) _exit(0);
    SAY(clone, "fork-like child", "%s", ended(c));
    R(clone, "CLONE_THREAD without CLONE_SIGHAND", SC(clone, CLONE_THREAD, 0, 0, 0, 0));
    struct clone_args ca = {.exit_signal = SIGCHLD};
    c = fork();
    if (c == 0) SC(exit_group, 7);
    SAY(exit_group, "status 7 seen by the parent", "%s", ended(c));
    c = SC(clone3, &ca, sizeof ca);
    if (c == 0) _exit(0);
    SAY(clone3, "fork-like child", "%s", ended(c));
    R(clone3, "bad size", SC(clone3, &ca, 8));
    c = SC(fork);
    if (c == 0) { SC(exit, 8); }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    R(waitid, "P_PID WEXITED", SC(waitid, P_PID, c, &si, WEXITED, NULL));
    SAY(waitid, "info", "code %s status %d", si.si_code == CLD_EXITED ? "CLD_EXITED" : "other", si.si_status);
    R(waitid, "no options", SC(waitid, P_ALL, 0, &si, 0, NULL));
    R(waitid, "no children", SC(waitid, P_ALL, 0, &si, WEXITED, NULL));
    c = SC(fork);
    if (c == 0) { pause(); _exit(0); }
    memset(&si, 0, sizeof si);
    R(waitid, "WNOHANG with running child", SC(waitid, P_PID, c, &si, WEXITED | WNOHANG, NULL));
    SAY(waitid, "WNOHANG si_pid", "%d", si.si_pid);
    kill(c, SIGKILL);
    SAY(kill, "SIGKILL child", "%s", ended(c));

    /* execve / execveat */
    c = fork();
    if (c == 0) { SC(execve, "/bin/sh", true_argv, no_env); _exit(99); }
    SAY(execve, "/bin/sh -c 'exit 3'", "%s", ended(c));
    c = fork();
    if (c == 0) {
        char *args[] = {"x", "child", NULL};
        SC(execve, "/proc/self/exe", args, no_env);
        _exit(99);
    }
    SAY(execve, "self again", "%s", ended(c));
    EXEC_FAILS(execve, "missing", SC(execve, "/nope", true_argv, no_env));
    EXEC_FAILS(execve, "directory", SC(execve, "/tmp", true_argv, no_env));
    put("script-noexec", "#!/bin/sh\nexit 0\n");
    EXEC_FAILS(execve, "not executable", SC(execve, "script-noexec", true_argv, no_env));
    put("garbage", "this is not a program\n");
    chmod("garbage", 0755);
    EXEC_FAILS(execve, "not a known format", SC(execve, "garbage", true_argv, no_env));
    put("script", "#!/bin/sh\nexit 12\n");
    chmod("script", 0755);
    c = fork();
    if (c == 0) { char *a[] = {"script", NULL}; SC(execve, "script", a, no_env); _exit(99); }
    SAY(execve, "#! script", "%s", ended(c));
    EXEC_FAILS(execve, "bad argv pointer", SC(execve, "/bin/sh", (void *)8, no_env));
    int tfd = open("/bin/sh", O_RDONLY);
    c = fork();
    if (c == 0) { SC(execveat, tfd, "", true_argv, no_env, AT_EMPTY_PATH); _exit(99); }
    SAY(execveat, "AT_EMPTY_PATH", "%s", ended(c));
    EXEC_FAILS(execveat, "bad flags", SC(execveat, AT_FDCWD, "/bin/sh", true_argv, no_env, 0x1));

    /* kill / tkill / tgkill to children */
    c = fork();
    if (c == 0) { pause(); _exit(0); }
    R(kill, "signal 0 to child", SC(kill, c, 0));
    R(kill, "SIGTERM to child", SC(kill, c, SIGTERM));
    SAY(kill, "child", "%s", ended(c));
    R(kill, "missing pid", SC(kill, 999999, SIGTERM));
    R(kill, "bad signal", SC(kill, pid, 99));
    R(tkill, "signal 0 self", SC(tkill, tid, 0));
    R(tkill, "bad tid", SC(tkill, -5, 0));
    R(tgkill, "signal 0 self", SC(tgkill, pid, tid, 0));
    R(tgkill, "wrong tgid", SC(tgkill, 999999, tid, 0));

    /* sessions and groups (in a child, so ours stay) */
    c = fork();
    if (c == 0) {
        long me = SC(getpid);
        R(setpgid, "own group", SC(setpgid, 0, 0));
        SAY(setpgid, "pgid is pid", "%s", YES(SC(getpgid, 0) == me));
        R(setsid, "as group leader", SC(setsid));
        R(setpgid, "missing pid", SC(setpgid, 999999, 0));
        R(setpgid, "negative pgid", SC(setpgid, 0, -1));
        long g = fork();
        if (g == 0) {
            long sid = SC(setsid);
            SAY(setsid, "new session id is pid", "%s", YES(sid == SC(getpid)));
            SAY(getsid, "after setsid", "%s", YES(SC(getsid, 0) == sid));
            _exit(0);
        }
        waitpid(g, NULL, 0);
        _exit(0);
    }
    waitpid(c, NULL, 0);

    /* thread bookkeeping */
    int tidword;
    SAY(set_tid_address, "returns tid", "%s", YES(SC(set_tid_address, &tidword) == tid));
    struct { void *next; long off; void *pending; } head = {&head, 0, 0};
    R(set_robust_list, "valid", SC(set_robust_list, &head, sizeof head));
    R(set_robust_list, "bad size", SC(set_robust_list, &head, 5));
    void *got; size_t len;
    R(get_robust_list, "own", SC(get_robust_list, 0, &got, &len));
    SAY(get_robust_list, "same head", "%s len %zu", YES(got == &head), len);
    R(get_robust_list, "missing pid", SC(get_robust_list, 999999, &got, &len));

    /* futex */
    int word = 1;
    R(futex, "WAKE nobody", SC(futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    R(futex, "WAIT value mismatch", SC(futex, &word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0));
    struct timespec tiny = {0, 1000000};
    R(futex, "WAIT timeout", SC(futex, &word, FUTEX_WAIT_PRIVATE, 1, &tiny, NULL, 0));
    R(futex, "bad op", SC(futex, &word, 99, 1, NULL, NULL, 0));
    R(futex, "unaligned", SC(futex, (char *)&word + 1, FUTEX_WAKE, 1, NULL, NULL, 0));

    /* prctl / arch_prctl / personality */
    R(prctl, "PR_SET_NAME", SC(prctl, PR_SET_NAME, "covname", 0, 0, 0));
    char name[32] = {0};
    R(prctl, "PR_GET_NAME", SC(prctl, PR_GET_NAME, name, 0, 0, 0));
    SAY(prctl, "name", "%s", name);
    R(prctl, "PR_GET_DUMPABLE", SC(prctl, PR_GET_DUMPABLE, 0, 0, 0, 0));
    R(prctl, "PR_SET_PDEATHSIG bad signal", SC(prctl, PR_SET_PDEATHSIG, 99, 0, 0, 0));
    R(prctl, "PR_GET_NO_NEW_PRIVS", SC(prctl, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    R(prctl, "unknown option", SC(prctl, 9999, 0, 0, 0, 0));
    unsigned long fsbase = 0;
    R(arch_prctl, "ARCH_GET_FS", SC(arch_prctl, ARCH_GET_FS, &fsbase));
    SAY(arch_prctl, "fs base set", "%s", YES(fsbase != 0));
    R(arch_prctl, "bad code", SC(arch_prctl, 0x9999, 0));
    R(personality, "query", SC(personality, 0xffffffff));
    R(personality, "set ADDR_NO_RANDOMIZE", SC(personality, ADDR_NO_RANDOMIZE) >= 0);
    R(personality, "read back", SC(personality, 0xffffffff));
    SC(personality, 0);

    /* uname / sethostname */
    struct utsname u;
    R(uname, "call", SC(uname, &u));
    SAY(uname, "sysname machine", "%s %s", u.sysname, u.machine);
    R(uname, "bad buffer", SC(uname, (void *)8));
    char longname[80];
    memset(longname, 'h', sizeof longname);
    R(sethostname, "too long", SC(sethostname, longname, sizeof longname));
    R(sethostname, "negative length", SC(sethostname, longname, -1));

    /* scheduling */
    R(sched_yield, "", SC(sched_yield));
    cpu_set_t set;
    long n = SC(sched_getaffinity, 0, sizeof set, &set);
    SAY(sched_getaffinity, "size positive", "%s", YES(n > 0));
    R(sched_getaffinity, "small buffer", SC(sched_getaffinity, 0, 1, &set));
    R(sched_setaffinity, "same mask", SC(sched_setaffinity, 0, sizeof set, &set));
    cpu_set_t none;
    CPU_ZERO(&none);
    R(sched_setaffinity, "empty mask", SC(sched_setaffinity, 0, sizeof none, &none));
    struct sched_param sp = {0};
    R(sched_getparam, "self", SC(sched_getparam, 0, &sp));
    SAY(sched_getparam, "priority", "%d", sp.sched_priority);
    R(sched_getparam, "missing pid", SC(sched_getparam, 999999, &sp));
    R(sched_getscheduler, "self", SC(sched_getscheduler, 0));
    R(sched_getscheduler, "negative pid", SC(sched_getscheduler, -1));
    R(sched_get_priority_max, "SCHED_FIFO", SC(sched_get_priority_max, SCHED_FIFO));
    R(sched_get_priority_max, "bad policy", SC(sched_get_priority_max, 99));
    R(sched_get_priority_min, "SCHED_RR", SC(sched_get_priority_min, SCHED_RR));
    R(sched_get_priority_min, "SCHED_OTHER", SC(sched_get_priority_min, SCHED_OTHER));
    struct timespec slice;
    R(sched_rr_get_interval, "self", SC(sched_rr_get_interval, 0, &slice));
    R(sched_rr_get_interval, "missing pid", SC(sched_rr_get_interval, 999999, &slice));
    struct sched_param zero = {0}, five = {5};
    R(sched_setparam, "priority 0 (SCHED_OTHER)", SC(sched_setparam, 0, &zero));
    R(sched_setparam, "priority 5 (SCHED_OTHER)", SC(sched_setparam, 0, &five));
    R(sched_setparam, "missing pid", SC(sched_setparam, 999999, &zero));
    R(sched_setscheduler, "SCHED_OTHER", SC(sched_setscheduler, 0, SCHED_OTHER, &zero));
    R(sched_setscheduler, "bad policy", SC(sched_setscheduler, 0, 99, &zero));
    R(sched_setscheduler, "SCHED_FIFO priority 0", SC(sched_setscheduler, 0, SCHED_FIFO, &zero));
    unsigned cpu = 999, node = 999;
    R(getcpu, "call", SC(getcpu, &cpu, &node, NULL));
    SAY(getcpu, "node", "%u", node);
    c = fork();
    if (c == 0) {
        R(getpriority, "self (20 - nice)", SC(getpriority, PRIO_PROCESS, 0));
        R(setpriority, "nice 5", SC(setpriority, PRIO_PROCESS, 0, 5));
        R(getpriority, "after", SC(getpriority, PRIO_PROCESS, 0));
        R(getpriority, "bad which", SC(getpriority, 99, 0));
        R(setpriority, "missing pid", SC(setpriority, PRIO_PROCESS, 999999, 1));
        _exit(0);
    }
    waitpid(c, NULL, 0);

    /* limits and usage */
    struct rlimit rl;
    R(getrlimit, "NOFILE", SC(getrlimit, RLIMIT_NOFILE, &rl));
    R(getrlimit, "bad resource", SC(getrlimit, 99, &rl));
    c = fork();
    if (c == 0) {
        struct rlimit lower = {64, 128};
        R(setrlimit, "NOFILE 64/128", SC(setrlimit, RLIMIT_NOFILE, &lower));
        SC(getrlimit, RLIMIT_NOFILE, &rl);
        SAY(setrlimit, "read back", "%ld %ld", (long)rl.rlim_cur, (long)rl.rlim_max);
        R(setrlimit, "soft above hard", SC(setrlimit, RLIMIT_NOFILE, &(struct rlimit){256, 128}));
        R(dup2, "fd above the limit", SC(dup2, 1, 100));
        struct rlimit old;
        R(prlimit64, "read and set CORE", SC(prlimit64, 0, RLIMIT_CORE, &(struct rlimit){0, 0}, &old));
        R(prlimit64, "missing pid", SC(prlimit64, 999999, RLIMIT_CORE, NULL, &old));
        R(prlimit64, "bad resource", SC(prlimit64, 0, 99, NULL, &old));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    struct rusage ru;
    R(getrusage, "SELF", SC(getrusage, RUSAGE_SELF, &ru));
    R(getrusage, "CHILDREN", SC(getrusage, RUSAGE_CHILDREN, &ru));
    R(getrusage, "bad who", SC(getrusage, 99, &ru));
    struct tms tm;
    SAY(times, "returns a tick count", "%s", YES(SC(times, &tm) != -1));
    struct sysinfo info;
    R(sysinfo, "call", SC(sysinfo, &info));
    SAY(sysinfo, "mem_unit and procs", "%u %s", info.mem_unit, YES(info.procs > 0));
    R(sysinfo, "bad buffer", SC(sysinfo, (void *)8));

    /* getrandom */
    char rnd[16];
    R(getrandom, "16 bytes", SC(getrandom, rnd, sizeof rnd, 0));
    R(getrandom, "GRND_NONBLOCK", SC(getrandom, rnd, sizeof rnd, 1));
    R(getrandom, "bad flags", SC(getrandom, rnd, sizeof rnd, 0x40));
    R(getrandom, "bad buffer", SC(getrandom, (void *)8, 16, 0));
    return 0;
}
