"""The TUI under load and at rest (#18): shedding shown, idle ticks doing nothing,
big replays loading on in the background, the replay's fast line parser."""

import asyncio
import glob
import json

import pytest

from ipft_tui.model import Meta, Sample
from ipft_tui.outputs.jsonlines import parse_line
from ipft_tui.tui import app as app_module
from ipft_tui.tui.packet_list import PacketList
from ipft_tui.tui.sources import ReplaySource, _FastParser, load_trace
from ipft_tui.tui.widgets import JourneyTree, StatusBar
from tests.tui_support import DATA, recorder_app, replay_app

SIZE = (150, 40)


async def until(pilot, condition, timeout: float = 10.0) -> None:
    """Waits for a condition (bounded), letting the app run meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await pilot.pause(0.02)


def flood(count: int, start: int = 10**12) -> list[Sample]:
    meta = Meta(3, "veth0", 4026531840, 43, 0x0800, 17, "192.0.2.1", "192.0.2.2", 4000, 9, 0)
    functions = ("net_dev_queue", "net_dev_start_xmit", "netif_receive_skb", "consume_skb")
    return [Sample(0xFFFF888100000000 + (i // 4 % 64) * 256, start + i * 100, 0,
                   functions[i % 4], meta=meta) for i in range(count)]


async def test_a_live_trace_sheds_what_it_cannot_show_in_time_and_says_so():
    app, source = recorder_app(follow=True)
    source.samples = []  # nothing from the file: the flood below only
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app._handled_rate = 4_000.0  # as measured on a slow machine: 1,000 samples in 0.25 s
        app.buffer.put(flood(6_000))  # one batch of 6,000: more than fits
        app.buffer.put(flood(800, start=2 * 10**12))
        await until(pilot, lambda: app.store.samples > 0 and not len(app.buffer))
        # The oldest whole batch went; the newest samples were kept and are shown.
        assert app.shed == 6_000
        assert app.store.samples == 800 and app.buffer.dropped == 0
        status = app.query_one(StatusBar).render().plain
        assert "shed 6000" in status


async def test_a_replay_never_sheds():
    app = replay_app()
    app._handled_rate = 1.0
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.store.samples == app.source.status.samples)
        assert app.shed == 0 and "shed" not in app.query_one(StatusBar).render().plain


async def test_idle_ticks_redraw_nothing(monkeypatch):
    """Nothing new: the timer's ticks refresh no widget (an idle TUI costs ~0 CPU)."""
    app, source = recorder_app(follow=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.store.samples == source.status.samples)
        await pilot.pause(0.3)  # the last follow redraw is due after FOLLOW_REDRAW
        calls = []
        for cls, name in ((PacketList, "refresh"), (StatusBar, "update"),
                          (JourneyTree, "show_packet"), (type(app.detail), "show")):
            original = getattr(cls, name)

            def counted(self, *args, _original=original, _name=name, **kwargs):
                calls.append((type(self).__name__, _name))
                return _original(self, *args, **kwargs)
            monkeypatch.setattr(cls, name, counted)
        for _ in range(5):
            app.tick()
        await pilot.pause(0.3)  # the timer's own ticks too
        assert calls == []
        # ...and a new sample is drawn at once.
        app.buffer.put(flood(4, start=10**13))
        app.tick()
        assert ("PacketList", "refresh") in calls


async def test_a_big_replay_opens_at_once_and_loads_on(monkeypatch, tmp_path):
    monkeypatch.setattr(ReplaySource, "FIRST", 10)
    trace = tmp_path / "recorded.jsonl"  # a recording: its settings line comes last here
    lines = (DATA / "demo.jsonl").read_text()
    trace.write_text(lines + '{"ipft_tui_settings": {"filter": "mark 0x1", "backend": "kprobe",'
                     ' "tracer": "function", "regex": null, "mark": 1}}\n')
    samples, _ = load_trace(str(trace))
    buffer = app_module.SampleBuffer()
    source = ReplaySource(str(trace), buffer, background=True)
    assert len(source.samples) == 10 and source.loading  # the rest is read by the app
    app = app_module.IpftApp(source, buffer, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: not source.loading and not len(buffer)
                    and app.store.samples == len(samples))
        await pilot.pause(0.6)  # the redraw after loading
        assert source.status.samples == len(samples)
        assert app.packet_table.row_count == len(app.store.packets)
        status = app.query_one(StatusBar).render().plain
        assert "loading" not in status and f"packets {len(app.store.packets)}" in status
        assert "recorded with" in app.sub_title
    source.stop()


def test_a_replay_of_no_valid_sample_reads_the_whole_file_before_starting(tmp_path):
    trace = tmp_path / "bad.jsonl"
    trace.write_text("not json\n" * 30 + '{"packet_id": 1}\n')
    source = ReplaySource(str(trace), app_module.SampleBuffer(), background=True)
    assert source.samples == [] and not source.loading and source.problems.total == 31


def strict(raw: bytes):
    try:
        return parse_line(raw.decode())
    except ValueError:
        return None


ODD_LINES = [
    # types the strict reader refuses, or reads differently (a missing field's default)
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"ifindex":true,"ifname":"a","netns":1,"len":1,"l3_proto":1,"l4_proto":1,"saddr":"",'
    '"daddr":"","sport":1,"dport":1,"icmp_type":0}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"ifindex":1.0,"ifname":"a","netns":1,"len":1,"l3_proto":1,"l4_proto":1,"saddr":"",'
    '"daddr":"","sport":1,"dport":1,"icmp_type":0}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"ifindex":1,"ifname":"a","netns":-1,"len":1,"l3_proto":1,"l4_proto":1,"saddr":"",'
    '"daddr":"","sport":1,"dport":1,"icmp_type":0}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"ifindex":1,"ifname":"a"}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"journey_end":true}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"skb":"0x0","journey_end":true}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":1}',
    '{"packet_id":"1","timestamp":1,"processor_id":0,"function":"f","is_return":false}',
    '{"packet_id":"0x1","timestamp":18446744073709551616,"processor_id":0,"function":"f",'
    '"is_return":false}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":4294967296,"function":"f",'
    '"is_return":false}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"","is_return":false}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"drop_reason":7}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"extra":"x"}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false}'
    ' trailing',
    # whitespace to str.isspace() but not to JSON
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false}\x1c',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false}\u2028',
    '[1, 2]',
    '{"packet_id":"0x1","timestamp":NaN,"processor_id":0,"function":"f","is_return":false}',
    # what orjson refuses (a lone surrogate) or reads as a float (an integer beyond 64 bits)
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f\\ud800","is_return":false}',
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"ifindex":1,"ifname":"a","netns":340282366920938463463374607431768211456,"len":1,'
    '"l3_proto":1,"l4_proto":1,"saddr":"","daddr":"","sport":1,"dport":1,"icmp_type":0}',
    # a key twice: both take the last
    '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":false,'
    '"function":"g"}',
]


@pytest.mark.parametrize("raw", ODD_LINES + [
    json.dumps(json.loads(line)) for line in ODD_LINES[:3] if line.startswith("{")])
def test_the_fast_parser_reads_odd_lines_as_the_strict_one_or_leaves_them_to_it(raw):
    got = _FastParser()(raw.encode())
    assert got is None or got == strict(raw.encode())


def test_the_fast_parser_reads_every_recorded_line_as_the_strict_one():
    fast, taken, total = _FastParser(), 0, 0
    for path in sorted(glob.glob(str(DATA / "*.jsonl"))):
        with open(path, "rb") as f:
            for raw in f:
                if not raw.strip() or raw.startswith(b'{"ipft_tui_settings'):
                    continue
                total += 1
                got = fast(raw)
                if got is not None:
                    taken += 1
                    assert got == strict(raw), raw
    assert taken > 0.8 * total  # the common lines go the fast way


def test_a_cached_meta_is_not_reused_for_a_line_with_other_types():
    fast = _FastParser()
    line = ('{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f",'
            '"is_return":false,"ifindex":%s,"ifname":"a","netns":1,"len":1,"l3_proto":1,'
            '"l4_proto":1,"saddr":"","daddr":"","sport":1,"dport":1,"icmp_type":0}')
    assert fast((line % "1").encode()).meta.ifindex == 1
    assert fast((line % "true").encode()) is None  # strict: "ifindex is not ..."
    assert strict((line % "true").encode()) is None


async def test_an_idle_screen_ticks_slowly_and_wakes_for_the_next_sample(monkeypatch):
    monkeypatch.setattr(app_module, "IDLE_AFTER", 0.2)
    app, source = recorder_app(follow=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.store.samples == source.status.samples)
        await until(pilot, lambda: app._idling)
        ticks = []
        pace = app._pace  # called once at the end of every tick
        monkeypatch.setattr(app, "_pace", lambda busy: (ticks.append(busy), pace(busy)))
        await pilot.pause(1.0)
        # Every IDLE_INTERVAL (4 a second), not every DRAIN_INTERVAL (20).
        assert 1 <= len(ticks) <= 1.0 / app_module.IDLE_INTERVAL + 2
        before = app.store.samples
        monkeypatch.setattr(app_module, "IDLE_AFTER", 60.0)  # once awake, it stays so here
        app.buffer.put(flood(4, start=3 * 10**12))
        await until(pilot, lambda: app.store.samples == before + 4, timeout=2.0)
        assert not app._idling  # back to ticking every DRAIN_INTERVAL
