"""Capabilities: per-thread sets that capget/capset, the set*uid transitions, execve and
prctl change as Linux's commoncap.c does, and the privilege checks that ask for them.

The differential test runs tests/progs/caps.c natively (as root) and in the sandbox; the
model tests drive kernel/caps.py and the VFS permission checks directly.
"""
import errno
import os
import stat

import pytest

from conftest import PLATFORMS, compile_c, run_native, run_sandbox
from pysentry.sentry.kernel import caps as C
from pysentry.sentry.kernel.errors import SysError
from pysentry.sentry.vfs import perm
from pysentry.sentry.vfs.context import Creds

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the native run must start as "
                                                          "root to have capabilities to drop")


@needs_root
@pytest.mark.parametrize("platform", PLATFORMS)
def test_caps_program_matches_linux(platform):
    prog = compile_c("caps")
    nat = run_native([prog])
    assert nat.returncode == 0, nat.stderr
    # The program's own expectations of Linux, so a host that is not what it assumes
    # (no CAP_CHOWN to drop, say) fails here rather than comparing nothing.
    for line in (b"chown to 1000: -1 EPERM", b"read without either: -1 EACCES",
                 b"uid 1000: eff=none prm=none", b"euid 0 again: eff=all prm=all",
                 b"capset parent: -1 EPERM", b"raise permitted back: -1 EPERM",
                 b"second thread chown: 0", b"main thread chown: -1 EPERM"):
        assert line in nat.stdout, line
    box = run_sandbox([prog], f"--platform={platform}")
    assert box.stdout == nat.stdout, box.stderr[-3000:].decode(errors="replace")
    assert box.returncode == 0


ROOT = C.CapSets.for_euid(0)
CHOWN = 1 << C.CAP_CHOWN


def test_capset_refuses_gains_and_keeps_the_old_sets():
    c = ROOT.copy()
    c.capset(C.ALL_CAPS & ~CHOWN, C.ALL_CAPS & ~CHOWN, 0)
    for eff, prm in ((C.ALL_CAPS, C.ALL_CAPS & ~CHOWN),      # effective outside permitted
                     (0, C.ALL_CAPS)):                       # permitted regained
        with pytest.raises(SysError) as e:
            c.capset(eff, prm, 0)
        assert e.value.errno == errno.EPERM
    assert (c.effective, c.permitted) == (C.ALL_CAPS & ~CHOWN,) * 2


def test_inheritable_beyond_permitted_needs_setpcap_and_stays_in_bounding():
    c = C.CapSets(permitted=CHOWN, effective=CHOWN)
    with pytest.raises(SysError):
        c.capset(CHOWN, CHOWN, 1 << C.CAP_KILL)
    root = ROOT.copy()
    root.capset(root.effective, root.permitted, 1 << C.CAP_KILL)
    assert root.inheritable == 1 << C.CAP_KILL
    boot = 1 << C.CAP_SYS_BOOT
    root.bounding &= ~boot
    root.capset(root.effective & ~boot, root.permitted & ~boot, 0)
    with pytest.raises(SysError):
        root.capset(root.effective, root.permitted, 1 << C.CAP_SYS_BOOT)


def test_capset_trims_ambient_to_permitted_and_inheritable():
    c = ROOT.copy()
    c.capset(c.effective, c.permitted, CHOWN)
    c.ambient = CHOWN
    c.capset(c.effective & ~CHOWN, c.permitted & ~CHOWN, CHOWN)
    assert c.ambient == 0


@pytest.mark.parametrize("old,new,keep,eff,prm", [
    ((0, 0, 0), (1000, 1000, 1000), False, 0, 0),
    ((0, 0, 0), (1000, 1000, 1000), True, 0, C.ALL_CAPS),
    ((0, 0, 0), (1000, 1000, 0), False, 0, C.ALL_CAPS),
    ((1000, 1000, 0), (1000, 0, 0), False, C.ALL_CAPS, C.ALL_CAPS),
    ((0, 0, 0), (0, 0, 0), False, C.ALL_CAPS, C.ALL_CAPS),
])
def test_setuid_transitions(old, new, keep, eff, prm):
    c = ROOT.copy()
    c.keep_caps = keep
    if old[1] != 0:
        c.effective = 0
    c.ambient = CHOWN
    c.fix_setuid(old, new)
    assert (c.effective, c.permitted) == (eff, prm)
    assert c.ambient == (CHOWN if 0 in new else 0)


def test_fsuid_toggles_only_the_fs_capabilities():
    c = ROOT.copy()
    c.fix_setfsuid(0, 1000)
    assert c.effective == C.ALL_CAPS & ~C.FS_CAPS and c.has(C.CAP_KILL)
    c.fix_setfsuid(1000, 0)
    assert c.effective == C.ALL_CAPS


def test_exec_rules_for_root_and_others():
    root = ROOT.copy()
    root.capset(0, C.ALL_CAPS & ~CHOWN, 0)
    root.keep_caps = True
    root.on_exec(0, 0)
    assert (root.permitted, root.effective, root.keep_caps) == (C.ALL_CAPS, C.ALL_CAPS, False)
    user = C.CapSets(permitted=CHOWN | 2, effective=0, inheritable=CHOWN, ambient=CHOWN)
    user.on_exec(1000, 1000)
    assert (user.permitted, user.effective) == (CHOWN, CHOWN)
    # Real uid 0 with another euid: permitted as root's, effective only the ambient set.
    mixed = ROOT.copy()
    mixed.on_exec(0, 1000)
    assert (mixed.permitted, mixed.effective) == (C.ALL_CAPS, 0)


class _Inode:
    def __init__(self, mode, uid=2000, gid=2000):
        self.mode, self.uid, self.gid = mode, uid, gid


@pytest.mark.parametrize("drop,want,mode,ok", [
    (0, perm.MAY_READ | perm.MAY_WRITE, stat.S_IFREG | 0o600, True),
    (1 << C.CAP_DAC_OVERRIDE, perm.MAY_READ, stat.S_IFREG | 0o600, True),
    (1 << C.CAP_DAC_OVERRIDE, perm.MAY_WRITE, stat.S_IFREG | 0o600, False),
    (1 << C.CAP_DAC_READ_SEARCH, perm.MAY_READ, stat.S_IFREG | 0o600, True),
    (1 << C.CAP_DAC_OVERRIDE, perm.MAY_EXEC, stat.S_IFDIR | 0o700, True),
    (1 << C.CAP_DAC_OVERRIDE, perm.MAY_WRITE, stat.S_IFDIR | 0o700, False),
    (0, perm.MAY_EXEC, stat.S_IFREG | 0o600, False),          # no x bit: not even root
    ((1 << C.CAP_DAC_OVERRIDE) | (1 << C.CAP_DAC_READ_SEARCH), perm.MAY_READ,
     stat.S_IFREG | 0o600, False),
])
def test_permission_overrides_ask_for_the_one_capability(drop, want, mode, ok):
    creds = Creds(caps=C.ALL_CAPS & ~drop)
    assert perm.allowed(creds, _Inode(mode), want) is ok


def test_owner_checks_ask_for_cap_fowner():
    inode = _Inode(stat.S_IFREG | 0o644)
    assert perm.is_owner(Creds(caps=C.ALL_CAPS & ~CHOWN), inode)
    assert not perm.is_owner(Creds(caps=C.ALL_CAPS & ~(1 << C.CAP_FOWNER)), inode)
    # Without a thread behind them, fs uid 0 holds everything (the sentry's own walks).
    assert perm.is_owner(Creds(), inode)
    assert not perm.is_owner(Creds(*(1000,) * 6), inode)
