"""kprobe, kprobe-multi and ftrace on real Debian kernels (5.10, 6.1, 6.12, sid) booted
under QEMU software emulation (tests/vm/run_matrix.py); the tests that run inside are
every tests/vm/guest_*.py. Takes several minutes per kernel: one boot each."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import IN_CI, REPO
from tests.vm.run_matrix import GUEST_TESTS, KERNELS

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def vm_ready():
    reason = None
    if os.geteuid() != 0:
        reason = "needs root"
    elif os.environ.get("IPFT_SKIP_VM") == "1" and not IN_CI:
        reason = "IPFT_SKIP_VM=1"
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true and the kernel-matrix test cannot run: {reason}")
        pytest.skip(reason)


PER_KERNEL_S = 900  # the guest's limit (run_matrix --timeout); the host kills it 60 s later


@pytest.mark.timeout(len(KERNELS) * (PER_KERNEL_S + 90) + 120)
def test_function_backends_on_the_kernel_matrix(vm_ready, tmp_path):
    command = f'"$IPFT_VM_PYTHON" -m pytest -q -p no:cacheprovider {GUEST_TESTS}'
    proc = subprocess.run([sys.executable, "tests/vm/run_matrix.py", "--kernel", "all",
                           "--timeout", str(PER_KERNEL_S), "--out", str(tmp_path), "--", command],
                          capture_output=True, text=True, cwd=REPO,
                          timeout=len(KERNELS) * (PER_KERNEL_S + 90) + 60)
    print(proc.stdout[-6000:])
    print(proc.stderr[-3000:], file=sys.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for series in KERNELS:
        results = json.loads((tmp_path / series / f"results-{series}.json").read_text())
        backends = results["backends"]
        print(series, json.dumps(backends))
        assert backends["kprobe"]["supported"] and backends["ftrace"]["supported"]
        assert backends["kprobe-multi"]["supported"] == (series in ("6.12", "sid"))
