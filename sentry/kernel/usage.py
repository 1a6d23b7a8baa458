"""Resource usage accounting: the CPU time and peak memory that getrusage, times,
wait4's rusage, the CPU-time clocks and /proc report.

- A thread's time is its platform context's (the host's count for the stub thread or
  vCPU thread that runs it), plus that of the contexts it had before an exec replaced
  them (`Task.cpu_ns_before`).
- A process's time adds its exited threads' (`ThreadGroup.dead_cpu_ns`, credited as each
  thread exits, before its context is released and its host thread with it).
- A parent is credited with a child's time, and with what the child had been credited
  for its own reaped children, when it reaps it (`ThreadGroup.child_cpu_ns`), as Linux
  adds a reaped child's cutime to the parent's.

All of it is reported as user time: the sentry does not split the host's count into
user and system time, and the time the sentry itself spends serving a syscall is its
own, not the application's.

Peak memory (ru_maxrss) is the largest resident size seen of the process's address
space, sampled when a rusage is asked for and when a thread exits (not at every fault:
a peak between two samples is missed); resident means mapped into the platform, which
counts a touched VMA whole.
"""

USER_HZ = 100
NS_PER_TICK = 1_000_000_000 // USER_HZ


def task_cpu_ns(t) -> int:
    """CPU time of one thread, ns (what it had when it exited, for a dead one)."""
    if t.dead:
        return t.cpu_ns_before
    return t.cpu_ns_before + t.ctx.cpu_time_ns()


def group_cpu_ns(tg) -> int:
    """CPU time of a process: its live threads' and its exited threads', ns."""
    return tg.dead_cpu_ns + sum(task_cpu_ns(th) for th in tg.tasks if not th.dead)


def thread_exiting(t) -> None:
    """Credit an exiting thread's time to its process, while its context still counts
    (the thread may already be marked dead), and sample the process's memory."""
    t.cpu_ns_before += t.ctx.cpu_time_ns()
    t.tg.dead_cpu_ns += t.cpu_ns_before
    maxrss_kib(t.tg, t.mm)


def maxrss_kib(tg, mm) -> int:
    """The process's peak resident size in KiB, sampling `mm` (its address space) now."""
    if mm is not None:
        rss = sum(v.end - v.start for v in mm.vmas if v.mapped) >> 10
        if rss > tg.maxrss_kib:
            tg.maxrss_kib = rss
    return tg.maxrss_kib


def context_replaced(t, old_ctx) -> None:
    """An exec gave thread t a new context: keep what the old one had counted."""
    t.cpu_ns_before += old_ctx.cpu_time_ns()


def child_reaped(parent, child) -> None:
    """A parent reaps a child process: it is credited with the child's whole time, and its
    children's peak memory is at least the child's (Linux's cmaxrss)."""
    parent.child_cpu_ns += group_cpu_ns(child) + child.child_cpu_ns
    parent.child_maxrss_kib = max(parent.child_maxrss_kib, child.maxrss_kib,
                                  child.child_maxrss_kib)


def ticks(ns: int) -> int:
    """ns as clock ticks (USER_HZ), as times(2) and /proc count them."""
    return ns // NS_PER_TICK
