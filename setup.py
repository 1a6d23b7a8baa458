# Folder-to-package mapping lives here (not in pyproject.toml) because cffi_modules
# needs setup(); see docs/architecture.md "Packaging". There is deliberately no
# platform/__init__.py so that `import platform` from the checkout still finds the stdlib.
from setuptools import setup

PACKAGES = {
    "pysentry.sentry": "sentry",
    "pysentry.sentry.kernel": "sentry/kernel",
    "pysentry.sentry.mm": "sentry/mm",
    "pysentry.sentry.syscalls": "sentry/syscalls",
    "pysentry.sentry.vfs": "sentry/vfs",
    "pysentry.sentry.netstack": "sentry/netstack",
    "pysentry.gofer": "gofer",
    "pysentry.gofer.p9": "gofer/p9",
    "pysentry.platform.ptrace": "platform/ptrace",
    "pysentry.platform.kvm": "platform/kvm",
    "pysentry.native": "native",
}

setup(
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    cffi_modules=["native/build_ptrace.py:ffibuilder", "native/build_kvm.py:ffibuilder",
                  "native/build_copy.py:ffibuilder"],
)
