"""The foundation's differential tests, run again on the KVM platform.

Every test imported here calls conftest.run_sandbox/assert_same, which build their command
line with conftest.sandbox_cmd; the fixture below makes that command choose
--platform=kvm, so the same programs are compared with native Linux on KVM too.
"""

import pytest

import conftest

_plain_cmd = conftest.sandbox_cmd


@pytest.fixture(autouse=True)
def _on_kvm(monkeypatch):
    def kvm_cmd(argv, *opts):
        return _plain_cmd(argv, "--platform=kvm", *opts)
    monkeypatch.setattr(conftest, "sandbox_cmd", kvm_cmd)


# Collected again here, on KVM. (None of these modules sets its own pytestmark.)
from test_process import *  # noqa: E402,F401,F403
from test_events import *  # noqa: E402,F401,F403
from test_fs import *  # noqa: E402,F401,F403
from test_mm_shared_files import *  # noqa: E402,F401,F403
from test_robustness import *  # noqa: E402,F401,F403
from test_shell import *  # noqa: E402,F401,F403
from test_unix_sockets import *  # noqa: E402,F401,F403
from test_volumes import *  # noqa: E402,F401,F403

pytestmark = conftest.NEEDS_KVM
