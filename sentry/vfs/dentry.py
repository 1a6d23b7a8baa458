"""Dentries: the VFS's cached tree of names over a filesystem's inodes.

Invariants:
  - `children` caches only positive lookups; a name absent from it may still exist on
    the filesystem (it has not been looked up yet), so absence means "ask the inode".
  - A dentry removed from the tree (unlink, rmdir, replaced by rename) is marked `dead`
    and dropped from its parent's `children`; open files and cwds that hold it keep the
    object, and lookups below a dead directory find nothing (Linux's IS_DEADDIR).
  - The root dentry of a filesystem has parent None. Mounts never change dentries: they
    are recorded by the VirtualFS against (mount, dentry) pairs.
"""
from __future__ import annotations


class Dentry:
    __slots__ = ("name", "parent", "inode", "children", "dead", "__weakref__")

    def __init__(self, name: bytes, parent: "Dentry | None", inode):
        self.name = name
        self.parent = parent
        self.inode = inode
        self.children: dict[bytes, Dentry] = {}
        self.dead = False

    def child(self, name: bytes, inode) -> "Dentry":
        d = Dentry(name, self, inode)
        self.children[name] = d
        return d

    def detach(self, dead: bool = True) -> None:
        """Drop from the parent's cache; `dead` if the file left the name space."""
        if self.parent is not None and self.parent.children.get(self.name) is self:
            del self.parent.children[self.name]
        if dead:
            self.dead = True

    def is_ancestor_of(self, other: "Dentry") -> bool:
        """True if `other` is self or lies below self (same filesystem)."""
        d = other
        while d is not None:
            if d is self:
                return True
            d = d.parent
        return False

    def __repr__(self) -> str:
        return f"<Dentry {self.name!r}{' dead' if self.dead else ''} {self.inode!r}>"
