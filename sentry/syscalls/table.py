"""The syscall table: the single source of truth for what pysentry implements.

Every entry names the number, the handler and the support level. `pysentry syscalls`, the
compatibility document and the coverage benchmark are generated from it. Handlers share one
signature, `handler(task, *args) -> int | generator`: they get the raw argument registers
(as many as `args` names), return a result (negative errno allowed) or raise SysError; a
handler that must wait is a generator that yields `Block` objects (sentry/kernel/wait.py)
and finally returns its result.

Argument kinds (for --strace decoding): int, hex, fd, path (C string), str, ptr, size,
flags:NAME, signal, mode.
"""
import errno
import re

from ..kernel.record import Record

FULL, PARTIAL, UNSUPPORTED = "full", "partial", "unsupported"


class Entry(Record):
    _fields = ("nr", "name", "handler", "args", "support", "note", "errno", "ret")

    def __init__(self, nr: int, name: str, handler: object = None, args: tuple = (),
                 support: str = UNSUPPORTED, note: str = "", errno: int = errno.ENOSYS,
                 ret: str = "int"):
        self.nr = nr
        self.name = name
        self.handler = handler
        self.args = args
        self.support = support
        self.note = note
        self.errno = errno      # what an unsupported entry returns
        self.ret = ret          # how --strace prints the result: int, hex, fd


TABLE: dict[int, Entry] = {}


def _load_numbers() -> dict[str, int]:
    """x86-64 syscall numbers, from the kernel headers when present (they are on Debian)."""
    names: dict[str, int] = {}
    for path in ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"):
        try:
            text = open(path).read()
        except OSError:
            continue
        for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", text):
            names[m.group(1)] = int(m.group(2))
        break
    return names


NUMBERS = _load_numbers()


def syscall(name: str, args: tuple = (), support: str = FULL, note: str = "", ret: str = "int"):
    """Decorator registering a handler for the named syscall."""
    def register(fn):
        nr = NUMBERS[name]
        TABLE[nr] = Entry(nr, name, fn, tuple(args), support, note, ret=ret)
        return fn
    return register


def unsupported(name: str, err: int = errno.ENOSYS, note: str = ""):
    nr = NUMBERS[name]
    TABLE[nr] = Entry(nr, name, None, (), UNSUPPORTED, note, err)


def load_all():
    """Import every handler module so the table is complete."""
    from . import fs, futex, mm, process, signal, time, misc, events, socket  # noqa: F401
    for name, nr in NUMBERS.items():
        if nr not in TABLE:
            TABLE[nr] = Entry(nr, name)
    return TABLE
