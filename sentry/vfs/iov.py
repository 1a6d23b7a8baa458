"""User buffers as seen by file implementations.

A read fills `dst`, a write drains `src`: both are lists of writable/readable memoryviews
that alias application memory inside the sentry's mapping of the memory file (already
validated and faulted in by the task's copy helpers). A file may hand them straight to
os.preadv/os.pwritev/os.readv, so host I/O lands in application memory with no extra copy.
"""


def total(views) -> int:
    return sum(len(v) for v in views)


def copy_into(dst, data) -> int:
    """Copy bytes-like `data` into the views; returns how many bytes were copied."""
    data = memoryview(data)
    done = 0
    for v in dst:
        if done >= len(data):
            break
        n = min(len(v), len(data) - done)
        v[:n] = data[done:done + n]
        done += n
    return done


def gather(src, limit: int | None = None) -> bytes:
    """The bytes of the views, concatenated (at most `limit`)."""
    out = bytearray()
    for v in src:
        if limit is not None and len(out) + len(v) > limit:
            out += v[:limit - len(out)]
            break
        out += v
    return bytes(out)
