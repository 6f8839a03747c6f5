"""Raw event records and their decoding into Samples.

The collector hands out RecordBatch objects: the ring buffer's records as
tuples, decoded into Samples only by consumers that need them. Headless JSON
formats records directly (outputs/jsonlines.py), which is what lets it keep up
with about a million events per second.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter

from ..model import Capture, Meta, Sample
from .event import IPFT_ETH_P_IP, IPFT_ETH_P_IPV6, META, EventLayout


def _address(l3_proto: int, raw: bytes) -> str:
    if l3_proto == IPFT_ETH_P_IP:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if l3_proto == IPFT_ETH_P_IPV6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


@dataclass(frozen=True)
class RecordLayout:
    """How to read one program's records: probe names, drop reason names, and the
    event's layout (which fields a record has, and where: `event.index`)."""

    names: list[str]
    reasons: dict[int, str] = field(default_factory=dict)
    event: EventLayout = EventLayout()
    # Stack id -> symbolized frames, filled in by the collector before it hands a
    # batch out (the stack map lives in its thread).
    stack_frames: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # fentry/fexit stacks (the ftrace backend): from 7.x the unwinder starts at the traced
    # function's caller (the trampoline's return address into the function's entry is no
    # frame of it any more); before, the first frame was that address, `function+0x9`.
    # The traced function is put first where it is missing, as kprobes report it.
    traced_first: bool = False

    def reason_name(self, value: int) -> str | None:
        return (self.reasons.get(value) or str(value)) if value else None

    @property
    def plain(self) -> bool:
        """Only the base fields: the fast paths apply."""
        e = self.event
        return not (e.meta or e.module or e.track_skb or e.stacks or e.capture_room)

    def fields(self, *names: str) -> Callable[[tuple], tuple]:
        """A getter of these fields of a record (a tuple, in this order)."""
        index = self.event.index
        return itemgetter(*(index[name] for name in names))

    def stack(self, stack_word: int, function: str = "") -> tuple[str, ...] | None:
        """The frames of a record's stack word: 0 none asked for, id + 1, or -errno;
        `function` is the record's traced function."""
        if stack_word > 0:
            frames = self.stack_frames.get(stack_word - 1)
            if frames is None:
                return ("[stack not resolved]",)
            if self.traced_first and function and not (frames and frames[0].startswith(f"{function}+")):
                return (f"{function}+0x0", *frames)
            return frames
        if stack_word < 0:
            return (f"[no stack: error {-stack_word}]",)
        return None


class RecordBatch:
    """Records of one drain of the kernel's buffer."""

    __slots__ = ("records", "layout", "_samples")

    def __init__(self, records: list[tuple], layout: RecordLayout):
        self.records = records
        self.layout = layout
        self._samples: list[Sample] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = decode(self.records, self.layout)
        return self._samples


BASE = ("packet_id", "timestamp", "processor_id", "probe_id", "is_return", "drop_reason")


def decode(records: list[tuple], layout: RecordLayout) -> list[Sample]:
    names, reason_name, event = layout.names, layout.reason_name, layout.event
    base = layout.fields(*BASE)
    if layout.plain:
        return [Sample(packet_id=pid, timestamp=ts, processor_id=cpu, function=names[probe],
                       is_return=ret != 0, drop_reason=reason_name(reason) if reason else None)
                for pid, ts, cpu, probe, ret, reason in map(base, records)]
    index = event.index
    skb_at, end_at = index.get("skb"), index.get("journey_end")
    stack_at, data_at = index.get("stack_id"), index.get("data")
    meta_get = layout.fields(*(f.name for f in META if not f.name.startswith("_"))) if event.meta else None
    metas = _META_CACHE
    out = []
    capture_get = (layout.fields("skb_len", "data_delta", "captured", "from_mac", "bytes")
                   if event.capture_room else None)
    for record in records:
        pid, ts, cpu, probe, ret, reason = base(record)
        meta = None
        if meta_get:
            raw = meta_get(record)
            meta = metas.get(raw)
            if meta is None:  # most samples repeat a flow/device already seen
                if len(metas) > 50_000:
                    metas.clear()
                meta = metas[raw] = _meta(raw)
        skb = record[skb_at] if skb_at else 0
        out.append(Sample(packet_id=pid, timestamp=ts, processor_id=cpu, function=names[probe],
                          is_return=ret != 0, drop_reason=reason_name(reason) if reason else None,
                          meta=meta, data=record[data_at] if data_at else None, skb=skb,
                          stack=layout.stack(record[stack_at], names[probe]) if stack_at else None,
                          journey_end=record[end_at] != 0 if skb else None,
                          capture=_capture(capture_get(record)) if capture_get else None))
    return out


_META_CACHE: dict[tuple, Meta] = {}


def _meta(raw: tuple) -> Meta:
    ifindex, netns, length, l3, l4, icmp, saddr, daddr, sport, dport, ifname = raw
    return Meta(ifindex=ifindex, ifname=ifname.split(b"\0", 1)[0].decode(errors="replace"),
                netns=netns, length=length, l3_proto=l3, l4_proto=l4,
                saddr=_address(l3, saddr), daddr=_address(l3, daddr), sport=sport, dport=dport,
                icmp_type=icmp)


def _capture(raw: tuple) -> Capture | None:
    skb_len, data_delta, captured, from_mac, data = raw
    if not captured:
        return None
    # The packet's length from the first copied byte: skb->len counts from skb->data.
    return Capture(data[:captured], "l2" if from_mac else "l3", max(skb_len + data_delta, captured))
