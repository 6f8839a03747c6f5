"""The paths view (P): one row per distinct path the journeys took, updated live.

Enter returns the selected path's filter expression, which the app applies to the
packet list (the same `\\` filter, so it shows as `shown/total` and Esc clears it).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from .keys import bindings
from ..formatting import duration
from ..journey_filter import path_expression
from ..model import PacketStore
from ..paths import CONSUMED, OPEN, PathIndex, PathStats

REFRESH_INTERVAL = 0.5  # s: finding changed journeys is O(journeys), so not on every drain tick
SLICE = 0.05  # s of grouping at a time: a first look at many journeys goes on between frames


def ends_text(stats: PathStats) -> Text:
    """The most common ending, coloured; `+N` other endings."""
    name = stats.outcome
    style = "green" if name == CONSUMED else ("yellow" if name == OPEN else "bold red")
    text = Text(name, style=style)
    if len(stats.outcomes) > 1:
        text.append(f" +{len(stats.outcomes) - 1}", style="dim")
    return text


def path_detail(stats: PathStats | None, total: int) -> Text:
    """The selected path in full: its functions, endings and places."""
    if stats is None:
        return Text("no journeys yet", style="dim")
    text = Text()
    text.append(f"{stats.count} of {total} journeys", style="bold")
    text.append("  ends: ")
    text.append(", ".join(f"{name} ({n})" for name, n in stats.outcomes.most_common()))
    if stats.places:
        text.append("\ncrosses: ", style="bold")
        text.append(" > ".join(stats.places), style="green")
    text.append(f"\npath ({len(stats.functions)}): ", style="bold")
    for i, function in enumerate(stats.functions):
        if i:
            text.append(" > ", style="dim")
        last = i == len(stats.functions) - 1
        text.append(function, style="bold red" if last and stats.outcome.startswith("drop")
                    else "")
    return text


def devices(places) -> list[str]:
    """Places without their namespaces, for the table (the detail has them in full)."""
    return [place.split("@")[0] for place in places]


class PathTable(DataTable):
    BINDINGS = bindings("table")


class PathsScreen(Screen):
    """Distinct paths of the store's journeys (or of `keys()`, the packets listed)."""

    BINDINGS = bindings("paths")
    DEFAULT_CSS = """
    PathsScreen PathTable { height: 1fr; }
    PathsScreen #path-box { height: 7; border-top: solid $panel; padding: 0 1; }
    PathsScreen #paths-title { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, store: PacketStore, interval: float = REFRESH_INTERVAL):
        super().__init__()
        self.store = store
        self.interval = interval
        self.paths: list[PathStats] = []
        self._seen: tuple | None = None  # the store's state when last grouped
        self.index = PathIndex()

    def compose(self) -> ComposeResult:
        yield Static("", id="paths-title")
        table = PathTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "count", "share", "ends", "p50", "p99", "max", "crosses")
        yield table
        with VerticalScroll(id="path-box"):
            yield Static("", id="path-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_paths(force=True)
        self.set_interval(self.interval, self.refresh_paths)
        self.query_one(PathTable).focus()

    def _state(self) -> tuple:
        store = self.store
        return (store.samples, len(store.packets), store.evicted, next(iter(store.packets), None))

    def refresh_paths(self, force: bool = False) -> None:
        """Regroup only when packets changed; the cursor stays on its path."""
        state = self._state()
        if state == self._seen and not force:
            return
        self._seen = state
        table = self.query_one(PathTable)
        selected = self.selected()
        if not self.index.update(self.store.packets, budget=SLICE) and not force:
            return
        if not self.index.complete:  # the rest after this frame
            self._seen = None
            self.set_timer(0.001, self.refresh_paths)
        self.paths = self.index.paths()
        total = sum(p.count for p in self.paths)
        table.clear()
        row = 0
        for number, stats in enumerate(self.paths, 1):
            p50, p99, longest = stats.duration_stats() or (None, None, None)
            table.add_row(str(number), str(stats.count), f"{stats.count / total:.1%}",
                          ends_text(stats), duration(p50), duration(p99), duration(longest),
                          Text(" > ".join(devices(stats.places)), style="green"))
            if selected is not None and stats.functions == selected.functions:
                row = number - 1
        if self.paths:
            table.move_cursor(row=row)
        title = Text.assemble(("Paths", "bold"), f"  {len(self.paths)} distinct, {total} journeys  ")
        if not self.index.complete:
            title.append(f"grouping… {total}/{len(self.store.packets)}", style="bold yellow")
        else:
            title.append("Enter: list a path's packets  Esc: back", style="dim")
        self.query_one("#paths-title", Static).update(title)
        self._show_detail()

    def selected(self) -> PathStats | None:
        table = self.query_one(PathTable)
        if not self.paths or table.cursor_row >= len(self.paths):
            return None
        return self.paths[table.cursor_row]

    def _show_detail(self) -> None:
        total = sum(p.count for p in self.paths)
        self.query_one("#path-detail", Static).update(path_detail(self.selected(), total))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_choose()

    def action_choose(self) -> None:
        stats = self.selected()
        if stats is not None:
            self.dismiss(path_expression(stats.functions))

    def action_close(self) -> None:
        self.dismiss(None)
