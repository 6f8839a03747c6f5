"""Journeys grouped by path: which ways do my packets take, and how does each end?

A path is a journey's function sequence (entries in time order, returns left out,
consecutive repeats collapsed; clones are part of their journey, so they fold in).
Pure: no bcc, no Textual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import Packet

OPEN = "open"  # the journey's end was not seen
CONSUMED = "consumed"  # freed without a drop reason: handled (delivered, transmitted, ...)


def outcome(packet: Packet) -> str:
    """How a journey ended: `drop: REASON`, consumed, or open."""
    if packet.drop_reason is not None:
        return f"drop: {packet.drop_reason}"
    return CONSUMED if packet.freed else OPEN


def percentile(sorted_values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending list (empty: 0)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * fraction // 1))  # ceil, at least the first
    return sorted_values[int(rank) - 1]


@dataclass
class PathStats:
    """One distinct path and the journeys that took it."""

    functions: tuple[str, ...]
    count: int = 0
    outcomes: Counter = field(default_factory=Counter)
    durations: list[int] = field(default_factory=list)  # ns, ended journeys only
    places: dict[str, None] = field(default_factory=dict)  # devices/namespaces, in order
    keys: list[int] = field(default_factory=list)  # the journeys' PacketStore keys

    @property
    def outcome(self) -> str:
        """The most common ending (ties: the first seen)."""
        return self.outcomes.most_common(1)[0][0] if self.outcomes else OPEN

    def duration_stats(self) -> tuple[int, int, int] | None:
        """(p50, p99, max) in ns over the journeys whose end was seen."""
        if not self.durations:
            return None
        ordered = sorted(self.durations)
        return percentile(ordered, 0.5), percentile(ordered, 0.99), ordered[-1]


def group_paths(packets: Iterable[Packet]) -> list[PathStats]:
    """Distinct paths, most taken first (ties: first seen first)."""
    paths: dict[tuple[str, ...], PathStats] = {}
    for packet in packets:
        functions, places = packet.path()
        stats = paths.get(functions)
        if stats is None:
            stats = paths[functions] = PathStats(functions)
        stats.count += 1
        stats.keys.append(packet.key)
        stats.outcomes[outcome(packet)] += 1
        if packet.freed:
            stats.durations.append(packet.duration)
        for place in places:
            stats.places.setdefault(place)
    return sorted(paths.values(), key=lambda p: -p.count)
