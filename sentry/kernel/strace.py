"""--strace: print each application syscall with decoded arguments and its result."""
import errno

MASK64 = (1 << 64) - 1


def _arg(t, kind, v):
    if kind in ("path", "str"):
        try:
            s = t.mm.read_cstring(v, 4096) if v else None
        except Exception:
            return f"{v:#x}"
        return "NULL" if s is None else repr(s.decode("utf-8", "backslashreplace"))[:80]
    if kind == "fd":
        v &= 0xffffffff
        return "AT_FDCWD" if v == 0xffffff9c else str(v - (1 << 32) if v >> 31 else v)
    if kind in ("int", "signal", "size"):
        return str(v - (1 << 64) if v >> 63 else v)
    if kind == "mode":
        return oct(v)
    return f"{v:#x}"


def enter(k, t, entry, nr):
    regs = t.ctx.regs
    raw = (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9)
    if entry is None:
        text = f"syscall_{nr}(...)"
    else:
        args = ", ".join(_arg(t, kind.split(":")[0], v) for kind, v in zip(entry.args, raw))
        text = f"{entry.name}({args})"
    t._strace_text = text


def leave(k, t, result):
    text = getattr(t, "_strace_text", "?")
    if result is None:
        r = "?"
    else:
        result = result - (1 << 64) if result >= 1 << 63 else result
        r = (f"-1 {errno.errorcode.get(-result, -result)}" if -4096 < result < 0
             else (f"{result:#x}" if result > 0xffff else str(result)))
    k.strace.write(f"[{t.tid:>4}] {text} = {r}\n")
    k.strace.flush()
