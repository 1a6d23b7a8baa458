"""What `python3 -m bench io` measures: the list of measurements and their sizes.

Each measurement is one iobench mode (bench/iobench.c) with its arguments, or one of the
two measured from outside (start-up, idle memory). `derive` turns a RESULT line into the
reported figure. Floors take part only in the syscall round trip: it is all they run.
"""
from dataclasses import dataclass, field

MiB = 1 << 20
VOLUME, TMPFS = "volume", "tmpfs"


@dataclass(frozen=True)
class Sizes:
    file_bytes: int       # the sequential/random read-write file
    loop_ms: int          # time budget of each latency loop
    rand_reads: int
    pipe_bytes: int
    reps: int             # repetitions per runtime
    startup_reps: int
    memory_reps: int
    idle_s: float         # how long the idle `sleep` lives for the memory sample
    timeout_s: float      # per run
    cpu_steps: int        # multiply-adds of the CPU-bound loop


FULL = Sizes(file_bytes=256 * MiB, loop_ms=1000, rand_reads=20000, pipe_bytes=256 * MiB,
             reps=5, startup_reps=11, memory_reps=2, idle_s=2.5, timeout_s=60,
             cpu_steps=300_000_000)
QUICK = Sizes(file_bytes=16 * MiB, loop_ms=150, rand_reads=1000, pipe_bytes=16 * MiB,
              reps=2, startup_reps=2, memory_reps=1, idle_s=1.5, timeout_s=30,
              cpu_steps=100_000_000)


@dataclass(frozen=True)
class Measurement:
    key: str
    title: str
    unit: str
    better: str                      # "lower" or "higher"
    mode: str                        # iobench mode, or "startup" / "memory"
    where: str | None = None         # VOLUME / TMPFS / None
    block: int = 0                   # block size of read/write modes
    floors: bool = False             # the floors run it too
    quick: bool = False              # part of --quick
    per_op: bool = True              # figure per op (latency loops) or for the whole run
    tags: tuple = field(default=())

    def args(self, sizes: Sizes, directory: str, forkexec_prog: str = "/bin/true") -> list:
        """iobench arguments after the mode."""
        m, s = self.mode, sizes
        if m in ("getppid", "mmaploop"):
            return [str(s.loop_ms)]
        if m == "cpuloop":
            return [str(s.cpu_steps)]
        if m in ("seqread", "seqwrite"):
            name = "data" if m == "seqread" else "written"
            return [f"{directory}/{name}", str(s.file_bytes), str(self.block)]
        if m == "randread":
            return [f"{directory}/data", str(s.file_bytes), str(s.rand_reads)]
        if m in ("openclose", "stat", "getdents"):
            return [f"{directory}/{m}-dir", str(s.loop_ms)]
        if m == "pipe":
            return [str(s.pipe_bytes)]
        if m == "forkexec":
            return [str(s.loop_ms), forkexec_prog]
        raise ValueError(f"no iobench arguments for {m}")

    def derive(self, result: dict) -> float:
        """The reported figure from a RESULT line."""
        if self.unit == "MiB/s":
            return result["bytes"] / MiB / (result["ns"] / 1e9)
        per_op_ns = result["ns"] / result["ops"] if self.per_op else result["ns"]
        if self.unit == "µs":
            return per_op_ns / 1e3
        if self.unit == "ms":
            return per_op_ns / 1e6
        raise ValueError(f"no derivation for unit {self.unit}")


def _blocks():
    return ((4096, "4k", "4 KiB"), (65536, "64k", "64 KiB"), (MiB, "1m", "1 MiB"))


def measurements() -> list:
    out = [Measurement("getppid", "getppid round trip", "µs", "lower", "getppid", floors=True,
                       quick=True)]
    for where, place in ((VOLUME, "host volume"), (TMPFS, "tmpfs")):
        for op, verb in (("seqread", "sequential read"), ("seqwrite", "sequential write")):
            for size, short, text in _blocks():
                quick = (short == "1m") or (op == "seqread" and short == "4k" and where == TMPFS)
                out.append(Measurement(f"{op}-{short}-{where}", f"{verb}, {text} blocks, {place}",
                                       "MiB/s", "higher", op, where, size, quick=quick))
        out.append(Measurement(f"randread-4k-{where}", f"random 4 KiB reads, {place}", "µs",
                               "lower", "randread", where, 4096, quick=(where == VOLUME)))
        for op, text in (("openclose", "open+close"), ("stat", "stat"),
                         ("getdents", "getdents64 of 66 entries")):
            out.append(Measurement(f"{op}-{where}", f"{text}, {place}", "µs", "lower", op, where,
                                   quick=(op == "openclose" and where == VOLUME)
                                   or (op == "stat" and where == TMPFS)))
    out += [
        Measurement("pipe", "pipe throughput between two processes (64 KiB writes)", "MiB/s",
                    "higher", "pipe", quick=True),
        Measurement("forkexec", "fork + exec + wait of /bin/true", "ms", "lower", "forkexec",
                    quick=True),
        Measurement("mmaploop", "mmap 1 MiB anonymous + write each of its 256 pages + munmap",
                    "ms", "lower", "mmaploop", quick=True),
        Measurement("cpuloop", "CPU-bound loop (multiply-add chain; 300 M steps, 100 M in "
                    "--quick)", "ms", "lower", "cpuloop", quick=True, per_op=False),
        Measurement("startup", "whole-process start-up of /bin/true (wall clock)", "ms",
                    "lower", "startup", quick=True),
        Measurement("memory", "idle memory of `sleep`: peak RSS summed over all processes",
                    "MiB", "lower", "memory", quick=True),
    ]
    return out
