"""pysentry's benchmarks: syscall coverage and I/O overhead against native Linux, gVisor
and the platform floors. Run from the repository root as `python3 -m bench ...`; see
bench/README.md for what each command measures and how to read its reports."""
