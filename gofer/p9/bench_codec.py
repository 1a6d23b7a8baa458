"""Quick timeit of the codecs on the hot messages: `python3 -m pysentry.gofer.p9.bench_codec`.

Prints microseconds per encode and per decode for the construct reference codec, the
table-driven struct codec (the general codec at run time) and the hand-written fast path.
This is a measurement aid, not a test: nothing asserts on the numbers.
"""
import timeit

from . import codec
from .messages import (Qid, Rclunk, Rgetattr, Rlerror, Rlopen, Rread, Rwalk, Rwrite, Tclunk,
                       Tgetattr, Tlopen, Tread, Twalk, Twrite)

SAMPLES = [
    Tread(1, 7, 4096, 65512),
    Rread(1, b"x" * 4096),
    Twrite(1, 7, 0, b"y" * 4096),
    Rwrite(1, 4096),
    Twalk(1, 0, 9, ["usr", "lib", "python3.11", "os.py"]),
    Rwalk(1, [Qid(0x80, 0, 11), Qid(0x80, 0, 12), Qid(0x80, 0, 13), Qid(0, 0, 14)]),
    Tgetattr(1, 3, 0x7FF),
    Rgetattr(1, 0x7FF, Qid(0, 0, 99), 0o100644, 0, 0, 1, 0, 6, 4096, 8, 1, 2, 3, 4, 5, 6, 0,
             0, 0, 0),
    Tlopen(1, 3, 0),
    Rlopen(1, Qid(0, 0, 99), 0),
    Tclunk(1, 3),
    Rclunk(1),
    Rlerror(1, 2),
]


def measure(number: int = 2000) -> list:
    rows = []
    for msg in SAMPLES:
        frame = codec.encode(msg)
        row = [type(msg).__name__]
        for fast, ref in ((False, True), (False, False), (True, False)):
            enc = timeit.timeit(lambda: codec.encode(msg, use_fastpath=fast, reference=ref),
                                number=number)
            dec = timeit.timeit(lambda: codec.decode(frame, use_fastpath=fast, reference=ref),
                                number=number)
            row += [enc / number * 1e6, dec / number * 1e6]
        rows.append(row)
    return rows


def main() -> None:
    heads = ("construct enc", "construct dec", "table enc", "table dec", "fast enc", "fast dec")
    print(f"{'message':10} " + " ".join(f"{h:>13}" for h in heads) + "   (microseconds)")
    for name, *cells in measure():
        print(f"{name:10} " + " ".join(f"{c:13.2f}" for c in cells))


if __name__ == "__main__":
    main()
