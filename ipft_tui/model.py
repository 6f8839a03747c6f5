"""The pure trace model: samples, and packets built from them. No bcc, no Textual."""

from __future__ import annotations

import re
from collections.abc import Iterable
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


def same_flow(a: Meta, b: Meta) -> bool:
    return (a.saddr, a.daddr, a.l4_proto, a.sport, a.dport) == \
        (b.saddr, b.daddr, b.l4_proto, b.sport, b.dport)


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
        # (entry point, ifindex, netns) -> bit: a packet keeps the entries it passed as a mask.
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
            found = self._entry_bits[place] = 1 << len(self._entry_bits)
        return found


_RETURN_BIT = 1 << 31
_NO_EXTRA = (None, None, 0, None, None)
SEGMENT_PACKETS = 4096  # packets whose samples share one set of columns


class Segment:
    """Columns holding the samples of up to SEGMENT_PACKETS consecutive packets.

    A sample is a timestamp, a word (function id | cpu << 16 | is_return << 31), its
    Meta (shared: decoding and replay loading hand out one object per flow/device) and
    the index of its packet's previous sample in the segment (-1: none): 24 bytes,
    where a Sample tuple and its values take several hundred. The rare parts
    (fields, drop reasons, clone skbs, stacks, packet bytes) sit in a dict aside.
    Packets are evicted oldest first, so a segment's memory goes with its last packet."""

    __slots__ = ("ts", "word", "meta", "prev", "extra", "interned", "packets")

    def __init__(self, interned: Interned):
        self.ts = array("q")
        self.word = array("I")
        self.meta: list[Meta | None] = []
        self.prev = array("i")
        self.extra: dict[int, tuple] = {}
        self.interned = interned
        self.packets = 0  # created in it so far


class Packet:
    """One journey: the samples of one skb between its allocation and its free.

    Its samples live in its segment's columns, chained in arrival order, and are
    rebuilt as `Sample`s when asked for: a live TUI may hold millions of them, a
    replay every sample of its file."""

    __slots__ = ("key", "packet_id", "_seg", "_tail", "_first", "_last", "_count",
                 "_functions", "_freed", "drop_reason", "drop_function", "meta",
                 "_entries", "_flows", "_path")

    def __init__(self, key: int, packet_id: int, segment: Segment):
        self.key = key  # unique within a PacketStore; packet ids are recycled
        self.packet_id = packet_id
        self._seg = segment
        self._tail = -1  # the latest added sample (index into the segment; -1: none yet)
        self._first = self._last = -1  # earliest and latest sample by timestamp
        self._count = 0
        self._functions = 0  # bit per function id
        self._freed = -1  # index of the sample that ended it (-1: open, its end not seen)
        self.drop_reason: str | None = None
        self.drop_function: str | None = None  # where it was dropped
        self.meta: Meta | None = None  # the first sample's that had headers: the flow
        self._entries = 0  # bits of the entry points passed, where (Interned.entry_bit)
        self._flows: list[Meta] | None = None  # each later flow (NAT, encapsulation), in order
        self._path: tuple | None = None  # (samples then, path(), metas()), see _summary

    @property
    def dropped(self) -> bool:
        return self.drop_reason is not None

    @property
    def freed(self) -> bool:
        """Its end was seen; else it is "open"."""
        return self._freed >= 0

    @property
    def freed_at(self) -> int:
        """Timestamp of the free that ended it (0 while open)."""
        return self._seg.ts[self._freed] if self._freed >= 0 else 0

    @property
    def flow_changes(self) -> list[Meta]:
        """Each later flow the packet had (NAT, encapsulation), in order: [] when none."""
        return list(self._flows) if self._flows else []

    def starts_new_journey(self, sample: Sample) -> bool:
        """Whether the sample, at this journey's address, is another packet's (the rules above)."""
        if sample.is_return:
            return False
        ts = sample.timestamp
        seg_ts = self._seg.ts
        if self._freed >= 0:
            return not (is_free_path(sample.function)
                        and ts - seg_ts[self._freed] <= FREE_PATH_WINDOW)
        if ts - seg_ts[self._last] > NEW_PACKET_GAP:
            return True
        meta = sample.meta
        if meta is None:
            return False
        if meta.saddr and self.meta is not None:
            flow = self._flows[-1] if self._flows else self.meta
            if (meta.saddr, meta.daddr) == (flow.daddr, flow.saddr) and flow.saddr != flow.daddr:
                return True
        if not self._entries or sample.function not in ENTRY_POINTS:
            return False
        bit = self._seg.interned._entry_bits.get((sample.function, meta.ifindex, meta.netns))
        return bit is not None and bool(self._entries & bit)

    def add(self, sample: Sample) -> None:
        (_pid, ts, cpu, function, is_return, fields, reason, meta, _data, skb, stack, ends,
         capture) = sample
        seg = self._seg
        interned = seg.interned
        name_id = interned._name_ids.get(function)
        if name_id is None:
            name_id = interned.name_id(function)
        kind = interned.kinds[name_id]
        seg_ts = seg.ts
        index = len(seg_ts)
        cpu &= 0x7FFF
        seg_ts.append(ts)
        seg.word.append(name_id | cpu << 16 | _RETURN_BIT if is_return else name_id | cpu << 16)
        seg.meta.append(meta)
        seg.prev.append(self._tail)
        if self._tail < 0:
            self._first = self._last = index
        else:
            if ts < seg_ts[self._first]:
                self._first = index
            if ts >= seg_ts[self._last]:
                self._last = index
        self._tail = index
        self._count += 1
        clone = skb != 0 and skb != _pid
        if (fields is not None or reason is not None or clone or stack is not None
                or capture is not None):
            extra = seg.extra
            if capture is not None:
                previous = extra.get(index - 1)
                if previous is not None and previous[4] == capture:
                    capture = previous[4]  # unchanged bytes: share one copy
            # Only a clone's skb is kept: for the others it is the packet id.
            extra[index] = (fields, reason, skb if clone else 0, stack, capture)
        self._functions |= 1 << name_id
        if ends is None:  # not following skbs: the packet's skb is the only one
            ends = kind & _FREE and not is_return
        if ends and self._freed < 0:
            self._freed = index
        if reason is not None:
            if reason not in NOT_DROPS:
                self.drop_reason = reason
                self.drop_function = function
        elif kind & _DROP and not is_return and self.drop_reason is None:
            # ipftrace2's JSON has no drop reason: kfree_skb frees a dropped packet.
            self.drop_reason = NO_REASON
            self.drop_function = function
        if meta is not None:
            if kind & _ENTRY and not is_return:
                self._entries |= interned.entry_bit((function, meta.ifindex, meta.netns))
            if meta.saddr:
                flows = self._flows
                flow = flows[-1] if flows else self.meta
                if flow is None:
                    self.meta = meta
                elif meta is not flow and not same_flow(meta, flow):
                    if flows is None:
                        flows = self._flows = []
                    flows.append(meta)

    @property
    def flows(self) -> list[Meta]:
        """The packet's flow, then each it changed to."""
        if self.meta is None:
            return []
        return [self.meta, *self._flows] if self._flows else [self.meta]

    def _indexes(self) -> list[int]:
        """Its samples' indexes into the segment, in arrival order."""
        out = []
        i, prev = self._tail, self._seg.prev
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
        interned = seg.interned
        return Sample(packet_id=self.packet_id, timestamp=seg.ts[i],
                      processor_id=(word >> 16) & 0x7FFF,
                      function=interned.names[word & 0xFFFF],
                      is_return=bool(word & _RETURN_BIT), fields=fields, drop_reason=reason,
                      meta=seg.meta[i], skb=skb, stack=stack,
                      capture=capture)

    @property
    def samples(self) -> list[Sample]:
        """The journey in timestamp order."""
        return [self._sample(i) for i in self._ordered()]

    def __len__(self) -> int:
        return self._count

    @property
    def first(self) -> Sample:
        return self._sample(self._first)

    @property
    def last(self) -> Sample:
        return self._sample(self._last)

    @property
    def first_timestamp(self) -> int:
        return self._seg.ts[self._first]

    @property
    def duration(self) -> int:
        ts = self._seg.ts
        return ts[self._last] - ts[self._first]

    @property
    def functions(self) -> set[str]:
        names, mask = self._seg.interned.names, self._functions
        return {names[i] for i in range(len(names)) if mask >> i & 1}

    def has_function(self, function: str) -> bool:
        found = self._seg.interned._name_ids.get(function)
        return found is not None and bool(self._functions >> found & 1)

    def metas(self) -> list[Meta]:
        """The distinct headers/devices seen along the journey, in order."""
        cached = self._path
        if cached is None or cached[0] != self._count:
            cached = self._summary()
        return cached[2]

    def function_bits(self) -> tuple[int, list[str]]:
        """A bit per function seen (by index into the returned name table)."""
        return self._functions, self._seg.interned.names

    def path(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The functions of the entries in time order with repeats collapsed, and the
        devices/namespaces crossed in order (see paths.py)."""
        cached = self._path  # checked here: the paths view asks every journey, often
        if cached is None or cached[0] != self._count:
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
                name = names[word & 0xFFFF]
                if not functions or functions[-1] != name:
                    functions.append(name)
            meta = meta_of[i]
            if meta is not None and meta not in seen_metas:
                seen_metas.add(meta)
                seen.append(meta)
                place = place_text(meta)
                if place and place not in places:
                    places.append(place)
        self._path = (self._count, (tuple(functions), tuple(places)), seen)
        return self._path

    @property
    def cpus(self) -> list[int]:
        word = self._seg.word
        return sorted({word[i] >> 16 & 0x7FFF for i in self._indexes()})


def durations(packets: Iterable[Packet]) -> list[int]:
    """Packet.duration of many packets at once (no property call each: the paths view)."""
    out = []
    for p in packets:
        ts = p._seg.ts
        out.append(ts[p._last] - ts[p._first])
    return out


class PacketStore:
    """Packets built live from batches of samples, oldest evicted past a cap.

    With split_on_free, a sample at an address whose journey ended by the rules
    above starts a new packet (skbs are recycled); without, grouping is by packet
    id alone, as in ipftrace2.
    """

    def __init__(self, max_packets: int | None = 10_000, split_on_free: bool = True):
        self.max_packets = max_packets
        self.split_on_free = split_on_free
        self.packets: dict[int, Packet] = {}  # key -> packet, oldest first
        self.interned = Interned()
        self._current: dict[int, Packet] = {}  # packet id -> its newest packet
        self._next_key = 0
        self._segment: Segment | None = None  # where new packets' samples go
        self.evicted = 0
        self.samples = 0
        self.origin: int | None = None  # first timestamp seen: times are shown relative to it

    def add(self, samples: list[Sample]) -> tuple[list[Packet], set[int]]:
        """Adds a batch; returns (new packets, keys of packets that changed)."""
        created: list[Packet] = []
        changed: set[int] = set()
        if not samples:
            return created, changed
        if self.origin is None:
            self.origin = min(samples, key=_timestamp).timestamp
        # Batches come in the kernel's commit order, which is time order up to small
        # jitter between CPUs; Packet.add puts late samples in place.
        current, packets, split = self._current, self.packets, self.split_on_free
        for sample in samples:
            packet = current.get(sample.packet_id)
            if packet is None or (split and packet.starts_new_journey(sample)):
                segment = self._segment
                if segment is None or segment.packets >= SEGMENT_PACKETS:
                    segment = self._segment = Segment(self.interned)
                segment.packets += 1
                packet = Packet(self._next_key, sample.packet_id, segment)
                self._next_key += 1
                packets[packet.key] = packet
                current[sample.packet_id] = packet
                created.append(packet)
            packet.add(sample)
            changed.add(packet.key)
        self.samples += len(samples)
        self._evict()
        return [p for p in created if p.key in self.packets], changed & self.packets.keys()

    def _evict(self) -> None:
        if self.max_packets is None:  # a replay keeps everything
            return
        excess = len(self.packets) - self.max_packets
        if excess <= 0:
            return
        for key in list(self.packets)[:excess]:
            packet = self.packets.pop(key)
            self.samples -= len(packet)
            if self._current.get(packet.packet_id) is packet:
                del self._current[packet.packet_id]
        self.evicted += excess

    def journeys(self) -> list[list[Sample]]:
        return [p.samples for p in self.packets.values()]

    def clear(self) -> None:
        self.packets.clear()
        self._current.clear()
        self._segment = None
        self.samples = 0
        self.origin = None
