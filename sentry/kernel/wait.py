"""Wait queues: how a parked task (or a poll/epoll waiter) learns that something changed.

Invariant: a waiter is any object with a `notify(events)` method. A file, pipe, futex key
or child-exit source owns a WaitQueue and calls `notify(mask)` whenever its readiness may
have changed; waiters re-check the real condition (spurious wake-ups are allowed, lost ones
are not).
"""

POLLIN = 0x001
POLLPRI = 0x002
POLLOUT = 0x004
POLLERR = 0x008
POLLHUP = 0x010
POLLNVAL = 0x020
POLLRDNORM = 0x040
POLLRDBAND = 0x080
POLLWRNORM = 0x100
POLLWRBAND = 0x200
POLLRDHUP = 0x2000
ALL_EVENTS = 0xFFFFFFFF


class WaitQueue:
    __slots__ = ("_waiters",)

    def __init__(self):
        self._waiters: dict = {}   # waiter -> event mask it cares about (insertion-ordered)

    def add(self, waiter, mask: int = ALL_EVENTS) -> None:
        self._waiters[waiter] = mask

    def remove(self, waiter) -> None:
        self._waiters.pop(waiter, None)

    def notify(self, events: int = ALL_EVENTS) -> None:
        # Copy: a woken waiter commonly removes itself.
        for waiter, mask in list(self._waiters.items()):
            if mask & events:
                waiter.notify(events)

    def __len__(self) -> int:
        return len(self._waiters)


class Block:
    """Yielded by a generator syscall handler to park its task.

    The scheduler registers the task on `queues` (each with `mask`) and resumes the generator
    with one of WOKEN, TIMEOUT or INTERRUPTED (a signal arrived; only when interruptible).
    `deadline` is an absolute CLOCK_MONOTONIC time in seconds, or None.
    """
    __slots__ = ("queues", "mask", "deadline", "interruptible")

    def __init__(self, queues=(), mask: int = ALL_EVENTS, deadline: float | None = None,
                 interruptible: bool = True):
        self.queues = queues
        self.mask = mask
        self.deadline = deadline
        self.interruptible = interruptible


WOKEN = "woken"
TIMEOUT = "timeout"
INTERRUPTED = "interrupted"
