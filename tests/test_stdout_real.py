"""Headless output to a stdout that is closed, full, or not read: a short message,
no traceback, probes detached, and a prompt exit."""

import fcntl
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.root

MARK = 0x5EED


class Headless:
    """ipft-tui -o json with the given stdout; ready once its probe server answers."""

    def __init__(self, tmp_path, stdout, *args: str):
        self.port = free_port()
        self.err_path = tmp_path / "stderr"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipft_tui", "-m", hex(MARK), "-o", "json", *args,
             "--enable-probe-server", "--probe-server-port", str(self.port)],
            stdout=stdout, stderr=self.err_path.open("w"), cwd=REPO)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"not ready: {self.stderr}")

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def headless(tmp_path):
    started = []

    def start(stdout, *args):
        h = Headless(tmp_path, stdout, *args)
        started.append(h)
        return h

    yield start
    for h in started:
        h.kill()


def flood(veth, count: int) -> None:
    veth.exec(veth.ns_a, "ping", "-q", "-c", str(count), "-i", "0.002", "-m", str(MARK),
              veth.a_addr, check=False)


def test_stdout_closed_by_the_reader(veth, nothing_left_behind, headless):
    h = headless(subprocess.PIPE)
    h.wait_ready()
    flood(veth, 2)
    assert h.proc.stdout.readline().startswith(b'{"packet_id"')
    h.proc.stdout.close()  # as `| head -n 1` does
    for _ in range(50):
        flood(veth, 2)
        if h.wait(0.2) is not None:
            break
    assert h.wait(10) == 1, h.stderr
    assert "stdout was closed: stopped tracing, probes detached" in h.stderr
    assert "Traceback" not in h.stderr and "Exception" not in h.stderr


def test_stdout_full(veth, nothing_left_behind, headless):
    with open("/dev/full", "w") as full:
        h = headless(full)
    h.wait_ready()
    for _ in range(50):
        flood(veth, 2)
        if h.wait(0.2) is not None:
            break
    assert h.wait(10) == 1, h.stderr
    assert "cannot write to stdout: No space left on device: stopped tracing" in h.stderr
    assert "Traceback" not in h.stderr


def pipe_bytes(stream) -> int:
    return struct.unpack("i", fcntl.ioctl(stream.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def test_reader_that_does_not_read_after_ctrl_c(veth, nothing_left_behind, headless):
    h = headless(subprocess.PIPE)
    h.wait_ready()
    deadline = time.monotonic() + 60
    last = -1
    while time.monotonic() < deadline:  # until the pipe is full and more waits to be written
        flood(veth, 50)
        now = pipe_bytes(h.proc.stdout)
        if now == last and now > 0:
            break
        last = now
    flood(veth, 200)
    assert pipe_bytes(h.proc.stdout) == last, "the pipe is not full"
    stopped = time.monotonic()
    h.proc.send_signal(signal.SIGINT)
    assert h.wait(8) is not None, f"still writing {time.monotonic() - stopped:.0f} s after Ctrl-C"
    assert h.proc.returncode == 0, h.stderr
    assert "samples not written: stdout did not take them within 2 s of the stop" in h.stderr
    assert "Traceback" not in h.stderr


def test_stdout_full_at_the_end_of_an_aggregate_trace(veth, nothing_left_behind, tmp_path):
    port = free_port()
    err = tmp_path / "stderr"
    with open("/dev/full", "w") as full:
        proc = subprocess.Popen([sys.executable, "-m", "ipft_tui", "-m", hex(MARK), "-o",
                                 "aggregate", "--enable-probe-server", "--probe-server-port",
                                 str(port)], stdout=full, stderr=err.open("w"), cwd=REPO)
    h = Headless.__new__(Headless)  # reuse the waiting helpers
    h.proc, h.port, h.err_path = proc, port, err
    try:
        h.wait_ready()
        flood(veth, 5)
        proc.send_signal(signal.SIGINT)
        assert h.wait(15) == 1, h.stderr
        assert "cannot write to stdout: No space left on device" in h.stderr
        assert "Traceback" not in h.stderr
    finally:
        h.kill()
