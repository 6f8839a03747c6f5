"""Pilot tests: the view follows the user, nothing important is cut off, keys do what
they say (issue #14, items 3-10, 12, 13)."""

import json
import re

from ipft_tui import formatting as fmt
from ipft_tui.model import NO_REASON
from ipft_tui.tui.packet_list import PacketList
from ipft_tui.tui.screens import FunctionDialog, TextDialog
from ipft_tui.tui.sources import load_trace
from ipft_tui.tui.widgets import JourneyTree, StatusBar
from tests.tui_support import DATA, recorder_app, replay_app

SIZE = (150, 40)


def detail(app) -> str:
    return app.query_one("#detail").render().plain


def cursor_label(tree) -> str:
    return tree.cursor_node.label.plain


async def test_moving_stops_following_and_tree_and_details_show_the_selected_row():
    app, _ = recorder_app(follow=True)
    samples, _ = load_trace(str(DATA / "demo.jsonl"))
    app.source.samples = samples[:30]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        table = app.query_one(PacketList)
        assert app.follow and table.cursor_row == table.row_count - 1
        await pilot.press("k", "k", "k")
        assert not app.follow
        assert "not following" in app.query_one(StatusBar).render().plain
        row = table.cursor_row
        app.buffer.put(samples[30:])  # more packets arrive
        await pilot.pause(0.3)
        assert table.row_count > row + 3
        assert table.cursor_row == row  # the cursor stays where the user put it
        selected = app.store.packets[table.selected_key()]
        tree = app.query_one(JourneyTree)
        assert tree.packet == selected
        first = selected.samples[0]
        assert f"function     {first.function}" in detail(app)
        assert f"timestamp    {first.timestamp} ns" in detail(app)
        await pilot.press("end")  # End (or F) resumes following
        assert app.follow and table.cursor_row == table.row_count - 1
        await pilot.press("slash", *"tcp", "enter")  # searching stops it too
        assert not app.follow


async def test_clicking_a_row_stops_following():
    app, _ = recorder_app(follow=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        table = app.query_one(PacketList)
        top = table.scroll_offset.y
        await pilot.click(PacketList, offset=(5, 3))  # border, header, then the 2nd row
        assert not app.follow
        assert table.cursor_row == top + 1


async def test_the_selected_row_is_never_under_the_scrollbar():
    app = replay_app()
    async with app.run_test(size=(160, 15)) as pilot:
        await pilot.pause()
        table = app.query_one(PacketList)
        await pilot.press("G")
        await pilot.pause()
        # The last visible row (the header is line 0) is the selected one.
        visible = table.scrollable_content_region.height - 1
        assert table.scroll_offset.y + visible - 1 == table.cursor_row == table.row_count - 1
        await pilot.press("g")
        assert table.scroll_offset.y == 0 and table.cursor_row == 0


async def test_the_tree_keeps_its_state_when_the_packet_grows():
    app = replay_app("graph.jsonl")
    samples, _ = load_trace(str(DATA / "graph.jsonl"))
    app.source.samples = samples[:-3]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("g", "enter")
        tree = app.query_one(JourneyTree)
        assert tree.cursor_line == 1  # the first sample, not the root
        await pilot.press("e", "down", "down", "down")
        expanded = [n for n in tree._nodes_built() if n.is_expanded]
        line, label = tree.cursor_line, cursor_label(tree)
        packet = tree.packet
        app.buffer.put(samples[-3:])
        await pilot.pause(0.3)
        assert tree.packet.key == packet.key and len(tree.packet) > len(packet.samples) - 3
        assert cursor_label(tree) == label and tree.cursor_line == line
        assert len([n for n in tree._nodes_built() if n.is_expanded]) >= len(expanded)


async def test_tree_keys_collapse_expand_parent_and_jumps():
    app = replay_app("graph.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("g", "enter")
        tree = app.query_one(JourneyTree)
        start = cursor_label(tree)
        assert "ip_rcv()" in start or tree.cursor_node.allow_expand
        await pilot.press("l")  # expand
        assert tree.cursor_node.is_expanded
        await pilot.press("down", "h")  # to the parent
        assert cursor_label(tree) == start
        await pilot.press("h")  # collapse
        assert not tree.cursor_node.is_expanded
        await pilot.press("space")
        assert tree.cursor_node.is_expanded
        await pilot.press("asterisk")  # the slowest call by self time
        data = tree.cursor_node.data
        calls = [n for n in _calls(tree.roots) if n.self_time is not None]
        assert data.self_time == max(n.self_time for n in calls)
        # The outermost call is the longest, but not the slowest by self time.
        assert data is not max(calls, key=lambda n: n.duration)
        assert f"self {fmt.duration(data.self_time)}" in detail(app)
        await pilot.press("G")
        assert tree.cursor_line == tree.last_line
        await pilot.press("g")
        assert tree.cursor_line == 0


def _calls(roots):
    todo = list(roots)
    while todo:
        node = todo.pop()
        yield node
        todo.extend(node.children)


async def test_jump_to_the_drop_and_footer_follows_the_focused_pane():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()

        def footer_actions():
            return {b.binding.action for b in app.screen.active_bindings.values()
                    if b.binding.show}
        assert "select" in footer_actions() and "collapse_or_parent" not in footer_actions()
        await pilot.press("d", "g", "exclamation_mark")
        tree = app.query_one(JourneyTree)
        assert tree.has_focus
        assert "collapse_or_parent" in footer_actions() and "select" not in footer_actions()
        sample = tree.cursor_node.data
        assert sample.function == "kfree_skb" and sample.drop_reason == tree.packet.drop_reason


async def test_columns_fit_the_width_and_keep_id_flow_and_drop():
    for width in (80, 120, 160, 300):
        app = replay_app()
        async with app.run_test(size=(width, 24)) as pilot:
            await pilot.pause()
            await pilot.press("d")
            table = app.query_one(PacketList)
            packet = app.store.packets[table.keys[0]]
            text = table.row_text(0)
            assert table.virtual_size.width <= table.scrollable_content_region.width
            assert "udp 192.0.2.1:" in text or "tcp 192.0.2.1:" in text
            if width >= 120:
                flow = text.split("  ")
                assert f"{packet.meta.dport}" in text  # the full flow
                assert f"kfree_skb: {packet.drop_reason}" in text  # the full drop
                assert f"{packet.packet_id & 0xFFFFFF:06x}" in text  # the short id
                assert flow
            if width >= 160:
                assert re.search(r"\d+\.\d+s", text)  # the time keeps its unit
            status = app.query_one(StatusBar)
            lines = status.render().plain.split("\n")
            assert all(len(line) <= status.content_region.width for line in lines)
            assert "samples" in lines[-1]  # the last field is still there


async def test_one_time_origin_for_the_tree_and_details_and_blank_devices():
    app = replay_app("follow.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("G", "enter", "down", "down")
        tree = app.query_one(JourneyTree)
        shown = cursor_label(tree).split()[0]  # e.g. +34.9µs
        assert f"time         {shown} from the packet's first sample" in detail(app)
        assert "ifindex 0" not in detail(app) and "ns:0" not in str(
            [tree.get_node_at_line(i).label.plain for i in range(tree.last_line + 1)])


async def test_filter_chip_escape_and_search_every_field():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(PacketList)
        total = table.row_count
        await pilot.press("d")
        assert f"{table.row_count}/{total}" in str(table.border_title)
        await pilot.press("f", *"^icmp_s", "enter")  # a regex
        assert "fn ~ ^icmp_s" in str(table.border_title)
        shown = table.row_count
        assert 0 < shown < total
        await pilot.press("escape")
        assert table.row_count == total and "filter" not in str(table.border_title)
        # Search: a port, a drop reason, a device, an address, a packet id.
        for needle in ("7779", "netfilter_drop", "ipftd207b0", "192.0.2.2", "a581d00"):
            await pilot.press("slash", "ctrl+u", *needle, "enter")
            packet = app.store.packets[table.selected_key()]
            assert needle in app.packet_text(packet), needle
        await pilot.press("slash", "ctrl+u", *"NO_SOCKET", "enter")
        first = table.cursor_row
        await pilot.press("n")
        assert table.cursor_row != first
        await pilot.press("N")
        assert table.cursor_row == first


async def test_function_dialog_shows_the_matching_names():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f", *"net_dev")
        assert isinstance(app.screen, FunctionDialog)
        hint = app.screen.query_one("#matches").render().plain
        assert "net_dev_queue" in hint and "net_dev_start_xmit" in hint
        await pilot.press("(", "enter")
        assert "invalid regex" in app.screen.query_one("#error").render().plain


async def test_drops_in_an_ipftrace2_trace_without_reasons(tmp_path):
    trace = tmp_path / "ipftrace2.jsonl"
    lines = []
    for i, last in enumerate(("kfree_skb", "consume_skb")):
        for j, function in enumerate(("ip_rcv", "ip_local_deliver", last)):
            lines.append(json.dumps({"packet_id": f"0xffff8881000{i}0000", "timestamp": 1000 * i + j,
                                     "processor_id": 0, "function": function,
                                     "is_return": False}))
    trace.write_text("\n".join(lines) + "\n")
    app = replay_app(str(trace))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d")
        table = app.query_one(PacketList)
        assert table.row_count == 1
        assert app.store.packets[table.keys[0]].drop_reason == NO_REASON


async def test_copy_and_write_the_selected_journey(tmp_path, monkeypatch):
    app = replay_app()
    monkeypatch.chdir(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d", "g", "y")
        packet = app.store.packets[app.query_one(PacketList).selected_key()]
        copied = app.clipboard
        assert f"packet {packet.key} 0x{packet.packet_id:x}" in copied
        assert f"kfree_skb {packet.drop_reason}" in copied
        await pilot.press("enter", "w")  # from the tree: the journey
        assert isinstance(app.screen, TextDialog)
        await pilot.press("enter")
        written = [json.loads(line) for line in
                   (tmp_path / f"ipft-packet-{packet.key}.jsonl").read_text().splitlines()]
        assert [s["function"] for s in written] == [s.function for s in packet.samples]
        assert oct((tmp_path / f"ipft-packet-{packet.key}.jsonl").stat().st_mode & 0o777) == "0o600"
        await pilot.press("tab", "tab", "w", "enter")  # from the list: every shown packet
        lines = (tmp_path / "ipft-packets.jsonl").read_text().splitlines()
        assert len({json.loads(line)["packet_id"] for line in lines}) >= 2
        await pilot.press("w", "enter")  # never over an existing file
        assert any("cannot write" in n.message for n in app._notifications)


async def test_recording_starts_and_stops_at_runtime(tmp_path):
    app, source = recorder_app()
    started = []
    source.start_recording = lambda path: started.append(path)
    source.stop_recording = lambda: started.append(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("R", "ctrl+u", *str(tmp_path / "rec.jsonl"), "enter")
        assert started == [str(tmp_path / "rec.jsonl")]
        assert "REC" in app.query_one(StatusBar).render().plain
        await pilot.press("R")
        assert started[-1] is None and "REC" not in app.query_one(StatusBar).render().plain


async def test_a_replay_keeps_more_samples_than_the_live_buffer_holds():
    """Replays go through the same hand-over as live samples, whose buffer drops what
    does not fit: not for a replay (#12.10)."""
    from ipft_tui.batching import SampleBuffer
    from ipft_tui.tui.app import IpftApp
    from ipft_tui.tui.sources import ReplaySource
    buffer = SampleBuffer(capacity=10)
    seen = []
    source = ReplaySource(str(DATA / "demo.jsonl"), buffer,
                          progress=lambda fraction, n: seen.append(fraction))
    app = IpftApp(source, buffer, max_packets=3, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert app.store.samples == source.status.samples == 57
        assert buffer.dropped == 0 and app.store.evicted == 0
        assert "loading" not in app.query_one(StatusBar).render().plain


async def test_loading_progress_is_shown_while_samples_are_applied():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        app.store.samples = 0  # as if half of a big file were still waiting
        app.source.status = app.source.status.__class__(**{**app.source.status.__dict__,
                                                           "samples": 100})
        app._update_status()
        assert "loading" in app.query_one(StatusBar).render().plain
        assert app.attach_bar.has_class("active")
        await pilot.pause()


async def test_an_idle_screen_redraws_nothing():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        status = app.query_one(StatusBar)
        updates = []
        original = status.update
        status.update = lambda *a, **k: (updates.append(a), original(*a, **k))
        table = app.query_one(PacketList)
        refreshes = []
        table_refresh = table.refresh
        table.refresh = lambda *a, **k: (refreshes.append(a), table_refresh(*a, **k))[1]
        await pilot.pause(0.5)  # ten ticks with nothing new
        assert updates == [] and refreshes == []


async def test_a_replay_shows_the_settings_it_was_recorded_with(tmp_path):
    from ipft_tui.settings import TraceSettings
    from ipft_tui.tui.sources import settings_line
    trace = tmp_path / "t.jsonl"
    recorded = TraceSettings(mark=0xDEADBEEF, regex="^net_dev", tracer="function_graph",
                             backend="tracepoint", expression="udp and port 7777")
    trace.write_text(settings_line(recorded) + "\n" + (DATA / "demo.jsonl").read_text())
    app = replay_app(str(trace))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "recorded with filter udp and port 7777" in app.sub_title, app.sub_title
        assert "backend tracepoint, tracer function_graph, regex ^net_dev" in app.sub_title
