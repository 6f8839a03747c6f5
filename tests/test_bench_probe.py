"""The bench's TUI child (scripts/bench.py --child): the shipped TUI on a replay (no root),
watched frame by frame. The instrument itself is checked: it must see what the screen
shows, and only then."""

import pytest

from ipft_tui.model import PacketStore
from ipft_tui.tui.sources import load_trace
from tests.conftest import REPO
from tests.test_bench_tmp import load_bench

bench = load_bench()
TRACE = REPO / "tests/data/paths.jsonl"


@pytest.mark.timeout(120)
def test_child_reports_frames_that_show_rows_counts_and_key_changes():
    samples, _ = load_trace(str(TRACE))
    store = PacketStore(max_packets=None)
    store.add(samples)
    journeys = len(store.packets)
    child = bench.TuiChild("--replay", str(TRACE))
    try:
        child.send("rows")
        child.send(f"expect packets {journeys}")
        rows = child.wait("rows", 60)
        loaded = child.wait("expected", 60)
        assert rows is not None and loaded is not None
        assert child.spawned < rows["t"] <= loaded["t"]
        # a replay opens not following; F turns it on, and the frame says so
        key = child.ask("key", "key", 30)
        assert key["following"] is True and 0 < key["ms"] < 30_000
        key = child.ask("key", "key", 30)
        assert key["following"] is False
        # a count the screen never shows is never reported
        child.send(f"expect packets {journeys + 1}")
        assert child.wait("expected", 2) is None
        status = child.ask("status", "status")
        assert status["frames"] > 0 and status["samples"] == len(samples)
    finally:
        child.close()
    assert child.usage is not None and child.usage.ru_maxrss > 0
