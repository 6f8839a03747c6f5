"""--no-drop with a Lua script: the script's samples go through the bounded buffer in
the main thread; stopping while it is behind still writes every delivered sample."""

import re

import pytest

from tests.conftest import REPO

MARK = 0xD0D
pytestmark = pytest.mark.root


def test_no_drop_with_a_script_writes_every_delivered_sample(veth, trace_process,
                                                             nothing_left_behind):
    tp = trace_process("-m", hex(MARK), "-o", "json", "-v", "--no-drop",
                       "-s", str(REPO / "examples/tuple.lua"))
    tp.wait_ready()
    code = ("import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, {MARK})\n"
            "for _ in range(20000):\n"
            f"    s.sendto(b'x', ('{veth.a_addr}', 9))\n")
    veth.exec(veth.ns_a, "python3", "-c", code)
    assert tp.wait_stdout(lambda lines: len(lines) >= 1000), tp.stderr
    assert tp.stop() == 0, tp.stderr  # while the script is still behind
    summary = next(line for line in tp.stderr.splitlines() if line.startswith("Summary:"))
    delivered, lost, _rescued, dropped = (int(n) for n in re.findall(r"\d+", summary))
    assert dropped == 0 and delivered > 20000
    assert len(tp.stdout.splitlines()) == delivered
