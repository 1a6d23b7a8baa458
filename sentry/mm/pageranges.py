"""A set of page indexes kept as sorted, disjoint, non-adjacent [lo, hi) runs.

Used for the pages of a file that hold data (tmpfs files in a memfd) and for the pages a
FileMap has mirrored from its file.
"""
import bisect

_BEYOND = float("inf")     # sorts after every run end: (lo, _BEYOND) follows (lo, b)


class PageRanges:
    """A set of page indexes kept as sorted, disjoint, non-adjacent [lo, hi) runs."""

    def __init__(self):
        self.runs: list[tuple[int, int]] = []

    def gaps(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The parts of [lo, hi) not in the set."""
        return [(a, b) for a, b, inside in self.split(lo, hi) if not inside]

    def add(self, lo: int, hi: int) -> None:
        if lo >= hi:
            return
        runs = self.runs
        if runs and runs[-1][0] <= lo <= runs[-1][1]:
            # Appending (a sequential write): the last run grows.
            runs[-1] = (runs[-1][0], max(hi, runs[-1][1]))
            return
        keep = []
        for a, b in self.runs:
            if b < lo or a > hi:
                keep.append((a, b))
            else:
                lo, hi = min(lo, a), max(hi, b)
        keep.append((lo, hi))
        keep.sort()
        self.runs = keep

    def split(self, lo: int, hi: int) -> list[tuple[int, int, bool]]:
        """[lo, hi) cut into (a, b, in_set) pieces, in order."""
        out = []
        cur = lo
        for a, b in self.runs:
            if b <= cur:
                continue
            if a >= hi:
                break
            if a > cur:
                out.append((cur, a, False))
            out.append((max(a, cur), min(b, hi), True))
            cur = min(b, hi)
        if cur < hi:
            out.append((cur, hi, False))
        return out

    def covers(self, lo: int, hi: int) -> bool:
        """Whether every index of [lo, hi) is in the set (one run holds them all, since
        runs never touch)."""
        runs = self.runs
        i = bisect.bisect_right(runs, (lo, _BEYOND)) - 1
        return i >= 0 and runs[i][1] >= hi

    def __len__(self) -> int:
        return sum(b - a for a, b in self.runs)

    def remove(self, lo: int, hi: int) -> int:
        """Forget the indexes in [lo, hi); returns how many of them were in the set."""
        if lo >= hi:
            return 0
        before = len(self)
        keep = []
        for a, b in self.runs:
            if b <= lo or a >= hi:
                keep.append((a, b))
                continue
            if a < lo:
                keep.append((a, lo))
            if b > hi:
                keep.append((hi, b))
        self.runs = keep
        return before - len(self)

    def drop_from(self, first: int) -> int:
        """Forget the indexes >= first; returns how many there were."""
        before = len(self)
        self.runs = [(a, min(b, first)) for a, b in self.runs if a < first]
        return before - len(self)

    def first_in(self, idx: int) -> int | None:
        """The first index >= idx in the set, or None."""
        for a, b in self.runs:
            if b > idx:
                return max(a, idx)
        return None

    def first_not_in(self, idx: int) -> int:
        """The first index >= idx not in the set."""
        for a, b in self.runs:
            if a > idx:
                break
            if b > idx:
                return b
        return idx
