"""A user buffer named by its address ranges, resolved to memory only when it is copied.

A syscall that waits must not keep views of user memory across the wait: while it sleeps,
another thread may unmap the buffer, and the memory file may hand the freed run to another
process or to a file's page cache. Views taken before the wait would then alias memory the
caller no longer owns (a read would write into it, a write would send it). So waiting
paths hold a UserBuffer and resolve it again after every wake-up, as Linux walks the page
tables at copy time: an unmapped buffer is EFAULT then, never someone else's memory.
"""


class UserBuffer:
    __slots__ = ("mm", "ranges", "write")

    def __init__(self, mm, ranges, write: bool):
        self.mm = mm
        self.ranges = ranges          # [(address, length)], lengths already validated
        self.write = write

    def views(self) -> list:
        """Views of the buffer now (SysError(EFAULT) if any byte is inaccessible)."""
        out = []
        for base, length in self.ranges:
            if length:
                out += self.mm.views(base, length, self.write)
        return out
