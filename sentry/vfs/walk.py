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
        self.links += 1
        if self.links > MAXSYMLINKS:
            raise SysError(errno.ELOOP)
        inode = link.dentry.inode
        # procfs's magic links depend on who asks and may jump straight to a Location.
        follow_link = getattr(inode, "follow_link", None)
        target = follow_link(self.ctx) if follow_link is not None else inode.readlink()
        if isinstance(target, Location):
            return target
        if not target:
            raise SysError(errno.ENOENT)
        p, last, trailing = self.parent_of(parent, target)
        return self.finish(p, last, trailing, follow=True)

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
