"""Helpers for tests that need a 9P peer: Debian's diod, our gofer on TCP, and a
recording proxy. Used by tests/test_p9_*.py and tests/test_gofer_*.py; usable by anyone
who needs a real gofer in a test. Every process started here is ended by pid on exit.
"""
import contextlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

DIOD = shutil.which("diod") or "/usr/sbin/diod"
DIODLS = shutil.which("diodls") or "/usr/sbin/diodls"
DIODCAT = shutil.which("diodcat") or "/usr/sbin/diodcat"


def have_diod() -> bool:
    return all(shutil.which(p) for p in (DIOD, DIODLS, DIODCAT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def diod_server(root: str):
    """Debian's diod serving `root` on a free loopback port: yields the port."""
    port = free_port()
    # diod may dump core when it is terminated mid-session (and raises its own core
    # limit), so it runs in a scratch directory of its own, not the tests' one.
    cwd = tempfile.mkdtemp(prefix="pysentry-diod-")
    proc = subprocess.Popen([DIOD, "-f", "-n", "-e", str(root), "-l", f"127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=cwd)
    try:
        wait_listening(port, proc)
        yield port
    finally:
        _stop(proc)
        shutil.rmtree(cwd, ignore_errors=True)


@contextlib.contextmanager
def gofer_tcp(root: str, *args: str):
    """Our gofer serving `root` on a free loopback port: yields (port, process)."""
    proc = subprocess.Popen([sys.executable, "-m", "pysentry.gofer", "--listen",
                             "127.0.0.1:0", *args, str(root)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        if not line.startswith("listening "):
            raise RuntimeError(f"gofer did not start: {line!r}")
        yield int(line.rsplit(":", 1)[1]), proc
    finally:
        _stop(proc)
        proc.stdout.close()


class RecordingProxy:
    """TCP proxy on a free loopback port that records every 9P frame in both directions.

    Frames are split by their size field alone (independent of the codec under test).
    `frames` is a list of (direction, bytes) with direction "C" (client to server) or "S";
    order across directions follows arrival at the proxy.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.frames: list = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._threads: list = []
        self._sockets: list = []
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepting.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, server]
            for src, dst, tag in ((client, server, "C"), (server, client, "S")):
                t = threading.Thread(target=self._pump, args=(src, dst, tag), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src, dst, direction: str) -> None:
        pending = b""
        while True:
            try:
                data = src.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            pending += data
            while len(pending) >= 4:
                size = struct.unpack_from("<I", pending)[0]
                if size < 4 or len(pending) < size:
                    break
                with self._lock:
                    self.frames.append((direction, pending[:size]))
                pending = pending[size:]
            dst.sendall(data)

    def close(self) -> None:
        # shutdown, not just close: it is what wakes a thread blocked in accept/recv.
        for s in [self._listener] + self._sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accepting.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
        for s in [self._listener] + self._sockets:
            s.close()
