"""User buffers as seen by file implementations.

A read fills `dst`, a write drains `src`: both are lists of writable/readable memoryviews
that alias application memory inside the sentry's mapping of the memory file (already
validated and faulted in by the task's copy helpers). A file may hand them straight to
os.preadv/os.pwritev/os.readv, so host I/O lands in application memory with no extra copy.
"""
import os

from ..kernel.errors import SysError


def total(views) -> int:
    return sum(map(len, views))


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


def clip(views, limit: int) -> list:
    """The views cut down to their first `limit` bytes."""
    out = []
    for v in views:
        if limit <= 0:
            break
        out.append(v[:limit])
        limit -= len(out[-1])
    return out


def gather(src, limit: int | None = None) -> bytes:
    """The bytes of the views, concatenated (at most `limit`)."""
    out = bytearray()
    for v in src:
        if limit is not None and len(out) + len(v) > limit:
            out += v[:limit - len(out)]
            break
        out += v
    return bytes(out)


# ---- host fd I/O straight into/out of the views ------------------------------------------
IOV_MAX = 1024                 # the host's limit on iovecs per preadv/pwritev


def byte_views(views) -> list:
    """The non-empty views as flat byte memoryviews (what os.preadv/pwritev take)."""
    out = []
    for v in views:
        v = v if isinstance(v, memoryview) else memoryview(v)
        if v.format != "B" or v.ndim != 1:
            v = v.cast("B")
        if len(v):
            out.append(v)
    return out


def advance(views: list, n: int) -> list:
    """The views left once the first n bytes are consumed."""
    i = 0
    while i < len(views) and n >= len(views[i]):
        n -= len(views[i])
        i += 1
    rest = views[i:]
    if rest and n:
        rest[0] = rest[0][n:]
    return rest


def host_preadv(fd: int, dst, offset: int) -> int:
    """Fill `dst` from a host regular file at `offset` with preadv (the kernel copies
    straight into the views); short only at end of file. A failure after some bytes
    arrived returns that count, as a short read; before any, it is the SysError."""
    if len(dst) == 1:
        # The common case (one buffer in one run of the memory file): one call, which
        # takes any contiguous buffer as it is.
        try:
            return os.preadv(fd, dst, offset)
        except OSError as exc:
            raise SysError(exc.errno) from None
    views = byte_views(dst)
    done = 0
    for i in range(0, len(views), IOV_MAX):
        batch = views[i:i + IOV_MAX]
        try:
            n = os.preadv(fd, batch, offset + done)
        except OSError as exc:
            if done:
                return done
            raise SysError(exc.errno) from None
        done += n
        if n < sum(len(v) for v in batch):
            break           # a regular file reads short only at its end
    return done


def host_pwritev(fd: int, src, offset: int) -> int:
    """Write all of `src` to a host regular file at `offset`, continuing after short
    writes; a failure after some bytes were written returns that count."""
    done = 0
    if len(src) == 1:
        # The common case: one call (taking any contiguous buffer as it is), which a
        # regular file completes in full.
        try:
            done = os.pwritev(fd, src, offset)
        except OSError as exc:
            raise SysError(exc.errno) from None
        if done <= 0 or done == memoryview(src[0]).nbytes:
            return done
    views = advance(byte_views(src), done)
    while views:
        try:
            n = os.pwritev(fd, views[:IOV_MAX], offset + done)
        except OSError as exc:
            if done:
                return done
            raise SysError(exc.errno) from None
        if n <= 0:
            break
        done += n
        views = advance(views, n)
    return done


# fallocate(2) modes a file may pass to the host (linux/falloc.h).
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 0x01, 0x02, 0x10
_fallocate = None


def host_fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) on a host fd (a tmpfs file's memfd, a volume file's donated fd).
    Python's os module has no mode argument, so libc's is called through ctypes, loaded on
    first use (most runs never punch a hole)."""
    global _fallocate
    if _fallocate is None:
        import ctypes
        fn = ctypes.CDLL(None, use_errno=True).fallocate
        fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
        fn.restype = ctypes.c_int
        _fallocate = (fn, ctypes.get_errno)
    fn, get_errno = _fallocate
    if fn(fd, mode, offset, length) != 0:
        raise SysError(get_errno())
