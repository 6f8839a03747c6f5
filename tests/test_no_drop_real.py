"""--no-drop with a Lua script: the script's samples go through the bounded buffer in
the main thread; stopping while it is behind still writes every delivered sample."""

import re

import pytest

from tests.conftest import REPO
from tests.test_trace_real import local_udp

MARK = 0xD0D
pytestmark = pytest.mark.root


def test_no_drop_with_a_script_writes_every_delivered_sample(veth, trace_process,
                                                             nothing_left_behind):
    tp = trace_process("-m", hex(MARK), "-o", "json", "-v", "--no-drop",
                       "-s", str(REPO / "examples/tuple.lua"))
    tp.wait_ready()
    local_udp(veth, 9, MARK, count=20000, pause=0)
    assert tp.wait_stdout(lambda lines: len(lines) >= 1000), tp.stderr
    assert tp.stop() == 0, tp.stderr  # while the script is still behind
    summary = next(line for line in tp.stderr.splitlines() if line.startswith("Summary:"))
    delivered, lost, _rescued, dropped = (int(n) for n in re.findall(r"\d+", summary))
    assert dropped == 0 and delivered > 20000
    assert len(tp.stdout.splitlines()) == delivered
