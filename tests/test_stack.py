"""build_initial_stack against the stack native Linux gives a static program.

The oracle is a static C program that dumps its own initial stack, from the rsp the kernel
started it with (argv - 8) up to the top of the stack mapping, plus what getauxval()
reports. Run under `setarch -R` (no address randomization) Linux's layout is fully
deterministic, so our bytes must equal the native ones exactly.
"""
import errno
import shutil
import struct
import subprocess

import pytest

from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.mm import stack as st
from pysentry.sentry.mm.stack import build_initial_stack

DUMPER_C = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>
int main(int argc, char **argv, char **envp) {
    if (argc == 2 && strcmp(argv[1], "--empty-argv") == 0) {
        char *none[] = {NULL};
        execve(argv[0], none, envp);
        return 99;
    }
    uintptr_t sp = (uintptr_t)argv - 8;
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    uintptr_t top = (uintptr_t)execfn + strlen(execfn) + 1 + 8;
    printf("sp %lx\ntop %lx\nargc %d\n", sp, top, argc);
    for (int i = 0; i < argc; i++) printf("argv %lx\n", (uintptr_t)argv[i]);
    for (char **e = envp; *e; e++) printf("envp %lx\n", (uintptr_t)*e);
    printf("random %lx\nexecfn %lx\nplatform %lx\npagesz %lx\nentry %lx\n",
           getauxval(AT_RANDOM), getauxval(AT_EXECFN), getauxval(AT_PLATFORM),
           getauxval(AT_PAGESZ), getauxval(AT_ENTRY));
    printf("mem ");
    for (uintptr_t p = sp; p < top; p++) printf("%02x", *(unsigned char *)p);
    printf("\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def dumper(tmp_path_factory):
    if shutil.which("gcc") is None or shutil.which("setarch") is None:
        pytest.skip("needs gcc and setarch to build and run the native oracle")
    d = tmp_path_factory.mktemp("stack")
    (d / "dump.c").write_text(DUMPER_C)
    exe = d / "dump"
    subprocess.run(["gcc", "-O1", "-static", "-o", str(exe), str(d / "dump.c")], check=True)
    return str(exe)


def run_native(exe, argv_tail, env):
    """Run the dumper with ASLR off; returns what it printed, parsed."""
    out = subprocess.run(["setarch", "-R", exe, *argv_tail], env=env, check=True,
                         capture_output=True).stdout.decode()
    info = {"argv": [], "envp": []}
    for line in out.splitlines():
        key, value = line.split(" ", 1)
        if key in ("argv", "envp"):
            info[key].append(int(value, 16))
        elif key == "mem":
            info["mem"] = bytes.fromhex(value)
        else:
            info[key] = int(value, 16)
    return info


def decode_stack(sp, data, top):
    """Our own reader of an initial stack: argc, argv, envp and auxv, following pointers
    and checking each lands inside the region."""
    words = lambda i: struct.unpack_from("<Q", data, i * 8)[0]   # noqa: E731

    def string_at(addr):
        assert sp <= addr < top, f"pointer {addr:#x} outside the stack region"
        off = addr - sp
        return data[off:data.index(b"\0", off)]

    argc = words(0)
    argv = [words(1 + i) for i in range(argc)]
    assert words(1 + argc) == 0
    i = 2 + argc
    envp = []
    while words(i):
        envp.append(words(i))
        i += 1
    i += 1
    auxv = []
    while True:
        key, value = words(i), words(i + 1)
        auxv.append((key, value))
        i += 2
        if key == st.AT_NULL:
            break
    return {"argc": argc, "argv_ptrs": argv, "envp_ptrs": envp, "auxv": auxv,
            "argv": [string_at(p) for p in argv], "envp": [string_at(p) for p in envp],
            "string_at": string_at, "table_end": sp + 8 * i}


CASES = [
    # (argv after argv[0], environment): varied counts change the alignment padding.
    ([], {}),
    (["x"], {"A": "1"}),
    (["x", "yy"], {"A": "1", "BB": "22"}),
    (["", "with space", "tab\there", "ünï"], {"EMPTY": "", "LONG": "v" * 3000}),
    (["a"] * 7, {f"K{i}": "z" * i for i in range(5)}),
]


@pytest.mark.parametrize("tail,env", CASES)
def test_layout_is_byte_identical_to_native(dumper, tail, env):
    native = run_native(dumper, tail, env)
    top, mem = native["top"], native["mem"]
    seen = decode_stack(native["sp"], mem, top)
    assert seen["argv"] == [dumper.encode()] + [t.encode() for t in tail]
    assert seen["envp"] == [f"{k}={v}".encode() for k, v in env.items()]
    off = native["random"] - native["sp"]
    random16 = mem[off:off + 16]
    platform = seen["string_at"](native["platform"])
    execfn = seen["string_at"](native["execfn"])
    assert platform == b"x86_64"
    # Give the native auxv back with our three pointers zeroed: we must fill them in.
    auxv = [(k, 0 if k in (st.AT_RANDOM, st.AT_EXECFN, st.AT_PLATFORM) else v)
            for k, v in seen["auxv"]]

    ours = build_initial_stack(top, seen["argv"], seen["envp"], auxv, execfn, random16,
                               platform)
    assert ours.sp == native["sp"]
    assert ours.data == mem
    assert ours.sp % 16 == 0
    assert ours.random_addr == native["random"]
    assert ours.execfn_addr == native["execfn"]
    assert ours.platform_addr == native["platform"]
    assert ours.auxv == tuple(seen["auxv"])
    assert ours.arg_start == native["argv"][0]
    assert ours.env_start == (native["envp"][0] if env else ours.arg_end)


def test_empty_argv_gets_an_empty_argv0_like_linux(dumper):
    native = run_native(dumper, ["--empty-argv"], {"A": "1"})
    seen = decode_stack(native["sp"], native["mem"], native["top"])
    assert seen["argv"] == [b""]
    off = native["random"] - native["sp"]
    ours = build_initial_stack(native["top"], [], seen["envp"], seen["auxv"],
                               seen["string_at"](native["execfn"]),
                               native["mem"][off:off + 16])
    assert ours.data == native["mem"] and ours.sp == native["sp"]


def test_decoded_structure_of_our_own_stack():
    top = 0x7FFFFFFFF000
    argv = [b"/bin/prog", b"-v", b""]
    envp = [b"HOME=/root", b"PATH=/bin"]
    auxv = [(st.AT_PAGESZ, 4096), (st.AT_ENTRY, 0x401000), (st.AT_NULL, 0)]
    ours = build_initial_stack(top, argv, envp, auxv, b"/bin/prog", bytes(range(16)))
    sp, data = ours           # unpacks as (sp, data, ...) per the brief
    assert (sp, data) == (ours.sp, ours.data)
    assert sp % 16 == 0 and sp + len(data) == top
    seen = decode_stack(sp, data, top)
    assert seen["argv"] == argv and seen["envp"] == envp
    aux = dict(seen["auxv"])
    assert aux[st.AT_PAGESZ] == 4096 and aux[st.AT_ENTRY] == 0x401000
    assert seen["string_at"](aux[st.AT_EXECFN]) == b"/bin/prog"
    assert seen["string_at"](aux[st.AT_PLATFORM]) == b"x86_64"
    r = aux[st.AT_RANDOM] - sp
    assert data[r:r + 16] == bytes(range(16))
    # Linux's auxv order: the caller's entries, then AT_RANDOM, AT_EXECFN, AT_PLATFORM.
    assert [k for k, _ in seen["auxv"]] == [st.AT_PAGESZ, st.AT_ENTRY, st.AT_RANDOM,
                                            st.AT_EXECFN, st.AT_PLATFORM, st.AT_NULL]
    # Strings ascend argv[0]..envp[-1], then execfn, then the 8 zero bytes at the top.
    ptrs = seen["argv_ptrs"] + seen["envp_ptrs"] + [aux[st.AT_EXECFN]]
    assert ptrs == sorted(ptrs)
    assert data[-8:] == bytes(8) and data[-18:-8] == b"/bin/prog\0"
    assert (ours.arg_start, ours.arg_end) == (seen["argv_ptrs"][0], seen["envp_ptrs"][0])
    assert ours.env_end == aux[st.AT_EXECFN]
    assert seen["table_end"] <= aux[st.AT_RANDOM]


def test_no_platform_drops_at_platform():
    ours = build_initial_stack(0x7FFFFFFFF000, [b"a"], [], [(st.AT_PLATFORM, 5)], b"a",
                               bytes(16), platform=None)
    assert ours.platform_addr == 0
    assert st.AT_PLATFORM not in dict(ours.auxv)


def test_argument_limits():
    top = 0x7FFFFFFFF000
    with pytest.raises(SysError) as e:
        build_initial_stack(top, [b"x" * st.MAX_ARG_STRLEN], [], [], b"x", bytes(16))
    assert e.value.errno == errno.E2BIG
    # Exactly at the limit is fine; one byte more is E2BIG (strings + pointers).
    argv = [b"a" * 99]                             # 100 bytes with NUL
    execfn = b"/p"                                 # 3 bytes
    limit = 100 + 3 + 8
    build_initial_stack(top, argv, [], [], execfn, bytes(16), arg_limit=limit)
    with pytest.raises(SysError) as e:
        build_initial_stack(top, argv, [], [], execfn, bytes(16), arg_limit=limit - 1)
    assert e.value.errno == errno.E2BIG
    assert st.arg_limit_for_rlimit(8 << 20) == 2 << 20
    assert st.arg_limit_for_rlimit(64 << 20) == 6 << 20
    assert st.arg_limit_for_rlimit(64 << 10) == 128 << 10


def test_native_e2big_boundary_matches_arg_limit(dumper):
    """Linux's own execve limit under an 8 MiB stack rlimit is arg_limit_for_rlimit's:
    environment strings sized to fill it exactly are accepted, one more byte is E2BIG."""
    limit = st.arg_limit_for_rlimit(8 << 20)
    exe = dumper.encode()
    budget = limit - 2 * (len(exe) + 1) - 8     # argv[0] and execfn strings, argv[0] ptr
    sizes = []                                  # each env string costs len + NUL + ptr
    while budget >= st.MAX_ARG_STRLEN + 8:
        sizes.append(st.MAX_ARG_STRLEN - 1)
        budget -= st.MAX_ARG_STRLEN + 8
    sizes.append(budget - 9)
    env_ok = {f"V{i}": "x" * (n - len(f"V{i}=")) for i, n in enumerate(sizes)}

    def envp(env):
        return [f"{k}={v}".encode() for k, v in env.items()]

    def native(env):
        def limit_stack():
            import resource
            resource.setrlimit(resource.RLIMIT_STACK, (8 << 20, 8 << 20))
        try:
            subprocess.run([dumper], env=env, capture_output=True, check=True,
                           preexec_fn=limit_stack)
            return 0
        except OSError as e:
            return e.errno

    env_bad = dict(env_ok)
    env_bad[f"V{len(sizes) - 1}"] += "x"
    assert native(env_ok) == 0
    assert native(env_bad) == errno.E2BIG
    build_initial_stack(0x7FFFFFFFF000, [exe], envp(env_ok), [], exe, bytes(16),
                        arg_limit=limit)
    with pytest.raises(SysError) as e:
        build_initial_stack(0x7FFFFFFFF000, [exe], envp(env_bad), [], exe, bytes(16),
                            arg_limit=limit)
    assert e.value.errno == errno.E2BIG


def test_rejects_caller_mistakes():
    top = 0x7FFFFFFFF000
    with pytest.raises(ValueError):
        build_initial_stack(top + 8, [b"a"], [], [], b"a", bytes(16))
    with pytest.raises(ValueError):
        build_initial_stack(top, [b"a\0b"], [], [], b"a", bytes(16))
    with pytest.raises(ValueError):
        build_initial_stack(top, [b"a"], [], [], b"a", bytes(15))
    with pytest.raises(ValueError):
        build_initial_stack(top, [b"a"], [], [(st.AT_NULL, 0), (st.AT_PAGESZ, 1)], b"a",
                            bytes(16))
