"""Syscalls the KVM vCPU threads answer without the kernel (docs/kvm.md, "Syscalls served
in C"): their answers must stay exactly Linux's even when the value changes while the
asker runs, and --strace must still see every call."""
import os
import re

import pytest

from conftest import NEEDS_KVM, compile_c, run_native, run_sandbox

pytestmark = NEEDS_KVM

STATS = re.compile(rb"KVM platform statistics: (\{.*\})")


def kvm_stats(stderr: bytes) -> dict:
    m = STATS.search(stderr)
    assert m, stderr[-2000:]
    return eval(m.group(1), {})      # a dict of ints printed by KvmPlatform.shutdown


def same_on_kvm_with_stats(src, *opts):
    prog = compile_c(src)
    nat = run_native([prog])
    box = run_sandbox([prog], "--platform=kvm", "--debug", *opts)
    assert box.stdout == nat.stdout, (nat.stdout, box.stdout, box.stderr[-2000:])
    assert box.returncode == nat.returncode, (nat.returncode, box.returncode, box.stderr[-2000:])
    return box, kvm_stats(box.stderr)


# The child spins on getppid() (answered on its vCPU thread, never reaching the kernel)
# while its parent exits: the answer must change to the reaper. Natively the grandparent is
# made a subreaper; in the sandbox it is init, the reaper of every orphan. Either way the new
# parent is the grandparent.
REPARENT = r'''
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t grand = getpid();
    int p[2];
    pipe(p);
    pid_t mid = fork();
    if (mid == 0) {
        pid_t me = getpid();
        if (fork() == 0) {
            alarm(20);                          /* a stale answer would spin forever */
            long polls = 0;
            close(p[0]);
            write(p[1], "x", 1);                /* running: the parent may go */
            while (getppid() == me) polls++;
            printf("reparented to grandparent: %d\n", getppid() == grand);
            fprintf(stderr, "polled %ld times\n", polls);
            fflush(stdout);
            _exit(0);
        }
        char c;
        close(p[1]);
        read(p[0], &c, 1);
        for (volatile long i = 0; i < 20000000; i++) ;  /* let the child poll a while */
        _exit(0);
    }
    close(p[0]);
    close(p[1]);
    int st, n = 0;
    while (wait(&st) > 0) n++;
    printf("reaped %d\n", n);
    return 0;
}
'''


def test_getppid_answered_in_c_follows_a_reparent():
    box, stats = same_on_kvm_with_stats(REPARENT)
    assert b"reparented to grandparent: 1\n" in box.stdout
    polls = int(re.search(rb"polled (\d+) times", box.stderr).group(1))
    assert polls > 0 and stats["served_in_c"] >= polls, (polls, stats)   # polled on the C path


# Ids in a forked child and in a thread; then credentials change in the main thread while a
# second thread spins (no syscalls) and reads geteuid() right after it is told: the new value
# must already be there (glibc applies set*id to all threads natively; here credentials are
# per process and every vCPU's copy is refreshed before the caller runs on).
IDS = r'''
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int told, done_reading;
static volatile long seen_euid = -1, seen_egid = -1;
static void *thread_ids(void *arg) {
    printf("thread: same pid %d, own tid %d\n", getpid() == (pid_t)(long)arg,
           (pid_t)syscall(SYS_gettid) != getpid());
    fflush(stdout);
    while (!told) ;
    seen_euid = geteuid();
    seen_egid = getegid();
    done_reading = 1;
    return 0;
}
int main(void) {
    pid_t me = getpid();
    printf("main: tid is pid %d, uid %d euid %d gid %d egid %d\n",
           (pid_t)syscall(SYS_gettid) == me, getuid(), geteuid(), getgid(), getegid());
    fflush(stdout);
    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) {
        pid_t mine = getpid();
        write(p[1], &mine, sizeof mine);
        printf("child: parent is %d, new pid %d, tid is pid %d\n", getppid() == me,
               mine != me, (pid_t)syscall(SYS_gettid) == mine);
        fflush(stdout);
        _exit(0);
    }
    pid_t reported;
    read(p[0], &reported, sizeof reported);
    waitpid(child, 0, 0);
    printf("fork returned the child's getpid: %d\n", reported == child);
    pthread_t t;
    pthread_create(&t, 0, thread_ids, (void *)(long)me);
    for (volatile long i = 0; i < 200000; i++) ;
    setresgid(-1, 4321, -1);
    setresuid(-1, 1234, -1);
    told = 1;
    while (!done_reading) ;
    pthread_join(t, 0);
    printf("after set*id: main euid %d egid %d uid %d; thread saw euid %ld egid %ld\n",
           geteuid(), getegid(), getuid(), seen_euid, seen_egid);
    return 0;
}
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="the set*id part needs root natively")
def test_ids_in_children_threads_and_after_setid_match_linux():
    box, stats = same_on_kvm_with_stats(IDS)
    assert b"thread saw euid 1234 egid 4321" in box.stdout
    assert stats["served_in_c"] > 0, stats


LOOP = r'''
#include <stdio.h>
#include <unistd.h>
int main(void) {
    long sum = 0;
    for (int i = 0; i < 50; i++) sum += getppid() + getpid();
    printf("%ld\n", sum > 0 ? 1L : 0L);
    return 0;
}
'''


def test_strace_sees_every_id_syscall_none_served_in_c():
    box, stats = same_on_kvm_with_stats(LOOP, "--strace")
    assert stats["served_in_c"] == 0, stats
    err = box.stderr.decode(errors="replace")
    assert len(re.findall(r"\bgetppid\(", err)) == 50, err[-2000:]
    assert len(re.findall(r"\bgetpid\(", err)) == 50, err[-2000:]


def test_without_strace_the_same_loop_is_served_in_c():
    _, stats = same_on_kvm_with_stats(LOOP)
    assert stats["served_in_c"] >= 100, stats


# Process groups and sessions: getpgrp, getpgid(0) and getsid(0) are answered in C. The
# child spins on getpgrp() (no other syscall) while its parent moves it into a group of its
# own with setpgid(child, child): the new group must show without the child entering the
# kernel. Then the child starts a session and reads getsid(0)/getpgid(0); getpgid/getsid
# of another pid still go to the kernel (and must give Linux's answers).
PGRP = r'''
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t me = getpid(), group = getpgrp();
    printf("parent: getpgid(0) == getpgrp %d, getsid(0) == getsid(me) %d\n",
           getpgid(0) == group, getsid(0) == getsid(me));
    fflush(stdout);
    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) {
        alarm(20);                          /* a stale answer would spin forever */
        pid_t mine = getpid();
        close(p[0]);
        write(p[1], "x", 1);                /* polling from now on */
        long polls = 0;
        while (getpgrp() != mine) polls++;
        printf("child: saw its own group %d, getpgid(0) agrees %d\n", getpgrp() == mine,
               getpgid(0) == mine);
        pid_t sid = setsid();
        printf("child: new session %d, getsid(0) %d, getpgrp %d, parent's sid differs %d\n",
               sid == mine, getsid(0) == mine, getpgrp() == mine, getsid(me) != mine);
        fprintf(stderr, "polled %ld times\n", polls);
        fflush(stdout);
        _exit(0);
    }
    char c;
    close(p[1]);
    read(p[0], &c, 1);
    for (volatile long i = 0; i < 2000000; i++) ;   /* let the child poll a while */
    setpgid(child, child);
    int st;
    waitpid(child, &st, 0);
    printf("parent: still in its group %d, child exited %d\n", getpgrp() == group,
           WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}
'''


def test_pgrp_and_sid_answered_in_c_follow_setpgid_and_setsid():
    box, stats = same_on_kvm_with_stats(PGRP)
    assert b"child: saw its own group 1, getpgid(0) agrees 1\n" in box.stdout
    polls = int(re.search(rb"polled (\d+) times", box.stderr).group(1))
    assert polls > 0 and stats["served_in_c"] >= polls, (polls, stats)   # polled on the C path


def test_strace_still_sees_getpgrp_and_getsid():
    box, stats = same_on_kvm_with_stats(PGRP, "--strace")
    assert stats["served_in_c"] == 0, stats
    err = box.stderr.decode(errors="replace")
    assert re.search(r"\bgetsid\(0", err) and re.search(r"\bgetpgid\(0", err), err[-2000:]
