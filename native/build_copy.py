"""cffi build script for pysentry.native._copy (run at install time by setup.py): copies
out of host file mappings that survive the file being truncated (safecopy.c)."""
from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("""
int sc_install(void);
long sc_copy(void *dst, const void *src, long n);
unsigned long sc_map(int fd, unsigned long length, int *err);
int sc_unmap(unsigned long addr, unsigned long length);
""")
ffibuilder.set_source(
    "pysentry.native._copy",
    '#include "safecopy.h"',
    sources=["native/safecopy.c"],  # relative: setuptools rejects absolute paths
    include_dirs=["native"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
