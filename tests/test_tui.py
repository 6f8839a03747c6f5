"""Pilot tests of the TUI on recorded traces."""

from ipft_tui.model import group_by_packet
from ipft_tui.tui.screens import (ChoiceDialog, ConfirmDialog, FilterDialog, HelpScreen,
                                  RegexDialog)
from ipft_tui.tui.sources import load_trace
from ipft_tui.tui.keys import KEYS, LIVE_ACTIONS
from ipft_tui.tui.packet_list import PacketList
from ipft_tui.tui.widgets import JourneyTree, StatusBar
from tests.tui_support import DATA, recorder_app, replay_app

SIZE = (150, 40)


def labels(tree: JourneyTree) -> list[str]:
    out = []
    for line in range(tree.last_line + 1):
        node = tree.get_node_at_line(line)
        out.append(node.label.plain)
    return out


async def test_packets_are_grouped_and_listed():
    app = replay_app()
    samples, _ = load_trace(str(DATA / "demo.jsonl"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(PacketList)
        assert table.row_count == len(app.store.packets)
        # Recycled skb addresses make more journeys than packet ids.
        assert len(app.store.packets) > len(group_by_packet(samples))
        assert sum(len(p.samples) for p in app.store.packets.values()) == len(samples)
        for packet in app.store.packets.values():
            stamps = [s.timestamp for s in packet.samples]
            assert stamps == sorted(stamps)
            assert {s.packet_id for s in packet.samples} == {packet.packet_id}
        status = app.query_one(StatusBar).render().plain
        assert f"samples {len(samples)}" in status and "backend replay" in status


async def test_selecting_a_packet_shows_its_journey_and_details():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down")
        packet = app.store.packets[app.query_one(PacketList).selected_key()]
        tree = app.query_one(JourneyTree)
        assert [line.split()[2] for line in labels(tree)[1:]] == [s.function for s in packet.samples]
        await pilot.press("enter")
        assert tree.has_focus
        # The tree starts on the first sample, and the details show it.
        assert f"function     {packet.samples[0].function}" in app.query_one("#detail").render().plain
        await pilot.press("down")
        detail = app.query_one("#detail").render().plain
        assert f"function     {packet.samples[1].function}" in detail
        assert f"timestamp    {packet.samples[1].timestamp} ns" in detail


async def test_a_highlight_after_the_detail_text_is_removed_changes_nothing():
    """At exit Textual removes the pane's children while highlights may still be
    queued (a CI run failed so): showing a sample then must not raise."""
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.query_one("#detail").remove()
        await pilot.press("down")
        app._show_detail()
        await pilot.pause()
        assert not app.query("#detail")


async def test_function_graph_expand_collapse_and_depth():
    app = replay_app("graph.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("g", "enter")
        tree = app.query_one(JourneyTree)
        first = labels(tree)
        assert any("ip_rcv()" in line for line in first)
        assert not any("__udp4_lib_rcv" in line for line in first)  # built lazily
        await pilot.press("e")
        expanded = labels(tree)
        deepest = next(line for line in expanded if "__udp4_lib_rcv()" in line)
        assert "12.0µs" in deepest
        await pilot.press("c")
        assert not any("ip_local_deliver()" in line for line in labels(tree))
        await pilot.press("3")
        depth3 = labels(tree)
        assert any("ip_rcv_finish()" in line for line in depth3)  # depth 2
        assert any("ip_local_deliver()" in line for line in depth3)  # depth 3
        assert not any("ip_local_deliver_finish()" in line for line in depth3)


async def test_graph_of_a_trace_started_mid_call():
    app = replay_app("graph.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("G", "enter", "e")
        text = labels(app.query_one(JourneyTree))
        assert any("__netif_receive_skb_core()" in l and "entry not seen" in l for l in text)
        assert any("validate_xmit_skb()" in l for l in text)


async def test_find_packets_by_function():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f")
        await pilot.press(*"icmp_send", "enter")
        table = app.query_one(PacketList)
        expected = [p for p in app.store.packets.values() if "icmp_send" in p.functions]
        assert 0 < table.row_count == len(expected) < len(app.store.packets)
        await pilot.press("f", "ctrl+u", "enter")
        assert table.row_count == len(app.store.packets)


async def test_find_unknown_function_shows_error_and_changes_nothing():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f", *"no_such_fn", "enter")
        error = app.screen.query_one("#error").render().plain
        assert "no packet passed through a function matching 'no_such_fn'" in error
        await pilot.press("escape")
        assert app.query_one(PacketList).row_count == len(app.store.packets)


async def test_search_moves_to_matching_packet():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"tcp_send_reset", "enter")
        table = app.query_one(PacketList)
        first_hit = app.store.packets[table.selected_key()]
        assert "tcp_send_reset" in first_hit.functions
        tree = app.query_one(JourneyTree)
        assert "tcp_send_reset" in tree.get_node_at_line(tree.cursor_line).label.plain
        await pilot.press("n")
        second_hit = app.store.packets[table.selected_key()]
        assert "tcp_send_reset" in second_hit.functions and second_hit != first_hit


async def test_pause_holds_samples_and_follow_selects_newest():
    app, _ = recorder_app(follow=True)
    samples, _ = load_trace(str(DATA / "demo.jsonl"))
    app.source.samples = samples[:10]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        table = app.query_one(PacketList)
        rows = table.row_count
        assert table.cursor_row == rows - 1  # follow
        await pilot.press("p")
        app.buffer.put(samples[10:])
        await pilot.pause(0.3)
        assert table.row_count == rows
        assert f"PAUSED +{len(samples) - 10}" in app.query_one(StatusBar).render().plain
        await pilot.press("p")
        await pilot.pause()
        assert table.row_count == len(app.store.packets) > rows
        assert table.cursor_row == table.row_count - 1
        await pilot.press("F")  # follow off
        assert not app.follow
        app.buffer.put(samples[:5])
        await pilot.pause(0.3)
        assert table.cursor_row < table.row_count - 1


async def test_eviction_keeps_the_newest_packets():
    app, _ = recorder_app(max_packets=5)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.query_one(PacketList).row_count == 5
        assert app.store.evicted > 0
        assert f"(-{app.store.evicted} evicted)" in app.query_one(StatusBar).render().plain
        await pilot.press("x")
        assert app.query_one(PacketList).row_count == 0 and not app.store.packets


async def test_replay_keeps_every_packet_and_asks_before_clearing():
    app = replay_app(max_packets=5)  # --max-packets bounds a live trace only
    samples, _ = load_trace(str(DATA / "demo.jsonl"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.store.evicted == 0 and app.store.samples == len(samples)
        assert app.query_one(PacketList).row_count == len(app.store.packets) > 5
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert app.query_one(PacketList).row_count == len(app.store.packets) > 5
        await pilot.press("x", "y")
        assert app.query_one(PacketList).row_count == 0


async def test_malformed_lines_are_reported_with_line_numbers():
    app = replay_app("malformed.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("line 3:" in m for m in messages)
        assert any("line 5:" in m and "bad value" in m for m in messages)
        assert any("line 6:" in m for m in messages)
        assert app.store.samples == 6


async def test_filter_dialog_validates_then_sends_one_command():
    app, source = recorder_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("m")
        assert isinstance(app.screen, FilterDialog)
        dialog = app.screen
        # Pre-filled with the filter in effect; the mark also in decimal (ping -m).
        assert dialog.query_one("#mark").value == "0xdeadbeef"
        assert "3735928559 decimal" in dialog.query_one("#mark-label").render().plain
        await pilot.press(*"udp and", "enter")  # the expression field has the focus
        assert "syntax error" in dialog.query_one("#error").render().plain  # libpcap's words
        await pilot.press("ctrl+u", *"port 99999", "enter")
        assert "illegal port number 99999 > 65535" in dialog.query_one("#error").render().plain
        await pilot.press("ctrl+u", *"udp and dst port 53", "tab", "ctrl+u", *"0xZZ", "enter")
        assert "not a number" in dialog.query_one("#error").render().plain
        await pilot.press("ctrl+u", "tab", "tab", *"ipft-no-such-ns", "enter")
        assert "ipft-no-such-ns" in dialog.query_one("#error").render().plain
        assert source.commands == []
        await pilot.press("ctrl+u", "enter")  # an empty mark: no mark filter, not an error
        assert not isinstance(app.screen, FilterDialog)
        await app.workers.wait_for_complete()
        # A new expression is compiled into a new program: the collector restarts.
        assert source.commands == [("restart", "auto", "function")]
        s = source.settings
        assert (s.expression, s.mark, s.netns, s.ifname) == ("udp and dst port 53", 0, 0, None)
        await pilot.press("m")  # reopened: shows what was applied
        assert app.screen.query_one("#expression").value == "udp and dst port 53"
        assert app.screen.query_one("#mark").value == ""
        await pilot.press("tab", *"42", "enter")  # the mark only: a map update
        assert source.commands[1][0] == "filter" and source.commands[1][1].mark == 42
        await pilot.press("m", "ctrl+u", "tab", "ctrl+u", "enter")
        assert "nothing to trace" in app.screen.query_one("#error").render().plain
        assert len(source.commands) == 2


async def test_regex_dialog_counts_matches_and_refuses_bad_patterns():
    app, source = recorder_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("r")
        assert isinstance(app.screen, RegexDialog)
        await pilot.press(*"^net_dev")
        assert app.screen.query_one("#matches").render().plain == "3 of 5 match"
        await pilot.press("(", "enter")
        assert "invalid regex" in app.screen.query_one("#error").render().plain
        await pilot.press("backspace", *"zz", "enter")
        assert "matches none" in app.screen.query_one("#error").render().plain
        assert source.commands == []
        await pilot.press("backspace", "backspace", "enter")
        assert source.commands == [("regex", "^net_dev")]


async def test_tracer_toggles_live_and_backend_change_restarts_the_collector():
    app, source = recorder_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t")
        assert source.commands == [("tracer", "function_graph")]
        await pilot.press("b")
        assert isinstance(app.screen, ChoiceDialog)
        options = app.screen.query_one("OptionList")
        disabled = [options.get_option_at_index(i).disabled for i in range(options.option_count)]
        assert disabled == [False, True, True, False]
        await pilot.press("down")  # skips the disabled ones
        assert options.highlighted == 3
        await pilot.press("enter")  # tracepoint: the current backend, nothing to do
        await pilot.pause()
        assert len(source.commands) == 1
        await pilot.press("b", "home", "enter")  # kprobe
        await app.workers.wait_for_complete()
        assert source.commands[-1] == ("restart", "kprobe", "function_graph")


async def test_replay_refuses_live_changes():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("m", "r", "t", "p")
        assert not isinstance(app.screen, FilterDialog)
        assert not app.paused
        # Not offered: neither in the footer, nor in the palette, nor in the help.
        footer = {b.binding.action for b in app.screen.active_bindings.values()
                  if b.enabled and b.binding.show}
        assert footer and not footer & LIVE_ACTIONS
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Search" in titles and "Mark" not in titles and "Pause" not in titles
        await pilot.press("question_mark")
        assert "mark / mask" not in help_text(app)


def help_text(app) -> str:
    return app.screen.query_one("#help-text").render().plain


async def test_help_screen_and_command_palette():
    app, _ = recorder_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for close in ("escape", "question_mark", "q"):
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            scroll = app.screen.query_one("#help-scroll")
            await pilot.pause()
            assert scroll.scroll_y == 0 and scroll.max_scroll_y > 0  # opens at its top
            assert scroll.size.width <= 80
            await pilot.press("j", "j", "pagedown")
            assert scroll.scroll_y > 2
            await pilot.press("k")
            await pilot.press(close)
            assert not isinstance(app.screen, HelpScreen), close
        assert app.is_running  # q closed the help, not the app
        # Every key of the table is in the help, and every palette entry is a key.
        await pilot.press("question_mark")
        text = help_text(app)
        for key in KEYS:
            assert key.help in text, key
        for line in text.splitlines()[:-1]:  # the last is a paragraph: it wraps
            assert len(line) <= 76, line  # fits 80 columns with the frame
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for key in KEYS:
            if key.palette:
                assert key.label in titles
        for title in ("Capture", "Display", "Regex", "Tracer", "Backend", "Function", "Pause"):
            assert title in titles


async def test_drops_only_and_drop_reasons_in_the_journey():
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dropped = [p for p in app.store.packets.values() if p.drop_reason]
        assert {p.drop_reason for p in dropped} >= {"NO_SOCKET", "NETFILTER_DROP"}
        await pilot.press("d")
        table = app.query_one(PacketList)
        assert table.row_count == len(dropped) < len(app.store.packets)
        await pilot.press("g", "enter")
        packet = app.store.packets[table.selected_key()]
        text = labels(app.query_one(JourneyTree))
        assert any(f"kfree_skb {packet.drop_reason}" in line for line in text)
        assert any("@" in line and "ns:" in line for line in text)  # where the packet was
        assert "udp 192.0.2.1:" in table.row_cells(0)[6] or \
            "tcp 192.0.2.1:" in table.row_cells(0)[6]
        await pilot.press("d")
        assert table.row_count == len(app.store.packets)


async def test_followed_journey_names_clones_and_shows_stacks():
    """A trace recorded with --track-skb and --stack-trace: the UDP datagram's journey
    holds the skb IP dropped and the one a packet socket read, one ending it."""
    app = replay_app("follow.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert len(app.store.packets) == 2  # the ping, the UDP datagram: no split at clones
        await pilot.press("G", "enter")
        tree = app.query_one(JourneyTree)
        lines = labels(tree)[1:]
        assert [line.split()[2] for line in lines][-4:] == [
            "icmp_send", "kfree_skb", "skb_copy_datagram_iovec", "consume_skb"]
        assert "clone 0xffff888105b77400" in lines[-3] and "[stack]" in lines[-3]
        assert "clone" not in lines[-1]  # the first skb, read by the packet socket
        for _ in range(len(lines) - 3):  # from the first sample
            await pilot.press("down")
        detail = app.query_one("#detail").render().plain
        assert "function     kfree_skb" in detail
        assert "skb          0xffff888105b77400 (clone)" in detail
        stack = detail.split("stack\n", 1)[1].split()
        assert stack[:2] == ["sk_skb_reason_drop+0x90", "__udp4_lib_rcv+0x4bc"]


async def test_skb_following_and_stack_regex_are_switched_live():
    app, source = recorder_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("o")
        assert source.commands == [("track_skb", True)]
        await pilot.press("S")
        assert isinstance(app.screen, RegexDialog)
        await pilot.press(*"nothing_like_this", "enter")
        assert "matches none" in app.screen.query_one("#error").render().plain
        await pilot.press("ctrl+u", *"kfree", "enter")
        await pilot.press("o")
        assert source.commands == [("track_skb", True), ("stack_regex", "kfree"),
                                   ("track_skb", False)]
        await pilot.press("S", "ctrl+u", "enter")  # empty: stacks off
        assert source.commands[-1] == ("stack_regex", None)


async def test_replay_shows_the_filter_the_trace_was_recorded_with(tmp_path):
    from dataclasses import replace as dc_replace

    from ipft_tui.settings import TraceSettings
    from ipft_tui.tui.sources import settings_line
    recorded = dc_replace(TraceSettings(mark=0), expression="udp and dst port 53",
                          ifname="veth0")
    trace = tmp_path / "t.jsonl"
    trace.write_text(settings_line(recorded) + "\n" + (DATA / "demo.jsonl").read_text())
    kept: list[dict] = []
    samples, problems = load_trace(str(trace), kept)
    assert problems == [] and len(samples) == len(load_trace(str(DATA / "demo.jsonl"))[0])
    assert kept[0]["expression"] == "udp and dst port 53"
    app = replay_app(str(trace))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        bar = app.status_bar.render().plain
        assert "filter udp and dst port 53 · dev veth0" in bar, bar
