"""Raw event records and their decoding into Samples.

The collector hands out RecordBatch objects: the ring buffer's records as bytes
(or tuples), decoded into Samples only by consumers that need them. Headless JSON
and aggregate read plain records as columns (plain_columns) and never build a
tuple or a Sample per record, which is what lets them keep up with millions of
events per second. The TUI's records (meta, skb following, packet bytes) become
Samples by columns too (decode_raw): no tuple per record, and meta and packet
bytes unpacked once per distinct value. decode() reads tuples (perf buffer, or
records some of which the kernel discarded) into the same Samples.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter

from ..model import Capture, Meta, Sample
from .event import IPFT_ETH_P_IP, IPFT_ETH_P_IPV6, META, RECORD_HEADER, EventLayout


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
    """Records of one drain of the kernel's buffer: as tuples, or as the ring
    buffer's bytes (`raw`, whole committed records, none discarded) that become
    tuples only when asked for (consumers that work on columns never ask)."""

    __slots__ = ("_records", "raw", "layout", "_samples")

    def __init__(self, records: list[tuple] | None, layout: RecordLayout, raw: bytes | None = None):
        self._records = records
        self.raw = raw if records is None else None
        self.layout = layout
        self._samples: list[Sample] | None = None

    @classmethod
    def from_raw(cls, raw: bytes, layout: RecordLayout) -> RecordBatch:
        return cls(None, layout, raw)

    @property
    def records(self) -> list[tuple]:
        if self._records is None:
            self._records = list(self.layout.event.record_struct.iter_unpack(self.raw))
        return self._records

    def __len__(self) -> int:
        if self._records is None:
            return len(self.raw) // self.layout.event.record_struct.size
        return len(self._records)

    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = (decode(self.records, self.layout) if self._records is not None
                             else decode_raw(self.raw, self.layout))
        return self._samples

    def column(self, name: str) -> list:
        """One field of every record."""
        if self._records is None:
            columns = per_layout(self.layout, RawColumns)
            if columns.usable:
                return columns.column(self.raw, name)
        at = self.layout.event.index[name]
        return [record[at] for record in self.records]


# -- plain records by columns ---------------------------------------------------------
# A plain record (the base fields only) is 8-byte words: the ring buffer's length
# word, packet_id, timestamp, probe_id with processor_id, is_return with drop_reason
# (BPF zeroes the padding between them). Outputs that need only these read a batch's
# bytes as columns, one strided slice per word, without a tuple per record.
def _plain_words() -> tuple[int, int, int, int, int]:
    event = EventLayout()
    at = {name: (struct.calcsize("<" + RECORD_HEADER) + offset) for name, offset in event.offsets().items()}
    if (any(at[name] % 8 for name in ("packet_id", "timestamp", "probe_id", "is_return"))
            or at["processor_id"] != at["probe_id"] + 4 or at["drop_reason"] != at["is_return"] + 4
            or event.record_struct.size % 8):
        raise ValueError("the plain event's fields moved: update plain_columns()")
    return (event.record_struct.size // 8, at["packet_id"] // 8, at["timestamp"] // 8,
            at["probe_id"] // 8, at["is_return"] // 8)


_STRIDE, _PID, _TS, _PROBE_CPU, _RETURN_REASON = _plain_words()


def plain_columns(raw: bytes) -> tuple[list[int], list[int], list[int], list[int]]:
    """Plain records' packet ids, timestamps, probe_id | processor_id << 32 words and
    is_return | drop_reason << 32 words (little endian, as BPF writes them)."""
    words = memoryview(raw).cast("Q")
    return (words[_PID::_STRIDE].tolist(), words[_TS::_STRIDE].tolist(),
            words[_PROBE_CPU::_STRIDE].tolist(), words[_RETURN_REASON::_STRIDE].tolist())


class WordPieces(dict):
    """Text pieces by a record word, made on first sight (a run has few distinct ones)."""

    def __init__(self, make: Callable[[int], str]):
        super().__init__()
        self.make = make

    def __missing__(self, word: int) -> str:
        piece = self[word] = self.make(word)
        return piece


_PER_LAYOUT: dict[tuple[int, type], tuple] = {}


def per_layout(layout: RecordLayout, make: type):
    """make(layout), made once per layout (a run has one) and kept while it lives."""
    key = (id(layout), make)
    found = _PER_LAYOUT.get(key)
    if found is None or found[0] is not layout:
        if len(_PER_LAYOUT) > 16:
            _PER_LAYOUT.clear()
        found = _PER_LAYOUT[key] = (layout, make(layout))
    return found[1]


BASE = ("packet_id", "timestamp", "processor_id", "probe_id", "is_return", "drop_reason")


def decode(records: list[tuple], layout: RecordLayout) -> list[Sample]:
    names, reason_name, event = layout.names, layout.reason_name, layout.event
    base = layout.fields(*BASE)
    new = tuple.__new__  # Samples built positionally: keywords cost more than the rest
    if layout.plain:
        return [new(Sample, (pid, ts, cpu, names[probe], ret != 0, None,
                             reason_name(reason) if reason else None,
                             None, None, 0, None, None, None))
                for pid, ts, cpu, probe, ret, reason in map(base, records)]
    index = event.index
    skb_at, end_at = index.get("skb"), index.get("journey_end")
    stack_at, data_at = index.get("stack_id"), index.get("data")
    # Meta and capture fields are consecutive in a record: a slice is the cache key.
    meta_at = _span(index, [f.name for f in META if not f.name.startswith("_")]) if event.meta else None
    capture_at = (_span(index, ["skb_len", "data_delta", "captured", "from_mac", "bytes"])
                  if event.capture_room else None)
    metas = _META_CACHE
    # Consecutive probes mostly see the same bytes: one Capture for equal records in a
    # batch (the store then shares it without comparing the bytes).
    captures: dict[tuple, Capture | None] = {}
    stack = layout.stack
    out = []
    append = out.append
    for record in records:
        pid, ts, cpu, probe, ret, reason = base(record)
        meta = None
        if meta_at:
            raw = record[meta_at[0]:meta_at[1]]
            meta = metas.get(raw)
            if meta is None:  # most samples repeat a flow/device already seen
                if len(metas) > 50_000:
                    metas.clear()
                meta = metas[raw] = _meta(raw)
        capture = None
        if capture_at:
            raw = record[capture_at[0]:capture_at[1]]
            capture = captures.get(raw, _UNSEEN)
            if capture is _UNSEEN:
                capture = captures[raw] = _capture(raw)
        skb = record[skb_at] if skb_at else 0
        stack_word = record[stack_at] if stack_at else 0
        append(new(Sample, (pid, ts, cpu, names[probe], ret != 0, None,
                            reason_name(reason) if reason else None, meta,
                            record[data_at] if data_at else None, skb,
                            stack(stack_word, names[probe]) if stack_word else None,
                            record[end_at] != 0 if skb else None, capture)))
    return out


_META_CACHE: dict[tuple, Meta] = {}
_UNSEEN = object()


def _span(index: dict[str, int], names: list[str]) -> tuple[int, int]:
    """Where these consecutive fields sit in a record tuple (a slice's bounds)."""
    at = [index[name] for name in names]
    if at != list(range(at[0], at[0] + len(at))):
        raise ValueError(f"fields not consecutive in the record: {names}")
    return at[0], at[-1] + 1


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


# -- any records by columns -----------------------------------------------------------
class RawColumns:
    """Where each field of a layout's records sits in the ring buffer's bytes: numbers
    are read a column at a time (a strided memoryview), meta and packet bytes as one
    slice per record, unpacked once per distinct value."""

    def __init__(self, layout: RecordLayout):
        event = layout.event
        self.stride = event.record_struct.size
        header = struct.calcsize("<" + RECORD_HEADER)
        self.at = {name: header + offset for name, offset in event.offsets().items()}
        self.format = {f.name: f.format for f in event.fields if not f.name.startswith("_")}
        numbers = [name for name, fmt in self.format.items() if not fmt.endswith("s")]
        # memoryview.cast reads native order and whole items: little endian, aligned.
        self.usable = sys.byteorder == "little" and all(
            self.at[name] % struct.calcsize(self.format[name]) == 0
            and self.stride % struct.calcsize(self.format[name]) == 0 for name in numbers)
        self.meta = self._part(event, META) if event.meta else None
        self.capture = (self._part(event, next(fields for define, fields in event._parts()
                                               if define == "IPFT_CAPTURE_BYTES"))
                        if event.capture_room else None)

    def _part(self, event: EventLayout, fields) -> tuple[int, int, struct.Struct]:
        """A struct's bytes in a record (trailing padding left out) and how to unpack them."""
        fields = list(fields)
        while fields[-1].name.startswith("_"):
            fields.pop()
        unpack = struct.Struct("<" + "".join(f.format for f in fields))
        start = self.at[fields[0].name]
        return start, start + unpack.size, unpack

    def column(self, raw: bytes, name: str) -> list:
        code = self.format[name]
        size = struct.calcsize(code)
        if code.endswith("s"):  # a byte array: a bytes value per record
            return self.slices(raw, self.at[name], self.at[name] + size)
        return memoryview(raw).cast(code)[self.at[name] // size::self.stride // size].tolist()

    def slices(self, raw: bytes, start: int, end: int) -> list[bytes]:
        length = end - start
        return [raw[at:at + length] for at in range(start, len(raw), self.stride)]


class _Parsed(dict):
    """Objects by the bytes they are read from, made on first sight."""

    def __init__(self, unpack: struct.Struct, make: Callable[[tuple], object]):
        super().__init__()
        self.unpack, self.make = unpack.unpack, make

    def __missing__(self, raw: bytes):
        value = self[raw] = self.make(self.unpack(raw))
        return value


_META_BY_BYTES: dict[int, _Parsed] = {}
_new_sample = partial(tuple.__new__, Sample)


def decode_raw(raw: bytes, layout: RecordLayout) -> list[Sample]:
    """decode() of the ring buffer's bytes, by columns (the same Samples)."""
    columns = per_layout(layout, RawColumns)
    if not columns.usable:
        return decode(list(layout.event.record_struct.iter_unpack(raw)), layout)
    event, column = layout.event, partial(columns.column, raw)
    count = len(raw) // columns.stride
    nothing = [None] * count  # a list, not repeat(): several columns may share it
    names, reason_name = layout.names, layout.reason_name
    functions = [names[probe] for probe in column("probe_id")]
    returns = [ret != 0 for ret in column("is_return")]
    reasons = [reason_name(reason) if reason else None for reason in column("drop_reason")]
    metas = captures = datas = stacks = ends = nothing
    skbs = [0] * count
    if event.meta:
        start, end, unpack = columns.meta
        cache = _META_BY_BYTES.get(unpack.size)
        if cache is None or len(cache) > 50_000:
            cache = _META_BY_BYTES[unpack.size] = _Parsed(unpack, _meta)
        metas = map(cache.__getitem__, columns.slices(raw, start, end))
    if event.capture_room:
        # Consecutive probes mostly see the same bytes: one Capture for equal ones in a
        # batch (the store then shares it without comparing the bytes).
        start, end, unpack = columns.capture
        captures = map(_Parsed(unpack, _capture).__getitem__, columns.slices(raw, start, end))
    if event.module:
        datas = column("data")
    if event.track_skb:
        skbs = column("skb")
        ends = [end != 0 if skb else None for skb, end in zip(skbs, column("journey_end"))]
    if event.stacks:
        stack = layout.stack
        stacks = [stack(word, function) if word else None
                  for word, function in zip(column("stack_id"), functions)]
    return list(map(_new_sample, zip(column("packet_id"), column("timestamp"), column("processor_id"),
                                     functions, returns, nothing, reasons, metas, datas, skbs,
                                     stacks, ends, captures)))
