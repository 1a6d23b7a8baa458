"""Micro-benchmarks (pytest-benchmark) for pysentry's hot paths. Not part of the default
test run (pytest's testpaths is tests/): run `python3 -m bench micro` or `pytest bench/micro`.
Each benchmark also asserts that the work it times gave the right answer."""
