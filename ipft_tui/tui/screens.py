"""Modal dialogs. Each validates its input; a bad value shows an inline error and changes nothing."""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..errors import IpftError
from ..settings import PacketFilters, parse_filters, parse_mark, select
from .keys import bindings, help_text


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
    """Which packets start a journey: expression, mark/mask, namespace, device, edited
    together; returns PacketFilters. Pre-filled with the filters in effect."""

    DEFAULT_CSS = """
    FilterDialog > Vertical { width: 76; }
    FilterDialog Horizontal { height: auto; }
    FilterDialog Horizontal > Input { width: 1fr; margin-bottom: 0; }
    FilterDialog #expression { margin-bottom: 0; }
    """

    def __init__(self, current: PacketFilters):
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        c = self.current
        with Vertical():
            yield Label(Text("Packet filter: a packet's journey starts where all given match",
                             style="bold"))
            yield Label("pcap-filter expression (as for tcpdump)")
            yield Input(c.expression or "", placeholder="udp and dst port 53", id="expression")
            yield Label(self._mark_label(c.mark), id="mark-label")
            with Horizontal():
                yield Input(hex(c.mark) if c.mark else "", placeholder="mark: empty = any",
                            id="mark")
                yield Input(hex(c.mask), placeholder="mask", id="mask")
            yield Label("network namespace (inode, /proc/PID/ns/net, `ip netns` name); device")
            with Horizontal():
                yield Input(str(c.netns) if c.netns else "", placeholder="netns: empty = any",
                            id="netns")
                yield Input(c.ifname or "", placeholder="device: empty = any", id="ifname")
            yield Static("", id="error", classes="error")
            yield Static("Enter applies (mark, netns, device: a map update; a new "
                         "expression: a new program), Esc cancels", classes="hint")

    @staticmethod
    def _mark_label(mark: int | None) -> str:
        if not mark:
            return "mark (decimal or 0x hex); mask"
        return f"mark 0x{mark:x} = {mark} decimal (ping -m takes decimal); mask"

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "mark":
            return
        try:
            mark = parse_mark(event.value) if event.value.strip() else None
        except IpftError:
            mark = None
        self.query_one("#mark-label", Label).update(self._mark_label(mark))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        fields = {name: self.query_one(f"#{name}", Input).value
                  for name in ("expression", "mark", "mask", "netns", "ifname")}
        try:
            filters = parse_filters(**fields)
        except IpftError as exc:  # libpcap's own message for a bad expression
            self.show_error(str(exc))
            return
        self.dismiss(filters)


PREVIEW_BUDGET = 0.1  # s of matching per keystroke: a pathological regex must not freeze input


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
            chosen = select(self.names, pattern or None, budget=PREVIEW_BUDGET)
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


class FunctionDialog(Dialog):
    """A substring or regex of function names; shows the names it matches as you type.
    Returns the pattern ('' for all packets)."""

    def __init__(self, current: str, names: list[str]):
        super().__init__()
        self.current = current
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Only packets through functions matching (substring or regex)",
                             style="bold"))
            yield Input(self.current, placeholder="e.g. kfree or ^ip_(rcv|output)", id="text")
            yield Static("", id="matches", classes="hint")
            yield Static("", id="error", classes="error")

    def on_mount(self) -> None:
        self._show(self.current)

    def _show(self, pattern: str) -> list[str] | None:
        try:
            matched = function_matches(self.names, pattern)
        except re.error as exc:
            self.query_one("#matches", Static).update("")
            self.show_error(f"invalid regex: {exc}")
            return None
        self.show_error("")
        if not pattern:
            hint = "empty: every packet"
        elif not matched:
            hint = "no function seen so far matches"
        else:
            shown = ", ".join(matched[:8]) + (f", … ({len(matched)} in all)"
                                              if len(matched) > 8 else "")
            hint = f"{len(matched)} match: {shown}"
        self.query_one("#matches", Static).update(Text(hint))
        return matched

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        matched = self._show(value)
        if matched is None:
            return
        if value and not matched:
            self.show_error(f"no packet passed through a function matching {value!r} (yet)")
            return
        self.dismiss(value)


def function_matches(names: list[str], pattern: str) -> list[str]:
    """Names containing `pattern`, or matching it as a regex (case-insensitive); sorted."""
    if not pattern:
        return []
    needle = pattern.lower()
    regex = re.compile(pattern, re.IGNORECASE)
    return sorted(n for n in names if needle in n.lower() or regex.search(n))


class ConfirmDialog(Dialog):
    """A yes/no question: y or Enter says yes, n or Esc no."""

    BINDINGS = [("y,enter", "yes", "Yes"), ("n,escape", "cancel", "No")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.question, style="bold"))
            yield Static("y / Enter: yes    n / Esc: no", classes="hint")

    def action_yes(self) -> None:
        self.dismiss(True)


class HelpScreen(ModalScreen):
    """The keys, generated from keys.KEYS; opens at its top, scrolls, fits 80 columns."""

    BINDINGS = bindings("help")
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 80; max-width: 100%; height: 90%; padding: 0 1;
                                  border: thick $accent; background: $surface; }
    """

    def __init__(self, live: bool = True):
        super().__init__()
        self.live = live

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-scroll"):
            yield Static(help_text(self.live), id="help-text")

    def on_mount(self) -> None:
        scroll = self.query_one(VerticalScroll)
        scroll.focus()
        scroll.scroll_home(animate=False)

    def _scroll(self) -> VerticalScroll:
        return self.query_one(VerticalScroll)

    def action_scroll_up(self) -> None:
        self._scroll().scroll_up(animate=False)

    def action_scroll_down(self) -> None:
        self._scroll().scroll_down(animate=False)

    def action_page_up(self) -> None:
        self._scroll().scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self._scroll().scroll_page_down(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
