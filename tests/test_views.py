"""Pilot tests of the paths view, the journey filter bar, sorting, the waterfall and
compare, on recorded traces (paths.jsonl: its paths are known, see make_paths_trace.py)."""

from ipft_tui import formatting as fmt
from ipft_tui.model import PacketStore
from ipft_tui.tui.compare import CompareScreen, CompareTable
from ipft_tui.tui.filter_bar import FilterBar
from ipft_tui.tui.packet_list import PacketList
from ipft_tui.tui.paths_view import PathsScreen, PathTable
from ipft_tui.tui.sources import load_trace
from ipft_tui.tui.waterfall import WaterfallScreen, WaterfallView
from tests.tui_support import DATA, replay_app

SMALL = (80, 24)


def paths_store() -> PacketStore:
    store = PacketStore()
    samples, problems = load_trace(str(DATA / "paths.jsonl"))
    assert not problems
    store.add(samples)
    return store


def cells(table, row: int) -> list[str]:
    return [str(getattr(c, "plain", c)) for c in table.get_row_at(row)]


async def test_paths_view_counts_each_path_and_shows_the_selected_one():
    app = replay_app("paths.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("P")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PathsScreen)
        table = screen.query_one(PathTable)
        rows = [cells(table, r) for r in range(table.row_count)]
        assert [(r[1], r[2], r[3]) for r in rows] == [
            ("6", "50.0%", "consumed"), ("3", "25.0%", "drop: NO_SOCKET"),
            ("2", "16.7%", "drop: NETFILTER_DROP"), ("1", "8.3%", "open")]
        assert rows[3][4:7] == ["?", "?", "?"]  # no end seen: no duration
        assert rows[2][6] == "27.9µs"  # the slow netfilter drop is its max
        await pilot.press("down", "down")
        detail = screen.query_one("#path-detail").render().plain
        assert "2 of 12 journeys" in detail
        assert "path (7): ip_output > dev_queue_xmit > net_dev_start_xmit > netif_rx > " \
               "ip_rcv > nf_hook_slow > kfree_skb" in detail
        assert "crosses: veth0@4026532177 > veth1@4026532281" in detail


async def test_enter_on_a_path_lists_its_packets_as_a_filter():
    app = replay_app("paths.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("P", "down", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, PathsScreen)
        table = app.query_one(PacketList)
        assert table.row_count == 3
        assert {app.store.packets[k].drop_reason for k in table.keys} == {"NO_SOCKET"}
        bar = app.query_one(FilterBar)
        assert bar.text.startswith('path == "ip_output > ')
        assert "3/12 shown" in bar.query_one("#filter-status").render().plain
        # Esc in the bar clears it.
        await pilot.press("backslash", "escape")
        await pilot.pause()
        assert table.row_count == 12 and bar.text == ""


async def test_paths_view_follows_live_packets_cheaply():
    store = paths_store()
    screen = PathsScreen(store, interval=3600)  # refreshed by hand below
    app = replay_app("demo.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.push_screen(screen)
        await pilot.pause()
        table = screen.query_one(PathTable)
        assert table.row_count == 4
        await pilot.press("down")  # on the NO_SOCKET path
        grouped = screen.paths
        screen.refresh_paths()
        assert screen.paths is grouped  # nothing changed: not regrouped
        samples, _ = load_trace(str(DATA / "paths.jsonl"))
        # The same journeys again, at other addresses: every count doubles.
        store.add([s._replace(packet_id=s.packet_id + 1, timestamp=s.timestamp + 10**9)
                   for s in samples])
        screen.refresh_paths()
        await pilot.pause()
        assert [cells(table, r)[1] for r in range(4)] == ["12", "6", "4", "2"]
        assert table.cursor_row == 1  # still on the NO_SOCKET path


async def test_filter_applies_as_you_type_and_shows_errors_in_place():
    app = replay_app("paths.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        table = app.query_one(PacketList)
        bar = app.query_one(FilterBar)
        status = bar.query_one("#filter-status")
        await pilot.press("backslash", *"drop == NO_SOCKET")
        await pilot.pause()
        assert table.row_count == 3
        assert "3/12 shown" in status.render().plain
        await pilot.press(*" and dport = 9")  # `=` is not an operator
        await pilot.pause()
        shown = status.render().plain
        assert shown.startswith(" " * 28 + "^ ") and "column 29" in shown, shown
        assert table.row_count == 3  # the last good filter stays on
        await pilot.press("backspace", "backspace", "backspace", *"== 9")  # "dport == 9"
        await pilot.pause()
        assert table.row_count == 3 and "error" not in status.classes
        await pilot.press("ctrl+u", *"fn ~ nf_hook and duration > 20us")
        await pilot.pause()
        # Only the slow netfilter drop: 6 gaps of 800 + 150 i ns, and 20 us.
        assert [app.store.packets[k].duration for k in table.keys] == [27_950]
        await pilot.press("enter")
        assert table.has_focus and bar.display
        assert status.render().plain.startswith("1/12 shown")
        await pilot.press("escape")  # from the packet list too
        await pilot.pause()
        assert table.row_count == 12 and not bar.display


async def test_sort_by_keys_and_header_click_stays_on_the_packet():
    app = replay_app("paths.jsonl")
    async with app.run_test(size=(150, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(PacketList)
        packets = app.store.packets
        await pilot.press("down", "down")
        selected = table.selected_key()
        for _ in range(5):  # '#', first seen, samples, first, last / drop, duration
            await pilot.press("greater_than_sign")
        durations = [packets[k].duration for k in table.keys]
        assert durations == sorted(durations) and table.sort_column == 5
        assert table.selected_key() == selected
        await pilot.press("I")
        assert [packets[k].duration for k in table.keys] == sorted(durations, reverse=True)
        # A click on "samples" (x 19..26 of the title line, inside the border) sorts by it.
        await pilot.click(PacketList, offset=(21, 1))  # inside the border
        lengths = [len(packets[k]) for k in table.keys]
        assert lengths == sorted(lengths) and table.sort_column == 2
        ties = [k for k in table.keys if len(packets[k]) == 7]
        assert ties == sorted(ties)  # equal rows keep their arrival order
        header = table.render_line(0).text
        assert "sampl ▲" in header
        # Live: new packets go to their sorted place, the cursor stays on its packet.
        await pilot.press("down")
        selected = table.selected_key()
        samples, _ = load_trace(str(DATA / "paths.jsonl"))
        app.apply([s._replace(packet_id=s.packet_id + 1, timestamp=s.timestamp + 10**9)
                   for s in samples])
        await pilot.pause()
        lengths = [len(packets[k]) for k in table.keys]
        assert len(lengths) == 24 and lengths == sorted(lengths)
        assert table.selected_key() == selected


async def test_waterfall_bars_lanes_and_slowest_hop():
    app = replay_app("paths.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press(*["down"] * 4)  # packet 4: the netfilter drop waiting 20 us
        packet = app.store.packets[app.query_one(PacketList).selected_key()]
        assert packet.drop_reason == "NETFILTER_DROP"
        await pilot.press("W")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WaterfallScreen)
        view = screen.query_one(WaterfallView)
        assert [b.function for b in view.bars] == [s.function for s in packet.samples]
        assert view.rows[0] == "cpu 0 · veth0@4026532177" and view.rows[4] == \
            "cpu 1 · veth1@4026532281"
        assert view.bars[view.slowest].function == "nf_hook_slow"  # 20 us before kfree_skb
        lines = [view.render_line(y).text for y in range(view.size.height)]
        assert lines[0].rstrip().endswith(fmt.duration(packet.duration))
        slow_line = next(line for line in lines if line.startswith("nf_hook_slow"))
        assert slow_line.count("█") > 2 * max(line.count("█") for line in lines
                                               if line is not slow_line)
        # The tree's keys move the cursor; s jumps to the slowest hop.
        await pilot.press("j", "j", "down")
        assert view.cursor == 3
        detail = screen.query_one("#waterfall-detail").render().plain
        assert detail.startswith("netif_rx  at +3.3µs") and "cpu 1 · veth1" in detail
        await pilot.press("s")
        assert "slowest hop" in screen.query_one("#waterfall-detail").render().plain
        await pilot.press("G", "k")
        assert view.cursor == len(view.bars) - 2
        await pilot.press("escape")
        assert not isinstance(app.screen, WaterfallScreen)


async def test_waterfall_of_calls_shows_duration_and_self_time():
    app = replay_app("graph.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("W")
        await pilot.pause()
        view = app.screen.query_one(WaterfallView)
        bar = view.bars[view.slowest]
        assert (bar.function, bar.length, bar.self_time, bar.depth) == \
            ("__udp4_lib_rcv", 12_000, 12_000, 6)
        top = view.bars[0]
        assert (top.function, top.length, top.self_time) == ("ip_rcv", 32_200, 4_400)
        assert "32.2µs    4.4µs" in view.render_line(2).text


async def test_compare_marks_a_and_b_and_finds_the_divergence():
    app = replay_app("paths.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("equals_sign")  # nothing marked yet: a warning, no screen
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("v", "equals_sign")  # B is A: nothing to compare
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("down", "equals_sign")  # A delivered, B dropped NO_SOCKET
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        table = screen.query_one(CompareTable)
        assert screen.divergence == 6 and table.cursor_row == 6
        assert cells(table, 6)[:6] == ["~", "7", "consume_skb", "+8.0µs", "kfree_skb", "+8.9µs"]
        assert cells(table, 6)[6] == "+1.0µs"  # 950 ns later, shown rounded
        assert [cells(table, r)[0] for r in range(6)] == ["="] * 6
        title = screen.query_one("#compare-title").render().plain
        assert "first divergence at step 7: A consume_skb  vs  B kfree_skb" in title
        assert "B: packet 1  drop: NO_SOCKET" in title


async def test_open_paths_view_updates_on_its_timer_while_packets_arrive():
    app = replay_app("paths.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("P")
        await pilot.pause()
        table = app.screen.query_one(PathTable)
        assert cells(table, 0)[1] == "6"
        samples, _ = load_trace(str(DATA / "paths.jsonl"))
        app.apply([s._replace(packet_id=s.packet_id + 1, timestamp=s.timestamp + 10**9)
                   for s in samples])
        for _ in range(50):  # the view's timer (0.5 s) picks the new journeys up
            if cells(table, 0)[1] == "12":
                break
            await pilot.pause(0.05)
        assert [cells(table, r)[1] for r in range(4)] == ["12", "6", "4", "2"]


async def test_filter_stays_true_while_journeys_grow():
    app = replay_app("paths.jsonl")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        table = app.query_one(PacketList)
        await pilot.press("backslash", *"samples < 3", "enter")
        assert [len(app.store.packets[k]) for k in table.keys] == [2]  # the open journey
        still_open = app.store.packets[table.keys[0]]
        samples, _ = load_trace(str(DATA / "paths.jsonl"))
        late = samples[-1]._replace(packet_id=still_open.packet_id, timestamp=10**10,
                                    function="kfree_skb", drop_reason="NO_SOCKET")
        app.apply([late])  # it grows to 3 samples: no longer shown
        await pilot.pause()
        assert table.row_count == 0
        app.apply([s._replace(packet_id=s.packet_id + 1, timestamp=s.timestamp + 10**10)
                   for s in samples[:2]])  # a new journey of 2 samples appears
        await pilot.pause()
        assert table.row_count == 1
        status = app.query_one(FilterBar).query_one("#filter-status")
        for _ in range(40):  # the counts follow on the app's timer
            if "1/13 shown" in status.render().plain:
                break
            await pilot.pause(0.05)
        assert "1/13 shown" in status.render().plain
