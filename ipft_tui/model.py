"""The pure trace model: samples, and packets built from them. No bcc, no Textual."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

FieldValue = str | int


class Sample(NamedTuple):
    """One probe hit for one marked skb."""

    packet_id: int  # skb address; recycled by the kernel, so not unique over time
    timestamp: int  # ns, bpf_ktime_get_ns()
    processor_id: int
    function: str
    is_return: bool = False
    fields: dict[str, FieldValue] | None = None  # from an extension script


def packet_id_text(packet_id: int) -> str:
    return f"0x{packet_id:x}"


def group_by_packet(samples: Iterable[Sample]) -> dict[int, list[Sample]]:
    """Samples per packet id, each list sorted by timestamp; packets in order of first sample."""
    packets: dict[int, list[Sample]] = {}
    for sample in samples:
        packets.setdefault(sample.packet_id, []).append(sample)
    for journey in packets.values():
        journey.sort(key=lambda s: s.timestamp)
    return dict(sorted(packets.items(), key=lambda kv: kv[1][0].timestamp))
