"""Putting a sandbox together: memory file, platform, mount tree, kernel, first process."""
import errno
import os
import select
import signal
import sys
import termios

from .kernel import signals as S
from .kernel.errors import SysError
from .kernel.kernel import Kernel
from .kernel.task import FSContext, Task
from .logger import configure_if_loaded, log
from .mm.memfile import MemoryFile
from .vfs.fdtable import FDTable
from .vfs.hoststdio import HostStdio, HostTerminal

MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
FORWARDED_HOST_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGHUP,
                          signal.SIGTERM, signal.SIGWINCH)


def make_platform(name, memfile):
    # A platform module that logs through logging itself (kvm) has imported it by now:
    # configure_if_loaded gives its messages the command line's format from the first one.
    if name == "ptrace":
        from pysentry.platform.ptrace.ptrace import PtracePlatform
        configure_if_loaded()
        return PtracePlatform(memfile)
    if name == "kvm":
        from pysentry.platform.kvm.kvm import open_platform
        configure_if_loaded()
        return open_platform(memfile)
    raise SystemExit(f"pysentry: unknown platform {name!r}")


def host_cpuinfo() -> bytes | None:
    """The host's /proc/cpuinfo, read once by the launcher before the sandbox starts (the
    sandbox's /proc/cpuinfo shows the CPU it really runs on)."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            return f.read()
    except OSError:
        return None


def build_vfs(rootfs, volumes, root_fs=None):
    """The mount tree: root (overlay over the gofer, or a given filesystem), /dev, /tmp,
    /dev/shm, volumes. Returns (vfs, cleanups)."""
    from .vfs.vfs import VirtualFS
    from .vfs.tmpfs import TmpFS
    from .vfs.overlay import OverlayFS
    from .vfs.devfs import DevFS
    cleanups = []
    if root_fs is None:
        from .vfs.goferfs import open_gofer_fs
        lower = open_gofer_fs(rootfs, ro=True, donate=True)
        cleanups.append(lower.shutdown)
        root_fs = OverlayFS(lower, TmpFS())
        _opaque_mountpoints(root_fs, (b"proc", b"sys", b"dev"))
    vfs = VirtualFS(root_fs, source="rootfs")
    ctx = vfs.root_context()
    # /proc and /sys are the sandbox's own: the host's are never served (the gofer also
    # refuses to walk into host kernel filesystems).
    for path, fs in ((b"/dev", DevFS(with_tty=True)), (b"/tmp", TmpFS()),
                     (b"/dev/shm", TmpFS()), (b"/sys", TmpFS(mode=0o555))):
        _ensure_dir(vfs, ctx, path)
        vfs.mount(fs, path)
    for host, guest, ro in volumes:
        from .vfs.goferfs import open_gofer_fs
        fs = open_gofer_fs(host, ro=ro, donate=True)
        cleanups.append(fs.shutdown)
        _ensure_dir(vfs, ctx, guest)
        vfs.mount(fs, guest)
    return vfs, cleanups


def _opaque_mountpoints(overlay, names):
    """Create mount points in the overlay's upper layer as opaque directories, so the
    lower layer (the host, which refuses its kernel filesystems) is never asked for them."""
    import stat as _st
    from .vfs.overlay import OPAQUE_XATTR
    up = overlay.upper_fs.root()
    for name in names:
        d = up.mkdir(name, _st.S_IFDIR | 0o555, 0, 0)
        d.setxattr(OPAQUE_XATTR, b"y")


def _ensure_dir(vfs, ctx, path):
    parts = [p for p in path.split(b"/") if p]
    cur = b""
    for p in parts:
        cur += b"/" + p
        try:
            vfs.mkdir(ctx, None, cur, 0o755)
        except SysError as e:
            if e.errno != errno.EEXIST:
                raise


class Sandbox:
    def __init__(self, argv, env, cwd=b"/", platform="ptrace", rootfs="/", volumes=(),
                 strace=None, root_fs=None, stdio=(0, 1, 2)):
        self.memfile = MemoryFile()
        self.platform = make_platform(platform, self.memfile)
        self.vfs, self.cleanups = build_vfs(rootfs, volumes, root_fs)
        self.kernel = Kernel(self.platform, self.memfile, self.vfs, strace=strace)
        from .vfs.procfs import ProcFS
        ctx = self.vfs.root_context()
        _ensure_dir(self.vfs, ctx, b"/proc")
        self.vfs.mount(ProcFS(self.kernel, cpuinfo=host_cpuinfo()), b"/proc",
                       flags=MS_NOSUID | MS_NODEV | MS_NOEXEC)
        from .vfs.pty import DevPtsFS, register_tty_devices
        devpts = DevPtsFS()
        self.vfs.mount(devpts, b"/dev/pts", flags=MS_NOSUID | MS_NOEXEC)
        # /dev/ptmx, /dev/pts/N and /dev/tty (the caller's controlling terminal: a pty, or
        # the host terminal when that is the sandbox's).
        register_tty_devices(self.vfs.chardevs, devpts, self.kernel, self.vfs)
        self.argv, self.env, self.cwd, self.stdio = argv, env, cwd, stdio
        self.tty = None
        self._saved_termios = None

    def _stdio_files(self, k):
        files = []
        tty = None
        for i, fd in enumerate(self.stdio):
            if tty is None and os.isatty(fd):
                tty = HostTerminal(fd)
                try:
                    self._saved_termios = (fd, termios.tcgetattr(fd))
                except termios.error:
                    pass
            mode = os.O_RDONLY if i == 0 else os.O_WRONLY
            try:
                acc = os.O_RDWR if os.isatty(fd) else mode
            except OSError:
                acc = mode
            files.append(HostStdio(k, fd, acc, tty if os.isatty(fd) else None))
        return files, tty

    def start(self):
        k = self.kernel
        pid = k.alloc_pid()
        tg = k.new_group(None, pid)
        k.init = tg
        sess = k.new_session(tg)
        files, self.tty = self._stdio_files(k)
        if self.tty is not None:
            sess.tty = self.tty
            self.tty.session = sess
            self.tty.fg_pgid = pid
        fdt = FDTable()
        fdt.users = 1
        for i, f in enumerate(files):
            fdt.dup2_install(i, f)
            f.decref()
        ctx_root = self.vfs.root_context()
        fs = FSContext(ctx_root.root, ctx_root.root)
        try:
            fs.cwd = self.vfs.resolve_dir(ctx_root, None, self.cwd)
        except SysError:
            pass
        # The first task needs an address space to exist before execve replaces it.
        from .mm.addrspace import AddressSpace
        pas = self.platform.new_address_space(self.memfile)
        mm = AddressSpace(self.memfile, pas, self.platform.max_user_address)
        ctx = self.platform.new_context(pas)
        t = Task(k, pid, tg, ctx, mm, fdt, fs)
        tg.tasks.append(t)
        tg.leader = t
        k.tasks[pid] = t
        from .syscalls.process import do_execve
        try:
            do_execve(t, None, self.argv[0], self.argv, self.env, 0)
        except SysError as e:
            raise SystemExit(f"pysentry: cannot execute {self.argv[0].decode(errors='replace')}: "
                             f"{os.strerror(e.errno)}")
        return t

    def run(self) -> int:
        k = self.kernel
        pending = []

        def on_host_signal(sig, frame):
            pending.append(sig)
        # Host signals wake the loop through this pipe (written by Python's C-level
        # handler); the loop forwards them (forward_host_signals).
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

        def drain(_events):
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        k.watch_fd(wake_r, select.EPOLLIN, drain)
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        old = {s: signal.signal(s, on_host_signal) for s in FORWARDED_HOST_SIGNALS}
        k.host_signals = pending
        try:
            self.start()
            return k.run()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            k.unwatch_fd(wake_r)
            os.close(wake_r)
            os.close(wake_w)
            self.close()

    def close(self):
        if self._saved_termios is not None:
            fd, attrs = self._saved_termios
            try:
                termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
            except termios.error:
                pass
        try:
            self.platform.shutdown()
        except Exception:
            log.exception("platform shutdown")
        # Stores through shared file mappings reach the files before the gofers go.
        from .mm import filemap
        filemap.shutdown(self.memfile)
        for c in self.cleanups:
            try:
                c()
            except Exception:
                log.exception("cleanup")


def forward_host_signals(k):
    """Host signals aimed at pysentry go to the sandbox: terminal signals to the foreground
    process group of its terminal, the others to init."""
    pend = getattr(k, "host_signals", None)
    if not pend:
        return
    from .kernel.sigframe import pack_siginfo
    while pend:
        sig = pend.pop(0)
        info = pack_siginfo(sig, S.SI_KERNEL)
        sess = k.init.session if k.init is not None else None
        if sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGWINCH) and sess and sess.tty:
            pg = k.pgroups.get(sess.tty.fg_pgid)
            for tg in list(pg.members) if pg else []:
                k.send_signal(tg, sig, info)
        elif k.init is not None:
            k.send_signal(k.init, sig if sig != signal.SIGTERM else signal.SIGKILL, info)
