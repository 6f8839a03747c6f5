"""Every key of the TUI, stated once: bindings, the command palette and the help
screen are generated from this table."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    keys: str  # Textual key names, comma-separated
    action: str
    label: str  # short: footer and palette title
    help: str  # one line: help screen and palette
    pane: str = "app"  # where it is bound: app (everywhere), list, tree, detail, help
    live: bool = False  # changes the trace: not offered in a replay
    footer: bool = True
    palette: bool = False  # worth a command palette entry


# The panes' headings on the help screen, in its order.
PANES = {"app": "Everywhere", "list": "Packet list", "tree": "Journey tree",
         "detail": "Details", "table": "Paths and compare tables", "paths": "Paths (P)",
         "waterfall": "Waterfall (W)", "waterfall-bars": "Waterfall bars",
         "compare": "Compare (v, =)", "help": "This help"}

DEPTH_HELP = "expand the calls to depth 1 … 9"
KEYS = (
    # -- everywhere ------------------------------------------------------------------
    Key("question_mark", "help", "Help", "this help (? q Esc close it)"),
    Key("q", "quit", "Quit", "quit (every probe is detached)"),
    Key("tab", "app.focus_next", "Pane", "next pane: list, journey, details", footer=False),
    Key("slash", "search", "Search",
        "search every field shown: address, port, reason, device, id", palette=True),
    Key("n", "search_next", "Next", "next match", footer=False),
    Key("N", "search_previous", "Prev", "previous match", footer=False),
    Key("f", "find_function", "Function",
        "only packets through functions matching a substring or regex", palette=True),
    Key("d", "toggle_drops", "Drops", "only dropped packets (toggle)", palette=True),
    Key("backslash", "filter_journeys", "Display",
        "display filter, as you type: drop == NO_SOCKET and dport == 53",
        palette=True),
    Key("escape", "clear_filters", "Unfilter", "clear every filter and the search"),
    Key("P", "paths", "Paths",
        "paths: journeys grouped by function sequence, with counts",
        palette=True),
    Key("W", "waterfall", "Waterfall",
        "waterfall: the journey on a time axis, lanes by CPU and device",
        palette=True),
    Key("v", "mark_a", "Mark A", "mark this packet as A for compare", footer=False,
        palette=True),
    Key("equals_sign", "compare", "Compare",
        "compare packet A with this one: where did they diverge?", footer=False,
        palette=True),
    Key("F", "toggle_follow", "Follow", "follow the newest packet (toggle)", palette=True),
    Key("p", "toggle_pause", "Pause", "pause the display; tracing goes on", live=True,
        palette=True),
    Key("x", "clear", "Clear", "forget every packet shown (asks first in a replay)",
        palette=True),
    Key("y", "copy", "Copy", "copy the selected packet (id, flow, journey) as text",
        palette=True),
    Key("w", "write", "Write",
        "write the journey (tree) or the list shown to a JSON file", palette=True),
    Key("asterisk", "jump_slowest", "Slowest", "jump to the slowest call (self time)",
        footer=False),
    Key("exclamation_mark", "jump_drop", "Drop", "jump to the drop in the journey",
        footer=False),
    Key("H", "toggle_hex", "Hex", "the packet's bytes: decoded headers or hex/ASCII",
        footer=False, palette=True),
    Key("e", "expand_all", "Expand", "expand the whole journey", footer=False),
    Key("c", "collapse_all", "Collapse", "collapse the whole journey", footer=False),
    *(Key(str(d), f"expand_depth({d})", f"Depth {d}", DEPTH_HELP,
          footer=False) for d in range(1, 10)),
    Key("m", "edit_filter", "Capture",
        "capture filter: pcap expression, mark/mask, netns, device",
        live=True, palette=True),
    Key("r", "edit_regex", "Regex", "function regex (attaches / detaches the difference)",
        live=True, palette=True),
    Key("t", "toggle_tracer", "Tracer", "tracer: function ↔ function_graph", live=True,
        palette=True),
    Key("b", "choose_backend", "Backend", "tracing backend", live=True, palette=True),
    Key("s", "load_extension", "Script", "load / switch an extension (Lua or C)", live=True,
        palette=True),
    Key("o", "toggle_track_skb", "Skbs",
        "follow skbs across mark changes, into clones (default: on)", live=True,
        palette=True),
    Key("S", "edit_stack_regex", "Stacks", "kernel stacks for functions matching a regex",
        live=True, palette=True),
    Key("R", "toggle_record", "Record", "start / stop recording to a JSON-lines file",
        live=True, palette=True),
    # -- the packet list ---------------------------------------------------------------
    Key("up,k", "cursor_up", "Up", "previous packet (stops following)", pane="list",
        footer=False),
    Key("down,j", "cursor_down", "Down", "next packet (stops following)", pane="list",
        footer=False),
    Key("pageup", "page_up", "PgUp", "a page up", pane="list", footer=False),
    Key("pagedown", "page_down", "PgDn", "a page down", pane="list", footer=False),
    Key("g,home", "first", "First", "first packet", pane="list", footer=False),
    Key("G,end", "last", "Last", "last packet, and follow the newest", pane="list",
        footer=False),
    Key("enter", "select", "Open", "open the packet's journey", pane="list"),
    Key("greater_than_sign", "sort(1)", "Sort >", "sort by the next column (or click its title)",
        pane="list", footer=False),
    Key("less_than_sign", "sort(-1)", "Sort <", "sort by the previous column", pane="list",
        footer=False),
    Key("I", "sort(0)", "Invert", "invert the sort order", pane="list", footer=False),
    # -- the journey tree --------------------------------------------------------------
    Key("up,k", "cursor_up", "Up", "previous sample or call", pane="tree", footer=False),
    Key("down,j", "cursor_down", "Down", "next sample or call", pane="tree", footer=False),
    Key("left,h", "collapse_or_parent", "Collapse", "collapse, or go to the parent",
        pane="tree"),
    Key("right,l", "expand", "Expand", "expand", pane="tree"),
    Key("enter,space", "toggle_node", "Toggle", "expand / collapse", pane="tree",
        footer=False),
    Key("g,home", "first", "First", "first line", pane="tree", footer=False),
    Key("G,end", "last", "Last", "last line", pane="tree", footer=False),
    Key("pageup", "page_up", "PgUp", "a page up", pane="tree", footer=False),
    Key("pagedown", "page_down", "PgDn", "a page down", pane="tree", footer=False),
    # -- the detail pane -----------------------------------------------------------------
    Key("up,k", "scroll_up", "Up", "scroll up", pane="detail", footer=False),
    Key("down,j", "scroll_down", "Down", "scroll down", pane="detail", footer=False),
    Key("g,home", "scroll_home", "Top", "top", pane="detail", footer=False),
    Key("G,end", "scroll_end", "Bottom", "bottom", pane="detail", footer=False),
    # -- the help screen -------------------------------------------------------------------
    Key("up,k", "scroll_up", "Up", "scroll up", pane="help", footer=False),
    Key("down,j", "scroll_down", "Down", "scroll down", pane="help", footer=False),
    Key("pageup", "page_up", "PgUp", "a page up", pane="help", footer=False),
    Key("pagedown", "page_down", "PgDn", "a page down", pane="help", footer=False),
    Key("question_mark,q,escape", "close", "Close", "close", pane="help"),
    # -- the views (paths_view.py, waterfall.py, compare.py) ---------------------------------
    Key("j", "cursor_down", "Down", "next row", pane="table", footer=False),
    Key("k", "cursor_up", "Up", "previous row", pane="table", footer=False),
    Key("g", "scroll_top", "Top", "first row", pane="table", footer=False),
    Key("G", "scroll_bottom", "Bottom", "last row", pane="table", footer=False),
    Key("enter", "choose", "List", "list this path's packets (a display filter)",
        pane="paths"),
    Key("escape,q,P", "close", "Back", "back to the packets", pane="paths"),
    Key("escape,q,W", "close", "Back", "back to the packets", pane="waterfall"),
    Key("up,k", "move(-1)", "Up", "previous bar", pane="waterfall-bars", footer=False),
    Key("down,j", "move(1)", "Down", "next bar", pane="waterfall-bars", footer=False),
    Key("pageup", "page(-1)", "PgUp", "a page up", pane="waterfall-bars", footer=False),
    Key("pagedown", "page(1)", "PgDn", "a page down", pane="waterfall-bars", footer=False),
    Key("home,g", "to(0)", "First", "first bar", pane="waterfall-bars", footer=False),
    Key("end,G", "to(-1)", "Last", "last bar", pane="waterfall-bars", footer=False),
    Key("s", "to_slowest", "Slowest", "the slowest hop (self time for calls)",
        pane="waterfall-bars"),
    Key("d", "to_divergence", "Divergence", "the first divergence", pane="compare"),
    Key("escape,q,equals_sign", "close", "Back", "back to the packets", pane="compare"),
)

LIVE_ACTIONS = frozenset(k.action for k in KEYS if k.live)

_SHOWN = {"question_mark": "?", "slash": "/", "backslash": "\\", "equals_sign": "=",
          "greater_than_sign": ">", "less_than_sign": "<", "asterisk": "*", "exclamation_mark": "!",
          "escape": "Esc", "pageup": "PgUp", "pagedown": "PgDn", "home": "Home", "end": "End",
          "up": "↑", "down": "↓", "left": "←", "right": "→", "enter": "Enter",
          "space": "Space", "tab": "Tab"}


def key_text(keys: str) -> str:
    """How a key is written on screen: '?', 'PgUp', '↑ k'."""
    return " ".join(_SHOWN.get(k, k) for k in keys.split(","))


def bindings(pane: str) -> list[Binding]:
    return [Binding(k.keys, k.action, k.label, show=k.footer,
                    key_display=_SHOWN.get(k.keys.split(",")[0]))
            for k in KEYS if k.pane == pane]


KEY_WIDTH = 11  # with a space before: 12; the help text gets the 60 left of 76 columns


def help_text(live: bool) -> Text:
    """The help screen, from the table; a replay leaves out what only a live trace does."""
    text = Text()
    for pane, heading in PANES.items():
        rows = [k for k in KEYS if k.pane == pane and (live or not k.live)]
        if pane == "app":  # the nine depth keys are one line
            rows = [k for k in rows if not k.action.startswith("expand_depth(")] + [
                Key("1,…,9", "expand_depth", "", DEPTH_HELP)]
        text.append(f"{heading}\n", style="bold underline")
        for k in rows:
            text.append(f" {key_text(k.keys):<{KEY_WIDTH}}", style="bold cyan")
            text.append(f"{k.help}\n")
        text.append("\n")
    text.append("`packet id` is the skb address. The kernel recycles skbs, so a journey ends "
                "when the skb is freed, or when a new packet evidently started at that address "
                "(README, Journeys); a journey whose end was not seen says `open`. Times in "
                "the journey and the details count from the packet's first sample; `first "
                "seen` in the list from the trace's first sample.", style="dim")
    return text
