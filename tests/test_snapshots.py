"""Snapshot tests (pytest-textual-snapshot) on deterministic recorded traces.

Update after an intended UI change with: .venv/bin/python -m pytest tests/test_snapshots.py --snapshot-update
"""

from tests.tui_support import recorder_app, replay_app

SIZE = (150, 40)


def test_main_screen(snap_compare):
    assert snap_compare(replay_app(), terminal_size=SIZE, press=["down", "down", "enter", "down"])


def test_function_graph_view(snap_compare):
    assert snap_compare(replay_app("graph.jsonl"), terminal_size=SIZE,
                        press=["g", "enter", "e", "down", "down", "down"])


def test_filter_dialog(snap_compare):
    app, _ = recorder_app()

    async def bad_mark(pilot):
        await pilot.pause()
        await pilot.press("m")
        for inp in app.screen.query("Input"):
            inp.cursor_blink = False  # a blinking cursor makes the picture racy
        await pilot.press("ctrl+u", *"0xZZ", "enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=bad_mark)


def test_help_screen(snap_compare):
    assert snap_compare(replay_app(), terminal_size=SIZE, press=["question_mark"])


def test_followed_journey_with_clone_and_stack(snap_compare):
    app = replay_app("follow.jsonl")

    async def to_the_drop(pilot):
        await pilot.pause()
        await pilot.press("G", "enter", *["down"] * 8, "tab")
        await pilot.pause()
        await pilot.press("end")  # the stack, below the sample's fields
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=to_the_drop)


def test_main_screen_at_80x24(snap_compare):
    assert snap_compare(replay_app(), terminal_size=(80, 24), press=["d", "g", "enter"])


def test_help_screen_at_80x24(snap_compare):
    assert snap_compare(replay_app(), terminal_size=(80, 24), press=["question_mark"])


def test_wide_main_screen_with_filter_chip(snap_compare):
    assert snap_compare(replay_app(), terminal_size=(220, 40),
                        press=["f", *"icmp_send", "enter", "g", "enter"])


# The views of issue #17 at the smallest supported terminal, on paths.jsonl (known paths).
SMALL = (80, 24)


def test_paths_view(snap_compare):
    assert snap_compare(replay_app("paths.jsonl"), terminal_size=SMALL, press=["P", "down"])


def test_waterfall_view(snap_compare):
    assert snap_compare(replay_app("paths.jsonl"), terminal_size=SMALL,
                        press=["down", "down", "down", "down", "W", "s"])


def test_waterfall_of_calls(snap_compare):
    assert snap_compare(replay_app("graph.jsonl"), terminal_size=SMALL, press=["W"])


def test_compare_view(snap_compare):
    assert snap_compare(replay_app("paths.jsonl"), terminal_size=SMALL,
                        press=["v", "down", "down", "down", "down", "equals_sign"])


def test_journey_filter_error_in_place(snap_compare):
    app = replay_app("paths.jsonl")

    async def type_filter(pilot):
        await pilot.pause()
        await pilot.press("backslash")
        for inp in app.screen.query("Input"):
            inp.cursor_blink = False
        await pilot.press(*"drop == NO_SOCKET and dport = 9")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SMALL, run_before=type_filter)


def test_filtered_and_sorted_list(snap_compare):
    app = replay_app("paths.jsonl")

    async def filter_and_sort(pilot):
        await pilot.pause()
        await pilot.press("backslash", *"fn ~ ip_rcv", "enter")
        await pilot.press(*["greater_than_sign"] * 5, "I")  # duration, longest first
        await pilot.pause()

    assert snap_compare(app, terminal_size=SMALL, run_before=filter_and_sort)
