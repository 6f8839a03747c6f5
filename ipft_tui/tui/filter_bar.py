"""The journey filter bar (\\): an expression over the loaded journeys, applied as you type.

A malformed expression is shown in place (a caret under its column) and the last
good filter stays on; Esc clears the filter and hides the bar, Enter keeps it.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from ..journey_filter import FilterError, Predicate, compile_filter

HINT = "e.g. drop == NO_SOCKET and dport == 7777, fn ~ nf_hook and duration > 50us"


class FilterInput(Input):
    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False)]

    def action_clear_filter(self) -> None:
        self.post_message(FilterBar.Cleared())


class FilterBar(Vertical):
    """Hidden until opened; posts Applied on every valid change, Cleared on Esc."""

    DEFAULT_CSS = """
    FilterBar { height: auto; display: none; background: $boost; }
    FilterBar.open, FilterBar.active { display: block; }
    FilterBar #filter-status { height: auto; }
    """

    class Applied(Message):
        def __init__(self, predicate: Predicate | None, text: str):
            super().__init__()
            self.predicate, self.text = predicate, text

    class Cleared(Message):
        pass

    class Done(Message):
        pass

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.text = ""  # the expression in effect
        self.counts = (0, 0)

    def compose(self) -> ComposeResult:
        yield FilterInput(placeholder="filter journeys: field op value …", id="filter-input",
                          compact=True)
        yield Static("", id="filter-status")

    @property
    def input(self) -> FilterInput:
        return self.query_one(FilterInput)

    def open(self) -> None:
        self.add_class("open")
        self.input.value = self.text
        self.input.cursor_position = len(self.text)
        self.input.focus()
        self._status()

    def close(self) -> None:
        self.remove_class("open")
        self.set_class(bool(self.text), "active")

    def set_expression(self, text: str) -> bool:
        """Sets the filter from outside (the paths view); False if it does not parse."""
        with self.prevent(Input.Changed):
            self.input.value = text
        ok = self._apply(text)
        self.close()
        self._status()
        return ok

    def clear(self) -> None:
        self.post_message(self.Cleared())

    def _apply(self, text: str) -> bool:
        try:
            predicate = compile_filter(text)
        except FilterError as exc:
            self._status(exc)
            return False
        self.text = text.strip()
        self.post_message(self.Applied(predicate, self.text))
        self._status()
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._apply(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._apply(event.value):
            self.close()
            self._status()
            self.post_message(self.Done())

    def on_filter_bar_cleared(self, event: Cleared) -> None:
        self.text = ""
        self.input.value = ""
        self.close()
        self.post_message(self.Applied(None, ""))
        self.post_message(self.Done())

    def show_counts(self, shown: int, total: int) -> None:
        if not self.is_mounted:  # the app's first status update can come before ours
            return
        if (shown, total) != self.counts:
            self.counts = (shown, total)
            if not self.has_class("open") or not self.query_one("#filter-status").has_class("error"):
                self._status()

    def _status(self, error: FilterError | None = None) -> None:
        status = self.query_one("#filter-status", Static)
        status.set_class(error is not None, "error")
        if error is not None:
            status.update(Text.assemble((" " * (error.column - 1) + "^ ", "bold red"),
                                        (str(error), "red")))
            return
        shown, total = self.counts
        text = Text()
        if self.text:
            text.append(f"{shown}/{total} shown", style="bold")
            text.append("  \\ edit · Esc clear" if not self.has_class("open")
                        else "  Enter keep · Esc clear", style="dim")
        if self.has_class("open"):
            text.append(("\n" if self.text else "") + HINT, style="dim")
        status.update(text)
