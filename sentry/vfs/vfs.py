"""The virtual filesystem: one name space of mounts, and the path syscalls over it.

Every method takes a PathContext (root, cwd, creds, umask) and raises SysError on
failure. `dir` is the Location a relative path starts from (None = ctx.cwd, AT_FDCWD);
an empty path is ENOENT (AT_EMPTY_PATH is the syscall layer's business).

The checks and their order follow fs/namei.c, so that a program sees the errno Linux
would give when several things are wrong at once; tests/test_vfs_oracle.py compares the
errnos with the host kernel on a real directory.

Known deviations (documented, not bugs to trip over):
  - fs.protected_symlinks / protected_regular / protected_fifos are not enforced;
    fs.protected_hardlinks is.
  - RENAME_WHITEOUT is EINVAL.
  - No POSIX ACLs: system.* xattrs are EOPNOTSUPP.
  - A write by an unprivileged task does not clear suid/sgid (truncate and chown do).
"""
from __future__ import annotations

import errno
import os
import stat as _st
import weakref

from ..kernel.caps import CAP_FSETID, CAP_MKNOD, CAP_SYS_ADMIN
from ..kernel.errors import SysError
from ..mm import filemap
from . import attrs, perm
from .context import Creds, PathContext
from .dentry import Dentry
from .devices import CharDevices, default_chardevs
from .file import O_LARGEFILE, PathFile
from .inode import RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT
from .mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, Location, Mount
from .pipe import FifoTable
from .stat import ST_NODEV, ST_NOEXEC, ST_NOSUID, ST_RDONLY, ST_RELATIME, StatFS
from .walk import DOTS, NAME_MAX, PATH_MAX, RestrictedWalk, Walk

O_CREAT = os.O_CREAT
O_EXCL = os.O_EXCL
O_TRUNC = os.O_TRUNC
O_DIRECTORY = os.O_DIRECTORY
O_NOFOLLOW = os.O_NOFOLLOW
O_PATH = os.O_PATH
O_TMPFILE = os.O_TMPFILE
O_ACCMODE = 3
O_NOATIME = 0o1000000

AT_SYMLINK_NOFOLLOW = 0x100
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000

F_OK, X_OK, W_OK, R_OK = 0, 1, 2, 4

XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536


def _check_not_running(ctx, inode) -> None:
    """ETXTBSY for write access to the program of a live process: the host's Linux keeps
    write access to every mm's exe_file denied (6.x once allowed it; this host does not).
    Only a file that was executed can be one, so other files cost one attribute test."""
    if not inode.executed or ctx.task is None:
        return
    for t in ctx.task.kernel.tasks.values():
        exe = t.mm.exe_location if t.mm is not None else None
        if exe is not None and exe.dentry.inode is inode:
            raise SysError(errno.ETXTBSY)


_ACC_WANT = {0: perm.MAY_READ, 1: perm.MAY_WRITE, 2: perm.MAY_READ | perm.MAY_WRITE,
             3: perm.MAY_READ | perm.MAY_WRITE}


class VirtualFS:
    def __init__(self, root_fs, source: str = "none", flags: int = 0,
                 chardevs: CharDevices | None = None):
        self.chardevs = chardevs if chardevs is not None else default_chardevs()
        self.fifos = FifoTable()
        root_mount = Mount(root_fs, Dentry(b"/", None, root_fs.root()), None, None,
                           flags, source)
        self.root = Location(root_mount, root_mount.root)
        self._mounted: dict[tuple, Mount] = {}      # (mount, dentry) -> mount on top
        self._mountpoints: dict[Dentry, int] = {}   # dentry -> how many mounts sit on it
        self._mount_list: list[Mount] = [root_mount]
        self._sockets = weakref.WeakKeyDictionary()  # socket inode -> bound endpoint

    def root_context(self, creds: Creds | None = None) -> PathContext:
        return PathContext(root=self.root, cwd=self.root, creds=creds or Creds())

    # == dentries and mounts ===============================================================
    def lookup_dentry(self, loc: Location, name: bytes) -> Dentry:
        """The dentry of `name` in directory `loc` (mounts not crossed). ENOENT if none."""
        if len(name) > NAME_MAX:
            raise SysError(errno.ENAMETOOLONG)
        parent = loc.dentry
        if parent.dead:
            raise SysError(errno.ENOENT)
        cached = parent.children.get(name)
        if cached is not None:
            if not parent.inode.fs.revalidate or parent.inode.revalidate_child(name, cached.inode):
                return cached
            cached.detach(dead=False)
        return parent.child(name, parent.inode.lookup(name))

    def _try_lookup(self, loc: Location, name: bytes) -> Dentry | None:
        try:
            return self.lookup_dentry(loc, name)
        except SysError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def cross_down(self, loc: Location) -> Location:
        m = self._mounted.get((loc.mount, loc.dentry))
        while m is not None:
            loc = Location(m, m.root)
            m = self._mounted.get((loc.mount, loc.dentry))
        return loc

    def is_mountpoint(self, dentry: Dentry) -> bool:
        return dentry in self._mountpoints

    def mount(self, fs, at: bytes, flags: int = 0, source: str | None = None) -> Mount:
        """Mount `fs` on the directory `at` (resolved from the name space root as root)."""
        return self._attach(fs, fs.root(), None, at, flags, source or fs.fstype)

    def bind_mount(self, src: Location, at: bytes, flags: int = 0) -> Mount:
        """Make the subtree at `src` visible at `at` too (mount --bind)."""
        return self._attach(src.mount.fs, None, src.dentry, at, flags, src.mount.source)

    def _attach(self, fs, root_inode, root_dentry, at, flags, source) -> Mount:
        loc = Walk(self, self.root_context()).resolve(None, at)
        if not loc.dentry.inode.is_dir() and root_dentry is None:
            raise SysError(errno.ENOTDIR)
        if root_dentry is None:
            root_dentry = Dentry(b"/", None, root_inode)
        m = Mount(fs, root_dentry, loc.mount, loc.dentry, flags, source)
        self._mounted[(loc.mount, loc.dentry)] = m
        self._mountpoints[loc.dentry] = self._mountpoints.get(loc.dentry, 0) + 1
        self._mount_list.append(m)
        return m

    def umount(self, at: bytes, ctx: PathContext | None = None) -> None:
        loc = Walk(self, ctx or self.root_context()).resolve(None, at)
        m = loc.mount
        if loc.dentry is not m.root or m.parent is None:
            raise SysError(errno.EINVAL)
        if any(other.parent is m for other in self._mount_list):
            raise SysError(errno.EBUSY)
        del self._mounted[(m.parent, m.mountpoint)]
        n = self._mountpoints[m.mountpoint] - 1
        if n:
            self._mountpoints[m.mountpoint] = n
        else:
            del self._mountpoints[m.mountpoint]
        self._mount_list.remove(m)
        if not any(other.fs is m.fs for other in self._mount_list):
            m.fs.release()

    def mounts(self, root: Location | None = None) -> list:
        """(source, path, fstype, options) of every visible mount, in mount order, as
        /proc/mounts lists them; paths relative to `root`, mounts outside it hidden."""
        root = root or self.root
        out = []
        for m in self._mount_list:
            here = Location(m, m.root)
            if here.is_under(root):
                out.append((m.source, here.path_from(root), m.fs.fstype, m.options()))
        return out

    # == lookups ===========================================================================
    def resolve(self, ctx: PathContext, dir: Location | None, path: bytes,
                follow: bool = True) -> Location:
        return Walk(self, ctx).resolve(dir, path, follow)

    def resolve_dir(self, ctx: PathContext, dir: Location | None, path: bytes) -> Location:
        """chdir/chroot: a directory the caller may search."""
        loc = self.resolve(ctx, dir, path)
        if not loc.dentry.inode.is_dir():
            raise SysError(errno.ENOTDIR)
        perm.check(ctx.creds, loc.dentry.inode, perm.MAY_EXEC)
        return loc

    def stat(self, ctx, dir, path, follow: bool = True):
        loc = self.resolve(ctx, dir, path, follow)
        st = loc.dentry.inode.stat()
        st.mnt_id = loc.mount.id
        return st

    def readlink(self, ctx, dir, path) -> bytes:
        loc = self.resolve(ctx, dir, path, follow=False)
        inode = loc.dentry.inode
        if not _st.S_ISLNK(inode.mode):
            raise SysError(errno.EINVAL)
        return inode.readlink(ctx) if hasattr(inode, "follow_link") else inode.readlink()

    def getcwd(self, ctx) -> bytes:
        cwd = ctx.cwd
        if cwd.dentry.dead:
            raise SysError(errno.ENOENT)
        names, reached = cwd.walk_up(ctx.root)
        path = b"/" + b"/".join(reversed(names))
        return path if reached else b"(unreachable)" + path

    def access(self, ctx, dir, path, mode: int, flags: int = 0) -> None:
        if mode & ~(R_OK | W_OK | X_OK):
            raise SysError(errno.EINVAL)
        if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise SysError(errno.EINVAL)
        if not flags & AT_EACCESS:
            # The real ids, with the capabilities Linux gives that check (do_faccessat):
            # a real root's permitted set, nothing for anyone else.
            c = ctx.creds
            caps = None
            if ctx.task is not None:
                from ..kernel.caps import of as caps_of
                caps = caps_of(ctx.task).permitted if c.uid == 0 else 0
            ctx = PathContext(ctx.root, ctx.cwd, Creds(c.uid, c.gid, c.euid, c.egid, c.uid,
                                                       c.gid, c.groups, caps),
                              ctx.umask, ctx.task)
        if not path and flags & AT_EMPTY_PATH:
            loc = dir if dir is not None else ctx.cwd
        else:
            loc = self.resolve(ctx, dir, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
        if mode == F_OK:
            return
        inode = loc.dentry.inode
        want = ((perm.MAY_READ if mode & R_OK else 0) | (perm.MAY_WRITE if mode & W_OK else 0)
                | (perm.MAY_EXEC if mode & X_OK else 0))
        if want & perm.MAY_WRITE and _writable_type(inode) and self._readonly(loc):
            raise SysError(errno.EROFS)
        perm.check(ctx.creds, inode, want)
        if want & perm.MAY_EXEC and _st.S_ISREG(inode.mode) and loc.mount.flags & MS_NOEXEC:
            raise SysError(errno.EACCES)

    def statfs(self, ctx, dir, path) -> StatFS:
        loc = self.resolve(ctx, dir, path)
        return self.statfs_at(loc)

    def statfs_at(self, loc: Location) -> StatFS:
        sf = loc.mount.fs.statfs()
        flags = ST_RELATIME
        for ms, st in ((MS_RDONLY, ST_RDONLY), (MS_NOSUID, ST_NOSUID), (MS_NODEV, ST_NODEV),
                       (MS_NOEXEC, ST_NOEXEC)):
            if loc.mount.flags & ms:
                flags |= st
        if loc.mount.fs.readonly:
            flags |= ST_RDONLY
        sf.flags |= flags
        if sf.fsid == (0, 0):
            sf.fsid = (sf.dev & 0xffffffff, sf.dev >> 32)
        return sf

    @staticmethod
    def _readonly(loc: Location) -> bool:
        return loc.mount.readonly

    # == open ==============================================================================
    def openat(self, ctx, dir, path: bytes, flags: int, mode: int = 0, resolve: int = 0):
        """open(2) of `path`; `resolve` holds openat2's RESOLVE_* restrictions (walk.py)."""
        if flags & (O_DIRECTORY | O_CREAT) == O_DIRECTORY | O_CREAT:
            raise SysError(errno.EINVAL)    # Linux 6.4 on; this covers O_TMPFILE|O_CREAT
        w = RestrictedWalk(self, ctx, dir, resolve) if resolve else Walk(self, ctx)
        if flags & O_TMPFILE == O_TMPFILE:
            return self._open_tmpfile(ctx, w, dir, path, flags, mode)
        if flags & O_PATH:
            loc = w.resolve(dir, path, follow=not flags & O_NOFOLLOW)
            if flags & O_DIRECTORY and not loc.dentry.inode.is_dir():
                raise SysError(errno.ENOTDIR)
            return PathFile(loc, flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW))
        created = False
        if flags & O_CREAT:
            parent, last, trailing = w.parent_of(dir, path)
            while True:
                if last is None or last in DOTS or trailing:
                    raise SysError(errno.EISDIR)
                d = self._try_lookup(parent, last)
                if d is None:
                    loc = self._create_file(ctx, parent, last, mode)
                    created = True
                    break
                if flags & O_EXCL:
                    raise SysError(errno.EEXIST)
                loc = w.enter(parent, d)
                if not _st.S_ISLNK(loc.dentry.inode.mode):
                    break
                if flags & O_NOFOLLOW:
                    raise SysError(errno.ELOOP)
                # A symlink met with O_CREAT is followed, and its target is created
                # if missing (Linux does this for dangling links too).
                target = w.link_target(parent, loc)
                if isinstance(target, Location):    # a magic link: the very file
                    loc = target
                    break
                parent, last, trailing = w.parent_of(parent, target)
        else:
            loc = w.resolve(dir, path, follow=not flags & O_NOFOLLOW)
        return self.open_location(ctx, loc, flags, created=created)

    def open_location(self, ctx, loc: Location, flags: int, created: bool = False):
        """Open an already-resolved location (also used for /proc/PID/fd reopen)."""
        inode = loc.dentry.inode
        fmt = _st.S_IFMT(inode.mode)
        want = _ACC_WANT[flags & O_ACCMODE]
        if flags & O_TRUNC:
            want |= perm.MAY_WRITE
        if flags & O_DIRECTORY and fmt != _st.S_IFDIR:
            raise SysError(errno.ENOTDIR)
        if fmt == _st.S_IFLNK:
            raise SysError(errno.ELOOP)
        if fmt == _st.S_IFDIR and (flags & O_CREAT or want & perm.MAY_WRITE):
            raise SysError(errno.EISDIR)
        if not created:
            if want & perm.MAY_WRITE and _writable_type(inode) and self._readonly(loc):
                raise SysError(errno.EROFS)
            perm.check(ctx.creds, inode, want)
            if fmt in (_st.S_IFCHR, _st.S_IFBLK) and loc.mount.flags & MS_NODEV:
                raise SysError(errno.EACCES)
        if flags & O_NOATIME and not perm.is_owner(ctx.creds, inode):
            raise SysError(errno.EPERM)
        if fmt == _st.S_IFREG:
            if want & perm.MAY_WRITE and not created:
                _check_not_running(ctx, inode)
            if flags & O_TRUNC and not created:
                attrs.truncate(ctx.creds, loc.mount, inode, 0)
            desc = inode.open(loc, flags)
            if desc.writable:
                desc.take_write_access()
        elif fmt == _st.S_IFDIR:
            desc = inode.open(loc, flags)
        elif fmt == _st.S_IFCHR:
            desc = self.chardevs.open(inode.rdev, loc, flags & ~O_TRUNC)
        elif fmt == _st.S_IFIFO:
            desc = self.fifos.open(inode, loc, flags & ~O_TRUNC)
        else:
            raise SysError(errno.ENXIO)      # sockets, block devices
        desc.flags |= O_LARGEFILE
        return desc

    def open_for_exec(self, ctx, dir, path: bytes):
        """execve: a regular file the caller may execute, opened for reading (read
        permission is not needed to execute)."""
        return self.open_location_for_exec(ctx, self.resolve(ctx, dir, path))

    def open_location_for_exec(self, ctx, loc: Location):
        """open_for_exec of a location already found (execveat of an fd), in Linux's
        order: a symlink cannot be opened (an O_PATH|O_NOFOLLOW fd of one), then type,
        mount and permission, then deny_write_access()."""
        inode = loc.dentry.inode
        if _st.S_ISLNK(inode.mode):
            raise SysError(errno.ELOOP)
        if not _st.S_ISREG(inode.mode) or loc.mount.flags & MS_NOEXEC:
            raise SysError(errno.EACCES)
        perm.check(ctx.creds, inode, perm.MAY_EXEC)
        if inode.writers:
            filemap.drop_idle(inode)    # an idle FileMap's description may be the last
            if inode.writers:
                raise SysError(errno.ETXTBSY)
        inode.executed = True
        return inode.open(loc, os.O_RDONLY)

    def _open_tmpfile(self, ctx, w: Walk, dir, path, flags, mode):
        if flags & O_ACCMODE not in (os.O_WRONLY, os.O_RDWR):
            raise SysError(errno.EINVAL)
        loc = w.resolve(dir, path)
        if not loc.dentry.inode.is_dir():
            raise SysError(errno.ENOTDIR)
        self._check_create(ctx, loc)
        mode, uid, gid = self._new_owner(ctx, loc.dentry.inode, (mode & 0o7777) & ~ctx.umask,
                                         False)
        inode = loc.dentry.inode.new_tmpfile(_st.S_IFREG | mode, uid, gid)
        d = Dentry(b"#%d" % inode.ino, loc.dentry, inode)
        d.dead = True       # not in the name space; /proc shows "... (deleted)"
        desc = inode.open(Location(loc.mount, d), flags & ~O_TMPFILE | O_LARGEFILE)
        desc.take_write_access()
        return desc

    # == creation ==========================================================================
    def _check_create(self, ctx, parent: Location) -> None:
        if self._readonly(parent):
            raise SysError(errno.EROFS)
        if parent.dentry.dead:
            raise SysError(errno.ENOENT)
        perm.check(ctx.creds, parent.dentry.inode, perm.MAY_WRITE | perm.MAY_EXEC)

    def _new_name(self, ctx, dir, path, is_dir: bool, w: Walk | None = None):
        """filename_create(): the parent and name of an entry that must not exist yet.
        Checks existence, then the read-only mount; permission is the caller's."""
        parent, last, trailing = (w or Walk(self, ctx)).parent_of(dir, path)
        if last is None or last in DOTS:
            raise SysError(errno.EEXIST)
        if self._try_lookup(parent, last) is not None:
            raise SysError(errno.EEXIST)
        if trailing and not is_dir:
            raise SysError(errno.ENOENT)
        if self._readonly(parent):
            raise SysError(errno.EROFS)
        return parent, last

    @staticmethod
    def _new_owner(ctx, dir_inode, mode: int, is_dir: bool):
        """(mode, uid, gid) of a new file, as inode_init_owner() and mode_strip_sgid()."""
        creds = ctx.creds
        uid, gid = creds.fsuid, creds.fsgid
        if dir_inode.mode & _st.S_ISGID:
            gid = dir_inode.gid
            if is_dir:
                mode |= _st.S_ISGID
            elif (mode & (_st.S_ISGID | _st.S_IXGRP)) == (_st.S_ISGID | _st.S_IXGRP) \
                    and not creds.in_group(gid) and not creds.has_cap(CAP_FSETID):
                mode &= ~_st.S_ISGID
        return mode, uid, gid

    def _create_file(self, ctx, parent: Location, name: bytes, mode: int) -> Location:
        self._check_create(ctx, parent)
        if len(name) > NAME_MAX:
            raise SysError(errno.ENAMETOOLONG)
        mode, uid, gid = self._new_owner(ctx, parent.dentry.inode,
                                         (mode & 0o7777) & ~ctx.umask, False)
        inode = parent.dentry.inode.create(name, _st.S_IFREG | mode, uid, gid)
        return Location(parent.mount, parent.dentry.child(name, inode))

    def mkdir(self, ctx, dir, path, mode: int) -> None:
        parent, name = self._new_name(ctx, dir, path, is_dir=True)
        self._check_create(ctx, parent)
        mode, uid, gid = self._new_owner(ctx, parent.dentry.inode,
                                         mode & 0o1777 & ~ctx.umask, True)
        inode = parent.dentry.inode.mkdir(name, _st.S_IFDIR | mode, uid, gid)
        parent.dentry.child(name, inode)

    def mknod(self, ctx, dir, path, mode: int, dev: int = 0) -> None:
        fmt = _st.S_IFMT(mode) or _st.S_IFREG
        if fmt == _st.S_IFDIR:
            raise SysError(errno.EPERM)
        if fmt not in (_st.S_IFREG, _st.S_IFCHR, _st.S_IFBLK, _st.S_IFIFO, _st.S_IFSOCK):
            raise SysError(errno.EINVAL)
        parent, name = self._new_name(ctx, dir, path, is_dir=False)
        self._check_create(ctx, parent)
        if fmt in (_st.S_IFCHR, _st.S_IFBLK) and not ctx.creds.has_cap(CAP_MKNOD):
            raise SysError(errno.EPERM)
        perms, uid, gid = self._new_owner(ctx, parent.dentry.inode,
                                          mode & 0o7777 & ~ctx.umask, False)
        inode = parent.dentry.inode.mknod(name, fmt | perms, dev, uid, gid)
        parent.dentry.child(name, inode)

    def symlink(self, ctx, target: bytes, dir, path) -> None:
        if not target:
            raise SysError(errno.ENOENT)
        if len(target) >= PATH_MAX:
            raise SysError(errno.ENAMETOOLONG)
        parent, name = self._new_name(ctx, dir, path, is_dir=False)
        self._check_create(ctx, parent)
        _, uid, gid = self._new_owner(ctx, parent.dentry.inode, 0o777, False)
        inode = parent.dentry.inode.symlink(name, target, uid, gid)
        parent.dentry.child(name, inode)

    def link(self, ctx, olddir, oldpath, newdir, newpath, follow: bool = False) -> None:
        old = self.resolve(ctx, olddir, oldpath, follow)
        self.link_location(ctx, old, newdir, newpath)

    def link_location(self, ctx, old: Location, newdir, newpath) -> None:
        """linkat() once the source is resolved (also AT_EMPTY_PATH on an fd)."""
        parent, name = self._new_name(ctx, newdir, newpath, is_dir=False)
        if old.mount is not parent.mount:
            raise SysError(errno.EXDEV)
        inode = old.dentry.inode
        if not perm.may_hardlink(ctx.creds, inode):
            raise SysError(errno.EPERM)
        self._check_create(ctx, parent)
        if inode.is_dir():
            raise SysError(errno.EPERM)
        if inode.nlink == 0:
            raise SysError(errno.ENOENT)
        parent.dentry.inode.link(name, inode)
        parent.dentry.child(name, inode)

    # == removal ===========================================================================
    def _may_delete(self, ctx, parent: Location, victim: Dentry, isdir: bool) -> None:
        perm.check(ctx.creds, parent.dentry.inode, perm.MAY_WRITE | perm.MAY_EXEC)
        perm.check_sticky(ctx.creds, parent.dentry.inode, victim.inode)
        if isdir:
            if not victim.inode.is_dir():
                raise SysError(errno.ENOTDIR)
            if victim.parent is None:
                raise SysError(errno.EBUSY)
        elif victim.inode.is_dir():
            raise SysError(errno.EISDIR)
        if parent.dentry.dead:
            raise SysError(errno.ENOENT)

    def unlink(self, ctx, dir, path) -> None:
        parent, last, trailing = Walk(self, ctx).parent_of(dir, path)
        if last is None or last in DOTS:
            raise SysError(errno.EISDIR)
        if self._readonly(parent):
            raise SysError(errno.EROFS)
        victim = self.lookup_dentry(parent, last)
        if trailing:
            raise SysError(errno.EISDIR if victim.inode.is_dir() else errno.ENOTDIR)
        self._may_delete(ctx, parent, victim, isdir=False)
        if self.is_mountpoint(victim):
            raise SysError(errno.EBUSY)
        parent.dentry.inode.unlink(last, victim.inode)
        victim.detach()

    def rmdir(self, ctx, dir, path) -> None:
        parent, last, _ = Walk(self, ctx).parent_of(dir, path)
        if last is None:
            raise SysError(errno.EBUSY)
        if last == b".":
            raise SysError(errno.EINVAL)
        if last == b"..":
            raise SysError(errno.ENOTEMPTY)
        if self._readonly(parent):
            raise SysError(errno.EROFS)
        victim = self.lookup_dentry(parent, last)
        self._may_delete(ctx, parent, victim, isdir=True)
        if self.is_mountpoint(victim):
            raise SysError(errno.EBUSY)
        parent.dentry.inode.rmdir(last, victim.inode)
        victim.detach()

    def rename(self, ctx, olddir, oldpath, newdir, newpath, flags: int = 0) -> None:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
            raise SysError(errno.EINVAL)
        if flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT):
            raise SysError(errno.EINVAL)
        if flags & RENAME_WHITEOUT:
            raise SysError(errno.EINVAL)
        exchange = bool(flags & RENAME_EXCHANGE)
        w = Walk(self, ctx)
        op, olast, otrail = w.parent_of(olddir, oldpath)
        np, nlast, ntrail = w.parent_of(newdir, newpath)
        if op.mount is not np.mount:
            raise SysError(errno.EXDEV)
        if olast is None or olast in DOTS:
            raise SysError(errno.EBUSY)
        if nlast is None or nlast in DOTS:
            raise SysError(errno.EEXIST if flags & RENAME_NOREPLACE else errno.EBUSY)
        if self._readonly(op):
            raise SysError(errno.EROFS)
        od = self.lookup_dentry(op, olast)
        nd = self._try_lookup(np, nlast)
        if exchange and nd is None:
            raise SysError(errno.ENOENT)
        if flags & RENAME_NOREPLACE and nd is not None:
            raise SysError(errno.EEXIST)
        odir = od.inode.is_dir()
        if exchange and ntrail and not nd.inode.is_dir():
            raise SysError(errno.ENOTDIR)
        if not odir and (otrail or (ntrail and not exchange)):
            raise SysError(errno.ENOTDIR)
        if od.is_ancestor_of(np.dentry):
            raise SysError(errno.EINVAL)
        if nd is not None and nd.is_ancestor_of(op.dentry):
            raise SysError(errno.EINVAL if exchange else errno.ENOTEMPTY)
        if nd is not None and nd.inode is od.inode:
            return
        ndir = nd is not None and nd.inode.is_dir()
        self._may_delete(ctx, op, od, odir)
        if nd is None:
            self._check_create(ctx, np)
        else:
            self._may_delete(ctx, np, nd, ndir if exchange else odir)
        if op.dentry is not np.dentry:
            # A directory that changes parent rewrites its "..": it must be writable.
            if odir:
                perm.check(ctx.creds, od.inode, perm.MAY_WRITE)
            if exchange and ndir:
                perm.check(ctx.creds, nd.inode, perm.MAY_WRITE)
        if self.is_mountpoint(od) or (nd is not None and self.is_mountpoint(nd)):
            raise SysError(errno.EBUSY)
        op.dentry.inode.rename(olast, np.dentry.inode, nlast, flags)
        self._move_dentries(op.dentry, olast, od, np.dentry, nlast, nd, exchange)

    @staticmethod
    def _move_dentries(opd, oname, od, npd, nname, nd, exchange) -> None:
        od.detach(dead=False)
        if nd is not None:
            nd.detach(dead=not exchange)
        od.parent, od.name = npd, nname
        npd.children[nname] = od
        if exchange:
            nd.parent, nd.name = opd, oname
            opd.children[oname] = nd

    # == attributes ========================================================================
    def chmod(self, ctx, dir, path, mode: int, follow: bool = True) -> None:
        loc = self.resolve(ctx, dir, path, follow)
        if _st.S_ISLNK(loc.dentry.inode.mode):
            raise SysError(errno.EOPNOTSUPP)
        attrs.chmod(ctx.creds, loc.mount, loc.dentry.inode, mode)

    def chown(self, ctx, dir, path, uid: int, gid: int, follow: bool = True) -> None:
        loc = self.resolve(ctx, dir, path, follow)
        attrs.chown(ctx.creds, loc.mount, loc.dentry.inode, uid, gid)

    def utimens(self, ctx, dir, path, atime, mtime, follow: bool = True) -> None:
        loc = self.resolve(ctx, dir, path, follow)
        attrs.utimens(ctx.creds, loc.mount, loc.dentry.inode, atime, mtime)

    def truncate(self, ctx, dir, path, length: int) -> None:
        loc = self.resolve(ctx, dir, path)
        inode = loc.dentry.inode
        if inode.is_dir():
            raise SysError(errno.EISDIR)
        if not _st.S_ISREG(inode.mode):
            raise SysError(errno.EINVAL)
        if length < 0:
            raise SysError(errno.EINVAL)
        if self._readonly(loc):
            raise SysError(errno.EROFS)
        perm.check(ctx.creds, inode, perm.MAY_WRITE)
        _check_not_running(ctx, inode)
        attrs.truncate(ctx.creds, loc.mount, inode, length)

    # == extended attributes ===============================================================
    def _xattr_check(self, ctx, loc: Location, name: bytes, write: bool) -> None:
        if not name or len(name) > XATTR_NAME_MAX:
            raise SysError(errno.ERANGE)
        inode = loc.dentry.inode
        if name.startswith(b"trusted."):
            if not ctx.creds.has_cap(CAP_SYS_ADMIN):
                raise SysError(errno.EPERM if write else errno.ENODATA)
        elif name.startswith(b"user."):
            if not (_st.S_ISREG(inode.mode) or _st.S_ISDIR(inode.mode)):
                raise SysError(errno.EPERM if write else errno.ENODATA)
            if write and _st.S_ISDIR(inode.mode) and inode.mode & _st.S_ISVTX \
                    and not perm.is_owner(ctx.creds, inode):
                raise SysError(errno.EPERM)
        elif name.startswith(b"security."):
            if write and not ctx.creds.has_cap(CAP_SYS_ADMIN):
                raise SysError(errno.EPERM)
        else:
            raise SysError(errno.EOPNOTSUPP)
        if write and self._readonly(loc):
            raise SysError(errno.EROFS)
        if name.startswith(b"user."):
            perm.check(ctx.creds, inode, perm.MAY_WRITE if write else perm.MAY_READ)

    def getxattr_at(self, ctx, loc: Location, name: bytes) -> bytes:
        self._xattr_check(ctx, loc, name, write=False)
        return loc.dentry.inode.getxattr(name)

    def setxattr_at(self, ctx, loc: Location, name: bytes, value: bytes, flags: int = 0):
        if len(value) > XATTR_SIZE_MAX:
            raise SysError(errno.E2BIG)
        if flags & ~3:
            raise SysError(errno.EINVAL)
        self._xattr_check(ctx, loc, name, write=True)
        loc.dentry.inode.setxattr(name, value, flags)

    def listxattr_at(self, ctx, loc: Location) -> list:
        names = loc.dentry.inode.listxattr()
        if not ctx.creds.has_cap(CAP_SYS_ADMIN):
            names = [n for n in names if not n.startswith(b"trusted.")]
        return names

    def removexattr_at(self, ctx, loc: Location, name: bytes) -> None:
        self._xattr_check(ctx, loc, name, write=True)
        loc.dentry.inode.removexattr(name)

    def getxattr(self, ctx, dir, path, name, follow=True) -> bytes:
        return self.getxattr_at(ctx, self.resolve(ctx, dir, path, follow), name)

    def setxattr(self, ctx, dir, path, name, value, flags=0, follow=True) -> None:
        self.setxattr_at(ctx, self.resolve(ctx, dir, path, follow), name, value, flags)

    def listxattr(self, ctx, dir, path, follow=True) -> list:
        return self.listxattr_at(ctx, self.resolve(ctx, dir, path, follow))

    def removexattr(self, ctx, dir, path, name, follow=True) -> None:
        self.removexattr_at(ctx, self.resolve(ctx, dir, path, follow), name)

    # == unix domain socket names ==========================================================
    def bind_socket(self, ctx, dir, path: bytes, mode: int, endpoint) -> Location:
        """bind(2) of an AF_UNIX socket: a new S_IFSOCK node that names `endpoint`."""
        try:
            parent, name = self._new_name(ctx, dir, path, is_dir=False)
        except SysError as e:
            raise SysError(errno.EADDRINUSE if e.errno == errno.EEXIST else e.errno) from None
        self._check_create(ctx, parent)
        perms, uid, gid = self._new_owner(ctx, parent.dentry.inode,
                                          mode & 0o7777 & ~ctx.umask, False)
        inode = parent.dentry.inode.mknod(name, _st.S_IFSOCK | perms, 0, uid, gid)
        self._sockets[inode] = endpoint
        return Location(parent.mount, parent.dentry.child(name, inode))

    def connect_socket(self, ctx, dir, path: bytes):
        """connect(2)/sendto(2) to an AF_UNIX path: the endpoint bound there."""
        loc = self.resolve(ctx, dir, path)
        inode = loc.dentry.inode
        if not _st.S_ISSOCK(inode.mode):
            raise SysError(errno.ECONNREFUSED)
        perm.check(ctx.creds, inode, perm.MAY_WRITE)
        endpoint = self._sockets.get(inode)
        if endpoint is None:
            raise SysError(errno.ECONNREFUSED)
        return endpoint

    def unbind_socket(self, loc: Location) -> None:
        self._sockets.pop(loc.dentry.inode, None)


def _writable_type(inode) -> bool:
    """Types whose writes touch the filesystem (a device or FIFO on a read-only mount can
    still be written)."""
    return _st.S_IFMT(inode.mode) in (_st.S_IFREG, _st.S_IFDIR, _st.S_IFLNK)
