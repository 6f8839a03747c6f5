"""Modal dialogs. Each validates its input; a bad value shows an inline error and changes nothing."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from ..errors import IpftError
from ..settings import parse_mark, parse_mask, select


class Dialog(ModalScreen):
    """Esc cancels (dismisses with None)."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical { width: 64; height: auto; border: thick $accent; background: $surface;
                        padding: 1 2; }
    Dialog .error { color: $error; height: auto; }
    Dialog .hint { color: $text-muted; height: auto; }
    Dialog Input { margin-bottom: 1; }
    """

    def action_cancel(self) -> None:
        self.dismiss(None)

    def show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(Text(message))


class FilterDialog(Dialog):
    """Mark and mask; returns (mark, mask)."""

    def __init__(self, mark: int, mask: int):
        super().__init__()
        self.mark, self.mask = mark, mask

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Mark filter: (skb->mark & mask) == (mark & mask)", style="bold"))
            yield Label("mark")
            yield Input(hex(self.mark) if self.mark else "", placeholder="0xdeadbeef", id="mark")
            yield Label("mask")
            yield Input(hex(self.mask), id="mask")
            yield Static("", id="error", classes="error")
            yield Static("Enter applies (the BPF map is updated at once), Esc cancels",
                         classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            mark = parse_mark(self.query_one("#mark", Input).value)
            mask = parse_mask(self.query_one("#mask", Input).value)
        except IpftError as exc:
            self.show_error(str(exc))
            return
        self.dismiss((mark, mask))


class RegexDialog(Dialog):
    """Function regex; returns the pattern ('' for everything). Counts matches as you type."""

    def __init__(self, current: str | None, names: list[str],
                 title: str = "Trace only functions/tracepoints matching",
                 empty: str = "empty: everything"):
        super().__init__()
        self.current = current or ""
        self.names = names
        self.title = title
        self.empty = empty

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title, style="bold"))
            yield Input(self.current, placeholder=self.empty, id="regex")
            yield Static("", id="matches", classes="hint")
            yield Static("", id="error", classes="error")

    def on_mount(self) -> None:
        self._count(self.current)

    def _count(self, pattern: str) -> list[int] | None:
        try:
            chosen = select(self.names, pattern or None)
        except IpftError as exc:
            self.query_one("#matches", Static).update("")
            self.show_error(str(exc))
            return None
        self.show_error("")
        self.query_one("#matches", Static).update(f"{len(chosen)} of {len(self.names)} match")
        return chosen

    def on_input_changed(self, event: Input.Changed) -> None:
        self._count(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self._count(event.value) is not None:
            self.dismiss(event.value)


class ChoiceDialog(Dialog):
    """Pick one of several options; unavailable ones are shown disabled with the reason."""

    def __init__(self, title: str, options: dict[str, str], current: str):
        super().__init__()
        self.title_text = title
        self.options = options  # name -> '' if available, else why not
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text, style="bold"))
            items = []
            for name, why_not in self.options.items():
                label = Text(name, style="bold" if name == self.current else "")
                if name == self.current:
                    label.append("  (current)", style="dim")
                if why_not:
                    label.append(f"  {why_not}", style="dim")
                items.append(Option(label, id=name, disabled=bool(why_not)))
            yield OptionList(*items)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class TextDialog(Dialog):
    """One line of text (search, function name); returns it, '' to clear."""

    def __init__(self, title: str, value: str = "", placeholder: str = "",
                 choices: list[str] | None = None):
        super().__init__()
        self.title_text, self.value, self.placeholder = title, value, placeholder
        self.choices = choices

    def compose(self) -> ComposeResult:
        from textual.suggester import SuggestFromList  # noqa: PLC0415
        suggester = SuggestFromList(self.choices) if self.choices else None
        with Vertical():
            yield Label(Text(self.title_text, style="bold"))
            yield Input(self.value, placeholder=self.placeholder, suggester=suggester, id="text")
            yield Static("", id="error", classes="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value and self.choices is not None and value not in self.choices:
            self.show_error(f"no packet passed through {value!r} (yet)")
            return
        self.dismiss(value)


HELP = """
# ipft-tui keys

| key | action |
| --- | --- |
| ↑ ↓ / j k | move in the packet list or the journey tree |
| Tab | next pane: packet list, journey tree, details (↑ ↓ scroll a long stack) |
| Enter | open the selected packet's journey |
| Space | expand / collapse the selected call |
| e / c | expand all / collapse all |
| 1 … 9 | expand the call tree to that depth |
| g / G | first / last packet |
| / , n | search packets by id or function, next match |
| f | only packets that passed through a function (empty: all) |
| d | only dropped packets (reason from the kernel's skb_drop_reason) |
| \\ | filter the journeys you have, applied as you type: `drop == NO_SOCKET and dport == 7777`, `fn ~ nf_hook and duration > 50us`, `dev == veth0` (Esc clears) |
| > < I | sort the packet list by the next / previous column, invert (or click a column title); stays sorted live |
| P | paths: journeys grouped by function sequence (count, ending, p50/p99/max, places); Enter lists a path's packets |
| W | waterfall of the selected journey: bars on one time axis, lanes by CPU and device, slowest hop in red (s jumps to it) |
| v, = | compare: v marks packet A, = on packet B aligns their functions, first divergence and time difference per step |
| F | follow mode: always select the newest packet |
| p | pause the display (tracing goes on; pending count shown) |
| x | clear all packets |
| m | mark / mask |
| r | function regex (attaches / detaches the difference) |
| t | tracer: function ↔ function_graph |
| b | backend |
| s | load / switch an extension (Lua script or C file); a broken one keeps the previous |
| o | follow skbs: keep a journey when its mark changes and take in its clones |
| S | kernel stack traces for the functions matching a regex (shown in the detail pane) |
| Ctrl+P | command palette |
| ? | this help |
| q | quit (every probe is detached) |

`packet id` is the skb address: the kernel recycles skbs, so a journey ends when its
skb is freed and the next sample at that address starts a new packet. While following
skbs, a journey's id is its first skb; samples taken on another skb (a clone sharing
its data) say `clone 0x…`.
"""


class HelpScreen(Dialog):
    DEFAULT_CSS = "HelpScreen > Vertical { width: 80; }"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Markdown(HELP)
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
