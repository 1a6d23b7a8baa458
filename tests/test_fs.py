"""File syscalls and locks: C programs run natively and in pysentry, on tmpfs both ways."""
from conftest import assert_same, compile_c


def test_file_syscalls_and_their_errors():
    assert_same([compile_c("fs_ops")])


def test_record_locks_ofd_locks_and_flock_between_processes():
    assert_same([compile_c("locks")])
