"""The main screen's widgets: packet list, journey tree, detail pane, status bar."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from .. import formatting as fmt
from ..calltree import CallNode, build_call_tree
from ..collector import Status
from ..model import Meta, Packet, Sample, flow_text, is_clone, is_drop, packet_id_text
from .packet_list import fields_text
from .packet_view import mark_changes, packet_text, previous_capture

def where_text(meta: Meta | None) -> str:
    return f"{meta.ifname or '-'} ns:{meta.netns}" if meta is not None else ""


def sample_label(sample: Sample, origin: int, previous: Sample | None = None) -> Text:
    text = Text()
    text.append(f"{'+' + fmt.duration(sample.timestamp - origin):>10} ", style="dim")
    text.append(f"cpu{sample.processor_id:<3} ", style="cyan")
    text.append(sample.function, style="bold red" if is_drop(sample) else "bold")
    if sample.drop_reason is not None:
        text.append(f" {sample.drop_reason}", style="red" if is_drop(sample) else "dim")
    # Say where the packet is when that changes (device or namespace).
    here = where_text(sample.meta)
    if here and (previous is None or where_text(previous.meta) != here):
        text.append(f"  @{here}", style="magenta")
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


def call_label(node: CallNode, origin: int, slow_ns: int | None) -> Text:
    text = Text()
    text.append(f"{'+' + fmt.duration(node.timestamp - origin):>10} ", style="dim")
    if node.exit is None and not node.children:
        # No return and nothing inside: a leaf event (e.g. a tracepoint without a pair).
        text.append(node.function, style="bold red" if node.function == "kfree_skb" else "bold")
        _skb_and_stack(text, node.entry)
        return text
    text.append(f"{node.function}()", style="bold")
    took = node.duration
    style = "bold yellow" if slow_ns is not None and took is not None and took >= slow_ns else "dim"
    text.append(f"  {fmt.duration(took) if took is not None else 'no return'}", style=style)
    if node.entry is None:
        text.append("  (entry not seen)", style="italic dim")
    _skb_and_stack(text, node.entry)
    return text


class JourneyTree(Tree):
    """The selected packet's journey; call nodes get their children when expanded."""

    BINDINGS = [("j", "cursor_down", "Down"), ("k", "cursor_up", "Up")]

    def __init__(self, **kwargs):
        super().__init__(Text("no packet selected"), **kwargs)
        self.packet: Packet | None = None
        self.slow_ns: int | None = None
        self.origin = 0

    def show_packet(self, packet: Packet | None, tracer: str) -> None:
        self.packet = packet
        self.clear()
        if packet is None:
            self.root.set_label(Text("no packet selected"))
            return
        label = Text(f"packet {packet.key}  ", style="bold")
        label.append(packet_id_text(packet.packet_id), style="dim")
        label.append(f"  {len(packet)} samples, {fmt.duration(packet.duration)}")
        self.root.set_label(label)
        samples = packet.samples
        self.origin = samples[0].timestamp  # journey times count from the packet's first sample
        if tracer == "function_graph":
            roots = build_call_tree(samples)
            durations = sorted((n.duration for n in _walk(roots) if n.duration is not None),
                               reverse=True)
            # The slowest calls (top 10%, at least one) are highlighted.
            self.slow_ns = durations[max(len(durations) // 10 - 1, 0)] if durations else None
            self._add_calls(self.root, roots)
        else:
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

    def _add_calls(self, parent: TreeNode, calls: list[CallNode]) -> None:
        for call in calls:
            label = call_label(call, self.origin, self.slow_ns)
            if call.children:
                parent.add(label, data=call)
            else:
                parent.add_leaf(label, data=call)

    def on_tree_node_expanded(self, event: Tree.NodeExpanded) -> None:
        node = event.node
        if isinstance(node.data, CallNode) and not node.children:
            self._add_calls(node, node.data.children)

    def expand_to_depth(self, depth: int) -> None:
        def visit(node: TreeNode, level: int) -> None:
            if level < depth:
                node.expand()
                if isinstance(node.data, CallNode) and not node.children:
                    self._add_calls(node, node.data.children)
                for child in node.children:
                    visit(child, level + 1)
            else:
                node.collapse()
        visit(self.root, 0)

    def expand_everything(self) -> None:
        self.expand_to_depth(10_000)


def _walk(roots: list[CallNode]):
    todo = list(roots)
    while todo:
        node = todo.pop()
        yield node
        todo.extend(node.children)


class DetailPane(VerticalScroll):
    """Every field of the selected sample (or call), raw values included; it scrolls
    (focus it with Tab) since a stack can be longer than the pane."""

    hex_view = False  # the packet's bytes as hex/ASCII instead of decoded headers

    def compose(self):
        yield Static(Text("select a sample in the journey tree", style="dim"), id="detail")

    def show(self, data, origin: int, packet: Packet | None = None) -> None:
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
                    ("timestamp", f"{sample.timestamp} ns (+{fmt.duration(sample.timestamp - origin)})"),
                    ("processor_id", str(sample.processor_id)),
                    ("is_return", str(sample.is_return).lower())]
            if sample.drop_reason is not None:
                rows.append(("drop_reason", sample.drop_reason))
            if sample.meta is not None:
                m = sample.meta
                rows += [("device", f"{m.ifname} (ifindex {m.ifindex})"), ("netns", str(m.netns)),
                         ("len", str(m.length)), ("flow", flow_text(m) or f"l3 0x{m.l3_proto:04x}")]
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
            text.append("select a sample in the journey tree", style="dim")
        self.query_one("#detail", Static).update(text)


def status_text(status: Status, *, rate: float, packets: int, evicted: int, drops: int,
                follow: bool, paused: bool, pending: int, live: bool) -> Text:
    text = Text()

    def item(label: str, value: str, style: str = "bold") -> None:
        if text:
            text.append(" │ ", style="dim")
        text.append(f"{label} ", style="dim")
        text.append(value, style=style)

    item("backend", status.backend or "starting")
    item("tracer", status.tracer or "-")
    if live:
        item("mark", f"0x{status.mark:x}/0x{status.mask:x}")
        item("probes", f"{status.attached}/{status.total}")
        item("ev/s", fmt.count(rate))
    if status.track_skb:
        item("", "TRACK SKB", "bold green")
    if status.stack_regex:
        item("stacks", f"/{status.stack_regex}/")
    item("samples", fmt.count(status.samples))
    item("packets", f"{packets}" + (f" (-{evicted})" if evicted else ""))
    item("lost", str(status.lost), "bold white on red" if status.lost else "bold")
    item("ui drops", str(drops), "bold white on red" if drops else "bold")
    if follow:
        item("", "FOLLOW", "bold green")
    if paused:
        item("", f"PAUSED +{pending}", "bold black on yellow")
    return text


class StatusBar(Static):
    pass
