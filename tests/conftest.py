import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"
# The kernel-matrix guest tests run inside the VMs only (tests/test_kernel_matrix.py
# boots them); on the host they are not collected at all, rather than skipped.
collect_ignore = [] if os.environ.get("IPFT_VM_KERNEL") else ["vm/guest_backends.py"]


def _bpf_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc (python3-bpfcc) is not importable"
    from ipft_tui.kernel import Kernel
    try:
        caps = Kernel().capabilities
    except Exception as exc:  # noqa: BLE001
        return f"kernel facts unavailable: {exc}"
    if not caps.supported():
        return "no BPF backend works on this kernel"
    return None


@pytest.fixture(scope="session")
def bpf_ready():
    """Root + bcc + a working backend. Missing in CI is a failure, never a skip."""
    reason = _bpf_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true and a root/BPF test cannot run: {reason}")
        pytest.skip(reason)


def bpftool_show(kind: str) -> list[dict]:
    """`bpftool -j KIND show`; again when an object went away while it listed them
    (it then fails: the id it was about to open is gone)."""
    for _ in range(5):
        proc = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True)
        if proc.returncode == 0:
            return json.loads(proc.stdout or "[]")
        time.sleep(0.05)
    raise AssertionError(f"bpftool {kind} show failed 5 times: {proc.stderr}")


def ipft_bpf_objects() -> list[str]:
    """Our BPF programs still loaded, and links pointing at them (should be none)."""
    progs = bpftool_show("prog")
    ours = {p["id"]: p.get("name", "") for p in progs if p.get("name", "").startswith("ipft")}
    links = bpftool_show("link")
    found = [f"prog {pid} {name}" for pid, name in ours.items()]
    found += [f"link {l['id']} -> prog {l['prog_id']}" for l in links if l.get("prog_id") in ours]
    return found


def ipft_bpf_objects_settled(timeout: float = 5) -> list[str]:
    """ipft_bpf_objects() once the kernel has freed what closed fds released."""
    deadline = time.monotonic() + timeout
    while (found := ipft_bpf_objects()) and time.monotonic() < deadline:
        time.sleep(0.1)  # programs are freed asynchronously after their last fd closes
    return found


@pytest.fixture
def nothing_left_behind(bpf_ready):
    """Asserts that a test leaves no ipft BPF programs, links or namespaces."""
    from ipft_tui.netlab import leftover_namespaces
    before_ns = set(leftover_namespaces())
    yield
    assert ipft_bpf_objects_settled() == []
    assert set(leftover_namespaces()) - before_ns == set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TraceProcess:
    """ipft-tui running headless in a subprocess, stdout and stderr to files."""

    def __init__(self, tmp_path: Path, *args: str):
        self.port = free_port()
        self.out_path = tmp_path / "stdout"
        self.err_path = tmp_path / "stderr"
        self.argv = [sys.executable, "-m", "ipft_tui", *args,
                     "--enable-probe-server", "--probe-server-port", str(self.port)]
        self.proc = subprocess.Popen(self.argv, stdout=self.out_path.open("w"),
                                     stderr=self.err_path.open("w"), cwd=REPO)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ipft-tui exited early ({self.proc.returncode}): {self.stderr}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"ipft-tui not ready after {timeout}s: {self.stderr}")

    def wait_stdout(self, done, timeout: float = 15) -> bool:
        """Whether done(the complete lines on stdout so far) became true within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout
            if done(text[:text.rfind("\n") + 1].splitlines()):
                return True
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return False
            time.sleep(0.05)  # polling a file another process writes

    def stop(self, sig=15, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()


@pytest.fixture
def trace_process(tmp_path):
    started = []

    def start(*args: str) -> TraceProcess:
        tp = TraceProcess(tmp_path, *args)
        started.append(tp)
        return tp

    yield start
    for tp in started:
        if tp.proc.poll() is None:
            tp.proc.kill()
            tp.proc.wait()


@pytest.fixture
def veth(bpf_ready):
    from ipft_tui.netlab import VethPair, unique_prefix
    with VethPair(unique_prefix("t")) as pair:
        yield pair
