"""The initial user stack of a new program, laid out byte for byte as Linux x86-64 does.

Linux builds it in two steps (fs/exec.c copies the strings, fs/binfmt_elf.c
create_elf_tables adds the tables). From the top of the stack mapping down:

    8 zero bytes                    (the stack's first word is never used)
    execfn string                   (AT_EXECFN points here)
    envp strings, argv strings      (argv[0] lowest; each NUL-terminated)
    -- aligned down to 16 --
    platform string "x86_64\\0"      (AT_PLATFORM)
    16 random bytes                 (AT_RANDOM)
    zero padding                    (chosen so that the final rsp is 16-byte aligned)
    auxv pairs, ending with AT_NULL
    NULL, envp pointers
    NULL, argv pointers
    argc                            <- rsp at the entry point

Linux also subtracts a random 0..8 KiB below the strings when randomization is on; we do
not (the caller randomizes `stack_top` if it wants ASLR), which makes the layout identical
to a native process started with `setarch -R`.
"""
from __future__ import annotations

import errno
import struct
from typing import Iterable

from ..kernel.errors import SysError
from ..kernel.record import FrozenRecord

AT_NULL = 0
AT_IGNORE = 1
AT_EXECFD = 2
AT_PHDR = 3
AT_PHENT = 4
AT_PHNUM = 5
AT_PAGESZ = 6
AT_BASE = 7
AT_FLAGS = 8
AT_ENTRY = 9
AT_NOTELF = 10
AT_UID = 11
AT_EUID = 12
AT_GID = 13
AT_EGID = 14
AT_PLATFORM = 15
AT_HWCAP = 16
AT_CLKTCK = 17
AT_SECURE = 23
AT_BASE_PLATFORM = 24
AT_RANDOM = 25
AT_HWCAP2 = 26
AT_RSEQ_FEATURE_SIZE = 27
AT_RSEQ_ALIGN = 28
AT_EXECFN = 31
AT_SYSINFO_EHDR = 33
AT_MINSIGSTKSZ = 51

# Per-string limit (fs/exec.c MAX_ARG_STRLEN = 32 pages), counting the NUL.
MAX_ARG_STRLEN = 32 * 4096
MAX_ARG_STRINGS = 0x7FFFFFFF
ARG_MAX = 32 * 4096             # the floor Linux guarantees whatever the stack rlimit
_STK_LIM = 8 * 1024 * 1024
WORD = 8


def arg_limit_for_rlimit(stack_rlimit: int) -> int:
    """Bytes of argument + environment strings and pointers execve accepts for a given
    RLIMIT_STACK soft limit (Linux bprm_stack_limits): a quarter of the stack rlimit,
    capped at 3/4 of 8 MiB, never below 128 KiB."""
    return max(min(_STK_LIM // 4 * 3, stack_rlimit // 4), ARG_MAX)


DEFAULT_ARG_LIMIT = arg_limit_for_rlimit(_STK_LIM)


class InitialStack(FrozenRecord):
    """Unpacks as (sp, data): write `data` at `sp`; it ends exactly at stack_top.
    The other fields are what the kernel remembers (/proc/pid/cmdline, environ, auxv)."""
    _fields = ("sp", "data", "arg_start", "arg_end", "env_start", "env_end", "execfn_addr",
               "random_addr", "platform_addr", "auxv")

    def __init__(self, sp: int, data: bytes, arg_start: int, arg_end: int, env_start: int,
                 env_end: int, execfn_addr: int, random_addr: int, platform_addr: int,
                 auxv: tuple):
        init = object.__setattr__
        init(self, "sp", sp)
        init(self, "data", data)
        init(self, "arg_start", arg_start)
        init(self, "arg_end", arg_end)
        init(self, "env_start", env_start)
        init(self, "env_end", env_end)
        init(self, "execfn_addr", execfn_addr)
        init(self, "random_addr", random_addr)
        init(self, "platform_addr", platform_addr)  # 0 when no platform string was written
        init(self, "auxv", auxv)    # the (type, value) pairs written, ending with (AT_NULL, 0)

    def __iter__(self):
        return iter((self.sp, self.data))


def _check_strings(strings: Iterable[bytes], what: str) -> list[bytes]:
    out = []
    for s in strings:
        s = bytes(s)
        if b"\0" in s:
            raise ValueError(f"{what} string contains NUL")
        if len(s) + 1 > MAX_ARG_STRLEN:
            raise SysError(errno.E2BIG, f"{what} string longer than MAX_ARG_STRLEN")
        out.append(s)
    return out


def build_initial_stack(stack_top: int, argv, envp, auxv, execfn: bytes, random16: bytes,
                        platform: bytes | None = b"x86_64", *,
                        arg_limit: int = DEFAULT_ARG_LIMIT) -> InitialStack:
    """Lay out argc/argv/envp/auxv and their strings below `stack_top`.

    `auxv` is a list of (type, value); values for AT_RANDOM, AT_EXECFN and AT_PLATFORM are
    filled in here (appended in Linux's order if absent; AT_PLATFORM dropped if
    `platform` is None) and AT_NULL is added. An empty argv becomes [b""], as Linux does
    since 5.18. Raises SysError(E2BIG) when a string exceeds MAX_ARG_STRLEN or strings plus
    pointers exceed `arg_limit` (see arg_limit_for_rlimit).
    """
    if stack_top % 16 or not 0 < stack_top < 1 << 64:
        raise ValueError("stack_top must be a 16-byte aligned user address")
    if len(random16) != 16:
        raise ValueError("AT_RANDOM needs exactly 16 bytes")
    argv = _check_strings(argv, "argv") or [b""]
    envp = _check_strings(envp, "envp")
    (execfn,) = _check_strings([execfn], "execfn")
    if len(argv) + len(envp) > MAX_ARG_STRINGS:
        raise SysError(errno.E2BIG, "too many arguments")

    strings_size = sum(len(s) + 1 for s in argv + envp + [execfn])
    pointers_size = (len(argv) + len(envp)) * WORD
    if pointers_size >= arg_limit or strings_size > arg_limit - pointers_size:
        raise SysError(errno.E2BIG, "argument list too long")

    # Strings, top down: the first word stays zero, then execfn, then envp and argv with
    # argv[0] lowest (Linux copies each vector last-to-first, moving down).
    execfn_addr = stack_top - WORD - (len(execfn) + 1)
    blob = b"".join(s + b"\0" for s in argv + envp)
    arg_start = execfn_addr - len(blob)
    argv_addrs, envp_addrs = [], []
    p = arg_start
    for s in argv:
        argv_addrs.append(p)
        p += len(s) + 1
    arg_end = env_start = p
    for s in envp:
        envp_addrs.append(p)
        p += len(s) + 1
    env_end = p
    assert env_end == execfn_addr

    p = arg_start & ~15
    platform_addr = 0
    if platform:
        platform = bytes(platform)
        if b"\0" in platform:
            raise ValueError("platform string contains NUL")
        p -= len(platform) + 1
        platform_addr = p
    p -= 16
    random_addr = p

    final_auxv = _complete_auxv(auxv, random_addr, execfn_addr, platform_addr)
    aux_words = 2 * len(final_auxv)
    items = (len(argv) + 1) + (len(envp) + 1) + 1     # argc, argv+NULL, envp+NULL
    sp = (p - (aux_words + items) * WORD) & ~15
    if sp <= 0:
        raise SysError(errno.E2BIG, "initial stack does not fit below stack_top")

    words = [len(argv), *argv_addrs, 0, *envp_addrs, 0]
    for key, value in final_auxv:
        words += (key, value)
    out = bytearray(stack_top - sp)

    def put(addr: int, data: bytes) -> None:
        out[addr - sp:addr - sp + len(data)] = data

    put(sp, struct.pack(f"<{len(words)}Q", *words))
    put(random_addr, bytes(random16))
    if platform_addr:
        put(platform_addr, platform + b"\0")
    put(arg_start, blob)
    put(execfn_addr, execfn + b"\0")
    return InitialStack(sp=sp, data=bytes(out), arg_start=arg_start, arg_end=arg_end,
                        env_start=env_start, env_end=env_end, execfn_addr=execfn_addr,
                        random_addr=random_addr, platform_addr=platform_addr,
                        auxv=tuple(final_auxv))


def _complete_auxv(auxv, random_addr: int, execfn_addr: int,
                   platform_addr: int) -> list[tuple[int, int]]:
    ours = {AT_RANDOM: random_addr, AT_EXECFN: execfn_addr, AT_PLATFORM: platform_addr}
    pairs = [(int(k), int(v)) for k, v in auxv]
    for i, (key, _) in enumerate(pairs):
        if key == AT_NULL and i != len(pairs) - 1:
            raise ValueError("AT_NULL before the end of auxv")
    pairs = [(k, v) for k, v in pairs if k != AT_NULL]
    for key, value in pairs:
        if not (0 <= key < 1 << 64 and 0 <= value < 1 << 64):
            raise ValueError("auxv entry out of range")
    present = {k for k, _ in pairs}
    for key in (AT_RANDOM, AT_EXECFN, AT_PLATFORM):   # Linux's relative order
        if key not in present:
            pairs.append((key, 0))
    if not platform_addr:
        pairs = [(k, v) for k, v in pairs if k != AT_PLATFORM]
    pairs = [(k, ours.get(k, v)) for k, v in pairs]
    pairs.append((AT_NULL, 0))
    return pairs
