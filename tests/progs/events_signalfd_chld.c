/* signalfd collecting SIGCHLD, whose default disposition is "ignore": a blocked signal
   is never discarded as ignored, so it stays pending for the signalfd. */
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int fd = signalfd(-1, &chld, 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    struct signalfd_siginfo si;
    long r = read(fd, &si, sizeof si);
    printf("read=%ld signo=%u code=%d status=%d pid_matches=%d\n", r, si.ssi_signo,
           si.ssi_code, si.ssi_status, si.ssi_pid == (unsigned)pid);
    int st;
    waitpid(pid, &st, 0);
    printf("exit=%d\n", WEXITSTATUS(st));
    return 0;
}
