"""Two journeys side by side: their function sequences aligned (a diff), the first
divergence, and the time difference per aligned step. Pure: no bcc, no Textual."""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from .model import Packet

SAME, CHANGED, ONLY_A, ONLY_B = "=", "~", "-", "+"


@dataclass
class Step:
    function: str
    offset: int  # ns since the journey's first sample


@dataclass
class Row:
    kind: str  # SAME, CHANGED, ONLY_A, ONLY_B
    a: Step | None
    b: Step | None

    @property
    def delta(self) -> int | None:
        """How much later (+) or earlier (-) B reached this step than A."""
        if self.a is None or self.b is None:
            return None
        return self.b.offset - self.a.offset


def steps(packet: Packet) -> list[Step]:
    """Function entries in time order, consecutive repeats collapsed (as in its path)."""
    out: list[Step] = []
    samples = packet.samples
    start = samples[0].timestamp if samples else 0
    for sample in samples:
        if sample.is_return or (out and out[-1].function == sample.function):
            continue
        out.append(Step(sample.function, sample.timestamp - start))
    return out


def align(a: list[Step], b: list[Step]) -> list[Row]:
    matcher = SequenceMatcher(None, [s.function for s in a], [s.function for s in b],
                              autojunk=False)
    rows: list[Row] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            rows += [Row(SAME, a[a0 + i], b[b0 + i]) for i in range(a1 - a0)]
            continue
        # A replaced run pairs up step by step; what is left over is one-sided.
        paired = min(a1 - a0, b1 - b0) if tag == "replace" else 0
        rows += [Row(CHANGED, a[a0 + i], b[b0 + i]) for i in range(paired)]
        rows += [Row(ONLY_A, step, None) for step in a[a0 + paired:a1]]
        rows += [Row(ONLY_B, None, step) for step in b[b0 + paired:b1]]
    return rows


def first_divergence(rows: list[Row]) -> int | None:
    return next((i for i, row in enumerate(rows) if row.kind != SAME), None)


def compare(a: Packet, b: Packet) -> tuple[list[Row], int | None]:
    rows = align(steps(a), steps(b))
    return rows, first_divergence(rows)
