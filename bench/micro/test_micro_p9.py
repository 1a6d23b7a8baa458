"""9P2000.L codec: encode and decode of the messages on the read path and of Twalk."""
import pytest

from pysentry.gofer.p9 import codec
from pysentry.gofer.p9.messages import Rread, Rwalk, Qid, Tread, Twalk

CASES = {
    "Tread": Tread(1, 7, 4096, 65536),
    "Rread-4k": Rread(1, b"x" * 4096),
    "Rread-64k": Rread(1, b"y" * 65536),
    "Twalk-4": Twalk(1, 0, 9, ["usr", "lib", "python3.11", "os.py"]),
    "Rwalk-4": Rwalk(1, [Qid(0x80, 0, 11), Qid(0x80, 0, 12), Qid(0x80, 0, 13), Qid(0, 0, 14)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_encode(benchmark, name):
    msg = CASES[name]
    frame = benchmark(codec.encode, msg)
    assert codec.decode(frame) == msg


@pytest.mark.parametrize("name", list(CASES))
def test_decode(benchmark, name):
    msg = CASES[name]
    frame = codec.encode(msg)
    assert benchmark(codec.decode, frame) == msg
