"""The CLI as users run it: errors are clear, exit non-zero, and attach nothing."""

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from ipft_tui.kernel import Kernel
from tests.conftest import REPO, free_port, ipft_bpf_objects_settled

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
    (["-o", "json"], "nothing to trace: give a pcap-filter expression"),
])
def test_bad_input_is_refused_before_tracing(args, message, bpf_ready):
    proc = run(*args)
    assert proc.returncode == 2
    assert re.search(message, proc.stderr), proc.stderr
    assert proc.stdout == ""
    assert "Attaching" not in proc.stderr


def test_regex_matching_nothing(bpf_ready):
    proc = run("-m", "1", "-o", "json", "-r", "^no_such_function_anywhere$")
    assert proc.returncode == 1
    assert re.search(r"regex '\^no_such_function_anywhere\$' matches none of the [1-9]\d* "
                     r"traceable targets", proc.stderr), proc.stderr


@pytest.mark.parametrize("backend", ["kprobe", "kprobe-multi", "ftrace", "tracepoint"])
def test_backend_support_is_checked_and_explained(backend, bpf_ready):
    """Holds on any kernel: an unsupported backend is refused naming the supported ones;
    a supported one gets as far as choosing targets (the regex matches none)."""
    supported = Kernel().capabilities.supported()
    proc = run("-m", "1", "-o", "json", "-b", backend, "-r", "^no_such_function_anywhere$")
    assert proc.returncode == 1
    if backend in supported:
        assert "matches none of the" in proc.stderr, proc.stderr
    else:
        found = re.search(rf"backend {backend} is not supported by this kernel \(.+\); "
                          r"supported here: (.*)$", proc.stderr, re.M)
        assert found, proc.stderr
        assert found[1].split(", ") == supported


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


@pytest.mark.parametrize("args, message", [
    (["--ringbuf-pages", str(2**40)], "--ringbuf-pages 1099511627776 is more than the kernel allows"),
    (["--event-buffer", "perf", "--perf-page-count", "3"], "--perf-page-count must be a power of two"),
    (["--event-buffer", "perf", "--perf-page-count", str(2**40)], "--perf-page-count 1099511627776 is more"),
    (["--enable-probe-server", "--probe-server-address", "127.0.0.300"],
     "--probe-server-address '127.0.0.300' is not an IPv4 or IPv6 address"),
    (["--replay", "tests/data/demo.jsonl"], "-o: --replay shows a recorded trace in the TUI"),
    (["--record", "/tmp/never-written.jsonl"], "--record: TUI only"),
])
def test_options_checked_before_root_or_kernel(args, message, bpf_ready):
    """Checked before anything else: a user without root gets the usage error (exit 2,
    like argparse's), so nothing was read from the kernel, compiled or attached."""
    proc = run("-m", "1", "-o", "json", *args, user="65534")
    assert proc.returncode == 2, proc.stderr
    assert "usage: ipft-tui" in proc.stderr and f"ipft-tui: error: {message}" in proc.stderr
    assert "needs root" not in proc.stderr and proc.stdout == ""
    assert not os.path.exists("/tmp/never-written.jsonl")


def test_probe_server_port_in_use_fails_before_compiling(bpf_ready):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = run("-m", "1", "-o", "json", "-b", "tracepoint", "--enable-probe-server",
                   "--probe-server-port", str(port), env={"BCC_KERNEL_SOURCE": "/nowhere"})
    assert proc.returncode == 1
    assert f"cannot open the probe server on 127.0.0.1 port {port}: Address already in use" \
        in proc.stderr
    assert "BCC_KERNEL_SOURCE" not in proc.stderr  # failed before looking for headers
    assert ipft_bpf_objects_settled() == []


def test_probe_server_on_ipv6(bpf_ready, nothing_left_behind, tmp_path):
    port = free_port()
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ipft_tui", "-m", "1", "-o", "json",
                                 "-b", "tracepoint", "-r", "^kfree_skb$", "--enable-probe-server",
                                 "--probe-server-address", "::1", "--probe-server-port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "err").read_text()
            assert time.monotonic() < deadline, (tmp_path / "err").read_text()
            try:
                socket.create_connection(("::1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)  # polling the port: it opens when tracing is ready
        assert "Trace ready!" in (tmp_path / "err").read_text()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, (tmp_path / "err").read_text()


def test_list_is_what_a_run_tries(bpf_ready, trace_process):
    """-l prints the targets a run with the same options tries: as many as the run's
    "total - filtered"; without -r, all of the run's total."""
    regex = "^(net_dev|netif_receive|kfree_skb|consume_skb)"
    listed = run("-l", "-b", "tracepoint", "-r", regex)
    assert listed.returncode == 0, listed.stderr
    names = [line.split("\t")[0].strip() for line in listed.stdout.splitlines()]
    assert len(names) == len(set(names)) > 3
    tp = trace_process("-m", "1", "-o", "json", "-b", "tracepoint", "-r", regex)
    tp.wait_ready()
    assert tp.stop() == 0
    total, filtered = map(int, re.findall(r"total (\d+), succeeded \d+, failed \d+, filtered: (\d+)",
                                          tp.stderr)[-1])
    assert total - filtered == len(names)
    everything = run("-l", "-b", "tracepoint").stdout.splitlines()
    assert len(everything) == total


def test_list_format_is_ipftrace2s(bpf_ready):
    """NAME, MOD, ADDR, 0-based SKB_POSITION; by position, then in BTF order."""
    proc = run("-l", "-b", "tracepoint")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    positions = [int(r[3]) for r in rows]
    assert positions == sorted(positions) and positions[0] == 0
    by_name = {r[0].strip(): int(r[3]) for r in rows}
    assert by_name["kfree_skb"] == 0
    if "qdisc_enqueue" in by_name:
        assert by_name["qdisc_enqueue"] == 2  # (qdisc, txq, skb)
