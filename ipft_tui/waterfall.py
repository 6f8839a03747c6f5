"""Where did the time go: one journey's calls or samples as bars on a common time axis.

function_graph: one bar per call, from its entry to its return (duration and self
time); otherwise one bar per sample, reaching to the next sample (the gap). Rows are
in time order, grouped in lanes: a new lane starts where the CPU or the
device/namespace changes. Pure: no bcc, no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass

from .calltree import build_call_tree, flatten
from .model import Packet, Sample, place_text


@dataclass
class Bar:
    function: str
    start: int  # ns, absolute
    end: int  # ns; == start for a call without a return seen, or the journey's last sample
    depth: int  # call nesting (0 without function_graph)
    lane: str  # "cpu 1 · veth1@4026532281"
    sample: Sample  # the entry (or the return, for a call whose entry was not seen)
    self_time: int | None = None  # function_graph: the call's time outside its children
    closed: bool = True  # False: a call whose return was not seen

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def cost(self) -> int:
        """What makes a bar 'slow': self time for calls, the gap for samples."""
        return self.self_time if self.self_time is not None else self.length


def lane_of(sample: Sample) -> str:
    place = place_text(sample.meta) if sample.meta is not None else ""
    return f"cpu {sample.processor_id}" + (f" · {place}" if place else "")


def waterfall_bars(packet: Packet, graph: bool | None = None) -> list[Bar]:
    """The bars of a journey; `graph` None: calls when the journey has returns."""
    samples = packet.samples
    if graph is None:
        graph = any(s.is_return for s in samples)
    bars: list[Bar] = []
    if graph:
        for node in flatten(build_call_tree(samples)):
            first = node.entry or node.exit
            end = node.exit.timestamp if (node.exit and node.entry) else first.timestamp
            bars.append(Bar(node.function, first.timestamp, end, node.depth, lane_of(first),
                            first, node.self_time, node.duration is not None))
        bars.sort(key=lambda b: b.start)  # flatten is depth-first: calls start in order anyway
        return bars
    for i, sample in enumerate(samples):
        end = samples[i + 1].timestamp if i + 1 < len(samples) else sample.timestamp
        bars.append(Bar(sample.function, sample.timestamp, end, 0, lane_of(sample), sample))
    return bars


def slowest(bars: list[Bar]) -> int | None:
    """Index of the slowest hop (the first of equals), None without any time spent."""
    best = max(range(len(bars)), key=lambda i: (bars[i].cost, -i), default=None)
    return best if best is not None and bars[best].cost > 0 else None


def span(bars: list[Bar]) -> tuple[int, int]:
    """(start, end) of the common time axis."""
    if not bars:
        return 0, 0
    return min(b.start for b in bars), max(b.end for b in bars)


def scale(start: int, end: int, origin: int, length: int, width: int) -> tuple[int, int]:
    """Cells [x0, x1) of a bar on an axis `width` cells wide covering `length` ns;
    at least one cell, so a point in time is still seen."""
    if length <= 0 or width <= 0:
        return 0, min(1, width)
    x0 = min((start - origin) * width // length, width - 1)
    x1 = -(-(end - origin) * width // length)  # ceil
    return x0, max(x1, x0 + 1)
