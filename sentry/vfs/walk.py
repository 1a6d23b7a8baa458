"""Path walk: from a path to a Location, as Linux's namei does it.

One `Walk` object serves one syscall, so that the symlink budget (40 follows in total,
MAXSYMLINKS) spans every link met on the way, including links inside link bodies.

Rules reproduced from Linux:
  - a path of PATH_MAX (4096) bytes or more is ENAMETOOLONG; so is a component over
    NAME_MAX (255) bytes when it has to be looked up;
  - every directory a component is looked up in needs search (exec) permission, including
    the parent of the last component (even for "." and "..");
  - ".." never climbs above the walk's root (chroot) and climbs out of a mount to its
    mountpoint; looking a name up crosses into whatever is mounted on it;
  - a trailing slash means the last component must be a directory and makes it follow a
    symlink even when the caller asked not to follow;
  - an empty symlink body is ENOENT.

`RestrictedWalk` (below) adds openat2's RESOLVE_* restrictions by overriding the few
steps they touch (start, "..", mount crossing, link following); only openat2 builds one,
so the common walk pays nothing for them.
"""
from __future__ import annotations

import errno
import stat as _st

from ..kernel.errors import SysError
from . import perm
from .mount import Location

PATH_MAX = 4096
NAME_MAX = 255
MAXSYMLINKS = 40

DOTS = (b".", b"..")


class Walk:
    __slots__ = ("vfs", "ctx", "creds", "links")

    def __init__(self, vfs, ctx):
        self.vfs = vfs
        self.ctx = ctx
        self.creds = ctx.creds
        self.links = 0

    def start(self, dir: Location | None, path: bytes) -> Location:
        if path[:1] == b"/":
            return self.ctx.root
        return dir if dir is not None else self.ctx.cwd

    def may_lookup(self, loc: Location) -> None:
        inode = loc.dentry.inode
        if not inode.is_dir():
            raise SysError(errno.ENOTDIR)
        perm.check(self.creds, inode, perm.MAY_EXEC)

    def parent_of(self, dir: Location | None, path: bytes):
        """Walk all but the last component.

        Returns (parent, last, trailing): `last` is None when the path is only slashes
        (it names the start itself); `trailing` says the path ended with a slash. The
        parent is a directory the caller may search.
        """
        if not path:
            raise SysError(errno.ENOENT)
        if len(path) >= PATH_MAX:
            raise SysError(errno.ENAMETOOLONG)
        loc = self.start(dir, path)
        comps = [c for c in path.split(b"/") if c]
        if not comps:
            return loc, None, False
        for name in comps[:-1]:
            self.may_lookup(loc)
            child = self.child(loc, name)
            if _st.S_ISLNK(child.dentry.inode.mode):
                child = self.follow(loc, child)
            loc = child
        self.may_lookup(loc)
        return loc, comps[-1], path.endswith(b"/")

    def child(self, loc: Location, name: bytes) -> Location:
        """The location `name` names in directory `loc`, crossing mounts (no permission
        check: parent_of/may_lookup did it)."""
        if name == b".":
            return loc
        if name == b"..":
            return self.vfs.cross_down(loc.parent(self.ctx.root))
        return self.vfs.cross_down(Location(loc.mount, self.vfs.lookup_dentry(loc, name)))

    def follow(self, parent: Location, link: Location) -> Location:
        """Resolve symlink `link` found in directory `parent`, fully (follow=True)."""
        target = self.link_target(parent, link)
        if isinstance(target, Location):
            return target
        p, last, trailing = self.parent_of(parent, target)
        return self.finish(p, last, trailing, follow=True)

    def link_target(self, parent: Location, link: Location) -> "bytes | Location":
        """Count one more link followed and give its body, or the Location a magic link
        of procfs jumps to (who asks decides it)."""
        self.links += 1
        if self.links > MAXSYMLINKS:
            raise SysError(errno.ELOOP)
        inode = link.dentry.inode
        follow_link = getattr(inode, "follow_link", None)
        target = follow_link(self.ctx) if follow_link is not None else inode.readlink()
        if not target:
            raise SysError(errno.ENOENT)
        return target

    def enter(self, dir: Location, dentry) -> Location:
        """The location of `dentry`, found in `dir`, crossing whatever is mounted on it.
        (child() inlines this for speed.)"""
        return self.vfs.cross_down(Location(dir.mount, dentry))

    def finish(self, parent: Location, last: bytes | None, trailing: bool,
               follow: bool) -> Location:
        if last is None:
            return parent
        loc = self.child(parent, last)
        if _st.S_ISLNK(loc.dentry.inode.mode) and (follow or trailing):
            loc = self.follow(parent, loc)
        if trailing and not loc.dentry.inode.is_dir():
            raise SysError(errno.ENOTDIR)
        return loc

    def resolve(self, dir: Location | None, path: bytes, follow: bool = True) -> Location:
        parent, last, trailing = self.parent_of(dir, path)
        return self.finish(parent, last, trailing, follow)


# openat2's resolve flags (include/uapi/linux/openat2.h).
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20
RESOLVE_ALL = 0x3f
RESOLVE_SCOPED = RESOLVE_BENEATH | RESOLVE_IN_ROOT


class RestrictedWalk(Walk):
    """A walk under openat2's RESOLVE_* restrictions, as fs/namei.c applies its
    LOOKUP_NO_XDEV / NO_MAGICLINKS / NO_SYMLINKS / BENEATH / IN_ROOT flags.

    Only openat2 builds one, so the checks stay off the common path. What each flag does:
      - NO_SYMLINKS: following any symlink (magic ones too) is ELOOP; a trailing link
        that is not followed (O_NOFOLLOW) is fine.
      - NO_MAGICLINKS: following a procfs magic link (a jump to a Location) is ELOOP.
      - NO_XDEV: entering a mount, leaving one by "..", an absolute symlink followed
        from another mount than the root's, and a magic link to another mount are EXDEV;
        an absolute path argument is allowed (the walk has not started anywhere yet).
      - BENEATH: the starting directory is the root; an absolute path or symlink, ".."
        at that root and any magic link are EXDEV.
      - IN_ROOT: the starting directory is the root: "/" and absolute symlinks mean it,
        ".." stops at it; magic links are EXDEV.
      - CACHED needs nothing here: the sentry can always complete a walk (openat2 turns
        it away itself for O_CREAT/O_TRUNC/O_TMPFILE).
    A scoped walk (BENEATH, IN_ROOT) also checks that every directory it reaches is under
    its root, so that a bug elsewhere cannot hand out a file from outside (Linux's
    complete_walk does the same).
    """
    __slots__ = ("restrict", "root")

    def __init__(self, vfs, ctx, dir: Location | None, restrict: int):
        super().__init__(vfs, ctx)
        self.restrict = restrict
        self.root = ((dir if dir is not None else ctx.cwd) if restrict & RESOLVE_SCOPED
                     else ctx.root)

    def start(self, dir: Location | None, path: bytes) -> Location:
        if path[:1] == b"/":
            if self.restrict & RESOLVE_BENEATH:
                raise SysError(errno.EXDEV)
            return self.root
        return dir if dir is not None else self.ctx.cwd

    def parent_of(self, dir: Location | None, path: bytes):
        parent, last, trailing = super().parent_of(dir, path)
        self._check_beneath(parent)
        return parent, last, trailing

    def resolve(self, dir: Location | None, path: bytes, follow: bool = True) -> Location:
        loc = super().resolve(dir, path, follow)
        self._check_beneath(loc)
        return loc

    def _check_beneath(self, loc: Location) -> None:
        if self.restrict & RESOLVE_SCOPED and not loc.is_under(self.root):
            raise SysError(errno.EXDEV)

    def child(self, loc: Location, name: bytes) -> Location:
        if name == b".":
            return loc
        if name == b"..":
            return self._dotdot(loc)
        return self.enter(loc, self.vfs.lookup_dentry(loc, name))

    def _dotdot(self, loc: Location) -> Location:
        root = self.root
        if loc.mount is root.mount and loc.dentry is root.dentry:
            if self.restrict & RESOLVE_BENEATH:
                raise SysError(errno.EXDEV)
            return loc
        up = loc.parent(root)
        if up.mount is not loc.mount and self.restrict & RESOLVE_NO_XDEV:
            raise SysError(errno.EXDEV)
        return self.enter(up, up.dentry)

    def enter(self, dir: Location, dentry) -> Location:
        here = Location(dir.mount, dentry)
        loc = self.vfs.cross_down(here)
        if loc is not here and self.restrict & RESOLVE_NO_XDEV:
            raise SysError(errno.EXDEV)
        return loc

    def link_target(self, parent: Location, link: Location) -> "bytes | Location":
        if self.restrict & RESOLVE_NO_SYMLINKS:
            raise SysError(errno.ELOOP)
        target = super().link_target(parent, link)
        if isinstance(target, Location):
            # nd_jump_link()
            if self.restrict & RESOLVE_NO_MAGICLINKS:
                raise SysError(errno.ELOOP)
            if self.restrict & RESOLVE_NO_XDEV and target.mount is not parent.mount:
                raise SysError(errno.EXDEV)
            if self.restrict & RESOLVE_SCOPED:
                raise SysError(errno.EXDEV)
        elif target[:1] == b"/":
            # nd_jump_root(): start() then takes the walk to self.root.
            if self.restrict & RESOLVE_BENEATH:
                raise SysError(errno.EXDEV)
            if self.restrict & RESOLVE_NO_XDEV and parent.mount is not self.root.mount:
                raise SysError(errno.EXDEV)
        return target
