"""The CLI as users run it: errors are clear, exit non-zero, and attach nothing."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, ipft_bpf_objects_settled

pytestmark = pytest.mark.root


def run(*args, env=None, user=None, timeout=120):
    cmd = [sys.executable, "-m", "ipft_tui", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=full_env)


@pytest.mark.parametrize("args, message", [
    (["-m", "0xZZ", "-o", "json"], "mark '0xZZ' is not a number"),
    (["-m", "-1", "-o", "json"], "mark '-1' is not a number"),
    (["-m", "0x100000000", "-o", "json"], "does not fit in 32 bits"),
    (["-m", "1", "--mask", "0", "-o", "json"], "mask 0 is not allowed"),
    (["-m", "0", "-o", "json"], "mark 0 is not allowed"),
    (["-m", "1", "-r", "(", "-o", "json"], "invalid regex '\\('"),
    (["-o", "json"], "--mark is required"),
])
def test_bad_input_is_refused_before_tracing(args, message, bpf_ready):
    proc = run(*args)
    assert proc.returncode == 1
    assert re.search(message, proc.stderr), proc.stderr
    assert proc.stdout == ""
    assert "Attaching" not in proc.stderr


def test_regex_matching_nothing(bpf_ready):
    proc = run("-m", "1", "-o", "json", "-r", "^no_such_function_anywhere$")
    assert proc.returncode == 1
    assert "matches none of the 30 traceable targets" in proc.stderr or \
        re.search(r"matches none of the \d+ traceable targets", proc.stderr)


def test_unsupported_backend_names_the_supported_ones(bpf_ready):
    proc = run("-m", "1", "-o", "json", "-b", "kprobe-multi")
    assert proc.returncode == 1
    assert re.search(r"backend kprobe-multi is not supported by this kernel \(.+\); "
                     r"supported here: \S+", proc.stderr), proc.stderr
    assert "tracepoint" in proc.stderr.split("supported here:")[1]


def test_not_root(bpf_ready):
    proc = run("-m", "1", "-o", "json", user="65534")
    assert proc.returncode == 1
    assert "needs root" in proc.stderr


def test_no_btf(bpf_ready, tmp_path):
    proc = run("-m", "1", "-o", "json", env={"IPFT_BTF_DIR": str(tmp_path)})
    assert proc.returncode == 1
    assert "CONFIG_DEBUG_INFO_BTF" in proc.stderr


def test_bcc_missing(bpf_ready, tmp_path):
    fake = tmp_path / "bcc"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named bcc')\n")
    proc = run("-m", "1", "-o", "json", env={"PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert proc.returncode == 1
    assert "python3-bpfcc" in proc.stderr
    assert ipft_bpf_objects_settled() == []


def test_headers_missing(bpf_ready, tmp_path):
    proc = run("-m", "1", "-o", "json", env={"BCC_KERNEL_SOURCE": str(tmp_path / "nowhere")})
    assert proc.returncode == 1
    assert "BCC_KERNEL_SOURCE" in proc.stderr and "not a directory" in proc.stderr


def test_check_reports_every_backend(bpf_ready):
    proc = run("--check")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    for backend in ("kprobe", "kprobe-multi", "ftrace", "tracepoint"):
        assert backend in lines
    assert re.search(r"^tracepoint\s+supported", lines["tracepoint"])
    assert lines["auto"].split("->")[1].strip() in {"tracepoint", "kprobe", "kprobe-multi", "ftrace"}
    # What the kernel lacks is said, with why; what it has, counted.
    assert re.search(r"^drop reasons  (yes +\d+ in enum skb_drop_reason|no +.*before 5\.17)",
                     proc.stdout, re.M), proc.stdout


def test_list_tracepoints(bpf_ready):
    proc = run("-l", "-b", "tracepoint", "-r", "^net_dev")
    assert proc.returncode == 0
    assert "NAME" in proc.stderr and "SKB_POSITION" in proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    names = {r[0].strip(): r for r in rows}
    assert set(names) == {"net_dev_queue", "net_dev_start_xmit", "net_dev_xmit"}
    assert all(len(r[0]) == 64 and r[1].strip() == "vmlinux" and r[3] == "0" for r in rows)
    assert all(re.fullmatch(r"0x[0-9a-f]{16}", r[2]) and int(r[2], 16) != 0 for r in rows)
