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
