"""x86-64 signal frames and siginfo, checked against native Linux.

Oracles: glibc's ucontext_t / siginfo_t and the kernel's uapi headers (offsets printed by
a C program), frames Linux really built for a SIGSEGV (dumped by the handler of a static
C program), what Linux did with frames the handler forged before returning, and the
siginfo_t Linux delivered for kill, sigqueue, tgkill, SIGCHLD, POSIX timers and
rt_sigqueueinfo.
"""
import errno
import shutil
import struct
import subprocess

import pytest

from pysentry.sentry.kernel import sigframe as sf
from pysentry.sentry.kernel.errors import SysError

LAYOUT_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stddef.h>
#include <signal.h>
#include <ucontext.h>
#define P(name, expr) printf("%s %zu\n", name, (size_t)(expr))
#define G(reg) P(#reg, offsetof(ucontext_t, uc_mcontext.gregs[reg]))
#define S(field) P(#field, offsetof(siginfo_t, field))
void kernel_layout(void);
int main(void) {
    P("uc_flags", offsetof(ucontext_t, uc_flags));
    P("uc_link", offsetof(ucontext_t, uc_link));
    P("ss_sp", offsetof(ucontext_t, uc_stack.ss_sp));
    P("ss_flags", offsetof(ucontext_t, uc_stack.ss_flags));
    P("ss_size", offsetof(ucontext_t, uc_stack.ss_size));
    P("uc_mcontext", offsetof(ucontext_t, uc_mcontext));
    P("fpregs", offsetof(ucontext_t, uc_mcontext.fpregs));
    P("uc_sigmask", offsetof(ucontext_t, uc_sigmask));
    G(REG_R8); G(REG_R9); G(REG_R10); G(REG_R11); G(REG_R12); G(REG_R13); G(REG_R14);
    G(REG_R15); G(REG_RDI); G(REG_RSI); G(REG_RBP); G(REG_RBX); G(REG_RDX); G(REG_RAX);
    G(REG_RCX); G(REG_RSP); G(REG_RIP); G(REG_EFL); G(REG_CSGSFS); G(REG_ERR);
    G(REG_TRAPNO); G(REG_OLDMASK); G(REG_CR2);
    P("sizeof_siginfo", sizeof(siginfo_t));
    S(si_signo); S(si_errno); S(si_code); S(si_pid); S(si_uid); S(si_status);
    S(si_utime); S(si_stime); S(si_value); S(si_timerid); S(si_overrun); S(si_addr);
    S(si_addr_lsb); S(si_lower); S(si_upper); S(si_pkey); S(si_band); S(si_fd);
    S(si_call_addr); S(si_syscall); S(si_arch);
    P("fp_mxcsr", offsetof(struct _fpstate, mxcsr));
    kernel_layout();
    return 0;
}
"""

KERNEL_LAYOUT_C = r"""
#include <stdio.h>
#include <stddef.h>
#include <asm/signal.h>
#include <asm/sigcontext.h>
#include <asm/ucontext.h>
#define P(name, expr) printf("%s %zu\n", name, (size_t)(expr))
void kernel_layout(void) {
    P("k_sizeof_ucontext", sizeof(struct ucontext));
    P("k_uc_mcontext", offsetof(struct ucontext, uc_mcontext));
    P("k_uc_sigmask", offsetof(struct ucontext, uc_sigmask));
    P("k_sizeof_sigcontext", sizeof(struct sigcontext));
    P("k_sc_cs", offsetof(struct sigcontext, cs));
    P("k_sc_ss", offsetof(struct sigcontext, ss));
    P("k_sc_err", offsetof(struct sigcontext, err));
    P("k_sc_oldmask", offsetof(struct sigcontext, oldmask));
    P("k_sc_cr2", offsetof(struct sigcontext, cr2));
    P("k_sc_fpstate", offsetof(struct sigcontext, fpstate));
    P("k_sw_bytes", offsetof(struct _fpstate_64, sw_reserved));
    P("k_magic1", FP_XSTATE_MAGIC1);
    P("k_magic2", FP_XSTATE_MAGIC2);
    P("k_magic2_size", FP_XSTATE_MAGIC2_SIZE);
    P("k_uc_fp_xstate", UC_FP_XSTATE);
    P("k_uc_sigcontext_ss", UC_SIGCONTEXT_SS);
    P("k_uc_strict_restore_ss", UC_STRICT_RESTORE_SS);
}
"""

DELIVER_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ucontext.h>
#include <stdint.h>
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

extern void do_fault(void);
extern char fault_insn[], fault_resume[];
unsigned long resumed_flags, resumed_cs, resumed_ss;
__asm__(
    ".text\n.globl do_fault\ndo_fault:\n"
    " push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
    " movabs $0x0808080808080808, %r8\n movabs $0x0909090909090909, %r9\n"
    " movabs $0x1010101010101010, %r10\n movabs $0x1111111111111111, %r11\n"
    " movabs $0x1212121212121212, %r12\n movabs $0x1313131313131313, %r13\n"
    " movabs $0x1414141414141414, %r14\n movabs $0x1515151515151515, %r15\n"
    " movabs $0x0d0d0d0d0d0d0d0d, %rdi\n movabs $0x0e0e0e0e0e0e0e0e, %rsi\n"
    " movabs $0x0b0b0b0b0b0b0b0b, %rbp\n movabs $0x0c0c0c0c0c0c0c0c, %rbx\n"
    " movabs $0x0f0f0f0f0f0f0f0f, %rdx\n movabs $0x0a0a0a0a0a0a0a0a, %rax\n"
    " movabs $0x1616161616161616, %rcx\n"
    " std\n"
    ".globl fault_insn\nfault_insn:\n"
    " mov 0x1234, %rax\n"
    ".globl fault_resume\nfault_resume:\n"
    " pushfq\n pop resumed_flags(%rip)\n"
    " mov %cs, %eax\n mov %rax, resumed_cs(%rip)\n"
    " mov %ss, %eax\n mov %rax, resumed_ss(%rip)\n"
    " cld\n"
    " pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n ret\n");

static const char *mode;
static int entries;
static unsigned char frame[440], forged[440], fp[65536];
static unsigned long frame_addr, fp_addr, fp_len, handler_flags, arg_si, arg_uc;

static void hex(const char *name, const unsigned char *p, size_t n) {
    printf("%s ", name);
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

static void handler(int sig, siginfo_t *si, void *ucv) {
    unsigned long flags;
    __asm__ volatile("pushfq; pop %0" : "=r"(flags));
    ucontext_t *uc = ucv;
    if (++entries == 2) {
        printf("second_signal %d code %d\n", sig, si->si_code);
        hex("forged", forged, sizeof forged);
        fflush(stdout);
        _exit(0);
    }
    handler_flags = flags;
    arg_si = (unsigned long)si;
    arg_uc = (unsigned long)uc;
    frame_addr = (unsigned long)uc - 8;
    memcpy(frame, (void *)frame_addr, sizeof frame);
    fp_addr = (unsigned long)uc->uc_mcontext.fpregs;
    uint32_t *sw = (uint32_t *)(fp_addr + 464);
    fp_len = (sw[0] == 0x46505853) ? sw[1] : 512;   /* extended_size includes magic2 */
    memcpy(fp, (void *)fp_addr, fp_len);
    greg_t *g = uc->uc_mcontext.gregs;
    g[REG_RIP] = (greg_t)fault_resume;
    if (!strcmp(mode, "forge-cs")) g[REG_CSGSFS] = (g[REG_CSGSFS] & ~0xffffL) | 0x10;
    if (!strcmp(mode, "forge-cs32")) g[REG_CSGSFS] = (g[REG_CSGSFS] & ~0xffffL) | 0x23;
    if (!strcmp(mode, "forge-rip")) g[REG_RIP] = 0x800000000000L;
    if (!strcmp(mode, "forge-ss-strict")) g[REG_CSGSFS] &= ~(0xffffL << 48);
    if (!strcmp(mode, "forge-ss-lax")) {
        g[REG_CSGSFS] &= ~(0xffffL << 48);
        uc->uc_flags &= ~4UL;   /* UC_STRICT_RESTORE_SS */
    }
    if (!strcmp(mode, "forge-eflags"))
        g[REG_EFL] = 0x3000 | 0x4000 | 0x800 | 0x400 | 0x40 | 0x1 | 0x2;  /* IOPL3 NT OF DF ZF CF, IF clear */
    memcpy(forged, (void *)frame_addr, sizeof forged);
}

int main(int argc, char **argv) {
    static unsigned char altstack[1 << 16];
    mode = argc > 1 ? argv[1] : "frame";
    struct sigaction sa = {0};
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    if (!strcmp(mode, "altstack") || !strcmp(mode, "autodisarm")) {
        stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack,
                      .ss_flags = !strcmp(mode, "autodisarm") ? SS_AUTODISARM : 0};
        if (sigaltstack(&ss, NULL)) { perror("sigaltstack"); return 1; }
        sa.sa_flags |= SA_ONSTACK;
        printf("altstack %lx %lx %x\n", (unsigned long)altstack, (unsigned long)sizeof altstack, ss.ss_flags);
    }
    sigaction(SIGSEGV, &sa, NULL);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGRTMIN + 3);
    sigprocmask(SIG_BLOCK, &block, NULL);
    do_fault();
    printf("fault_insn %lx\nfault_resume %lx\n", (unsigned long)fault_insn, (unsigned long)fault_resume);
    printf("frame_addr %lx\nfp_addr %lx\nhandler_flags %lx\narg_si %lx\narg_uc %lx\n",
           frame_addr, fp_addr, handler_flags, arg_si, arg_uc);
    printf("resumed_flags %lx\nresumed_cs %lx\nresumed_ss %lx\n", resumed_flags, resumed_cs, resumed_ss);
    stack_t now;
    sigaltstack(NULL, &now);
    printf("altstack_after %lx %lx %x\n", (unsigned long)now.ss_sp, (unsigned long)now.ss_size, now.ss_flags);
    hex("frame", frame, sizeof frame);
    hex("forged", forged, sizeof forged);
    hex("fp", fp, fp_len);
    return 0;
}
"""

SIGINFO_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void dump(const char *name, const siginfo_t *si) {
    const unsigned char *p = (const void *)si;
    printf("%s ", name);
    for (size_t i = 0; i < sizeof *si; i++) printf("%02x", p[i]);
    printf("\n");
}

int main(void) {
    sigset_t set;
    siginfo_t si;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, NULL);
    printf("self %d %d\n", getpid(), getuid());

    kill(getpid(), SIGUSR1);
    sigwaitinfo(&set, &si); dump("kill", &si);

    union sigval v = {.sival_ptr = (void *)0x1122334455667788};
    sigqueue(getpid(), SIGUSR1, v);
    sigwaitinfo(&set, &si); dump("queue", &si);

    syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
    sigwaitinfo(&set, &si); dump("tkill", &si);

    pid_t c = fork();
    if (c == 0) _exit(7);
    sigwaitinfo(&set, &si); dump("chld_exit", &si);
    printf("child %d\n", c);
    waitpid(c, NULL, 0);

    c = fork();
    if (c == 0) { raise(SIGTERM); _exit(1); }
    sigwaitinfo(&set, &si); dump("chld_killed", &si);
    printf("child2 %d\n", c);
    waitpid(c, NULL, 0);

    timer_t t;
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN};
    sev.sigev_value.sival_int = 77;
    timer_create(CLOCK_MONOTONIC, &sev, &t);
    struct itimerspec its = {.it_value = {0, 1000}};
    timer_settime(t, 0, &its, NULL);
    sigwaitinfo(&set, &si); dump("timer", &si);

    siginfo_t q;
    unsigned char *qb = (unsigned char *)&q;
    for (size_t i = 0; i < sizeof q; i++) qb[i] = (unsigned char)(i * 3 + 1);
    q.si_signo = SIGUSR1; q.si_errno = 5; q.si_code = -3;
    dump("sent", &q);
    if (syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &q)) perror("rt_sigqueueinfo");
    sigwaitinfo(&set, &si); dump("custom", &si);

    q.si_code = 50;   /* no known layout: bytes past the kernel's 48 must be zero */
    long r = syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &q);
    printf("unknown_nonzero %ld %d\n", r, r ? errno : 0);
    memset(qb + 48, 0, sizeof q - 48);
    r = syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &q);
    printf("unknown_zero %ld\n", r);
    if (r == 0) { sigwaitinfo(&set, &si); dump("custom50", &si); }
    return 0;
}
"""


needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def compile_c(d, name, *sources, static=False):
    paths = []
    for i, src in enumerate(sources):
        p = d / f"{name}{i}.c"
        p.write_text(src)
        paths.append(str(p))
    exe = d / name
    subprocess.run(["gcc", "-O1", *(["-static"] if static else []), "-o", str(exe), *paths],
                   check=True)
    return str(exe)


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the native oracles")
    d = tmp_path_factory.mktemp("sig")
    return {"layout": compile_c(d, "layout", LAYOUT_C, KERNEL_LAYOUT_C),
            "deliver": compile_c(d, "deliver", DELIVER_C, static=True),
            "siginfo": compile_c(d, "siginfo", SIGINFO_C)}


def key_values(text):
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    return out


# --- layout: our constants against glibc's ucontext_t and the kernel's uapi headers ----

def test_layout_matches_glibc_and_kernel_headers(programs):
    got = {k: int(v) for k, v in key_values(subprocess.run(
        [programs["layout"]], check=True, capture_output=True, text=True).stdout).items()}
    mc = sf.UC_MCONTEXT
    expected = {
        "uc_flags": sf.UC_FLAGS, "uc_link": sf.UC_LINK, "ss_sp": sf.UC_STACK,
        "ss_flags": sf.UC_STACK + 8, "ss_size": sf.UC_STACK + 16, "uc_mcontext": mc,
        "fpregs": mc + sf.SC_OFFSETS["fpstate"], "uc_sigmask": sf.UC_SIGMASK,
        "REG_CSGSFS": mc + sf.SC_OFFSETS["cs"], "REG_ERR": mc + sf.SC_OFFSETS["err"],
        "REG_TRAPNO": mc + sf.SC_OFFSETS["trapno"],
        "REG_OLDMASK": mc + sf.SC_OFFSETS["oldmask"], "REG_CR2": mc + sf.SC_OFFSETS["cr2"],
        "REG_EFL": mc + sf.SC_OFFSETS["eflags"],
        "sizeof_siginfo": sf.SIGINFO_SIZE, "si_signo": 0, "si_errno": 4, "si_code": 8,
        "fp_mxcsr": sf.MXCSR_OFFSET,
        "k_sizeof_ucontext": sf.UCONTEXT_SIZE, "k_uc_mcontext": mc,
        "k_uc_sigmask": sf.UC_SIGMASK, "k_sizeof_sigcontext": sf.SIGCONTEXT_SIZE,
        "k_sc_cs": sf.SC_OFFSETS["cs"], "k_sc_ss": sf.SC_OFFSETS["ss"],
        "k_sc_err": sf.SC_OFFSETS["err"], "k_sc_oldmask": sf.SC_OFFSETS["oldmask"],
        "k_sc_cr2": sf.SC_OFFSETS["cr2"], "k_sc_fpstate": sf.SC_OFFSETS["fpstate"],
        "k_sw_bytes": sf.SW_BYTES_OFFSET, "k_magic1": sf.FP_XSTATE_MAGIC1,
        "k_magic2": sf.FP_XSTATE_MAGIC2, "k_magic2_size": sf.FP_XSTATE_MAGIC2_SIZE,
        "k_uc_fp_xstate": sf.UC_FP_XSTATE, "k_uc_sigcontext_ss": sf.UC_SIGCONTEXT_SS,
        "k_uc_strict_restore_ss": sf.UC_STRICT_RESTORE_SS,
    }
    glibc_names = {"rdi": "RDI", "rsi": "RSI", "rbp": "RBP", "rbx": "RBX", "rdx": "RDX",
                   "rax": "RAX", "rcx": "RCX", "rsp": "RSP", "rip": "RIP"}
    for reg in sf.SIGCONTEXT_GREGS[:-1]:
        expected["REG_" + glibc_names.get(reg, reg.upper())] = mc + sf.SC_OFFSETS[reg]
    # siginfo fields: glibc name -> ours (every layout's offsets are checked).
    si_names = {"si_pid": "pid", "si_uid": "uid", "si_status": "status",
                "si_utime": "utime", "si_stime": "stime", "si_value": "value",
                "si_timerid": "tid", "si_overrun": "overrun", "si_addr": "addr",
                "si_addr_lsb": "addr_lsb", "si_lower": "lower", "si_upper": "upper",
                "si_pkey": "pkey", "si_band": "band", "si_fd": "fd",
                "si_call_addr": "call_addr", "si_syscall": "syscall", "si_arch": "arch"}
    ours = {name: off for fields in sf.LAYOUTS.values() for name, _, off in fields}
    for glibc_name, name in si_names.items():
        expected[glibc_name] = ours[name]
    assert {k: got[k] for k in expected} == expected
    assert sf.FRAME_UC + sf.UC_MCONTEXT == 48 and sf.RT_SIGFRAME_SIZE == 440


# --- a natively delivered SIGSEGV ---------------------------------------------------

# Register values the oracle loads before faulting (see DELIVER_C).
FAULT_REGS = {"r8": 0x0808080808080808, "r9": 0x0909090909090909,
              "r10": 0x1010101010101010, "r11": 0x1111111111111111,
              "r12": 0x1212121212121212, "r13": 0x1313131313131313,
              "r14": 0x1414141414141414, "r15": 0x1515151515151515,
              "rdi": 0x0D0D0D0D0D0D0D0D, "rsi": 0x0E0E0E0E0E0E0E0E,
              "rbp": 0x0B0B0B0B0B0B0B0B, "rbx": 0x0C0C0C0C0C0C0C0C,
              "rdx": 0x0F0F0F0F0F0F0F0F, "rax": 0x0A0A0A0A0A0A0A0A,
              "rcx": 0x1616161616161616}
SIGUSR2, SIGRTMIN_3 = 12, 34 + 3
BLOCKED = (1 << (SIGUSR2 - 1)) | (1 << (SIGRTMIN_3 - 1))


def deliver(programs, mode):
    res = subprocess.run([programs["deliver"], mode], capture_output=True, text=True,
                         timeout=30)
    out = key_values(res.stdout)
    for k in ("frame", "forged", "fp"):
        if k in out:
            out[k] = bytes.fromhex(out[k])
    return out


def frame_regs(out):
    return sf.parse_rt_sigframe(out["frame"], current_eflags=0x202).regs


# Bytes of a native frame Linux never writes (stack garbage): uc_stack's padding and
# sigcontext's reserved words.
UNWRITTEN = [(sf.FRAME_UC + sf.UC_STACK + 12, 4),
             (sf.FRAME_UC + sf.UC_MCONTEXT + 192, 64)]


def mask_unwritten(b):
    b = bytearray(b)
    for off, n in UNWRITTEN:
        b[off:off + n] = bytes(n)
    return bytes(b)


@needs_gcc
@pytest.mark.parametrize("mode", ["frame", "altstack", "autodisarm"])
def test_rebuilt_frame_is_identical_to_native(programs, mode):
    out = deliver(programs, mode)
    frame, fp = out["frame"], out["fp"]
    frame_addr = int(out["frame_addr"], 16)
    back = sf.parse_rt_sigframe(frame)
    regs, fpstate_addr, sigmask = back              # unpacks as the brief's triple
    # What the kernel saved is what the program had at the faulting instruction.
    for name, value in FAULT_REGS.items():
        assert regs[name] == value, name
    assert regs["rip"] == int(out["fault_insn"], 16)
    assert regs["cs"] == sf.USER_CS and regs["ss"] == sf.USER_DS
    sc = sf.FRAME_UC + sf.UC_MCONTEXT
    saved_eflags = struct.unpack_from("<Q", frame, sc + sf.SC_OFFSETS["eflags"])[0]
    assert saved_eflags & sf.X86_EFLAGS_DF          # the program ran `std` before faulting
    assert sigmask == BLOCKED
    assert fpstate_addr == int(out["fp_addr"], 16)
    assert back.uc_flags == sf.UC_FP_XSTATE | sf.UC_SIGCONTEXT_SS | sf.UC_STRICT_RESTORE_SS
    err, trapno, oldmask, cr2 = struct.unpack_from("<4Q", frame, sc + sf.SC_OFFSETS["err"])
    assert (trapno, cr2, oldmask) == (14, 0x1234, BLOCKED)   # #PF at the address read
    siginfo = frame[sf.FRAME_INFO:]
    assert siginfo == sf.pack_siginfo(sf.SIGSEGV, sf.SEGV_MAPERR, addr=0x1234)

    altstack = None
    if "altstack" in out:
        ss_sp, ss_size, ss_flags = (int(x, 16) for x in out["altstack"].split())
        altstack = (ss_sp, ss_flags, ss_size)
        assert back.altstack == (ss_sp, sf._s32(ss_flags), ss_size)
        assert ss_sp < frame_addr < ss_sp + ss_size
    # Rebuild from the saved state: same address, same bytes.
    xstate_size = struct.unpack_from("<I", fp, sf.SW_BYTES_OFFSET + 16)[0]
    xfeatures = struct.unpack_from("<Q", fp, sf.SW_BYTES_OFFSET + 8)[0]
    regs_in = dict(regs, eflags=saved_eflags, err=err, trapno=trapno, cr2=cr2)
    restorer = struct.unpack_from("<Q", frame, 0)[0]
    built = sf.build_rt_sigframe(regs_in, fp[:xstate_size], siginfo, sigmask, altstack,
                                 regs["rsp"], restorer, sa_onstack=altstack is not None,
                                 handler=0x401000, xfeatures=xfeatures)
    addr, data, new_regs = built
    assert addr == frame_addr
    assert mask_unwritten(data[:sf.RT_SIGFRAME_SIZE]) == mask_unwritten(frame)
    fp_off = int(out["fp_addr"], 16) - addr
    assert data[fp_off:] == fp
    # The handler's registers as Linux set them.
    assert new_regs["rsp"] == frame_addr
    assert new_regs["rsi"] == int(out["arg_si"], 16)
    assert new_regs["rdx"] == int(out["arg_uc"], 16)
    assert new_regs["rdi"] == sf.SIGSEGV and new_regs["rip"] == 0x401000
    handler_flags = int(out["handler_flags"], 16)
    keep = sf.X86_EFLAGS_DF | sf.X86_EFLAGS_TF | sf.X86_EFLAGS_IF
    assert new_regs["eflags"] & keep == handler_flags & keep


@needs_gcc
def test_sigreturn_with_lax_ss_repairs_it_like_linux(programs):
    out = deliver(programs, "forge-ss-lax")
    assert int(out["resumed_ss"], 16) == sf.USER_DS          # native repaired ss
    back = sf.parse_rt_sigframe(out["forged"])
    assert back.regs["ss"] == sf.USER_DS
    assert back.regs["rip"] == int(out["fault_resume"], 16)


@needs_gcc
def test_sigreturn_eflags_sanitized_like_linux(programs):
    out = deliver(programs, "forge-eflags")
    back = sf.parse_rt_sigframe(out["forged"], current_eflags=0x202)
    # pushfq never shows RF; IOPL, NT and a cleared IF did not survive natively either.
    assert back.regs["eflags"] & ~sf.X86_EFLAGS_RF == int(out["resumed_flags"], 16)
    assert int(out["resumed_flags"], 16) & 0x7200 == sf.X86_EFLAGS_IF


@needs_gcc
@pytest.mark.parametrize("mode", ["forge-cs", "forge-rip", "forge-ss-strict"])
def test_forged_frames_fault_like_linux(programs, mode):
    out = deliver(programs, mode)
    # Natively the return faults and the task gets SIGSEGV from the kernel.
    assert out["second_signal"] == f"{sf.SIGSEGV} code {sf.SI_KERNEL}"
    with pytest.raises(SysError) as e:
        sf.parse_rt_sigframe(out["forged"])
    assert e.value.errno == errno.EFAULT


def frame_for(regs=None, **over):
    regs = dict(FAULT_REGS, rip=0x401000, rsp=0x7FFFFFFFE000, eflags=0x246,
                cs=sf.USER_CS, ss=sf.USER_DS, **(regs or {}))
    built = sf.build_rt_sigframe(regs, bytes(512), sf.pack_siginfo(10, sf.SI_USER, pid=1),
                                 0, None, None, 0x400500, **over)
    return built


def test_round_trip_and_forgeries():
    built = frame_for()
    back = sf.parse_rt_sigframe(built.frame_bytes[:sf.RT_SIGFRAME_SIZE])
    assert {k: back.regs[k] for k in FAULT_REGS} == FAULT_REGS
    assert back.regs["orig_rax"] == (1 << 64) - 1
    assert back.uc_flags == sf.UC_SIGCONTEXT_SS | sf.UC_STRICT_RESTORE_SS   # FXSAVE only
    assert back.altstack == (0, 0, 0)                # never configured
    assert back.fpstate % 64 == 0 and back.fpstate == built.frame_addr + \
        len(built.frame_bytes) - 512
    assert (built.frame_addr + 8) % 16 == 0
    assert built.frame_addr + len(built.frame_bytes) <= 0x7FFFFFFFE000 - sf.REDZONE

    def forged(offset, fmt, value, **kw):
        b = bytearray(built.frame_bytes[:sf.RT_SIGFRAME_SIZE])
        struct.pack_into(fmt, b, offset, value)
        return sf.parse_rt_sigframe(bytes(b), **kw)

    sc = sf.FRAME_UC + sf.UC_MCONTEXT
    for off, fmt, value in [(sc + sf.SC_OFFSETS["cs"], "<H", 0x10),
                            (sc + sf.SC_OFFSETS["cs"], "<H", 0x23),
                            (sc + sf.SC_OFFSETS["ss"], "<H", 0x18),
                            (sc + sf.SC_OFFSETS["rip"], "<Q", 0xFFFFFFFF81000000),
                            (sc + sf.SC_OFFSETS["rip"], "<Q", 1 << 47),
                            (sc + sf.SC_OFFSETS["fpstate"], "<Q", 0x7FFFFFFFE010)]:
        with pytest.raises(SysError) as e:
            forged(off, fmt, value)
        assert e.value.errno == errno.EFAULT
    # RPL is forced to 3, so a frame saying 0x30 still returns to 0x33.
    assert forged(sc + sf.SC_OFFSETS["cs"], "<H", 0x30).regs["cs"] == sf.USER_CS
    assert forged(sc + sf.SC_OFFSETS["fpstate"], "<Q", 0).fpstate == 0
    flags = forged(sc + sf.SC_OFFSETS["eflags"], "<Q", (1 << 64) - 1,
                   current_eflags=0x202).regs["eflags"]
    assert flags == 0x202 | sf.FIX_EFLAGS


def test_frame_needs_restorer_and_fitting_altstack():
    regs = dict(FAULT_REGS, rip=1, rsp=0x7FFF0000, eflags=0x202, cs=0x33, ss=0x2B)
    with pytest.raises(SysError) as e:
        sf.build_rt_sigframe(regs, bytes(512), bytes(128), 0, None, None, None)
    assert e.value.errno == errno.EFAULT
    tiny = (0x10000, 0, 1024)          # smaller than a frame with its FPU state
    with pytest.raises(SysError) as e:
        sf.build_rt_sigframe(regs, bytes(2696), bytes(128), 0, tiny, None, 0x400500,
                             sa_onstack=True)
    assert e.value.errno == errno.EFAULT
    # Without SA_ONSTACK the alternate stack is not used at all.
    built = sf.build_rt_sigframe(regs, bytes(512), bytes(128), 0, tiny, None, 0x400500)
    assert built.frame_addr > 0x7FFE0000
    # Already on the alternate stack: no switch, the frame goes below the current sp...
    alt = (0x100000, 0, 0x10000)
    nested = dict(regs, rsp=0x10C000)
    built = sf.build_rt_sigframe(nested, bytes(512), bytes(128), 0, alt, None, 0x400500,
                                 sa_onstack=True)
    assert 0x100000 < built.frame_addr < 0x10C000 - sf.REDZONE
    # ...and running off its bottom is a failed delivery, not a write below it.
    with pytest.raises(SysError) as e:
        sf.build_rt_sigframe(dict(regs, rsp=0x100400), bytes(512), bytes(128), 0, alt,
                             None, 0x400500, sa_onstack=True)
    assert e.value.errno == errno.EFAULT
    # With SS_AUTODISARM the task never counts as on the stack: it starts from the top.
    armed = (0x100000, sf.SS_AUTODISARM, 0x10000)
    built = sf.build_rt_sigframe(nested, bytes(512), bytes(128), 0, armed, None,
                                 0x400500, sa_onstack=True)
    assert built.frame_addr + len(built.frame_bytes) <= 0x110000
    assert built.frame_addr > 0x10C000


def test_fpstate_validation():
    built = frame_for()
    xsave = bytearray(2440 + 4)
    struct.pack_into("<IIQI", xsave, sf.SW_BYTES_OFFSET, sf.FP_XSTATE_MAGIC1, 2444, 0x207, 2440)
    struct.pack_into("<I", xsave, 2440, sf.FP_XSTATE_MAGIC2)
    struct.pack_into("<I", xsave, sf.MXCSR_OFFSET, 0xFFFF1F80)   # reserved bits set
    struct.pack_into("<Q", xsave, 512, 0x207)                     # XSTATE_BV
    assert sf.fpstate_read_size(bytes(xsave[:512]), 2440) == 2444
    assert sf.fpstate_read_size(bytes(xsave[:512]), 1024) == 512  # larger than the CPU's
    clean = sf.sanitize_fpstate(bytes(xsave), max_xstate_size=2440, user_xfeatures=0x207)
    assert len(clean) == 2440
    assert struct.unpack_from("<I", clean, sf.MXCSR_OFFSET)[0] == 0x1F80
    assert struct.unpack_from("<Q", clean, 512)[0] == 0x207
    with pytest.raises(SysError):   # a feature this machine does not give user space
        sf.sanitize_fpstate(bytes(xsave), max_xstate_size=2440, user_xfeatures=0x7)
    bad = bytearray(xsave)
    struct.pack_into("<Q", bad, 520, 1 << 63)                     # compacted format
    with pytest.raises(SysError):
        sf.sanitize_fpstate(bytes(bad), max_xstate_size=2440, user_xfeatures=0x207)
    no_magic2 = bytearray(xsave)
    struct.pack_into("<I", no_magic2, 2440, 0)
    assert len(sf.sanitize_fpstate(bytes(no_magic2), max_xstate_size=2440,
                                   user_xfeatures=0x207)) == 512   # falls back to FXSAVE
    assert built.frame_bytes[-512 + sf.SW_BYTES_OFFSET:] == bytes(48)


# --- siginfo -------------------------------------------------------------------------

@needs_gcc
def test_siginfo_packing_matches_native(programs):
    out = key_values(subprocess.run([programs["siginfo"]], check=True, capture_output=True,
                                    text=True, timeout=30).stdout)
    pid, uid = (int(x) for x in out["self"].split())
    native = {k: bytes.fromhex(v) for k, v in out.items()
              if k in ("kill", "queue", "tkill", "chld_exit", "chld_killed", "timer",
                       "sent", "custom", "custom50")}
    sigrtmin = 34
    assert native["kill"] == sf.pack_siginfo(10, sf.SI_USER, pid=pid, uid=uid)
    # tgkill's si_code is SI_TKILL in older kernels and SI_USER in the one this was
    # written on; the layout (pid, uid) is the same either way.
    tkill_code = sf.unpack_siginfo(native["tkill"]).code
    assert tkill_code in (sf.SI_USER, sf.SI_TKILL)
    assert native["tkill"] == sf.pack_siginfo(10, tkill_code, pid=pid, uid=uid)
    assert native["queue"] == sf.pack_siginfo(10, sf.SI_QUEUE, pid=pid, uid=uid,
                                              value=0x1122334455667788)
    chld = sf.unpack_siginfo(native["chld_exit"])
    assert (chld.signo, chld.code, chld.layout) == (sf.SIGCHLD, sf.CLD_EXITED, "chld")
    assert chld.fields["pid"] == int(out["child"]) and chld.fields["status"] == 7
    assert native["chld_exit"] == sf.pack_siginfo(sf.SIGCHLD, sf.CLD_EXITED,
                                                  **chld.fields)
    assert native["chld_killed"] == sf.pack_siginfo(
        sf.SIGCHLD, sf.CLD_KILLED, pid=int(out["child2"]), uid=uid, status=15,
        utime=sf.unpack_siginfo(native["chld_killed"]).fields["utime"],
        stime=sf.unpack_siginfo(native["chld_killed"]).fields["stime"])
    timer = sf.unpack_siginfo(native["timer"])
    assert timer.layout == "timer" and timer.fields["value"] == 77
    assert native["timer"] == sf.pack_siginfo(sigrtmin, sf.SI_TIMER, **timer.fields)
    # rt_sigqueueinfo: the receiver gets the sender's first 48 bytes verbatim, then zeros.
    sent = sf.unpack_siginfo(native["sent"])
    assert sent.to_bytes() == native["custom"]
    assert sent.errno == 5 and sent.code == sf.SI_MESGQ and sent.layout == "rt"
    assert sf.unpack_siginfo(native["custom50"]).to_bytes() == native["custom50"]


@needs_gcc
def test_unknown_layout_with_trailing_bytes_is_e2big_like_linux(programs):
    out = key_values(subprocess.run([programs["siginfo"]], check=True, capture_output=True,
                                    text=True, timeout=30).stdout)
    assert out["unknown_nonzero"] == f"-1 {errno.E2BIG}"
    sent = bytearray(bytes.fromhex(out["sent"]))
    struct.pack_into("<i", sent, 8, 50)
    with pytest.raises(SysError) as e:
        sf.unpack_siginfo(bytes(sent))
    assert e.value.errno == errno.E2BIG
    sent[48:] = bytes(80)
    assert sf.unpack_siginfo(bytes(sent)).layout == "kill"


def test_siginfo_layout_choice():
    assert sf.siginfo_layout(sf.SIGSEGV, sf.SEGV_MAPERR) == "fault"
    assert sf.siginfo_layout(sf.SIGSEGV, sf.SEGV_PKUERR) == "fault_pkuerr"
    assert sf.siginfo_layout(sf.SIGBUS, sf.BUS_MCEERR_AR) == "fault_mceerr"
    assert sf.siginfo_layout(sf.SIGSEGV, sf.SI_KERNEL) == "kill"
    assert sf.siginfo_layout(sf.SIGCHLD, sf.CLD_STOPPED) == "chld"
    assert sf.siginfo_layout(sf.SIGPOLL, 1) == "poll"
    assert sf.siginfo_layout(sf.SIGSYS, 1) == "sys"
    assert sf.siginfo_layout(10, sf.SI_SIGIO) == "poll"
    assert sf.siginfo_layout(10, sf.SI_ASYNCIO) == "rt"
    fault = sf.pack_siginfo(sf.SIGBUS, sf.BUS_MCEERR_AO, addr=0x1000, addr_lsb=12)
    assert sf.unpack_siginfo(fault).fields == {"addr": 0x1000, "addr_lsb": 12}
    sys_ = sf.pack_siginfo(sf.SIGSYS, 1, call_addr=0x401000, syscall=39, arch=0xC000003E)
    assert sf.unpack_siginfo(sys_).fields == {"call_addr": 0x401000, "syscall": 39,
                                              "arch": 0xC000003E}
    with pytest.raises(ValueError):
        sf.pack_siginfo(sf.SIGSEGV, sf.SEGV_MAPERR, status=3)
    with pytest.raises(ValueError):
        sf.pack_siginfo(10, sf.SI_USER, pid=1 << 40)
    with pytest.raises(ValueError):
        sf.unpack_siginfo(bytes(64))
