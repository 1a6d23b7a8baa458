"""Resource usage (getrusage, times, wait4/waitid rusage, the CPU-time clocks, ru_maxrss)
across exited threads, reaped children and grandchildren, and an exec: compared with
native Linux, on each platform."""

import pytest

import conftest
from conftest import PLATFORMS, compile_c



@pytest.mark.parametrize("platform", PLATFORMS)
def test_resource_usage_matches_linux(platform, monkeypatch):
    plain = conftest.sandbox_cmd
    monkeypatch.setattr(conftest, "sandbox_cmd",
                        lambda argv, *opts: plain(argv, f"--platform={platform}", *opts))
    box = conftest.assert_same([compile_c("rusage")])
    # The comparison is about time being counted, not about both sides saying "no".
    assert b": no" not in box.stdout, box.stdout
