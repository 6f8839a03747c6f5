"""Journeys grouped by path: which ways do my packets take, and how does each end?

A path is a journey's function sequence (entries in time order, returns left out,
consecutive repeats collapsed; clones are part of their journey, so they fold in).
Pure: no bcc, no Textual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from time import perf_counter

from .model import Packet, durations

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
    """Distinct paths, most taken first (ties: first seen first).

    Journeys are bucketed by path first, then each bucket is summed up with
    comprehensions: the paths view regroups every journey when packets change."""
    by_path: dict[tuple, list[Packet]] = {}  # (functions, places) -> its journeys
    get = by_path.get
    for packet in packets:
        path = packet.path()
        bucket = get(path)
        if bucket is None:
            by_path[path] = [packet]
        else:
            bucket.append(packet)
    buckets: dict[tuple[str, ...], list[Packet]] = {}
    places_seen: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for (functions, places), bucket in by_path.items():
        if functions in buckets:  # the same functions through other places: in arrival order
            buckets[functions] = sorted(buckets[functions] + bucket, key=lambda p: p.key)
            places_seen[functions].append(places)
        else:
            buckets[functions] = bucket
            places_seen[functions] = [places]
    paths = []
    for functions, bucket in buckets.items():
        stats = PathStats(functions, len(bucket))
        stats.keys = [p.key for p in bucket]
        # (drop reason, freed) pairs, named as outcome() does, in order of first appearance.
        for (reason, freed), n in Counter((p.drop_reason, p.freed) for p in bucket).items():
            name = f"drop: {reason}" if reason is not None else (CONSUMED if freed else OPEN)
            stats.outcomes[name] += n
        stats.durations = durations([p for p in bucket if p.freed])
        for places in places_seen[functions]:
            for place in places:
                stats.places.setdefault(place)
        paths.append(stats)
    return sorted(paths, key=lambda p: -p.count)


class _Entry:
    """One path's running totals in a PathIndex (removable, unlike PathStats)."""

    __slots__ = ("functions", "keys", "outcomes", "durations", "places")

    def __init__(self, functions: tuple[str, ...]):
        self.functions = functions
        self.keys: dict[int, None] = {}  # in arrival order
        self.outcomes: Counter = Counter()
        self.durations: dict[int, int] = {}  # key -> ns, ended journeys
        self.places: Counter = Counter()  # place -> journeys crossing it (first seen first)


class PathIndex:
    """group_paths kept up to date: update() regroups only the journeys that changed
    (new samples, new journeys, evicted ones), found by comparing sample counts.

    The live paths view calls it on a timer over a store of up to millions of
    samples; a full group_paths would redo every journey each time."""

    def __init__(self):
        self.complete = True  # False: update() ran out of its time budget, call it again
        self._seen: dict[int, tuple] = {}  # key -> (samples, functions, outcome, duration, places)
        self._entries: dict[tuple[str, ...], _Entry] = {}

    def _remove(self, key: int, record: tuple) -> None:
        _count, functions, name, took, places = record
        entry = self._entries[functions]
        del entry.keys[key]
        entry.outcomes[name] -= 1
        if not entry.outcomes[name]:
            del entry.outcomes[name]
        entry.durations.pop(key, None)
        for place in places:
            entry.places[place] -= 1
            if not entry.places[place]:
                del entry.places[place]
        if not entry.keys:
            del self._entries[functions]

    def update(self, packets: dict[int, Packet], budget: float | None = None) -> bool:
        """Brings the index up to `packets` (a PacketStore's, oldest first); True if changed.

        With a budget (s), stops when it is spent (`complete` False): a first look at
        a million journeys computes every path, seconds of work, so the TUI does it
        in slices between frames. Journeys already seen are skipped cheaply next time."""
        seen, entries = self._seen, self._entries
        changed = False
        deadline = None if budget is None else perf_counter() + budget
        done = 0
        self.complete = True
        # Stores evict their oldest journeys (or clear them all): gone keys come first.
        while seen:
            key = next(iter(seen))
            if key in packets:
                break
            self._remove(key, seen.pop(key))
            changed = True
        if len(seen) > len(packets):  # keys gone from the middle: not a PacketStore's order
            for key in [k for k in seen if k not in packets]:
                self._remove(key, seen.pop(key))
            changed = True
        get = seen.get
        for key, packet in packets.items():
            record = get(key)
            count = len(packet)
            if record is not None:
                if record[0] == count:
                    continue
                self._remove(key, record)
            elif deadline is not None:  # a new journey: its path is computed now, the slow part
                if done >= 1024 and perf_counter() > deadline:  # at least 1024 at a time
                    self.complete = False
                    return True
                done += 1
            functions, places = packet.path()
            name = outcome(packet)
            took = packet.duration if packet.freed else None
            seen[key] = (count, functions, name, took, places)
            entry = entries.get(functions)
            if entry is None:
                entry = entries[functions] = _Entry(functions)
            entry.keys[key] = None
            entry.outcomes[name] += 1
            if took is not None:
                entry.durations[key] = took
            for place in places:
                entry.places[place] += 1
            changed = True
        return changed

    def paths(self) -> list[PathStats]:
        """As group_paths would give (most taken first; ties: first seen first)."""
        out = []
        for entry in self._entries.values():
            keys = sorted(entry.keys)  # changed journeys were re-added at the end
            out.append(PathStats(entry.functions, len(keys), Counter(entry.outcomes),
                                 list(entry.durations.values()), dict.fromkeys(entry.places),
                                 keys))
        out.sort(key=lambda p: p.keys[0])
        return sorted(out, key=lambda p: -p.count)
