"""Raw event records and their decoding into Samples.

The collector hands out RecordBatch objects: the ring buffer's records as
tuples, decoded into Samples only by consumers that need them. Headless JSON
formats records directly, which is what lets it keep up with about a million
events per second.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field

from ..model import Capture, Meta, Sample


def _address(l3_proto: int, raw: bytes) -> str:
    if l3_proto == 0x0800:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if l3_proto == 0x86DD:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


@dataclass(frozen=True)
class RecordLayout:
    """How to read one program's records: probe names, drop reason names, optional parts.

    A record is (length word, packet_id, timestamp, probe_id, processor_id, is_return,
    drop_reason[, skb, journey end][, stack id][, meta fields ...][, skb len, data delta,
    bytes captured, from MAC header, bytes][, 64 data bytes])."""

    names: list[str]
    reasons: dict[int, str] = field(default_factory=dict)
    meta: bool = False
    module: bool = False
    track_skb: bool = False
    stacks: bool = False
    capture: bool = False  # packet bytes (IPFT_CAPTURE_BYTES)
    # Stack id -> symbolized frames, filled in by the collector before it hands a
    # batch out (the stack map lives in its thread).
    stack_frames: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def reason_name(self, value: int) -> str | None:
        return (self.reasons.get(value) or str(value)) if value else None

    @property
    def plain(self) -> bool:
        """Only the base fields: the fast paths apply."""
        return not (self.meta or self.module or self.track_skb or self.stacks or self.capture)

    @property
    def stack_index(self) -> int:
        return 7 + 2 * self.track_skb

    def stack(self, stack_word: int) -> tuple[str, ...] | None:
        """The frames of a record's stack word: 0 none asked for, id + 1, or -errno."""
        if stack_word > 0:
            return self.stack_frames.get(stack_word - 1, ("[stack not resolved]",))
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


_new = tuple.__new__  # builds a Sample without NamedTuple.__new__'s argument handling


def decode(records: list[tuple], layout: RecordLayout) -> list[Sample]:
    names, reason_name = layout.names, layout.reason_name
    if layout.plain:
        return [_new(Sample, (pid, ts, cpu, names[probe], ret != 0, None,
                              reason_name(reason) if reason else None, None, None, 0, None, None, None))
                for _len, pid, ts, probe, cpu, ret, reason in records]
    out = []
    metas = _META_CACHE
    track, stacks, stack_at = layout.track_skb, layout.stacks, layout.stack_index
    meta_at = stack_at + stacks
    capture_at = meta_at + 11 * layout.meta
    for record in records:
        _len, pid, ts, probe, cpu, ret, reason = record[:7]
        meta = None
        if layout.meta:
            raw = record[meta_at:meta_at + 11]
            meta = metas.get(raw)
            if meta is None:  # most samples repeat a flow/device already seen
                if len(metas) > 50_000:
                    metas.clear()
                meta = metas[raw] = _meta(raw)
        capture = _capture(record, capture_at) if layout.capture else None
        out.append(_new(Sample, (pid, ts, cpu, names[probe], ret != 0, None,
                                 reason_name(reason) if reason else None, meta,
                                 record[-1] if layout.module else None,
                                 record[7] if track else 0,
                                 layout.stack(record[stack_at]) if stacks else None,
                                 (record[8] != 0 if record[7] else None) if track else None, capture)))
    return out


def _capture(record: tuple, at: int) -> Capture | None:
    skb_len, data_delta, captured, from_mac, data = record[at:at + 5]
    if not captured:
        return None
    # The packet's length from the first copied byte: skb->len counts from skb->data.
    return Capture(data[:captured], "l2" if from_mac else "l3", max(skb_len + data_delta, captured))


_META_CACHE: dict[tuple, Meta] = {}


def _meta(raw: tuple) -> Meta:
    ifindex, netns, length, l3, l4, icmp, saddr, daddr, sport, dport, ifname = raw
    return Meta(ifindex, ifname.split(b"\0", 1)[0].decode(errors="replace"), netns, length, l3,
                l4, _address(l3, saddr), _address(l3, daddr), sport, dport, icmp)


def json_lines(batch: RecordBatch) -> str | None:
    """ipftrace2's JSON lines straight from records, without building Samples.

    None when the batch needs the full path (meta, extension data, ...); packet bytes
    alone are formatted here too."""
    layout = batch.layout
    if not layout.plain:
        if layout.capture and not (layout.meta or layout.module or layout.track_skb or layout.stacks):
            return _json_lines_with_packets(batch)
        return None
    quoted = [json.dumps(n) for n in layout.names]
    plain = '{"packet_id":"0x%x","timestamp":%d,"processor_id":%d,"function":%s,"is_return":%s}\n'
    lines = []
    for _len, pid, ts, probe, cpu, ret, reason in batch.records:
        if reason:
            lines.append('{"packet_id":"0x%x","timestamp":%d,"processor_id":%d,"function":%s,'
                         '"is_return":%s,"drop_reason":%s}\n'
                         % (pid, ts, cpu, quoted[probe], "true" if ret else "false",
                            json.dumps(layout.reason_name(reason))))
        else:
            lines.append(plain % (pid, ts, cpu, quoted[probe], "true" if ret else "false"))
    return "".join(lines)


def _json_lines_with_packets(batch: RecordBatch) -> str:
    """json_lines() for records of the base fields plus packet bytes (see _capture())."""
    layout = batch.layout
    quoted = [json.dumps(n) for n in layout.names]
    base = '{"packet_id":"0x%x","timestamp":%d,"processor_id":%d,"function":%s,"is_return":%s'
    packet = ',"packet":"%s","packet_offset":"%s","packet_len":%d}\n'
    # Most samples of a journey carry the bytes of the one before: hex them once.
    hexes: dict[tuple[bytes, int], str] = {}
    lines = []
    for _len, pid, ts, probe, cpu, ret, reason, skb_len, delta, captured, from_mac, data in batch.records:
        line = base % (pid, ts, cpu, quoted[probe], "true" if ret else "false")
        if reason:
            line += ',"drop_reason":' + json.dumps(layout.reason_name(reason))
        if captured:
            text = hexes.get((data, captured))
            if text is None:
                text = hexes[data, captured] = data[:captured].hex()
            line += packet % (text, "l2" if from_mac else "l3", max(skb_len + delta, captured))
        else:
            line += "}\n"
        lines.append(line)
    return "".join(lines)
