"""Flag validation of file syscalls against native Linux (tests/progs/file_flags.c):
preadv2/pwritev2's RWF_* flags, fallocate's modes on tmpfs, the flags of the *at
syscalls (fchownat, utimensat, faccessat2, linkat, unlinkat, renameat2, newfstatat,
statx) and memfd_create's name length and flags."""
from conftest import assert_same, compile_c


def test_file_flags_match_linux():
    assert_same([compile_c("file_flags", extra=("-Wno-stringop-overread",))],
                check_stderr=False)
