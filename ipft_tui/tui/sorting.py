"""Sort orders of the packet list, one per column: cheap keys read from the packet
(not its rendered cells), ties broken by arrival so the order is stable. Pure."""

from __future__ import annotations

from collections.abc import Callable

from ..model import Packet, flow_text

# column title -> key of a packet (ties: its key, the arrival order)
_KEYS: dict[str, Callable[[Packet], object]] = {
    "#": lambda p: 0,
    "first seen": lambda p: p.first.timestamp,
    "samples": len,
    "first": lambda p: p.first.function,
    "last / drop": lambda p: (p.drop_function or p.last.function, p.drop_reason or ""),
    "duration": lambda p: p.duration,
    "flow": lambda p: flow_text(p.meta),
    "CPUs": lambda p: p.cpus,
    "fields": lambda p: str(sorted((p.last.fields or {}).items())),
    "id": lambda p: p.packet_id,
}
SORTABLE = frozenset(_KEYS)


def sorted_keys(keys: list[int], packets: dict[int, Packet], title: str,
                reverse: bool) -> list[int]:
    """`keys` ordered by the column titled `title` ('#': arrival order)."""
    if title == "#":
        return sorted(keys, reverse=reverse)
    value = _KEYS[title]
    return sorted(keys, key=lambda k: (value(packets[k]), k), reverse=reverse)
