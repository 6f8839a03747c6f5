"""The packet list: one row per journey, drawn line by line from the packet store.

A Line API widget (like Textual's Log): only the rows on screen are rendered,
so a batch of thousands of new packets costs a list append and one refresh,
not thousands of table rows.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .. import formatting as fmt
from ..model import Packet, PacketStore, flow_text
from .sorting import sorted_keys
from .keys import bindings


@dataclass(frozen=True)
class Column:
    title: str
    width: int  # the least it gets
    right: bool = False
    priority: int = 0  # 0 is kept longest; columns go from the highest when space runs out
    want: int = 0  # flexible: the width it should have before a less important column shows
    most: int = 0  # flexible: spare width goes to it up to this


# In display order. The id (short), the full flow and the full drop stay from 120 columns.
COLUMNS = (Column("#", 6, True, 0), Column("first seen", 11, True, 3),
           Column("samples", 7, True, 4), Column("first", 16, False, 5, 18, 24),
           Column("last / drop", 21, False, 1, 30, 40), Column("duration", 9, True, 1),
           Column("flow", 36, False, 0, 50, 90), Column("CPUs", 5, False, 6),
           Column("fields", 16, False, 7, 24, 40), Column("id", 6, False, 2))
MIN_WIDTH = 50  # below this the list scrolls sideways


def layout(width: int, columns=COLUMNS) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown in `width` cells, in display order."""
    shown = list(range(len(columns)))

    def used(indexes, wanted=True):
        return sum(max(columns[i].width, columns[i].want if wanted else 0) + 1 for i in indexes)
    for i in sorted(shown, key=lambda i: -columns[i].priority):
        if used(shown) <= width or len(shown) <= 2:
            break
        if columns[i].priority <= 1 and used(shown, wanted=False) <= width:
            break  # the essential columns fit, narrower than they want
        shown.remove(i)
    wanted = used(shown) <= width
    widths = {i: max(columns[i].width, columns[i].want if wanted else 0) for i in shown}
    spare = width - sum(w + 1 for w in widths.values())
    flexible = [i for i in shown if columns[i].most > widths[i]]
    while spare > 0 and flexible:
        total = sum(columns[i].most for i in flexible)
        given = 0
        for i in list(flexible):
            add = min(max(spare * columns[i].most // total, 1), columns[i].most - widths[i],
                      spare - given)
            widths[i] += add
            given += add
            if widths[i] >= columns[i].most:
                flexible.remove(i)
        spare -= given
        if given == 0:
            break
    return [(i, widths[i]) for i in shown]


HEADER_STYLE = Style(bold=True)
CURSOR_STYLE = Style(reverse=True, bold=True)
DROP_STYLE = Style(color="red", bold=True)
DIM = Style(dim=True)
GREEN = Style(color="green")
YELLOW = Style(color="yellow")


def fields_text(fields) -> str:
    """An extension's fields, as the aggregate output writes them."""
    return " ".join(f"{k}={v}" for k, v in fields.items()) if fields else ""


def short_id(packet_id: int) -> str:
    """The skb address's last hex digits: enough to tell the packets on screen apart."""
    return f"{packet_id & 0xFFFFFF:06x}"


def flows_text(packet: Packet) -> str:
    """The flow, and what it changed to (NAT, encapsulation) as a change."""
    flows = packet.flows
    if not flows:
        return ""
    text = flow_text(flows[0])
    for before, after in zip(flows, flows[1:]):
        src = f"{after.saddr}:{after.sport}" if after.sport else after.saddr
        dst = f"{after.daddr}:{after.dport}" if after.dport else after.daddr
        if after.l4_proto != before.l4_proto:
            text += f" ⇒ {flow_text(after)}"
        elif (after.saddr, after.sport) == (before.saddr, before.sport):
            text += f" ⇒ > {dst}"
        elif (after.daddr, after.dport) == (before.daddr, before.dport):
            text += f" ⇒ {src} >"
        else:
            text += f" ⇒ {src} > {dst}"
    return text


def packet_cells(packet: Packet, origin: int) -> list[tuple[str, Style | None]]:
    dropped = packet.dropped
    # Where it was dropped, rather than its last function: with skb following a
    # clone may live on after another was dropped.
    last = f"{packet.drop_function}: {packet.drop_reason}" if dropped else packet.last.function
    return [
        (str(packet.key), DROP_STYLE if dropped else None),
        (fmt.offset(packet.first.timestamp - origin), None),
        (str(len(packet)), None),
        (packet.first.function, None),
        (last, DROP_STYLE if dropped else None),
        (fmt.duration(packet.duration), None) if packet.freed else ("open", YELLOW),
        (flows_text(packet), GREEN),
        (",".join(str(c) for c in packet.cpus), None),
        (fields_text(packet.last.fields), GREEN),
        (short_id(packet.packet_id), DIM),
    ]


def _line(cells: list[tuple[str, Style | None]], base: Style | None,
          shown: list[tuple[int, int]]) -> list[Segment]:
    segments = []
    for index, width in shown:
        text, style = cells[index]
        if len(text) > width:
            text = text[:width - 1] + "…"
        cell = text.rjust(width) if COLUMNS[index].right else text.ljust(width)
        # The selected row in one colour: the cells' own colours reversed are unreadable.
        segments.append(Segment(cell + " ", base or style))
    return segments


class PacketList(ScrollView, can_focus=True):
    """The visible packets (keys into the store, oldest first) and a cursor."""

    BINDINGS = bindings("list")
    DEFAULT_CSS = "PacketList { overflow-x: auto; overflow-y: auto; }"

    class Highlighted(Message):
        """The cursor moved; `user`: by the user (which stops following)."""

        def __init__(self, key: int | None, user: bool = True):
            super().__init__()
            self.key = key
            self.user = user

    class FollowNewest(Message):
        """G / End: to the newest packet, and stay there."""

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
        self.virtual_size = Size(self._width(), len(self.keys) + 1)
        self.refresh()

    def _width(self) -> int:
        """Columns fit the widget; below MIN_WIDTH the list scrolls sideways."""
        return max(self.scrollable_content_region.width, MIN_WIDTH)

    def on_resize(self) -> None:
        self._changed()
        self.move_cursor(self.cursor_row, user=False)  # keep it on screen

    def shown_columns(self) -> list[str]:
        return [COLUMNS[i].title for i, _w in layout(self._width())]

    # -- sorting (keys: > < I, or a click on a column title) --------------------------

    @property
    def sorting(self) -> bool:
        return self.sort_column != 0 or self.sort_reverse

    def _sorted(self, keys: list[int]) -> list[int]:
        return sorted_keys(keys, self.store.packets, COLUMNS[self.sort_column].title,
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
        self.move_cursor(self.cursor_row, user=False)  # scrolls to it, tells the app

    def action_sort(self, step: int) -> None:
        """step ±1: the next/previous column; 0: invert the order."""
        if step == 0:
            self.sort_by(self.sort_column, not self.sort_reverse)
        else:
            self.sort_by((self.sort_column + step) % len(COLUMNS), self.sort_reverse)

    def _column_at(self, x: int) -> int | None:
        """The column (index into COLUMNS) drawn at x, among those that fit."""
        edge = 0
        for index, width in layout(self._width()):
            edge += width + 1
            if x < edge:
                return index
        return None

    def selected_key(self) -> int | None:
        return self.keys[self.cursor_row] if self.keys else None

    def row_text(self, row: int) -> str:
        """The row as drawn (the columns that fit)."""
        packet = self.store.packets[self.keys[row]]
        return "".join(seg.text for seg in _line(packet_cells(packet, self.store.origin or 0),
                                                  None, layout(self._width())))

    def cells_of(self, packet: Packet) -> list[str]:
        return [text for text, _style in packet_cells(packet, self.store.origin or 0)]

    def row_cells(self, row: int) -> list[str]:
        packet = self.store.packets[self.keys[row]]
        return [text for text, _style in packet_cells(packet, self.store.origin or 0)]

    # -- cursor ------------------------------------------------------------------------

    def move_cursor(self, row: int, user: bool = True) -> None:
        if not self.keys:
            return
        row = max(0, min(row, len(self.keys) - 1))
        moved = row != self.cursor_row
        self.cursor_row = row
        # Keep the cursor on screen: line 0 is the header, and a horizontal
        # scrollbar takes the bottom line.
        visible = max(self.scrollable_content_region.height - 1, 1)
        top = self.scroll_offset.y
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
        self.refresh()
        if moved:
            self.post_message(self.Highlighted(self.selected_key(), user))

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def _page(self) -> int:
        return max(self.scrollable_content_region.height - 2, 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + self._page())

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.post_message(self.FollowNewest())

    def action_select(self) -> None:
        if self.keys:
            self.post_message(self.Selected(self.selected_key()))

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:  # a column title: sort by it, again: the other way
            column = self._column_at(offset.x + self.scroll_offset.x)
            if column is not None:
                self.sort_by(column, column == self.sort_column and not self.sort_reverse)
            return
        row = offset.y - 1 + self.scroll_offset.y  # line 0 is the header
        if offset.y >= 1 and 0 <= row < len(self.keys):
            self.move_cursor(row)

    # -- drawing ---------------------------------------------------------------------

    def render_lines(self, crop):
        # What every line of a frame shares, looked up once per frame, not per line.
        self._frame = (self.rich_style, layout(self._width()))
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    _frame: tuple | None = None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        rich_style, shown = self._frame or (self.rich_style, layout(self._width()))
        if y == 0:
            cells = [(c.title, HEADER_STYLE) for c in COLUMNS]
            if self.sorting:
                column = COLUMNS[self.sort_column]
                arrow = " ▼" if self.sort_reverse else " ▲"
                cells[self.sort_column] = (column.title[:column.width - len(arrow)] + arrow,
                                           HEADER_STYLE + Style(color="cyan"))
            segments = _line(cells, None, shown)
        else:
            row = scroll_y + y - 1
            if row >= len(self.keys):
                return Strip.blank(width, rich_style)
            packet = self.store.packets.get(self.keys[row])
            if packet is None:
                return Strip.blank(width, rich_style)
            base = CURSOR_STYLE if row == self.cursor_row and self.has_focus else (
                Style(reverse=True) if row == self.cursor_row else None)
            segments = _line(packet_cells(packet, self.store.origin or 0), base, shown)
        strip = Strip(segments).crop_extend(scroll_x, scroll_x + width, rich_style)
        return strip

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
