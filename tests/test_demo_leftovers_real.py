"""--demo namespaces name their owner: after kill -9 the next demo removes them (and
says so); a live demo's namespaces are never touched by another."""

import re
import signal
import subprocess
import sys
import time

import pytest

from ipft_tui.netlab import leftover_namespaces, orphaned_namespaces
from tests.conftest import REPO, ipft_bpf_objects_settled

pytestmark = pytest.mark.root

DEMO_LINE = re.compile(r"Demo traffic marked 0x[0-9a-f]+ in namespaces (\S+) and (\S+)")


class Demo:
    def __init__(self, tmp_path, name):
        self.err = tmp_path / f"{name}.stderr"
        self.proc = subprocess.Popen([sys.executable, "-m", "ipft_tui", "-o", "json", "--demo"],
                                     stdout=subprocess.DEVNULL, stderr=self.err.open("w"),
                                     cwd=REPO)

    def namespaces(self, timeout=120) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = DEMO_LINE.search(self.err.read_text())
            if found:
                return found.groups()
            assert self.proc.poll() is None, self.err.read_text()
            time.sleep(0.1)
        raise AssertionError(self.err.read_text())

    def stop(self, sig=signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(30)


@pytest.fixture
def demos(tmp_path):
    started = []

    def start(name):
        started.append(Demo(tmp_path, name))
        return started[-1]

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def test_namespaces_of_a_killed_demo_are_removed_by_the_next(nothing_left_behind, demos):
    first = demos("first")
    killed = first.namespaces()
    first.stop(signal.SIGKILL)
    assert set(killed) <= set(leftover_namespaces())  # kill -9 leaves them...
    assert set(killed) <= set(orphaned_namespaces("d"))
    assert ipft_bpf_objects_settled() == []  # ...but never BPF objects

    second = demos("second")
    mine = second.namespaces()
    assert not set(killed) & set(leftover_namespaces())
    said = re.search(r"Removed namespaces left by demos whose process died: (.+)",
                     second.err.read_text())
    assert said and set(killed) <= set(said.group(1).split(", ")), second.err.read_text()
    assert set(mine) <= set(leftover_namespaces())
    assert second.stop() == 0


def test_a_live_demo_is_left_alone(nothing_left_behind, demos):
    one = demos("one")
    ns_one = one.namespaces()
    two = demos("two")
    ns_two = two.namespaces()
    assert not set(ns_one) & set(ns_two)
    assert set(ns_one) | set(ns_two) <= set(leftover_namespaces())
    assert "Removed namespaces" not in two.err.read_text()
    assert two.stop() == 0
    assert set(ns_one) <= set(leftover_namespaces())
    assert one.stop() == 0


def test_an_orphan_is_recognised_by_its_owner_pid_and_start_time(bpf_ready):
    with open("/proc/self/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    import os
    names = {"dead": "ipftd999999999-5-0-a",  # no such pid
             "reused": f"ipftd{os.getpid()}-{start + 1}-0-a",  # our pid, another start time
             "alive": f"ipftd{os.getpid()}-{start}-0-a",
             "foreign": "ipftdemo-a"}  # not ours: never touched
    try:
        for name in names.values():
            subprocess.run(["ip", "netns", "add", name], check=True)
        orphans = set(orphaned_namespaces("d"))
        assert {names["dead"], names["reused"]} <= orphans
        assert not {names["alive"], names["foreign"]} & orphans
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
