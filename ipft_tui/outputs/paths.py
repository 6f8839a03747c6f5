"""`-o paths` / `-o paths-json`: every journey kept, the distinct paths printed on exit.

Journeys are split where the kernel frees the skb (as in the TUI), since one
address carries many packets over time.
"""

from __future__ import annotations

import json

from ..formatting import duration
from ..model import PacketStore, Sample
from ..paths import PathStats, group_paths


def path_record(stats: PathStats, total: int) -> dict:
    p50, p99, longest = stats.duration_stats() or (None, None, None)
    return {
        "count": stats.count,
        "share": round(stats.count / total, 4) if total else 0.0,
        "ends": dict(stats.outcomes.most_common()),
        "duration_ns": {"p50": p50, "p99": p99, "max": longest},
        "crosses": list(stats.places),
        "path": list(stats.functions),
    }


def render_text(paths: list[PathStats]) -> str:
    total = sum(p.count for p in paths)
    lines = [f"{len(paths)} paths, {total} journeys"]
    for number, stats in enumerate(paths, 1):
        ends = ", ".join(f"{name} ({n})" for name, n in stats.outcomes.most_common())
        timing = stats.duration_stats()
        took = ("duration p50 {} p99 {} max {}".format(*map(duration, timing)) if timing
                else "duration: no end seen")
        lines.append("")
        lines.append(f"#{number}  {stats.count} journeys ({stats.count / total:.1%})  "
                     f"ends: {ends}  {took}")
        if stats.places:
            lines.append(f"    crosses: {' > '.join(stats.places)}")
        lines.append(f"    path ({len(stats.functions)}): {' > '.join(stats.functions)}")
    return "\n".join(lines) + "\n"


def render_json(paths: list[PathStats]) -> str:
    total = sum(p.count for p in paths)
    return json.dumps({"journeys": total, "paths": [path_record(p, total) for p in paths]},
                      indent=1) + "\n"


class PathsOutput:
    """Collects samples into journeys; prints the paths at finish()."""

    def __init__(self, stream, as_json: bool = False, progress=None):
        self.stream = stream
        self.as_json = as_json
        self.progress = progress
        self.store = PacketStore(max_packets=2**62, split_on_free=True)

    def write(self, samples: list[Sample]) -> None:
        self.store.add(samples)
        if self.progress and samples:
            self.progress(f"\rGot {self.store.samples} traces")

    def finish(self) -> None:
        paths = group_paths(self.store.packets.values())
        self.stream.write(render_json(paths) if self.as_json else render_text(paths))
        self.stream.flush()
