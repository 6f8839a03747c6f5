"""`-o aggregate`: keep every sample, print each packet's journey at the end.

Byte-compatible with ipftrace2: a blank line, a header, then per packet a `===`
line followed by its samples in timestamp order.
"""

from __future__ import annotations

from ..calltree import CallNode, build_call_tree
from ..model import Sample, group_by_packet

HEADER = f"{'Timestamp':<20} {'CPU':>3.3} {'Function':>32.32}"


def _fields_suffix(sample: Sample) -> str:
    return "( " + "".join(f"{k}: {v} " for k, v in sample.fields.items()) + ")"


def function_lines(journey: list[Sample], with_fields: bool) -> list[str]:
    lines = []
    for s in journey:
        line = f"{s.timestamp:<20} {s.processor_id:03} {s.function:>32.32}"
        if with_fields:
            line += " " + _fields_suffix(s) if s.fields is not None else " ( )"
        lines.append(line)
    return lines


def function_graph_lines(journey: list[Sample], with_fields: bool) -> list[str]:
    """ipftrace2's graph format, drawn from the call tree: balanced input prints
    exactly as ipftrace2 does; a sample with no return and nothing inside (a
    tracepoint, or a lost return) prints as `name();`, as ftrace does."""
    lines = []

    def line(sample: Sample, label: str) -> None:
        # ipftrace2 builds the label in a 64-byte buffer, then prints it as %-64.64s.
        text = f"{sample.timestamp:<20} {sample.processor_id:03} {label[:63]:<64.64}"
        if with_fields:
            text += " " + _fields_suffix(sample) if sample.fields is not None else " ( )"
        lines.append(text)

    def draw(node: CallNode) -> None:
        indent = " " * (node.depth * 2)
        if node.entry is not None:
            leaf = node.exit is None and not node.children
            line(node.entry, f"{indent}{node.function}(){';' if leaf else ' {'}")
        for child in node.children:
            draw(child)
        if node.exit is not None:
            line(node.exit, f"{indent}}}")

    for root in build_call_tree(journey):
        draw(root)
    return lines


def render(samples: list[Sample], tracer: str = "function", with_fields: bool = False) -> str:
    lines = ["", HEADER]
    format_journey = function_graph_lines if tracer == "function_graph" else function_lines
    for journey in group_by_packet(samples).values():
        lines.append("===")
        lines.extend(format_journey(journey, with_fields))
    return "\n".join(lines) + "\n"


class AggregateOutput:
    """Collects samples; prints everything at finish(). Reports a running count on stderr."""

    def __init__(self, stream, tracer: str = "function", with_fields: bool = False, progress=None):
        self.stream = stream
        self.tracer = tracer
        self.with_fields = with_fields
        self.samples: list[Sample] = []
        self.progress = progress

    def write(self, samples: list[Sample]) -> None:
        self.samples.extend(samples)
        if self.progress and samples:
            self.progress(f"\rGot {len(self.samples)} traces")

    def finish(self) -> None:
        self.stream.write(render(self.samples, self.tracer, self.with_fields))
        self.stream.flush()
