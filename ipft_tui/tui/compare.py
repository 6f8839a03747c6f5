"""Compare (v marks packet A, = on packet B): the two function sequences aligned,
the first divergence highlighted, the time difference per aligned step."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from .keys import bindings
from .. import formatting as fmt
from ..compare import CHANGED, ONLY_A, ONLY_B, SAME, Row, compare
from ..model import Packet
from ..paths import outcome

KIND_STYLE = {SAME: "dim", CHANGED: "yellow", ONLY_A: "red", ONLY_B: "green"}


def signed(ns: int | None) -> str:
    if ns is None:
        return ""
    return ("+" if ns > 0 else "-" if ns < 0 else "±") + fmt.duration(abs(ns))


def packet_title(name: str, packet: Packet) -> Text:
    ends = outcome(packet)
    return Text.assemble((f"{name}: ", "bold"), f"packet {packet.key}  ",
                         (ends, "bold red" if ends.startswith("drop") else "green"),
                         f"  {fmt.duration(packet.duration)}")


class CompareTable(DataTable):
    BINDINGS = bindings("table")


class CompareScreen(Screen):
    BINDINGS = bindings("compare")
    DEFAULT_CSS = """
    CompareScreen #compare-title { height: auto; background: $panel; padding: 0 1; }
    CompareScreen CompareTable { height: 1fr; }
    """

    def __init__(self, a: Packet, b: Packet):
        super().__init__()
        self.a, self.b = a, b
        self.rows, self.divergence = compare(a, b)

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="compare-title")
        yield CompareTable(cursor_type="row")
        yield Footer()

    def _title(self) -> Text:
        text = packet_title("A", self.a)
        text.append("\n")
        text.append_text(packet_title("B", self.b))
        text.append("\n")
        if self.divergence is None:
            text.append("same path", style="bold green")
            if self.rows:
                text.append(f"; B ends {signed(self.rows[-1].delta)} compared with A")
        else:
            row = self.rows[self.divergence]
            text.append(f"first divergence at step {self.divergence + 1}: ", style="bold yellow")
            text.append(f"A {row.a.function if row.a else '(nothing)'}  vs  "
                        f"B {row.b.function if row.b else '(nothing)'}")
        return text

    def on_mount(self) -> None:
        table = self.query_one(CompareTable)
        table.add_columns("", "#", "A", "+t A", "B", "+t B", "B - A")
        for i, row in enumerate(self.rows):
            table.add_row(*self._cells(i, row))
        table.focus()
        self.action_to_divergence()

    def _cells(self, i: int, row: Row) -> list[Text]:
        first = i == self.divergence
        style = "bold reverse yellow" if first else KIND_STYLE[row.kind]
        name_style = "bold" if first else ("" if row.kind == SAME else KIND_STYLE[row.kind])
        return [Text(row.kind, style=style), Text(str(i + 1), style="dim"),
                Text(row.a.function if row.a else "", style=name_style),
                Text(f"+{fmt.duration(row.a.offset)}" if row.a else "", style="dim"),
                Text(row.b.function if row.b else "", style=name_style),
                Text(f"+{fmt.duration(row.b.offset)}" if row.b else "", style="dim"),
                Text(signed(row.delta), justify="right")]

    def action_to_divergence(self) -> None:
        if self.divergence is not None:
            self.query_one(CompareTable).move_cursor(row=self.divergence)

    def action_close(self) -> None:
        self.dismiss(None)
