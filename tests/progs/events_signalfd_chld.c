/* signalfd collecting SIGCHLD, whose default disposition is "ignore": a blocked signal
   is never discarded as ignored, so it stays pending (even after the child is reaped)
   until the signalfd takes it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int fd = signalfd(-1, &chld, SFD_NONBLOCK);
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int st;
    waitpid(pid, &st, 0);
    printf("exit=%d\n", WEXITSTATUS(st));
    struct signalfd_siginfo si;
    memset(&si, 0, sizeof si);
    errno = 0;
    long r = read(fd, &si, sizeof si);
    printf("read=%ld %s signo=%u code=%d status=%d pid_matches=%d\n", r, strerror(errno),
           si.ssi_signo, si.ssi_code, si.ssi_status, si.ssi_pid == (unsigned)pid);
    return 0;
}
