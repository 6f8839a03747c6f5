"""The pure trace model: samples, and packets built from them. No bcc, no Textual."""

from __future__ import annotations

import re
from collections.abc import ItemsView, Iterable, Mapping, ValuesView
from array import array
from operator import attrgetter
from typing import NamedTuple

FieldValue = str | int


class Meta(NamedTuple):
    """Where the packet was and what it looked like at one probe."""

    ifindex: int
    ifname: str
    netns: int  # network namespace inode
    length: int
    l3_proto: int  # ETH_P_*
    l4_proto: int  # IPPROTO_*
    saddr: str  # '' when not IP
    daddr: str
    sport: int
    dport: int
    icmp_type: int


L4_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}


def flow_text(meta: Meta | None) -> str:
    """One-line flow summary, e.g. 'udp 192.0.2.1:5000 > 192.0.2.2:7777'."""
    if meta is None or not meta.saddr:
        return ""
    proto = L4_NAMES.get(meta.l4_proto, f"proto {meta.l4_proto}")
    if meta.l4_proto in (6, 17, 132):
        src = f"[{meta.saddr}]:{meta.sport}" if ":" in meta.saddr else f"{meta.saddr}:{meta.sport}"
        dst = f"[{meta.daddr}]:{meta.dport}" if ":" in meta.daddr else f"{meta.daddr}:{meta.dport}"
        return f"{proto} {src} > {dst}"
    if meta.l4_proto in (1, 58):
        return f"{proto} {meta.saddr} > {meta.daddr} type {meta.icmp_type}"
    return f"{proto} {meta.saddr} > {meta.daddr}"


FLOW_FIELDS = slice(5, 10)  # a Meta's l4_proto, saddr, daddr, sport, dport: its flow
assert Meta._fields[FLOW_FIELDS] == ("l4_proto", "saddr", "daddr", "sport", "dport")


def same_flow(a: Meta, b: Meta) -> bool:
    return a[FLOW_FIELDS] == b[FLOW_FIELDS]


class Capture(NamedTuple):
    """The first bytes of an skb's linear data at one sample (decoded in packet.py)."""

    data: bytes
    offset: str  # "l2": from the MAC header; "l3": from the network header (no MAC header)
    length: int  # the packet's length from its first copied byte (skb->len counts from skb->data)


class Sample(NamedTuple):
    """One probe hit for one marked skb."""

    packet_id: int  # skb address; recycled by the kernel, so not unique over time
    timestamp: int  # ns, bpf_ktime_get_ns()
    processor_id: int
    function: str
    is_return: bool = False
    fields: dict[str, FieldValue] | None = None  # from an extension
    drop_reason: str | None = None  # named from the kernel's enum skb_drop_reason
    meta: Meta | None = None
    data: bytes | None = None  # an extension's raw 64 bytes, until decoded into fields
    # With skb following: the skb the sample was taken on (packet_id is the journey's
    # first skb; another address is a clone), and whether this free ended the journey
    # (its data's last user). Without: 0 and None.
    skb: int = 0
    stack: tuple[str, ...] | None = None  # kernel stack, innermost frame first
    journey_end: bool | None = None
    capture: Capture | None = None  # packet bytes (--capture-bytes)


def is_clone(sample: Sample) -> bool:
    """Taken on another skb than its journey's first (skb following)."""
    return sample.skb != 0 and sample.skb != sample.packet_id


NOT_DROPS = frozenset({"NOT_DROPPED_YET", "CONSUMED"})
# kfree_skb frees a dropped packet (consume_skb one that was used): in a trace without
# drop reasons (ipftrace2's), it still says "dropped".
DROP_FUNCTIONS = frozenset({"kfree_skb"})
NO_REASON = "(no reason recorded)"


def is_drop(sample: Sample) -> bool:
    """The skb was freed as a drop (kfree_skb with a real drop reason)."""
    return sample.drop_reason is not None and sample.drop_reason not in NOT_DROPS


def packet_id_text(packet_id: int) -> str:
    return f"0x{packet_id:x}"


_timestamp = attrgetter("timestamp")


def place_text(meta: Meta) -> str:
    """A device in its namespace, e.g. 'veth0@4026532281'; '' when unknown."""
    device = meta.ifname or (f"if{meta.ifindex}" if meta.ifindex else "")
    if not device:
        return ""
    return f"{device}@{meta.netns}" if meta.netns else device


def group_by_packet(samples: Iterable[Sample]) -> dict[int, list[Sample]]:
    """Samples per packet id, each list sorted by timestamp; packets in order of first sample."""
    packets: dict[int, list[Sample]] = {}
    for sample in samples:
        packets.setdefault(sample.packet_id, []).append(sample)
    for journey in packets.values():
        journey.sort(key=lambda s: s.timestamp)
    return dict(sorted(packets.items(), key=lambda kv: kv[1][0].timestamp))


# Where an skb's life ends: the next sample at the same address is another packet.
FREE_FUNCTIONS = frozenset({
    "kfree_skb", "consume_skb", "kfree_skb_reason", "sk_skb_reason_drop", "__kfree_skb",
    "kfree_skbmem", "napi_consume_skb", "__consume_stateless_skb", "kfree_skb_list_reason",
})

# The journey-ending rules (README "Journeys"): the kernel recycles skb addresses,
# and the end of a packet is not always seen (its mark may be cleared on the way, or
# its free not traced). A sample at a journey's address starts a new journey when
#  1. the journey was freed, unless the sample is part of that free: the functions a
#     free calls (skb_release_data, skb_free_head, kfree_skbmem, ...) within
#     FREE_PATH_WINDOW of it;
#  2. it comes more than NEW_PACKET_GAP after the journey's last sample;
#  3. it is an entry point (transmit or receive) the journey already passed on the
#     same device in the same namespace: one packet enters each of those once;
#  4. it goes the other way (source and destination swapped): a reply (an ICMP error,
#     a TCP reset) is another packet, even when it reuses a freed buffer whose free
#     was not seen.
# A return sample always belongs to its call's journey.
FREE_PATH_WINDOW = 10_000_000  # ns
NEW_PACKET_GAP = 5_000_000_000  # ns
_FREE_PATH = re.compile(r"free|release|consume|destruct|skb_cache_put")
ENTRY_POINTS = frozenset({
    # transmit
    "net_dev_queue", "__dev_queue_xmit", "dev_queue_xmit",
    # receive
    "netif_receive_skb", "netif_rx", "napi_gro_receive_entry", "napi_gro_frags_entry",
    "netif_receive_skb_entry", "netif_receive_skb_list_entry", "netif_rx_entry",
    "__netif_receive_skb", "__netif_rx", "netif_rx_internal", "napi_gro_receive",
    "gro_receive_skb", "enqueue_to_backlog",
})
_free_path_cache: dict[str, bool] = {}


def is_free_path(function: str) -> bool:
    """A function a free runs (or the free itself)."""
    found = _free_path_cache.get(function)
    if found is None:
        found = _free_path_cache[function] = (function in FREE_FUNCTIONS
                                              or _FREE_PATH.search(function) is not None)
    return found


_ENTRY, _FREE, _DROP = 1, 2, 4  # what a function is (Interned.kinds)


class Interned:
    """Function names and entry places shared by all packets of a store: samples keep
    small indexes."""

    def __init__(self):
        self.names: list[str] = []
        self.kinds: list[int] = []  # per name: _ENTRY | _FREE | _DROP
        self._name_ids: dict[str, int] = {}
        # (entry point, ifindex, netns) -> bit number: a packet keeps the entries it passed
        # as bits of a mask.
        self._entry_bits: dict[tuple[str, int, int], int] = {}

    def name_id(self, name: str) -> int:
        found = self._name_ids.get(name)
        if found is None:
            found = self._name_ids[name] = len(self.names)
            self.names.append(name)
            self.kinds.append((_ENTRY if name in ENTRY_POINTS else 0)
                              | (_FREE if name in FREE_FUNCTIONS else 0)
                              | (_DROP if name in DROP_FUNCTIONS else 0))
        return found

    def entry_bit(self, place: tuple[str, int, int]) -> int:
        found = self._entry_bits.get(place)
        if found is None:
            found = self._entry_bits[place] = len(self._entry_bits)
        return found


# A sample's word: function id (bits 0-30) | is_return (31) | cpu (32-63): any u32 cpu
# a replay line may hold.
_NAME_MASK = 0x7FFFFFFF
_RETURN_BIT = 1 << 31
_CPU_SHIFT = 32
_CPU_MASK = 0xFFFFFFFF
_NO_EXTRA = (None, None, 0, None, None)
_NO_DROP = (None, None)
_WORD = 64  # bits of a packet's function/entry masks kept in columns; more go to a dict
SEGMENT_PACKETS = 4096  # packets whose samples share one set of columns


class Segment:
    """Columns holding SEGMENT_PACKETS consecutive packets and their samples.

    A sample is a timestamp, a word (function id | is_return << 31 | cpu << 32), its
    Meta (shared: decoding and replay loading hand out one object per flow/device) and
    the index of its packet's previous sample in the segment (-1: none): 28 bytes.
    A packet (a slot: its key less `base`) is a row of about 50 bytes: address, latest
    / earliest / last sample, count, the sample that freed it, masks of its functions
    and entry points, its flow; the rare parts (drops, flow changes, extension fields,
    stacks, packet bytes, bits past 64) sit in dicts aside. Packets are evicted oldest
    first, so a segment's memory goes with its last packet."""

    __slots__ = ("base", "interned", "ts", "word", "meta", "prev", "extra", "pid", "tail",
                 "first", "last", "count", "freed", "functions", "entries", "flow", "wide",
                 "drops", "flows", "paths", "__weakref__")

    def __init__(self, base: int, interned: Interned):
        self.base = base  # key of its first packet
        self.interned = interned
        # per sample
        self.ts = array("Q")
        self.word = array("Q")
        self.meta: list[Meta | None] = []
        self.prev = array("i")
        self.extra: dict[int, tuple] = {}  # sample -> (fields, drop reason, clone skb, stack, capture)
        # per packet
        self.pid = array("Q")
        self.tail = array("i")
        self.first = array("i")
        self.last = array("i")
        self.count = array("I")
        self.freed = array("i")  # the sample that ended it; -1: open (its end not seen)
        self.functions = array("Q")  # bit per function id below 64
        self.entries = array("Q")  # bit per entry place below 64 (Interned.entry_bit)
        self.flow: list[Meta | None] = []  # the first sample's that had headers
        self.wide: dict[tuple[int, int], int] = {}  # (slot, 0 functions / 1 entries) -> bits >= 64
        self.drops: dict[int, tuple[str, str]] = {}  # slot -> (drop reason, function)
        self.flows: dict[int, list[Meta]] = {}  # slot -> each later flow (NAT, encapsulation)
        self.paths: dict[int, tuple] = {}  # slot -> (samples then, path(), metas()), see _summary

    def new_packet(self, packet_id: int) -> int:
        slot = len(self.pid)
        self.pid.append(packet_id)
        self.tail.append(-1)
        self.first.append(-1)
        self.last.append(-1)
        self.count.append(0)
        self.freed.append(-1)
        self.functions.append(0)
        self.entries.append(0)
        self.flow.append(None)
        return slot

    def mask(self, slot: int, which: int) -> int:
        """All the function (0) or entry (1) bits of a packet."""
        low = (self.functions if which == 0 else self.entries)[slot]
        return low | self.wide.get((slot, which), 0) if self.wide else low

    def add_bit(self, slot: int, which: int, bit: int) -> None:
        if bit < _WORD:
            column = self.functions if which == 0 else self.entries
            column[slot] |= 1 << bit
        else:
            self.wide[(slot, which)] = self.wide.get((slot, which), 0) | 1 << bit


class Packet:
    """One journey: the samples of one skb between its allocation and its free.

    A view of a packet's row in its segment (see Segment): the store hands out a new
    one on each access, equal to the others of the same packet. Samples are rebuilt
    as `Sample`s when asked for: a live TUI may hold millions of them, a replay every
    sample of its file."""

    __slots__ = ("key", "_seg", "_slot")

    def __init__(self, segment: Segment, slot: int):
        self._seg = segment
        self._slot = slot
        self.key = segment.base + slot  # unique within a PacketStore; packet ids are recycled

    def __eq__(self, other) -> bool:
        return isinstance(other, Packet) and other._seg is self._seg and other._slot == self._slot

    def __hash__(self) -> int:
        return hash((id(self._seg), self._slot))

    def __repr__(self) -> str:
        return f"Packet(key={self.key}, packet_id={packet_id_text(self.packet_id)}, samples={len(self)})"

    @property
    def packet_id(self) -> int:
        return self._seg.pid[self._slot]

    @property
    def dropped(self) -> bool:
        return self._slot in self._seg.drops

    @property
    def drop_reason(self) -> str | None:
        return self._seg.drops.get(self._slot, _NO_DROP)[0]

    @property
    def drop_function(self) -> str | None:
        """Where it was dropped."""
        return self._seg.drops.get(self._slot, _NO_DROP)[1]

    @property
    def meta(self) -> Meta | None:
        """The first sample's that had headers: the flow."""
        return self._seg.flow[self._slot]

    @property
    def freed(self) -> bool:
        """Its end was seen; else it is "open"."""
        return self._seg.freed[self._slot] >= 0

    @property
    def freed_at(self) -> int:
        """Timestamp of the free that ended it (0 while open)."""
        freed = self._seg.freed[self._slot]
        return self._seg.ts[freed] if freed >= 0 else 0

    @property
    def flow_changes(self) -> list[Meta]:
        """Each later flow the packet had (NAT, encapsulation), in order: [] when none."""
        return list(self._seg.flows.get(self._slot, ()))

    @property
    def _functions(self) -> int:
        """A bit per function id seen."""
        return self._seg.mask(self._slot, 0)

    @property
    def _path(self) -> tuple | None:
        return self._seg.paths.get(self._slot)

    @_path.setter
    def _path(self, value: tuple | None) -> None:  # None: forget the cached path
        if value is None:
            self._seg.paths.pop(self._slot, None)
        else:
            self._seg.paths[self._slot] = value

    def starts_new_journey(self, sample: Sample) -> bool:
        """Whether the sample, at this journey's address, is another packet's (the rules above)."""
        return _starts_new_journey(self._seg, self._slot, sample)

    def add(self, sample: Sample) -> None:
        _add(self._seg, self._slot, sample)

    @property
    def flows(self) -> list[Meta]:
        """The packet's flow, then each it changed to."""
        meta = self.meta
        if meta is None:
            return []
        changes = self._seg.flows.get(self._slot)
        return [meta, *changes] if changes else [meta]

    def _indexes(self) -> list[int]:
        """Its samples' indexes into the segment, in arrival order."""
        out = []
        i, prev = self._seg.tail[self._slot], self._seg.prev
        while i >= 0:
            out.append(i)
            i = prev[i]
        out.reverse()
        return out

    def _ordered(self) -> list[int]:
        """Its samples' indexes in timestamp order (arrival order, unless some came late)."""
        indexes = self._indexes()
        ts = self._seg.ts
        previous = -1 << 63
        for i in indexes:
            if ts[i] < previous:
                return sorted(indexes, key=ts.__getitem__)
            previous = ts[i]
        return indexes

    def _sample(self, i: int) -> Sample:
        seg = self._seg
        word = seg.word[i]
        extra = seg.extra
        fields, reason, skb, stack, capture = extra.get(i, _NO_EXTRA) if extra else _NO_EXTRA
        return Sample(packet_id=seg.pid[self._slot], timestamp=seg.ts[i],
                      processor_id=(word >> _CPU_SHIFT) & _CPU_MASK,
                      function=seg.interned.names[word & _NAME_MASK],
                      is_return=bool(word & _RETURN_BIT), fields=fields, drop_reason=reason,
                      meta=seg.meta[i], skb=skb, stack=stack, capture=capture)

    @property
    def samples(self) -> list[Sample]:
        """The journey in timestamp order."""
        return [self._sample(i) for i in self._ordered()]

    def __len__(self) -> int:
        return self._seg.count[self._slot]

    @property
    def first(self) -> Sample:
        return self._sample(self._seg.first[self._slot])

    @property
    def last(self) -> Sample:
        return self._sample(self._seg.last[self._slot])

    @property
    def first_timestamp(self) -> int:
        return self._seg.ts[self._seg.first[self._slot]]

    @property
    def duration(self) -> int:
        seg, slot = self._seg, self._slot
        return seg.ts[seg.last[slot]] - seg.ts[seg.first[slot]]

    @property
    def functions(self) -> set[str]:
        names, mask = self._seg.interned.names, self._functions
        return {names[i] for i in range(len(names)) if mask >> i & 1}

    def has_function(self, function: str) -> bool:
        found = self._seg.interned._name_ids.get(function)
        return found is not None and bool(self._functions >> found & 1)

    def metas(self) -> list[Meta]:
        """The distinct headers/devices seen along the journey, in order."""
        cached = self._seg.paths.get(self._slot)
        if cached is None or cached[0] != len(self):
            cached = self._summary()
        return cached[2]

    def function_bits(self) -> tuple[int, list[str]]:
        """A bit per function seen (by index into the returned name table)."""
        return self._functions, self._seg.interned.names

    def path(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The functions of the entries in time order with repeats collapsed, and the
        devices/namespaces crossed in order (see paths.py)."""
        cached = self._seg.paths.get(self._slot)  # the paths view asks every journey, often
        if cached is None or cached[0] != len(self):
            cached = self._summary()
        return cached[1]

    def _summary(self) -> tuple:
        """(sample count, path(), metas()), cached until the next sample."""
        word_of, meta_of = self._seg.word, self._seg.meta
        names = self._seg.interned.names
        functions: list[str] = []
        places: list[str] = []
        seen: list[Meta] = []
        seen_metas: set[Meta] = set()
        for i in self._ordered():
            word = word_of[i]
            if not word & _RETURN_BIT:
                name = names[word & _NAME_MASK]
                if not functions or functions[-1] != name:
                    functions.append(name)
            meta = meta_of[i]
            if meta is not None and meta not in seen_metas:
                seen_metas.add(meta)
                seen.append(meta)
                place = place_text(meta)
                if place and place not in places:
                    places.append(place)
        summary = (len(self), (tuple(functions), tuple(places)), seen)
        self._seg.paths[self._slot] = summary
        return summary

    @property
    def cpus(self) -> list[int]:
        word = self._seg.word
        return sorted({word[i] >> _CPU_SHIFT & _CPU_MASK for i in self._indexes()})


def _starts_new_journey(seg: Segment, slot: int, sample: Sample) -> bool:
    if sample.is_return:
        return False
    ts = sample.timestamp
    freed = seg.freed[slot]
    if freed >= 0:
        return not (is_free_path(sample.function) and ts - seg.ts[freed] <= FREE_PATH_WINDOW)
    if ts - seg.ts[seg.last[slot]] > NEW_PACKET_GAP:
        return True
    meta = sample.meta
    if meta is None:
        return False
    flow = seg.flow[slot]
    if meta.saddr and flow is not None:
        changes = seg.flows.get(slot) if seg.flows else None
        if changes:
            flow = changes[-1]
        if meta.saddr == flow.daddr and meta.daddr == flow.saddr and flow.saddr != flow.daddr:
            return True
    if sample.function not in ENTRY_POINTS:
        return False
    bit = seg.interned._entry_bits.get((sample.function, meta.ifindex, meta.netns))
    if bit is None:
        return False
    return bool((seg.entries[slot] if bit < _WORD else seg.mask(slot, 1)) >> bit & 1)


def _add(seg: Segment, slot: int, sample: Sample) -> None:
    """A sample into its packet's row and the segment's sample columns."""
    (pid, ts, cpu, function, is_return, fields, reason, meta, _data, skb, stack, ends,
     capture) = sample
    interned = seg.interned
    name_id = interned._name_ids.get(function)
    if name_id is None:
        name_id = interned.name_id(function)
    kind = interned.kinds[name_id]
    seg_ts = seg.ts
    index = len(seg_ts)
    seg_ts.append(ts)
    seg.word.append(name_id | cpu << _CPU_SHIFT | _RETURN_BIT if is_return else name_id | cpu << _CPU_SHIFT)
    seg.meta.append(meta)
    tail = seg.tail[slot]
    seg.prev.append(tail)
    if tail < 0:
        seg.first[slot] = seg.last[slot] = index
    elif ts >= seg_ts[seg.last[slot]]:  # the usual order; then not before the first either
        seg.last[slot] = index
    elif ts < seg_ts[seg.first[slot]]:
        seg.first[slot] = index
    seg.tail[slot] = index
    seg.count[slot] += 1
    clone = skb != 0 and skb != pid
    if (capture is not None or fields is not None or reason is not None or clone
            or stack is not None):
        extra = seg.extra
        if capture is not None and tail >= 0:
            previous = extra.get(tail)  # the journey's previous sample
            if previous is not None and previous[4] is not capture and previous[4] == capture:
                capture = previous[4]  # unchanged bytes: share one copy
        # Only a clone's skb is kept: for the others it is the packet id.
        extra[index] = (fields, reason, skb if clone else 0, stack, capture)
    if name_id < _WORD:
        seg.functions[slot] |= 1 << name_id
    else:
        seg.add_bit(slot, 0, name_id)
    if ends is None:  # not following skbs: the packet's skb is the only one
        ends = kind & _FREE and not is_return
    if ends and seg.freed[slot] < 0:
        seg.freed[slot] = index
    if reason is not None:
        if reason not in NOT_DROPS:
            seg.drops[slot] = (reason, function)
    elif kind & _DROP and not is_return and slot not in seg.drops:
        # ipftrace2's JSON has no drop reason: kfree_skb frees a dropped packet.
        seg.drops[slot] = (NO_REASON, function)
    if meta is not None:
        if kind & _ENTRY and not is_return:
            place = (function, meta.ifindex, meta.netns)
            bit = interned._entry_bits.get(place)
            if bit is None:
                bit = interned.entry_bit(place)
            if bit < _WORD:
                seg.entries[slot] |= 1 << bit
            else:
                seg.add_bit(slot, 1, bit)
        if meta.saddr:
            flow = seg.flow[slot]
            if flow is None:
                seg.flow[slot] = meta
            else:
                changes = seg.flows.get(slot) if seg.flows else None
                if changes:
                    flow = changes[-1]
                if meta is not flow and meta[FLOW_FIELDS] != flow[FLOW_FIELDS]:
                    seg.flows.setdefault(slot, []).append(meta)


def durations(packets: Iterable[Packet]) -> list[int]:
    """Packet.duration of many packets at once (the paths view)."""
    return [p.duration for p in packets]


class Packets(Mapping):
    """A store's packets by key, oldest first: views made on access (keys are consecutive)."""

    def __init__(self, store: PacketStore):
        self._store = store

    def __len__(self) -> int:
        return self._store._next_key - self._store._oldest

    def __iter__(self):
        return iter(range(self._store._oldest, self._store._next_key))

    def __reversed__(self):
        return reversed(range(self._store._oldest, self._store._next_key))

    def __contains__(self, key) -> bool:
        return type(key) is int and self._store._oldest <= key < self._store._next_key

    def __getitem__(self, key: int) -> Packet:
        store = self._store
        if type(key) is not int or not store._oldest <= key < store._next_key:
            raise KeyError(key)
        segments = store._segments
        segment = segments[(key - segments[0].base) // SEGMENT_PACKETS]
        return Packet(segment, key - segment.base)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def values(self):
        return _PacketValues(self)

    def items(self):
        return _PacketItems(self)


class _PacketValues(ValuesView):
    def __iter__(self):
        store = self._mapping._store
        oldest = store._oldest
        for segment in list(store._segments):
            start = max(oldest - segment.base, 0)
            for slot in range(start, len(segment.pid)):
                yield Packet(segment, slot)


class _PacketItems(ItemsView):
    def __iter__(self):
        for packet in _PacketValues(self._mapping):
            yield packet.key, packet


class PacketStore:
    """Packets built live from batches of samples, oldest evicted past a cap.

    With split_on_free, a sample at an address whose journey ended by the rules
    above starts a new packet (skbs are recycled); without, grouping is by packet
    id alone, as in ipftrace2.
    """

    def __init__(self, max_packets: int | None = 10_000, split_on_free: bool = True):
        self.max_packets = max_packets
        self.split_on_free = split_on_free
        self.interned = Interned()
        self._segments: list[Segment] = []  # consecutive, each SEGMENT_PACKETS but the newest
        self._oldest = 0  # key of the oldest packet kept
        self._next_key = 0
        self._current: dict[int, int] = {}  # packet id -> key of its newest packet
        self.packets = Packets(self)  # key -> packet, oldest first
        self.evicted = 0
        self.samples = 0
        self.origin: int | None = None  # first timestamp seen: times are shown relative to it

    def add(self, samples: list[Sample]) -> tuple[list[Packet], set[int]]:
        """Adds a batch; returns (new packets, keys of packets that changed)."""
        created: list[tuple[Segment, int]] = []
        changed: set[int] = set()
        if not samples:
            return [], changed
        if self.origin is None:
            self.origin = min(samples, key=_timestamp).timestamp
        # Batches come in the kernel's commit order, which is time order up to small
        # jitter between CPUs; _add puts late samples in place.
        current, split, segments = self._current, self.split_on_free, self._segments
        oldest = self._oldest
        last_pid = last = None  # consecutive samples of one packet: one lookup
        for sample in samples:
            pid = sample[0]
            if pid == last_pid:
                segment, slot, key = last
            else:
                key = current.get(pid)
                if key is None or key < oldest:
                    segment = None
                else:
                    segment = segments[(key - segments[0].base) // SEGMENT_PACKETS]
                    slot = key - segment.base
            if segment is None or (split and _starts_new_journey(segment, slot, sample)):
                key = self._next_key
                self._next_key += 1
                segment = segments[-1] if segments else None
                if segment is None or len(segment.pid) >= SEGMENT_PACKETS:
                    segment = Segment(key, self.interned)
                    segments.append(segment)
                slot = segment.new_packet(pid)
                current[pid] = key
                created.append((segment, slot))
            _add(segment, slot, sample)
            changed.add(key)
            last_pid, last = pid, (segment, slot, key)
        self.samples += len(samples)
        self._evict()
        oldest = self._oldest
        return ([Packet(s, slot) for s, slot in created if s.base + slot >= oldest],
                {k for k in changed if k >= oldest})

    def _evict(self) -> None:
        if self.max_packets is None:  # a replay keeps everything
            return
        excess = len(self.packets) - self.max_packets
        if excess <= 0:
            return
        current, packets = self._current, self.packets
        for key in range(self._oldest, self._oldest + excess):
            packet = packets[key]
            self.samples -= len(packet)
            if current.get(packet.packet_id) == key:
                del current[packet.packet_id]
        self._oldest += excess
        segments = self._segments
        while segments and segments[0].base + SEGMENT_PACKETS <= self._oldest:
            del segments[0]
        self.evicted += excess

    def journeys(self) -> list[list[Sample]]:
        return [p.samples for p in self.packets.values()]

    def clear(self) -> None:
        self._segments.clear()
        self._current.clear()
        self._oldest = self._next_key
        self.samples = 0
        self.origin = None
