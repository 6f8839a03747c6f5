"""The main screen's widgets: packet list, journey tree, detail pane, status bar."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from .. import formatting as fmt
from ..calltree import CallNode, build_call_tree, flatten
from ..collector import Status
from ..model import (Meta, Packet, Sample, flow_text, is_clone, is_drop, packet_id_text,
                     same_flow)
from .keys import bindings
from .packet_list import fields_text
from .packet_view import mark_changes, packet_text, previous_capture


def where_text(meta: Meta | None) -> str:
    """Device and namespace, blank when the probe had none (ifindex 0)."""
    if meta is None or (not meta.ifindex and not meta.netns):
        return ""
    parts = [meta.ifname or f"ifindex {meta.ifindex}"] if meta.ifindex else []
    if meta.netns:
        parts.append(f"ns:{meta.netns}")
    return " ".join(parts)


def _changes(text: Text, sample: Sample | None, previous: Sample | None) -> None:
    """Where the packet is, and its flow, when they change (device, namespace, NAT)."""
    if sample is None:
        return
    here = where_text(sample.meta)
    if here and (previous is None or where_text(previous.meta) != here):
        text.append(f"  @{here}", style="magenta")
    meta = sample.meta
    before = previous.meta if previous is not None else None
    if (meta is not None and meta.saddr and before is not None and before.saddr
            and not same_flow(meta, before)):
        text.append(f"  flow ⇒ {flow_text(meta)}", style="green")


def sample_label(sample: Sample, origin: int, previous: Sample | None = None) -> Text:
    text = Text()
    text.append(f"{'+' + fmt.duration(sample.timestamp - origin):>10} ", style="dim")
    text.append(f"cpu{sample.processor_id:<3} ", style="cyan")
    text.append(sample.function, style="bold red" if is_drop(sample) else "bold")
    if sample.drop_reason is not None:
        text.append(f" {sample.drop_reason}", style="red" if is_drop(sample) else "dim")
    _changes(text, sample, previous)
    if sample.fields:
        text.append("  " + fields_text(sample.fields), style="green")
    _skb_and_stack(text, sample)
    return text


def _skb_and_stack(text: Text, sample: Sample | None) -> None:
    if sample is None:
        return
    if is_clone(sample):
        text.append(f"  clone {packet_id_text(sample.skb)}", style="yellow")
    if sample.stack:
        text.append("  [stack]", style="dim")


def call_label(node: CallNode, origin: int, slow_ns: int | None,
               previous: Sample | None = None) -> Text:
    """A call (or a leaf event) with the CPU, device and drop reason of its entry."""
    text = Text()
    text.append(f"{'+' + fmt.duration(node.timestamp - origin):>10} ", style="dim")
    sample = node.entry or node.exit
    text.append(f"cpu{sample.processor_id:<3} ", style="cyan")
    if node.exit is None and not node.children:
        # No return and nothing inside: a leaf event (e.g. a tracepoint without a pair).
        text.append(node.function, style="bold red" if is_drop(sample) else "bold")
    else:
        text.append(f"{node.function}()", style="bold")
        took = node.duration
        slow = slow_ns is not None and node.self_time is not None and node.self_time >= slow_ns
        if took is None:
            text.append("  no return", style="dim")
        else:
            text.append(f"  {fmt.duration(took)}", style="dim")
            if node.children:
                text.append(f" (self {fmt.duration(node.self_time)})",
                            style="bold yellow" if slow else "dim")
            elif slow:
                text.stylize("bold yellow", len(text) - len(fmt.duration(took)), len(text))
        if node.entry is None:
            text.append("  (entry not seen)", style="italic dim")
    if sample.drop_reason is not None:
        text.append(f" {sample.drop_reason}", style="red" if is_drop(sample) else "dim")
    _changes(text, node.entry, previous)
    _skb_and_stack(text, node.entry)
    return text


def _node_id(data) -> tuple | None:
    """What identifies a tree line across rebuilds of the same packet."""
    if isinstance(data, CallNode):
        return (data.function, data.timestamp, data.depth)
    if isinstance(data, Sample):
        return (data.function, data.timestamp, data.is_return)
    return None


class JourneyTree(Tree):
    """The selected packet's journey; call nodes get their children when expanded.
    Times count from the packet's first sample."""

    BINDINGS = bindings("tree")

    def __init__(self, **kwargs):
        super().__init__(Text("no packet selected"), **kwargs)
        self.packet: Packet | None = None
        self.slow_ns: int | None = None
        self.origin = 0
        self.roots: list[CallNode] = []
        self._previous: dict[int, Sample] = {}  # id(call) -> the sample before its entry

    def show_packet(self, packet: Packet | None, tracer: str) -> None:
        """Show a packet; the same packet again (it grew) keeps what was expanded and
        the cursor's line; another starts on its first sample."""
        same = packet is not None and self.packet is not None and packet.key == self.packet.key
        expanded, cursor = set(), None
        if same:
            expanded = {_node_id(n.data) for n in self._nodes_built() if n.is_expanded}
            cursor = _node_id(self.cursor_node.data) if self.cursor_node is not None else None
        self.packet = packet
        self.clear()
        if packet is None:
            self.root.set_label(Text("no packet selected"))
            return
        label = Text(f"packet {packet.key}  ", style="bold")
        label.append(packet_id_text(packet.packet_id), style="dim")
        label.append(f"  {len(packet)} samples, ")
        if packet.freed:
            label.append(fmt.duration(packet.duration))
        else:
            label.append("open", style="yellow")
            label.append(" (end not seen)", style="dim")
        label.append("  · times from its first sample", style="dim")
        self.root.set_label(label)
        samples = packet.samples
        self.origin = samples[0].timestamp
        if tracer == "function_graph":
            self.roots = build_call_tree(samples)
            self._previous = {}
            previous = None
            for node in flatten(self.roots):
                self._previous[id(node)] = previous
                if node.entry is not None:
                    previous = node.entry
            times = sorted((n.self_time for n in _walk(self.roots)
                            if n.self_time is not None and (n.children or n.exit)), reverse=True)
            # The slowest calls by self time (top 10%, at least one) are highlighted.
            self.slow_ns = times[max(len(times) // 10 - 1, 0)] if times else None
            self._add_calls(self.root, self.roots)
        else:
            self.roots = []
            previous = None
            captured = None  # the last bytes seen: the label marks where the packet changed
            for sample in samples:
                label = sample_label(sample, self.origin, previous)
                if sample.capture is not None:
                    label = mark_changes(label, captured, sample.capture)
                    captured = sample.capture
                self.root.add_leaf(label, data=sample)
                previous = sample
        self.root.expand()
        if same:
            for node in list(self._nodes_built()):
                if _node_id(node.data) in expanded:
                    self._expand(node)
        line = self._line_of(lambda d: _node_id(d) == cursor) if cursor else None
        self.move_cursor_to_line(line if line is not None else min(1, self.last_line))

    def _nodes_built(self):
        todo = list(self.root.children)
        while todo:
            node = todo.pop()
            yield node
            todo.extend(node.children)

    def _add_calls(self, parent: TreeNode, calls: list[CallNode]) -> None:
        for call in calls:
            label = call_label(call, self.origin, self.slow_ns, self._previous.get(id(call)))
            if call.children:
                parent.add(label, data=call)
            else:
                parent.add_leaf(label, data=call)

    def _expand(self, node: TreeNode) -> None:
        if isinstance(node.data, CallNode) and not node.children:
            self._add_calls(node, node.data.children)
        node.expand()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded) -> None:
        node = event.node
        if isinstance(node.data, CallNode) and not node.children:
            self._add_calls(node, node.data.children)

    def _line_of(self, wanted) -> int | None:
        for line in range(self.last_line + 1):
            node = self.get_node_at_line(line)
            if node is not None and node.data is not None and wanted(node.data):
                return line
        return None

    def reveal(self, wanted) -> bool:
        """Expand down to the first line whose data `wanted` accepts and put the cursor there."""
        path = _path_to(self.roots, wanted) if self.roots else None
        if path:
            parent = self.root
            for call in path[:-1]:
                node = next(n for n in parent.children if n.data is call)
                self._expand(node)
                parent = node
            target = path[-1]
            line = self._line_of(lambda d: d is target)
        else:
            line = self._line_of(wanted)
        if line is None:
            return False
        self.move_cursor_to_line(line)
        self.scroll_to_line(line)
        return True

    def expand_to_depth(self, depth: int) -> None:
        def visit(node: TreeNode, level: int) -> None:
            if level < depth:
                self._expand(node) if node is not self.root else node.expand()
                for child in node.children:
                    visit(child, level + 1)
            else:
                node.collapse()
        visit(self.root, 0)

    def expand_everything(self) -> None:
        self.expand_to_depth(10_000)

    # -- keys (see keys.py) ----------------------------------------------------------

    def action_collapse_or_parent(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node.children:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def action_expand(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand:
            self._expand(node)

    def action_first(self) -> None:
        self.move_cursor_to_line(0)

    def action_last(self) -> None:
        self.move_cursor_to_line(self.last_line)

    def action_page_up(self) -> None:
        self.move_cursor_to_line(max(self.cursor_line - self.scrollable_content_region.height, 0))

    def action_page_down(self) -> None:
        self.move_cursor_to_line(min(self.cursor_line + self.scrollable_content_region.height,
                                     self.last_line))


def _path_to(roots: list[CallNode], wanted) -> list[CallNode] | None:
    """Calls from a root down to the first node `wanted` accepts (its entry or itself)."""
    for node in roots:
        if wanted(node) or (node.entry is not None and wanted(node.entry)):
            return [node]
        below = _path_to(node.children, wanted)
        if below:
            return [node, *below]
    return None


def _walk(roots: list[CallNode]):
    todo = list(roots)
    while todo:
        node = todo.pop()
        yield node
        todo.extend(node.children)


class DetailPane(VerticalScroll, can_focus=True):
    """Every field of the selected sample (or call), raw values included; it scrolls
    (focus it with Tab) since a stack can be longer than the pane."""

    BINDINGS = bindings("detail")
    hex_view = False  # the packet's bytes as hex/ASCII instead of decoded headers

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Held, not queried: a highlight can arrive before the pane's children are
        # mounted or after they are removed at exit (a query then finds nothing).
        self._body = Static(Text("no packet selected", style="dim"), id="detail")

    def compose(self):
        yield self._body

    def show(self, data, origin: int, trace_origin: int = 0, packet: Packet | None = None) -> None:
        """`origin`: the packet's first sample (the tree's times); `trace_origin`: the
        trace's first (the list's `first seen`); `packet`: the journey (what changed)."""
        text = Text()
        samples = []
        if isinstance(data, Sample):
            samples = [("sample", data)]
        elif isinstance(data, CallNode):
            samples = [("entry", data.entry), ("return", data.exit)]
            text.append(f"call {data.function}()  duration {fmt.duration(data.duration)}  "
                        f"self {fmt.duration(data.self_time)}  depth {data.depth}\n", style="bold")
        for title, sample in samples:
            if sample is None:
                text.append(f"{title}: not seen\n", style="dim")
                continue
            text.append(f"{title}\n", style="bold underline")
            rows = [("function", sample.function),
                    ("packet_id", packet_id_text(sample.packet_id)),
                    ("time", f"+{fmt.duration(sample.timestamp - origin)} from the packet's "
                             f"first sample"),
                    ("", f"{fmt.offset(sample.timestamp - trace_origin, 16)} into the trace"),
                    ("timestamp", f"{sample.timestamp} ns"),
                    ("processor_id", str(sample.processor_id)),
                    ("is_return", str(sample.is_return).lower())]
            if sample.drop_reason is not None:
                rows.append(("drop_reason", sample.drop_reason))
            if sample.meta is not None:
                m = sample.meta
                if m.ifindex:
                    rows.append(("device", f"{m.ifname} (ifindex {m.ifindex})" if m.ifname
                                 else f"ifindex {m.ifindex}"))
                if m.netns:
                    rows.append(("netns", str(m.netns)))
                if m.length:
                    rows.append(("len", str(m.length)))
                flow = flow_text(m) or (f"l3 0x{m.l3_proto:04x}" if m.l3_proto else "")
                if flow:
                    rows.append(("flow", flow))
            if is_clone(sample):
                rows.append(("skb", f"{packet_id_text(sample.skb)} (clone)"))
            rows += [(k, str(v)) for k, v in (sample.fields or {}).items()]
            for key, value in rows:
                text.append(f"  {key:<13}", style="cyan")
                text.append(f"{value}\n")
            if sample.stack:
                text.append("  stack\n", style="cyan")
                for frame in sample.stack:
                    text.append(f"    {frame}\n")
            text.append_text(packet_text(sample, previous_capture(packet, sample), self.hex_view))
        if not samples:
            text.append("no packet selected", style="dim")
        self._body.update(text)
        self.scroll_home(animate=False)


StatusItem = tuple[str, str, str]  # label, value, style


def status_items(status: Status, *, rate: float, packets: int, evicted: int, drops: int,
                 follow: bool, shed: int = 0, paused: bool, pending: int, live: bool,
                 loading: tuple[int, int, str] | None = None,
                 recording: str | None = None) -> list[StatusItem]:
    """The status bar's fields, the most important first."""
    items: list[StatusItem] = []

    def item(label: str, value: str, style: str = "bold") -> None:
        items.append((label, value, style))

    if paused:
        item("", f"PAUSED +{pending}", "bold black on yellow")
    if loading is not None:
        item("loading", f"{loading[0]}/{loading[2]}{loading[1]} samples", "bold black on yellow")
    item("", "FOLLOW" if follow else "not following (F)", "bold green" if follow else "dim")
    item("packets", f"{packets}" + (f" (-{evicted} evicted)" if evicted else ""))
    item("lost", str(status.lost), "bold white on red" if status.lost else "bold")
    if status.missed:  # probe runs the kernel skipped
        item("missed", str(status.missed), "bold white on red")
    item("ui drops", str(drops), "bold white on red" if drops else "bold")
    if shed:  # live, the oldest waiting samples dropped to keep the screen current
        item("shed", str(shed), "bold black on yellow")
    if recording:
        item("", f"REC {recording}", "bold white on red")
    item("backend", status.backend or "starting")
    item("tracer", status.tracer or "-")
    if live or status.expression or status.mark or status.netns or status.ifname:
        item("filter", status.filter_label)  # replay: as recorded
    if live:
        item("probes", f"{status.attached}/{status.total}")
        item("ev/s", fmt.count(rate))
        item("skbs", "followed" if status.track_skb else "by mark only",
             "bold green" if status.track_skb else "bold")
    if status.stack_regex:
        item("stacks", f"/{status.stack_regex}/")
    item("samples", fmt.count(status.samples))
    return items


SEPARATOR = " │ "


def layout_status(items: list[StatusItem], width: int) -> Text:
    """The fields on as many lines as they need: never one cut off the screen."""
    text = Text(no_wrap=True, overflow="ellipsis")
    column = 0
    for label, value, style in items:
        size = len(label) + bool(label) + len(value)
        if column and column + len(SEPARATOR) + size > width:
            text.append("\n")
            column = 0
        elif column:
            text.append(SEPARATOR, style="dim")
            column += len(SEPARATOR)
        if label:
            text.append(f"{label} ", style="dim")
        text.append(value, style=style)
        column += size
    return text


def status_text(status: Status, **kwargs) -> Text:
    return layout_status(status_items(status, **kwargs), 10_000)


class StatusBar(Static):
    """Lays its fields out again on every resize."""

    DEFAULT_CSS = "StatusBar { height: auto; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.items: list[StatusItem] = []

    _lines = 0  # lines of the text shown: the bar's height

    def show(self, items: list[StatusItem]) -> None:
        if items != self.items:  # an idle screen redraws nothing
            self.items = items
            self._show(layout_status(items, self._width()))

    def _show(self, text: Text) -> None:
        # Only a change of height lays the screen out again; new counts only repaint.
        lines = text.plain.count("\n") + 1
        self.update(text, layout=lines != self._lines)
        self._lines = lines

    def _width(self) -> int:
        # Before its first layout the bar has no size: the screen's width, less padding.
        return self.content_region.width or max(self.app.size.width - 2, 20)

    def on_resize(self) -> None:
        self._show(layout_status(self.items, self._width()))
