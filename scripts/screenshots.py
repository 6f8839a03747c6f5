"""Regenerate the README's screenshots (SVG, and PNG via rsvg-convert) from recorded traces.

Run with: make screenshots
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.tui_support import recorder_app, replay_app  # noqa: E402

OUT = REPO / "screenshots"
SIZE = (150, 40)
SMALL = (80, 24)


async def shoot(name: str, app, keys: list[str], size: tuple[int, int] = SIZE) -> Path:
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.3)
        for inp in app.screen.query("Input"):
            inp.cursor_blink = False
        await pilot.pause()
        svg = OUT / f"{name}.svg"
        app.save_screenshot(filename=svg.name, path=str(OUT))
    return svg


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    shots = [
        await shoot("main", replay_app(), ["down", "down", "enter", "down"], (200, 40)),
        await shoot("small", replay_app(), ["d", "g", "enter"], (80, 24)),
        await shoot("help", replay_app(), ["question_mark"], (80, 24)),
        await shoot("function-graph", replay_app("graph.jsonl"), ["g", "enter", "e", "down", "down"]),
        await shoot("filter-dialog", recorder_app()[0], ["m", "ctrl+u", *"0xZZ", "enter"]),
        # A journey followed into a clone; Tab to the details, Page Down to its kernel stack.
        await shoot("follow-stack", replay_app("follow.jsonl"),
                    ["G", "enter", *["down"] * 7, "tab", "pagedown"]),
        # Issue #17's views at 80x24, on a trace whose paths are known.
        await shoot("paths", replay_app("paths.jsonl"), ["P", "down"], SMALL),
        await shoot("waterfall", replay_app("paths.jsonl"), [*["down"] * 4, "W", "s"], SMALL),
        await shoot("compare", replay_app("paths.jsonl"), ["v", *["down"] * 4, "equals_sign"],
                    SMALL),
        await shoot("journey-filter", replay_app("paths.jsonl"),
                    ["backslash", *"fn ~ nf_hook or drop == NO_SOCKET"], SMALL),
        # Inside the packet: the sample after a DNAT rewrite, changed fields highlighted.
        await shoot("packet", replay_app("capture.jsonl"), ["g", "enter", *["down"] * 7, "tab", "end"]),
    ]
    converter = shutil.which("rsvg-convert")
    for svg in shots:
        if converter:
            subprocess.run([converter, "-o", str(svg.with_suffix(".png")), str(svg)], check=True)
        print(svg.relative_to(REPO), "+ png" if converter else "(no rsvg-convert: SVG only)")


if __name__ == "__main__":
    asyncio.run(main())
