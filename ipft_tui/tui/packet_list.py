"""The packet list: one row per journey, drawn line by line from the packet store.

A Line API widget (like Textual's Log): only the rows on screen are rendered,
so a batch of thousands of new packets costs a list append and one refresh,
not thousands of table rows.
"""

from __future__ import annotations

from bisect import bisect_left, insort

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .. import formatting as fmt
from ..model import Packet, PacketStore, flow_text, packet_id_text
from .sorting import sorted_keys

# (title, width, right-aligned)
COLUMNS = (("#", 6, True), ("first seen", 11, True), ("samples", 7, True), ("first", 18, False),
           ("last / drop", 28, False), ("duration", 9, True), ("flow", 36, False), ("CPUs", 5, False),
           ("fields", 30, False), ("packet id", 18, False))
WIDTH = sum(width + 1 for _title, width, _right in COLUMNS)

HEADER_STYLE = Style(bold=True)
CURSOR_STYLE = Style(reverse=True, bold=True)
DROP_STYLE = Style(color="red", bold=True)
DIM = Style(dim=True)
GREEN = Style(color="green")


def fields_text(fields) -> str:
    """An extension's fields, as the aggregate output writes them."""
    return " ".join(f"{k}={v}" for k, v in fields.items()) if fields else ""


def packet_cells(packet: Packet, origin: int) -> list[tuple[str, Style | None]]:
    dropped = packet.drop_reason is not None
    # Where it was dropped, rather than its last function: with skb following a
    # clone may live on after another was dropped.
    last = f"{packet.drop_function}: {packet.drop_reason}" if dropped else packet.last.function
    return [
        (str(packet.key), DROP_STYLE if dropped else None),
        (fmt.offset(packet.first.timestamp - origin), None),
        (str(len(packet)), None),
        (packet.first.function, None),
        (last, DROP_STYLE if dropped else None),
        (fmt.duration(packet.duration), None),
        (flow_text(packet.meta), GREEN),
        (",".join(str(c) for c in packet.cpus), None),
        (fields_text(packet.last.fields), GREEN),
        (packet_id_text(packet.packet_id), DIM),
    ]


def _line(cells: list[tuple[str, Style | None]], base: Style | None) -> list[Segment]:
    segments = []
    for (text, style), (_title, width, right) in zip(cells, COLUMNS):
        cell = text[:width].rjust(width) if right else text[:width].ljust(width)
        segments.append(Segment(cell + " ", (base + style) if base and style else (style or base)))
    return segments


class PacketList(ScrollView, can_focus=True):
    """The visible packets (keys into the store, oldest first) and a cursor."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("enter", "select", "Open", show=False),
        Binding("greater_than_sign", "sort(1)", "Sort >", show=False),
        Binding("less_than_sign", "sort(-1)", "Sort <", show=False),
        Binding("I", "sort(0)", "Invert sort", show=False),
    ]
    DEFAULT_CSS = "PacketList { overflow-x: auto; overflow-y: auto; }"

    class Highlighted(Message):
        def __init__(self, key: int | None):
            super().__init__()
            self.key = key

    class Selected(Message):
        def __init__(self, key: int):
            super().__init__()
            self.key = key

    def __init__(self, store: PacketStore, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.keys: list[int] = []
        self.cursor_row = 0
        self.sort_column = 0  # index into COLUMNS; 0 ('#', ascending): arrival order
        self.sort_reverse = False

    # -- content ---------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.keys)

    def set_keys(self, keys: list[int]) -> None:
        self.keys = self._sorted(keys) if self.sorting else keys
        self.cursor_row = min(self.cursor_row, max(len(keys) - 1, 0))
        self._changed()

    def add_keys(self, keys: list[int]) -> None:
        if self.sorting:
            if keys:
                self.keys.extend(keys)
                self.keep_sorted()
            return
        if keys and self.keys and keys[0] < self.keys[-1]:
            for key in keys:
                insort(self.keys, key)
        else:
            self.keys.extend(keys)
        self._changed()

    def forget_evicted(self) -> None:
        """Drop rows whose packets the store evicted (always the oldest)."""
        if self.sorting:
            kept = [k for k in self.keys if k in self.store.packets]
            if len(kept) != len(self.keys):
                selected = self.selected_key()
                self.keys = kept
                self._put_cursor_on(selected)
                self._changed()
            return
        if self.keys and self.keys[0] not in self.store.packets:
            oldest = next(iter(self.store.packets), None)
            cut = len(self.keys) if oldest is None else bisect_left(self.keys, oldest)
            del self.keys[:cut]
            self.cursor_row = max(self.cursor_row - cut, 0)
            self._changed()

    def clear(self) -> None:
        self.set_keys([])

    def _changed(self) -> None:
        self.virtual_size = Size(WIDTH, len(self.keys) + 1)
        self.refresh()

    # -- sorting (keys: > < I, or a click on a column title) --------------------------

    @property
    def sorting(self) -> bool:
        return self.sort_column != 0 or self.sort_reverse

    def _sorted(self, keys: list[int]) -> list[int]:
        return sorted_keys(keys, self.store.packets, COLUMNS[self.sort_column][0],
                           self.sort_reverse)

    def _put_cursor_on(self, key: int | None) -> None:
        if key is not None and key in self.keys:
            self.cursor_row = self.keys.index(key)
        self.cursor_row = min(self.cursor_row, max(len(self.keys) - 1, 0))

    def keep_sorted(self) -> None:
        """Re-sorts after rows changed (live updates); the cursor stays on its packet."""
        if not self.sorting:
            return
        selected = self.selected_key()
        self.keys = self._sorted(self.keys)
        self._put_cursor_on(selected)
        self._changed()

    def sort_by(self, column: int, reverse: bool) -> None:
        selected = self.selected_key()
        self.sort_column, self.sort_reverse = column, reverse
        self.keys = self._sorted(self.keys)
        self._put_cursor_on(selected)
        self._changed()
        self.move_cursor(self.cursor_row, animate=None)  # scrolls to it, tells the app

    def action_sort(self, step: int) -> None:
        """step ±1: the next/previous column; 0: invert the order."""
        if step == 0:
            self.sort_by(self.sort_column, not self.sort_reverse)
        else:
            self.sort_by((self.sort_column + step) % len(COLUMNS), self.sort_reverse)

    def _column_at(self, x: int) -> int | None:
        edge = 0
        for index, (_title, width, _right) in enumerate(COLUMNS):
            edge += width + 1
            if x < edge:
                return index
        return None

    def selected_key(self) -> int | None:
        return self.keys[self.cursor_row] if self.keys else None

    def row_cells(self, row: int) -> list[str]:
        packet = self.store.packets[self.keys[row]]
        return [text for text, _style in packet_cells(packet, self.store.origin or 0)]

    # -- cursor ------------------------------------------------------------------------

    def move_cursor(self, row: int, animate: bool = False) -> None:
        if not self.keys:
            return
        row = max(0, min(row, len(self.keys) - 1))
        moved = row != self.cursor_row
        self.cursor_row = row
        # Keep the cursor on screen (line 0 is the header).
        visible = max(self.size.height - 1, 1)
        top = self.scroll_offset.y
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
        self.refresh()
        if moved or animate is None:
            self.post_message(self.Highlighted(self.selected_key()))

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - max(self.size.height - 2, 1))

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(self.size.height - 2, 1))

    def action_select(self) -> None:
        if self.keys:
            self.post_message(self.Selected(self.selected_key()))

    def on_click(self, event) -> None:
        if event.y == 0:  # a column title: sort by it, again: the other way
            column = self._column_at(event.x + self.scroll_offset.x)
            if column is not None:
                self.sort_by(column, column == self.sort_column and not self.sort_reverse)
            return
        row = event.y - 1 + self.scroll_offset.y
        if event.y >= 1 and 0 <= row < len(self.keys):
            self.move_cursor(row)

    # -- drawing ---------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            cells = [(title, HEADER_STYLE) for title, _w, _r in COLUMNS]
            if self.sorting:
                title, room, _right = COLUMNS[self.sort_column]
                arrow = " ▼" if self.sort_reverse else " ▲"
                cells[self.sort_column] = (title[:room - len(arrow)] + arrow,
                                           HEADER_STYLE + Style(color="cyan"))
            segments = _line(cells, None)
        else:
            row = scroll_y + y - 1
            if row >= len(self.keys):
                return Strip.blank(width, self.rich_style)
            packet = self.store.packets.get(self.keys[row])
            if packet is None:
                return Strip.blank(width, self.rich_style)
            base = CURSOR_STYLE if row == self.cursor_row and self.has_focus else (
                Style(reverse=True) if row == self.cursor_row else None)
            segments = _line(packet_cells(packet, self.store.origin or 0), base)
        strip = Strip(segments).crop_extend(scroll_x, scroll_x + width, self.rich_style)
        return strip

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
