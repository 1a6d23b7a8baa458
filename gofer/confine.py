"""Confining the gofer process to its root before it reads a single request.

Order matters and is the reason for this module:
 1. The caller has already opened everything it needs from outside the root: the
    transport socket (or TCP listener, which stays bound in the host network namespace
    where it was created) and /proc/self/fd (hostfs.ProcFds), and has imported every
    module it will ever import (after step 3 no host library path exists).
 2. unshare mount, network, IPC and UTS namespaces, so nothing below is visible to or
    affects the host. (A rootless gofer would need a user namespace too; not done yet.)
 3. Make the mount tree private, bind the root onto itself, pivot_root into it and detach
    the old root: the host filesystem is then unreachable by any path, not merely hidden
    as with chroot. With `ro`, the new root mount is read-only as well.
 4. Drop every capability except those a file server running as root needs to act for
    its clients (chown, DAC override, fowner, fsetid), from the bounding set too, clear
    ambient capabilities, and set no_new_privs.
The caller must reopen the root ("/") afterwards: fds opened before step 3 point into the
host mount tree.
"""
import os

from . import hostcalls as hc

KEEP_CAPS = (hc.CAP_CHOWN, hc.CAP_DAC_OVERRIDE, hc.CAP_FOWNER, hc.CAP_FSETID)
NAMESPACES = hc.CLONE_NEWNS | hc.CLONE_NEWNET | hc.CLONE_NEWIPC | hc.CLONE_NEWUTS


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40


def _pivot_into(root: str, ro: bool) -> None:
    hc.mount(None, "/", None, hc.MS_REC | hc.MS_PRIVATE)
    if root == "/":
        # Serving the host root: there is nothing above it to hide, and pivot_root onto the
        # current root is EBUSY. Keep the private namespace and make the view read-only.
        if ro:
            hc.mount(None, "/", None, hc.MS_REMOUNT | hc.MS_BIND | hc.MS_RDONLY)
        os.chdir("/")
        return
    hc.mount(root, root, None, hc.MS_BIND | hc.MS_REC)
    if ro:
        hc.mount(None, root, None, hc.MS_REMOUNT | hc.MS_BIND | hc.MS_RDONLY)
    os.chdir(root)
    # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
    # the new root alone, without needing a put_old directory inside the export.
    hc.pivot_root(".", ".")
    hc.umount2(".", hc.MNT_DETACH)
    os.chdir("/")


def _drop_capabilities(keep) -> None:
    keep_mask = 0
    for cap in keep:
        keep_mask |= 1 << cap
    for cap in range(_last_cap() + 1):
        if not keep_mask & (1 << cap):
            hc.prctl(hc.PR_CAPBSET_DROP, cap)
    hc.prctl(hc.PR_CAP_AMBIENT, hc.PR_CAP_AMBIENT_CLEAR_ALL)
    effective, permitted, _ = hc.capget()
    hc.capset(effective & keep_mask, permitted & keep_mask, 0)


def confine(root: str, *, ro: bool = False, keep_caps=KEEP_CAPS) -> None:
    """Requires root (CAP_SYS_ADMIN); raises OSError(EPERM) otherwise."""
    root = os.path.realpath(root)
    hc.unshare(NAMESPACES)
    _pivot_into(root, ro)
    _drop_capabilities(keep_caps)
    hc.prctl(hc.PR_SET_NO_NEW_PRIVS, 1)
