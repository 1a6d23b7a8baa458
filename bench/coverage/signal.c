/* Signals: actions, masks, delivery, waiting, alternate stacks, timers, signalfd. */
#include "cov.h"
#include <sys/signalfd.h>
#include <sys/time.h>

static volatile int got, got_code, on_alt;
static char altstack[65536];

static void handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got = sig;
    got_code = si->si_code;
    char here;
    on_alt = &here >= altstack && &here < altstack + sizeof altstack;
}

/* The raw rt_sigaction, with glibc's restorer (read back from a glibc-installed action)
 * so that handlers can return through rt_sigreturn. */
#define K_SA_RESTORER 0x04000000
struct kact { void *h; unsigned long flags; void *restorer; unsigned long mask; };
static void *restorer;

static void init_restorer(void) {
    sigaction(SIGURG, &(struct sigaction){.sa_sigaction = handler, .sa_flags = SA_SIGINFO}, NULL);
    struct kact k;
    syscall(SYS_rt_sigaction, SIGURG, NULL, &k, 8);
    restorer = k.restorer;
}

static long act(int sig, void *h, unsigned long flags, struct kact *old) {
    struct kact k = {h, flags | K_SA_RESTORER | SA_SIGINFO, restorer, 0};
    return syscall(SYS_rt_sigaction, sig, &k, old, 8);
}

int main(void) {
    setup("signal");
    init_restorer();
    R(rt_sigaction, "install SIGUSR1", act(SIGUSR1, handler, 0, NULL));
    struct kact old;
    R(rt_sigaction, "read back", act(SIGUSR1, handler, 0, &old));
    SAY(rt_sigaction, "old handler is ours", "%s", YES(old.h == (void *)handler));
    SAY(rt_sigaction, "old flags", "%#lx", old.flags);
    R(rt_sigaction, "SIGKILL", act(SIGKILL, handler, 0, NULL));
    R(rt_sigaction, "signal 0", act(0, handler, 0, NULL));
    R(rt_sigaction, "signal 65", act(65, handler, 0, NULL));
    R(rt_sigaction, "bad sigsetsize", SC(rt_sigaction, SIGUSR1, NULL, NULL, 4));

    got = 0;
    R(kill, "SIGUSR1 to self", SC(kill, getpid(), SIGUSR1));
    SAY(rt_sigreturn, "handler ran and returned", "sig %d code %s", got, got_code == SI_USER ? "SI_USER" : "other");
    got = 0;
    R(tkill, "SIGUSR1 to self", SC(tkill, gettid(), SIGUSR1));
    SAY(tkill, "delivered", "%d code %s", got, got_code == SI_TKILL ? "SI_TKILL" : "other");
    got = 0;
    R(tgkill, "SIGUSR1 to self", SC(tgkill, getpid(), gettid(), SIGUSR1));
    SAY(tgkill, "delivered", "%d", got);

    /* masks and pending */
    unsigned long set = 1UL << (SIGUSR1 - 1), oldset = 0, pend = 0;
    R(rt_sigprocmask, "block SIGUSR1", SC(rt_sigprocmask, SIG_BLOCK, &set, &oldset, 8));
    SAY(rt_sigprocmask, "old mask", "%#lx", oldset);
    got = 0;
    SC(kill, getpid(), SIGUSR1);
    SAY(rt_sigprocmask, "blocked signal not delivered", "%s", YES(got == 0));
    R(rt_sigpending, "call", SC(rt_sigpending, &pend, 8));
    SAY(rt_sigpending, "set", "%#lx", pend);
    R(rt_sigpending, "bad size", SC(rt_sigpending, &pend, 3));
    unsigned long all = ~0UL;
    R(rt_sigprocmask, "block everything", SC(rt_sigprocmask, SIG_BLOCK, &all, NULL, 8));
    unsigned long now = 0;
    SC(rt_sigprocmask, SIG_BLOCK, NULL, &now, 8);
    SAY(rt_sigprocmask, "KILL and STOP never blocked", "%s", YES(!(now & (1UL << (SIGKILL - 1))) && !(now & (1UL << (SIGSTOP - 1)))));
    R(rt_sigprocmask, "bad how", SC(rt_sigprocmask, 7, &set, NULL, 8));
    R(rt_sigprocmask, "bad size", SC(rt_sigprocmask, SIG_BLOCK, &set, NULL, 16));
    SC(rt_sigprocmask, SIG_SETMASK, &set, NULL, 8);
    got = 0;
    R(rt_sigprocmask, "unblock delivers pending", SC(rt_sigprocmask, SIG_UNBLOCK, &set, NULL, 8));
    SAY(rt_sigprocmask, "delivered on unblock", "%d", got);

    /* rt_sigtimedwait / rt_sigqueueinfo */
    SC(rt_sigprocmask, SIG_BLOCK, &set, NULL, 8);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGUSR1;
    si.si_code = -1;       /* SI_QUEUE */
    si.si_value.sival_int = 77;
    R(rt_sigqueueinfo, "to self", SC(rt_sigqueueinfo, getpid(), SIGUSR1, &si));
    siginfo_t out;
    struct timespec zero = {0, 0};
    R(rt_sigtimedwait, "takes the queued signal", SC(rt_sigtimedwait, &set, &out, &zero, 8));
    SAY(rt_sigtimedwait, "info", "code %d value %d", out.si_code, out.si_value.sival_int);
    R(rt_sigtimedwait, "nothing pending", SC(rt_sigtimedwait, &set, &out, &zero, 8));
    struct timespec badts = {0, 2000000000};
    R(rt_sigtimedwait, "bad timeout", SC(rt_sigtimedwait, &set, &out, &badts, 8));
    si.si_code = SI_KERNEL;
    R(rt_sigqueueinfo, "SI_KERNEL code refused", SC(rt_sigqueueinfo, getpid(), SIGUSR1, &si));
    R(rt_sigqueueinfo, "missing pid", SC(rt_sigqueueinfo, 999999, SIGUSR1, &si));

    /* rt_sigsuspend: wait for a signal sent by a child */
    pid_t c = fork();
    if (c == 0) { kill(getppid(), SIGUSR1); _exit(0); }
    unsigned long none = 0;
    got = 0;
    R(rt_sigsuspend, "interrupted", SC(rt_sigsuspend, &none, 8));
    SAY(rt_sigsuspend, "handler ran", "%d", got);
    waitpid(c, NULL, 0);
    SC(rt_sigprocmask, SIG_UNBLOCK, &set, NULL, 8);

    /* pause with alarm */
    R(alarm, "none before", SC(alarm, 1));
    R(alarm, "remaining", SC(alarm, 5) >= 1);
    R(alarm, "cancel", SC(alarm, 0) >= 4);
    act(SIGALRM, handler, 0, NULL);
    SC(alarm, 1);
    got = 0;
    R(pause, "until SIGALRM", SC(pause));
    SAY(pause, "handler", "%d", got);

    /* itimers */
    struct itimerval it = {{0, 0}, {0, 50000}}, oit;
    R(setitimer, "ITIMER_REAL 50ms", SC(setitimer, ITIMER_REAL, &it, &oit));
    R(getitimer, "ITIMER_REAL", SC(getitimer, ITIMER_REAL, &oit));
    SAY(getitimer, "armed", "%s", YES(oit.it_value.tv_usec > 0 || oit.it_value.tv_sec > 0));
    got = 0;
    while (!got) SC(pause);
    SAY(setitimer, "fired", "%d", got);
    R(getitimer, "bad which", SC(getitimer, 9, &oit));
    R(setitimer, "bad usec", SC(setitimer, ITIMER_REAL, &(struct itimerval){{0, 0}, {0, 2000000}}, NULL));

    /* sigaltstack */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0}, oss;
    R(sigaltstack, "install", SC(sigaltstack, &ss, &oss));
    SAY(sigaltstack, "old flags", "%d", oss.ss_flags);
    R(sigaltstack, "read back", SC(sigaltstack, NULL, &oss));
    SAY(sigaltstack, "current", "flags %d size %zu", oss.ss_flags, oss.ss_size);
    act(SIGUSR1, handler, SA_ONSTACK, NULL);
    on_alt = 0;
    kill(getpid(), SIGUSR1);
    SAY(sigaltstack, "handler ran on it", "%s", YES(on_alt));
    stack_t tiny = {.ss_sp = altstack, .ss_size = 100};
    R(sigaltstack, "too small", SC(sigaltstack, &tiny, NULL));
    stack_t badf = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 7};
    R(sigaltstack, "bad flags", SC(sigaltstack, &badf, NULL));

    /* signalfd / signalfd4 */
    SC(rt_sigprocmask, SIG_BLOCK, &set, NULL, 8);
    int sfd = OK(signalfd, "new", SC(signalfd, -1, &set, 8));
    kill(getpid(), SIGUSR1);
    struct signalfd_siginfo ssi;
    R(read, "signalfd record", read(sfd, &ssi, sizeof ssi));
    SAY(signalfd, "record", "signo %u code %s", ssi.ssi_signo, (int)ssi.ssi_code == SI_USER ? "SI_USER" : "other");
    R(signalfd, "bad size", SC(signalfd, -1, &set, 4));
    int sfd4 = OK(signalfd4, "NONBLOCK|CLOEXEC", SC(signalfd4, -1, &set, 8, SFD_NONBLOCK | SFD_CLOEXEC));
    R(signalfd4, "read with nothing pending", read(sfd4, &ssi, sizeof ssi));
    R(signalfd4, "bad flags", SC(signalfd4, -1, &set, 8, 1));
    R(signalfd4, "update mask of a non-signalfd", SC(signalfd4, 1, &set, 8, 0));
    R(signalfd, "small read", read(sfd, &ssi, 8));
    return 0;
}
