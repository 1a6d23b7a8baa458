"""Naming host files only relative to directory fds the gofer already holds.

Invariants (the reason this module exists):
- Client-supplied names reach the host only as single path components given to an
  *at() call on a directory fd we hold; never concatenated into a host path.
- A component is never "..", never empty, never contains "/" or NUL. ".." is handled by
  the caller (see Export.parent), "." likewise.
- Lookups use O_PATH|O_NOFOLLOW: a symlink is opened as itself and never followed.
- An O_PATH fd pins its inode. Turning it into an I/O fd goes through this process's
  /proc/self/fd directory (opened before confinement), which reopens exactly that inode;
  the file type is checked first, so only regular files and directories are ever opened
  for I/O (FIFOs, sockets and devices could block the single-threaded gofer or have
  side effects on open).
"""
import errno
import os
import stat

LOOKUP_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def check_component(name: str) -> None:
    """A walk component: "." and ".." are allowed here, the caller interprets them."""
    if not name or "/" in name or "\0" in name:
        raise OSError(errno.EINVAL, f"invalid path component {name!r}")


def check_new_name(name: str) -> None:
    """A name to create, remove or rename: a plain component, not "." or ".."."""
    check_component(name)
    if name in (".", ".."):
        raise OSError(errno.EINVAL, f"invalid name {name!r}")


# Kernel pseudo-filesystems of the host are never served, even when the export contains
# their mount points (serving "/" does): they describe the host (its processes, devices,
# cgroups) and some have side effects on read. Identified by device number, learnt from
# our own mountinfo before confinement.
PSEUDO_FSTYPES = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "debugfs", "tracefs", "securityfs", "cgroup",
    "cgroup2", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "binfmt_misc",
    "efivarfs", "autofs", "rpc_pipefs", "nsfs", "selinuxfs"})
FORBIDDEN_DEVICES: set = set()


def forbid_pseudo_filesystems(mountinfo: str | None = None) -> None:
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 3 or not rest:
            continue
        if rest.split()[0] in PSEUDO_FSTYPES:
            major, _, minor = parts[2].partition(":")
            FORBIDDEN_DEVICES.add(os.makedev(int(major), int(minor)))


def _refuse_pseudo(fd: int) -> int:
    if FORBIDDEN_DEVICES and os.fstat(fd).st_dev in FORBIDDEN_DEVICES:
        os.close(fd)
        raise OSError(errno.EACCES, "host kernel filesystems are not served")
    return fd


def lookup(dirfd: int, name: str) -> int:
    """O_PATH fd of `name` inside dirfd, without following a final symlink."""
    return _refuse_pseudo(os.open(name, LOOKUP_FLAGS, dir_fd=dirfd))


def lookup_dir(dirfd: int, name: str) -> int:
    return _refuse_pseudo(os.open(name, LOOKUP_FLAGS | os.O_DIRECTORY, dir_fd=dirfd))


def require_io_type(mode: int) -> None:
    """Only regular files and directories may be opened for I/O."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    if stat.S_ISLNK(mode):
        raise OSError(errno.ELOOP, "symlinks are not opened by the gofer")
    raise OSError(errno.EPERM, "the gofer opens only regular files and directories")


class ProcFds:
    """This process's /proc/self/fd, held as a directory fd that outlives confinement."""

    def __init__(self):
        self.fd = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def reopen(self, path_fd: int, flags: int) -> int:
        """A new open file for the inode `path_fd` refers to. Caller checked its type."""
        return os.open(str(path_fd), flags | os.O_CLOEXEC, dir_fd=self.fd)

    def name_of(self, path_fd: int) -> str:
        """Name of `path_fd` relative to self.fd, for *at() calls that follow magic links."""
        return str(path_fd)
