"""The waterfall (W) of one journey: bars on a common time axis, in lanes by CPU and
device/namespace, the slowest hop in red. Same cursor keys as the journey tree."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Static

from .keys import bindings
from .. import formatting as fmt
from ..model import Packet, packet_id_text
from ..waterfall import Bar, scale, slowest, span, waterfall_bars

LABEL = 30  # cells for the (indented) function name
TIME = 17  # cells for "duration  self"
LANE_STYLE = Style(bold=True, color="magenta")
BAR_STYLE = Style(color="cyan")
SLOW_STYLE = Style(color="red", bold=True)
CURSOR = Style(reverse=True)
DIM = Style(dim=True)


class WaterfallView(ScrollView, can_focus=True):
    """Rows: lane titles and bars; the cursor moves over bars only."""

    BINDINGS = bindings("waterfall-bars")
    DEFAULT_CSS = "WaterfallView { overflow-y: auto; overflow-x: hidden; height: 1fr; }"

    def __init__(self, bars: list[Bar], **kwargs):
        super().__init__(**kwargs)
        self.bars = bars
        self.slowest = slowest(bars)
        self.origin, self.end = span(bars)
        self.rows: list[int | str] = []  # bar index, or a lane title
        lane = None
        for i, bar in enumerate(bars):
            if bar.lane != lane:
                lane = bar.lane
                self.rows.append(lane)
            self.rows.append(i)
        self.cursor = 0  # index into bars
        self.virtual_size = Size(0, len(self.rows) + 1)

    def on_mount(self) -> None:
        self.action_to(0)

    # -- cursor ------------------------------------------------------------------------

    def _row_of(self, bar: int) -> int:
        return self.rows.index(bar)

    def set_cursor(self, bar: int) -> None:
        if not self.bars:
            return
        self.cursor = max(0, min(bar, len(self.bars) - 1))
        row = self._row_of(self.cursor) + 1  # line 0 is the axis
        visible = max(self.size.height, 1)
        top = self.scroll_offset.y
        if row - 1 < top:  # keep the lane title above the first bar in view
            self.scroll_to(y=max(row - 2, 0), animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
        self.refresh()
        self.screen.post_message(WaterfallScreen.Moved())

    def action_move(self, step: int) -> None:
        self.set_cursor(self.cursor + step)

    def action_page(self, step: int) -> None:
        self.set_cursor(self.cursor + step * max(self.size.height - 2, 1))

    def action_to(self, bar: int) -> None:
        self.set_cursor(bar if bar >= 0 else len(self.bars) - 1)

    def action_to_slowest(self) -> None:
        if self.slowest is not None:
            self.set_cursor(self.slowest)

    def on_click(self, event) -> None:
        row = event.y + self.scroll_offset.y - 1
        if 0 <= row < len(self.rows) and isinstance(self.rows[row], int):
            self.set_cursor(self.rows[row])

    # -- drawing ---------------------------------------------------------------------

    def _axis_width(self) -> int:
        return max(self.size.width - LABEL - TIME - 2, 8)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        axis = self._axis_width()
        length = self.end - self.origin
        if y == 0:
            left = "0"
            right = fmt.duration(length)
            line = f"{'function':<{LABEL}} {'took':>8} {'self':>8} " + left + \
                   right.rjust(axis - len(left))
            return Strip([Segment(line, Style(bold=True))]).crop_extend(0, width, None)
        row = y - 1 + self.scroll_offset.y
        if row >= len(self.rows):
            return Strip.blank(width)
        item = self.rows[row]
        if isinstance(item, str):
            return Strip([Segment(f"── {item} ", LANE_STYLE),
                          Segment("─" * width, DIM)]).crop_extend(0, width, None)
        bar = self.bars[item]
        slow = item == self.slowest
        base = CURSOR if item == self.cursor else None
        name = ("  " * min(bar.depth, 8) + bar.function)[:LABEL].ljust(LABEL)
        took = fmt.duration(bar.length) if bar.closed and bar.length else "·"
        own = fmt.duration(bar.self_time) if bar.self_time is not None else ""
        x0, x1 = scale(bar.start, bar.end, self.origin, length, axis)
        style = SLOW_STYLE if slow else BAR_STYLE
        name_style = SLOW_STYLE if slow else None
        segments = [
            Segment(name + " ", (base + name_style) if base and name_style else (base or name_style)),
            Segment(f"{took:>8} {own:>8} ", base),
            Segment(" " * x0, base),
            Segment(("█" if bar.closed else "▏") * (x1 - x0), style),
            Segment(" " * (axis - x1)),
        ]
        return Strip(segments).crop_extend(0, width, None)

    def on_resize(self) -> None:
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()


def bar_detail(bar: Bar | None, origin: int, is_slowest: bool) -> Text:
    if bar is None:
        return Text("no samples", style="dim")
    text = Text()
    text.append(bar.function, style="bold")
    text.append(f"  at +{fmt.duration(bar.start - origin)}")
    if bar.self_time is not None:
        text.append(f"  took {fmt.duration(bar.length)}, self {fmt.duration(bar.self_time)}")
    elif not bar.closed:
        text.append("  (no return seen)" if bar.depth or bar.sample.is_return else "")
    elif bar.length:
        text.append(f"  then {fmt.duration(bar.length)} until the next sample")
    text.append(f"  {bar.lane}", style="magenta")
    if is_slowest:
        text.append("  slowest hop", style="bold red")
    return text


class WaterfallScreen(Screen):
    BINDINGS = bindings("waterfall")
    DEFAULT_CSS = """
    WaterfallScreen #waterfall-title { height: 1; background: $panel; padding: 0 1; }
    WaterfallScreen #waterfall-detail { height: 3; padding: 0 1; border-top: solid $panel; }
    """

    class Moved(Message):
        """The cursor moved: the detail line follows."""

    def __init__(self, packet: Packet, graph: bool | None = None):
        super().__init__()
        self.packet = packet
        self.bars = waterfall_bars(packet, graph)

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="waterfall-title")
        yield WaterfallView(self.bars)
        yield Static("", id="waterfall-detail")
        yield Footer()

    def _title(self) -> Text:
        packet = self.packet
        text = Text.assemble(("Waterfall", "bold"), f"  packet {packet.key}",
                             f"  {len(self.bars)} bars over {fmt.duration(packet.duration)}")
        if packet.drop_reason:
            text.append(f"  dropped: {packet.drop_reason}", style="bold red")
        text.append(f"  {packet_id_text(packet.packet_id)}", style="dim")
        return text

    def on_mount(self) -> None:
        self.query_one(WaterfallView).focus()
        self._show_detail()

    def on_waterfall_screen_moved(self, event) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        view = self.query_one(WaterfallView)
        bar = self.bars[view.cursor] if self.bars else None
        self.query_one("#waterfall-detail", Static).update(
            bar_detail(bar, view.origin, view.cursor == view.slowest))

    def action_close(self) -> None:
        self.dismiss(None)
