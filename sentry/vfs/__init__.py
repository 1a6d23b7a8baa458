"""The virtual filesystem.

  vfs.py       VirtualFS: the mount tree and every path operation (openat, stat, rename...)
  walk.py      path walk (symlinks, "..", chroot, mounts, name limits)
  perm.py      permission checks; attrs.py: chmod/chown/utimens/truncate rules
  context.py   Creds, PathContext; mount.py: Mount, Location; dentry.py: Dentry
  inode.py     the interface a filesystem implements (Filesystem, Inode) - read it first
  file.py      FileDescription and the generic regular/directory files
  fdtable.py   fd tables
  tmpfs.py, overlay.py, devfs.py   filesystems; devices.py: character-device registry
  pipe.py      pipes and FIFOs; anon.py: inodes outside any name space
  stat.py      struct stat/statx/statfs; dirent.py: getdents records; iov.py: user buffers
"""
