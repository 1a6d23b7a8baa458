"""Compiling the benchmark's C programs at run time, cached by content.

Binaries live outside /tmp (a sandbox mounts its own tmpfs there, so host files under /tmp
are invisible inside) in a directory keyed by a hash of source and flags, so a changed
source is rebuilt and an unchanged one is not.
"""
import hashlib
import os
import pathlib
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
BUILD_DIR = pathlib.Path(os.environ.get("PYSENTRY_BENCH_BUILD", "/var/tmp/pysentry-bench-build"))


class BuildError(Exception):
    pass


def compile_c(src: pathlib.Path, static: bool = True, extra=()) -> str:
    """Compile one C file (headers beside it may be included); return the binary's path."""
    src = pathlib.Path(src)
    flags = ["-O2", "-Wall", "-Wno-unused-result", "-I", str(src.parent)]
    flags += (["-static"] if static else []) + list(extra)
    text = src.read_bytes()
    for header in sorted(src.parent.glob("*.h")):
        text += header.read_bytes()
    key = hashlib.sha256(text + repr(flags).encode()).hexdigest()[:16]
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    out = BUILD_DIR / f"{src.stem}-{key}"
    if out.exists():
        return str(out)
    tmp = f"{out}.{os.getpid()}.tmp"
    proc = subprocess.run(["gcc", *flags, "-o", tmp, str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"gcc failed on {src.name}:\n{proc.stderr[-2000:]}")
    os.replace(tmp, out)
    return str(out)
