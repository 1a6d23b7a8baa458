"""Signal state and default actions (the delivery itself is in kernel/deliver.py)."""
import signal as _s

NSIG = 64
SIGKILL, SIGSTOP, SIGCHLD, SIGCONT = 9, 19, 17, 18
SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGPIPE, SIGSYS = 11, 7, 8, 4, 5, 13, 31
SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGHUP, SIGWINCH, SIGALRM = 2, 3, 20, 21, 22, 1, 28, 14

SIG_DFL, SIG_IGN = 0, 1
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO = 0x1, 0x2, 0x4
SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND, SA_RESTORER = 0x08000000, 0x10000000, 0x40000000, 0x80000000, 0x04000000

SI_USER, SI_KERNEL, SI_QUEUE, SI_TKILL = 0, 0x80, -1, -6
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 3, 4, 5, 6

UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))

# Default actions.
TERM, CORE, STOP, CONT, IGNORE = "term", "core", "stop", "cont", "ignore"
_DEFAULT = {
    SIGCHLD: IGNORE, 23: IGNORE, SIGWINCH: IGNORE,            # SIGURG = 23
    SIGCONT: CONT,
    SIGSTOP: STOP, SIGTSTP: STOP, SIGTTIN: STOP, SIGTTOU: STOP,
    SIGQUIT: CORE, SIGILL: CORE, SIGTRAP: CORE, 6: CORE, SIGBUS: CORE, SIGFPE: CORE,
    SIGSEGV: CORE, 24: CORE, 25: CORE, SIGSYS: CORE,            # SIGABRT=6, XCPU, XFSZ
}


def default_action(sig: int) -> str:
    return _DEFAULT.get(sig, TERM)


def bit(sig: int) -> int:
    return 1 << (sig - 1)


def signame(sig: int) -> str:
    try:
        return _s.Signals(sig).name
    except ValueError:
        return f"SIGRT{sig - 32}" if sig >= 32 else str(sig)


class SigAction:
    __slots__ = ("handler", "flags", "restorer", "mask")

    def __init__(self, handler=SIG_DFL, flags=0, restorer=0, mask=0):
        self.handler, self.flags, self.restorer, self.mask = handler, flags, restorer, mask


class SignalHandlers:
    """Dispositions, shared by the threads of a group (and CLONE_SIGHAND processes)."""

    def __init__(self):
        self.actions = [SigAction() for _ in range(NSIG + 1)]

    def copy(self):
        h = SignalHandlers.__new__(SignalHandlers)   # not __init__: its defaults would be thrown away
        h.actions = [SigAction(a.handler, a.flags, a.restorer, a.mask) for a in self.actions]
        return h

    def reset_for_exec(self):
        for a in self.actions:
            if a.handler != SIG_IGN:
                a.handler, a.flags, a.restorer, a.mask = SIG_DFL, 0, 0, 0


class PendingSet:
    """Pending signals: standard ones coalesce, real-time ones queue."""

    def __init__(self):
        self.queue: list[tuple[int, bytes]] = []   # (sig, siginfo)
        self.mask = 0

    def add(self, sig: int, info: bytes) -> bool:
        if sig < 32 and self.mask & bit(sig):
            return False
        self.queue.append((sig, info))
        self.mask |= bit(sig)
        return True

    def take(self, blocked: int):
        """Remove and return the lowest-numbered deliverable (sig, info), or None."""
        ready = self.mask & ~blocked
        if not ready:
            return None
        sig = (ready & -ready).bit_length()
        for i, (s, info) in enumerate(self.queue):
            if s == sig:
                del self.queue[i]
                if not any(q[0] == sig for q in self.queue):
                    self.mask &= ~bit(sig)
                return sig, info
        self.mask &= ~bit(sig)
        return None

    def discard(self, sigmask: int):
        self.queue = [(s, i) for s, i in self.queue if not bit(s) & sigmask]
        self.mask &= ~sigmask
