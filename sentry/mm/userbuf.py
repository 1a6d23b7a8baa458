"""A user buffer named by its address ranges, resolved to memory only when it is copied.

A syscall that waits must not keep views of user memory across the wait: while it sleeps,
another thread may unmap the buffer, and the memory file may hand the freed run to another
process or to a file's page cache. Views taken before the wait would then alias memory the
caller no longer owns (a read would write into it, a write would send it). So waiting
paths hold a UserBuffer and resolve it again after every wake-up, as Linux walks the page
tables at copy time: an unmapped buffer is EFAULT then, never someone else's memory.
"""


class UserBuffer:
    __slots__ = ("mm", "ranges", "write", "_checked")

    def __init__(self, mm, ranges, write: bool):
        self.mm = mm
        self.ranges = ranges          # [(address, length)], lengths already validated
        self.write = write
        self._checked = None

    def check(self) -> None:
        """Resolve now (SysError(EFAULT) before the syscall waits). The views are kept for
        the very next views() call, which callers make before their first wait."""
        self._checked = self._resolve()

    def views(self) -> list:
        """Views of the buffer now (SysError(EFAULT) if any byte is inaccessible)."""
        got = self._checked
        if got is not None:
            self._checked = None
            return got
        return self._resolve()

    def _resolve(self) -> list:
        out = []
        for base, length in self.ranges:
            if length:
                out += self.mm.views(base, length, self.write)
        return out
