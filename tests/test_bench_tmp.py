"""scripts/bench.py runs bpftrace as root: its output goes to a private temp dir, never
through a fixed /tmp name another user could plant a symlink at."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

FIXED = Path("/tmp/ipft-bench-bpftrace.out")


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", REPO / "scripts/bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


class Workload:
    seconds = 1.0

    def run(self):
        return 123.0


@pytest.mark.skipif(os.geteuid() != 0, reason="plants at a fixed /tmp path")
@pytest.mark.skipif(FIXED.exists() or FIXED.is_symlink(), reason="fixed path in use")
def test_bpftrace_output_is_private(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bpftrace"  # stands in for bpftrace: prints what it would
    # Python, setting its SIGINT handler itself: a shell cannot trap a signal that was
    # ignored when it started (tests run as a background job ignore SIGINT).
    fake.write_text(f"#!{sys.executable}\nimport signal, sys, time\n"
                    "signal.signal(signal.SIGINT, lambda *_: sys.exit(0))\n"
                    "print('Attaching 7 probes...', flush=True)\n"
                    "print('ffff0001 1 0 tracepoint:net:net_dev_queue', flush=True)\n"
                    "while True:\n    time.sleep(0.05)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    FIXED.symlink_to(victim)
    try:
        result = load_bench().run_bpftrace(Workload())
    finally:
        FIXED.unlink()
    assert victim.read_text() == "precious\n"
    assert result["kept"] == 1 and result["rate"] == 123.0
