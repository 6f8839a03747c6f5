"""The TUI on a real collector and real demo traffic, run headlessly."""


import pytest

from ipft_tui.batching import SampleBuffer
from ipft_tui.demo import DemoTraffic
from ipft_tui.netlab import leftover_namespaces
from ipft_tui.settings import TraceSettings
from ipft_tui.tui.app import IpftApp
from ipft_tui.tui.sources import LiveSource
from ipft_tui.tui.packet_list import PacketList
from ipft_tui.tui.widgets import StatusBar
from tests.conftest import ipft_bpf_objects, ipft_bpf_objects_settled

pytestmark = pytest.mark.root


async def wait_until(pilot, predicate, timeout=20.0):
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return True
        await pilot.pause(0.1)
    return False


async def test_tui_shows_demo_traffic_live_and_cleans_up(nothing_left_behind, tmp_path):
    buffer = SampleBuffer()
    record = tmp_path / "trace.jsonl"
    # The tracepoint backend (on every BTF kernel): the functions awaited below are tracepoints.
    source = LiveSource(TraceSettings(mark=0xDEADBEEF, backend="tracepoint"), buffer,
                        record_path=str(record))
    app = IpftApp(source, buffer)
    with DemoTraffic(interval=0.3) as demo:
        async with app.run_test(size=(150, 40)) as pilot:
            assert await wait_until(pilot, lambda: source.ready), source.error
            total = source.status.total
            assert total == len(source.kernel.tracepoints) > 0
            assert len([o for o in ipft_bpf_objects() if o.startswith("link")]) == total

            def seen(function):
                return any(function in p.functions for p in app.store.packets.values())

            for function in ("net_dev_queue", "net_dev_start_xmit", "kfree_skb", "consume_skb",
                             "icmp_send", "tcp_send_reset"):
                assert await wait_until(pilot, lambda f=function: seen(f)), function
            assert app.query_one(PacketList).row_count == len(app.store.packets)
            assert f"probes {total}/{total}" in app.query_one(StatusBar).render().plain

            # Change the mark from the dialog: the demo's packets stop matching.
            await pilot.press("m", "tab", "ctrl+u", *"0x1", "enter")  # the mark field
            assert await wait_until(pilot, lambda: source.status.mark == 1)
            await pilot.pause(0.5)
            before = app.store.samples
            rounds = demo.rounds
            assert await wait_until(pilot, lambda: demo.rounds >= rounds + 2)
            await pilot.pause(0.3)
            assert app.store.samples == before
            await pilot.press("q")
        assert demo.pair.ns_a in leftover_namespaces()
    assert not source._collector.running
    assert ipft_bpf_objects_settled() == []
    assert record.read_text().count("\n") >= before  # --record wrote what was seen
    # The settings the recording was made with, before its samples; the last (which a
    # replay shows) names the backend `auto` chose.
    lines = record.read_text().splitlines()
    settings = [line for line in lines if line.startswith('{"ipft_tui_settings"')]
    assert settings and lines[0] == settings[0]
    assert '"backend": "tracepoint"' in settings[-1]


async def test_tui_switches_extensions_and_keeps_the_old_one_when_broken(nothing_left_behind,
                                                                         tmp_path):
    from tests.conftest import REPO
    broken = tmp_path / "broken.c"
    broken.write_text("struct event { u32 len; };\n"
                      "int module(void *ctx, struct sk_buff *skb, u8 data[64]) { return nope; }\n")
    buffer = SampleBuffer()
    source = LiveSource(TraceSettings(mark=0xDEADBEEF, meta=True), buffer)
    app = IpftApp(source, buffer)
    with DemoTraffic(interval=0.3):
        async with app.run_test(size=(150, 40)) as pilot:
            assert await wait_until(pilot, lambda: source.ready), source.error

            await pilot.press("s", *str(REPO / "examples/devname.c"), "enter")
            assert await wait_until(pilot, lambda: source.extension is not None, timeout=60)
            assert await wait_until(pilot, lambda: any(
                p.last.fields and p.last.fields.get("ifname", "").startswith("ipftd")
                for p in app.store.packets.values()))
            good = source.extension

            await pilot.press("s", "ctrl+u", *str(broken), "enter")
            assert await wait_until(pilot, lambda: any(
                "keeping the previous extension" in n.message for n in app._notifications),
                timeout=60)
            assert any("broken.c:2:" in n.message and "nope" in n.message for n in app._notifications)
            assert await wait_until(pilot, lambda: source.ready)
            assert source.extension is good
            before = app.store.samples
            assert await wait_until(pilot, lambda: app.store.samples > before)
            await pilot.press("q")
    assert ipft_bpf_objects_settled() == []
