"""scripts/setup.sh puts a launcher on root's PATH; `make clean` takes it away (#14.14)."""

import os
import subprocess

from tests.conftest import REPO


def test_setup_writes_a_launcher_that_runs_this_checkout_and_make_removes_it(tmp_path):
    launcher = tmp_path / "ipft-tui"
    other = tmp_path / "elsewhere"
    os.symlink(tmp_path / "victim", launcher)  # never written through
    env = {**os.environ, "IPFT_LAUNCHER": str(launcher)}
    subprocess.run([str(REPO / "scripts/setup.sh")], env=env, check=True, timeout=300,
                   capture_output=True)
    assert not launcher.is_symlink() and not (tmp_path / "victim").exists()
    assert oct(launcher.stat().st_mode & 0o777) == "0o755"
    out = subprocess.run([str(launcher), "--version"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("ipft-tui ")
    # A launcher of another checkout is left alone; this one's goes.
    other.write_text("#!/bin/sh\nexec /somewhere/else/.venv/bin/ipft-tui \"$@\"\n")
    subprocess.run(["make", "-s", "-C", str(REPO), "uninstall-launcher", f"LAUNCHER={other}"],
                   check=True, timeout=60, capture_output=True)
    assert other.exists()
    subprocess.run(["make", "-s", "-C", str(REPO), "uninstall-launcher", f"LAUNCHER={launcher}"],
                   check=True, timeout=60, capture_output=True)
    assert not launcher.exists()
