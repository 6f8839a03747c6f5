"""Headless -o paths / paths-json on real marked packets whose paths are known."""

import json
import time

import pytest

from tests.test_extensions_real import MARK, send_from_fixed_port

pytestmark = pytest.mark.root


def wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def trace_three_drops(trace_process, veth, output: str):
    veth.mark_incoming(MARK, "-p", "udp")
    tp = trace_process("-m", hex(MARK), "-o", output, "-r", "^(net_dev_start_xmit|kfree_skb)$")
    tp.wait_ready()
    for _ in range(3):  # nothing listens on the port: each is dropped with NO_SOCKET
        send_from_fixed_port(veth, 64)
    wait_for(lambda: "Got 6 traces" in tp.stderr)
    assert tp.stop() == 0, tp.stderr
    return tp.stdout


def test_paths_json_counts_the_journeys_of_one_path(veth, trace_process, nothing_left_behind):
    report = json.loads(trace_three_drops(trace_process, veth, "paths-json"))
    assert report["journeys"] == 3
    (path,) = report["paths"]
    assert path["path"] == ["net_dev_start_xmit", "kfree_skb"]
    assert path["count"] == 3 and path["share"] == 1.0
    assert path["ends"] == {"drop: NO_SOCKET": 3}
    assert 0 < path["duration_ns"]["p50"] <= path["duration_ns"]["max"]


def test_paths_text(veth, trace_process, nothing_left_behind):
    text = trace_three_drops(trace_process, veth, "paths")
    assert text.startswith("1 paths, 3 journeys\n")
    assert "3 journeys (100.0%)  ends: drop: NO_SOCKET (3)" in text
    assert "path (2): net_dev_start_xmit > kfree_skb" in text
