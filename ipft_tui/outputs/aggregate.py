"""`-o aggregate`: keep every sample, print each packet's journey at the end.

Byte-compatible with ipftrace2: a blank line, a header, then per packet a `===`
line followed by its samples in timestamp order.
"""

from __future__ import annotations

import time
from itertools import chain

from ..calltree import CallNode, build_call_tree
from ..model import (NOT_DROPS, PacketStore, Sample, group_by_packet, is_clone, is_drop,
                     packet_id_text)
from ..tracing.decode import WordPieces, per_layout, plain_columns

PROGRESS_INTERVAL = 0.1  # s between "Got N traces" lines of write_batches()
HEADER = f"{'Timestamp':<20} {'CPU':>3.3} {'Function':>32.32}"


def _suffix(sample: Sample, with_fields: bool) -> str:
    """ipftrace2's `( key: value ... )` after a line: script fields, and the drop
    reason on the samples that carry one."""
    items = list(sample.fields.items()) if with_fields and sample.fields else []
    if sample.drop_reason is not None:
        items.append(("drop_reason", sample.drop_reason))
    if is_clone(sample):
        items.append(("skb", packet_id_text(sample.skb)))
    if not items and not with_fields:
        return ""
    return " ( " + "".join(f"{k}: {v} " for k, v in items) + ")"


def stack_lines(sample: Sample) -> list[str]:
    """A sample's kernel stack (--stack-trace), under its line, innermost first."""
    return [f"{'':<25}{'':>32} <- {frame}" for frame in sample.stack] if sample.stack else []


def function_lines(journey: list[Sample], with_fields: bool) -> list[str]:
    lines = []
    for s in journey:
        lines.append(f"{s.timestamp:<20} {s.processor_id:03} {s.function:>32.32}"
                     f"{_suffix(s, with_fields)}")
        lines.extend(stack_lines(s))
    return lines


def function_graph_lines(journey: list[Sample], with_fields: bool) -> list[str]:
    """ipftrace2's graph format, drawn from the call tree: balanced input prints
    exactly as ipftrace2 does. Braces only pair a call's entry with its return: an
    entry whose return was not seen (a tracepoint, a lost return) prints as
    `name();`, as ftrace does, the calls seen inside it indented below; a return
    whose entry was not seen prints as `/* name() returned */`."""
    lines = []

    def line(sample: Sample, label: str) -> None:
        # ipftrace2 builds the label in a 64-byte buffer, then prints it as %-64.64s.
        lines.append(f"{sample.timestamp:<20} {sample.processor_id:03} {label[:63]:<64.64}"
                     f"{_suffix(sample, with_fields)}")
        lines.extend(stack_lines(sample))

    def draw(node: CallNode) -> None:
        indent = " " * (node.depth * 2)
        if node.entry is not None:
            line(node.entry, f"{indent}{node.function}(){';' if node.exit is None else ' {'}")
        for child in node.children:
            draw(child)
        if node.exit is not None:
            line(node.exit, f"{indent}}}" if node.entry is not None
                 else f"{indent}/* {node.function}() returned */")

    for root in build_call_tree(journey):
        draw(root)
    return lines


def journeys_of(samples: list[Sample], split_on_free: bool = False) -> list[list[Sample]]:
    """ipftrace2 groups by skb address; split_on_free also ends a journey where the
    skb is freed, since the kernel reuses the address for the next packet."""
    if not split_on_free:
        return list(group_by_packet(samples).values())
    store = PacketStore(max_packets=len(samples) + 1)
    store.add(samples)
    return store.journeys()


def render(samples: list[Sample], tracer: str = "function", with_fields: bool = False,
           split_on_free: bool = False, drops_only: bool = False) -> str:
    lines = ["", HEADER]
    format_journey = function_graph_lines if tracer == "function_graph" else function_lines
    for journey in journeys_of(samples, split_on_free):
        if drops_only and not any(is_drop(s) for s in journey):
            continue
        lines.append("===")
        lines.extend(format_journey(journey, with_fields))
    return "\n".join(lines) + "\n"


class _PlainLines:
    """function_lines() of plain records (decode.plain_columns), without Samples: the
    text after the timestamp is made once per distinct probe/CPU and reason word."""

    LINE = "%-20d%s%s\n"

    def __init__(self, layout):
        names = layout.names
        self.probe_cpu = WordPieces(lambda w: f" {w >> 32:03} {names[w & 0xFFFFFFFF]:>32.32}")
        self.reason = WordPieces(lambda w: f" ( drop_reason: {layout.reason_name(w >> 32)} )"
                                 if w >> 32 else "")
        self.dropped = WordPieces(lambda w: bool(w >> 32)
                                  and layout.reason_name(w >> 32) not in NOT_DROPS)

    def render(self, raw: bytes, drops_only: bool = False) -> str:
        """What render() prints for these records' samples (tracer function, no fields)."""
        pids, timestamps, probe_cpu, return_reason = plain_columns(raw)
        lines: list[str] = []
        for start in range(0, len(pids), 4096):  # one `%` per few thousand lines
            end = min(start + 4096, len(pids))
            args = tuple(chain.from_iterable(zip(
                timestamps[start:end], map(self.probe_cpu.__getitem__, probe_cpu[start:end]),
                map(self.reason.__getitem__, return_reason[start:end]))))
            lines += ((self.LINE * (end - start)) % args).split("\n")[:-1]
        journeys: dict[int, list[int]] = {}  # as group_by_packet(): by packet, first seen first
        add = journeys.setdefault
        for i, pid in enumerate(pids):
            add(pid, []).append(i)
        ordered = list(journeys.values())
        for journey in ordered:
            if len(journey) > 1:
                journey.sort(key=timestamps.__getitem__)  # stable, as Samples sort
        ordered.sort(key=lambda journey: timestamps[journey[0]])
        if drops_only:
            dropped = self.dropped
            ordered = [j for j in ordered if any(dropped[return_reason[i]] for i in j)]
        out = ["", HEADER]
        for journey in ordered:
            out.append("===")
            out += map(lines.__getitem__, journey)
        return "\n".join(out) + "\n"


class AggregateOutput:
    """Collects samples; prints everything at finish(). Reports a running count on stderr."""

    def __init__(self, stream, tracer: str = "function", with_fields: bool = False, progress=None,
                 split_on_free: bool = False, drops_only: bool = False):
        self.stream = stream
        self.tracer = tracer
        self.with_fields = with_fields
        self.split_on_free = split_on_free
        self.drops_only = drops_only
        self.samples: list[Sample] = []
        self.progress = progress
        self._batches: list = []  # collector batches, kept as records until finish()
        self._batched = 0
        self._next_progress = 0.0

    def write(self, samples: list[Sample]) -> None:
        self.samples.extend(samples)
        if self.progress and samples:
            self.progress(f"\rGot {len(self.samples) + self._batched} traces")

    def write_batches(self, batches: list) -> None:
        """Collector batches: kept as they are (their records take a few dozen bytes
        a sample), decoded only at finish(); the count on stderr about 10 times a second."""
        for batch in batches:
            self._batches.append(batch)
            self._batched += len(batch)
        now = time.monotonic()
        if self.progress and now >= self._next_progress:
            self._next_progress = now + PROGRESS_INTERVAL
            self.progress(f"\rGot {len(self.samples) + self._batched} traces")

    def report_count(self) -> None:
        """The final count (write_batches() writes it at most every PROGRESS_INTERVAL)."""
        if self.progress and self._batched:
            self.progress(f"\rGot {len(self.samples) + self._batched} traces")

    def finish(self) -> None:
        layouts = {id(batch.layout): batch.layout for batch in self._batches}
        if (self._batches and not self.samples and len(layouts) == 1 and self.tracer == "function"
                and not (self.with_fields or self.split_on_free)
                and all(batch.raw is not None and batch.layout.plain for batch in self._batches)):
            raw = b"".join(batch.raw for batch in self._batches)
            self._batches, self._batched = [], 0
            self.stream.write(per_layout(next(iter(layouts.values())), _PlainLines).render(
                raw, self.drops_only))
            self.stream.flush()
            return
        if self._batches:
            for batch in self._batches:
                self.samples.extend(batch.samples())
            self._batches, self._batched = [], 0
        self.stream.write(render(self.samples, self.tracer, self.with_fields, self.split_on_free,
                                 self.drops_only))
        self.stream.flush()
