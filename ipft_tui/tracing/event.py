"""What BPF and Python share, stated once: the event record and the named constants.

`c_header()` writes the C side (`#define`s and `struct ipft_event`, put in front
of bpf/ipft.bpf.c), `EventLayout` the Python side (the struct format the ring
buffer reader unpacks, and where each field lands in a record). The header also
asserts, at compile time, that clang lays the struct out at the offsets Python
reads: a table that drifts from C fails the compile, not the decoding.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from functools import cached_property

# -- constants, same names in C (#define) and Python ---------------------------------
IPFT_ETH_P_IP = 0x0800  # ETH_P_IP: skb->protocol, host order
IPFT_ETH_P_IPV6 = 0x86DD
IPFT_IPPROTO_ICMP = 1
IPFT_IPPROTO_TCP = 6
IPFT_IPPROTO_UDP = 17
IPFT_IPPROTO_SCTP = 132
IPFT_IPPROTO_ICMPV6 = 58
IPFT_HEADER_UNSET = 0xFFFF  # skb->network_header/transport_header not set yet

IPFT_MAX_PROBES = 16384  # probe ids: the probe_flags map
IPFT_MAX_CALLS = 8192  # open calls remembered for function_graph returns
IPFT_MAX_NESTING = 4  # nested calls of one probe per task
IPFT_MAX_STACKS = 2048  # distinct kernel stacks
IPFT_MAX_TRACKED = 65536  # followed skbs, data buffers, journeys
IPFT_RESCUE_PAGES = 256  # the second ring buffer, for samples the first refused (1 MiB)
IPFT_PAGE_SIZE = mmap.PAGESIZE  # ring buffer sizes are given in pages

IPFT_LOST_SLOT = 0  # the `lost` counters: samples that found no room anywhere
IPFT_RESCUED_SLOT = 1  # samples the main ring buffer refused and the rescue buffer took

IPFT_TRACK_CALL = 1 << 31  # in a probe word: a call entry whose return is traced too
# Loaded once per probe (no BPF cookie): the constant replaced by the probe word.
IPFT_PATCH_ME = 0x1FF7C0DE5EED0000
# probe_flags: what the loader says about each probe
IPFT_PROBE_FREES_SKB = 1  # the skb's life ends here, unless another user holds it
IPFT_PROBE_FREES_DATA = 2  # and its data buffer, unless a clone shares it
IPFT_PROBE_STACK = 4  # report the kernel stack
IPFT_PROBE_SILENT = 8  # attached only to see followed skbs freed: reports nothing
# Not from the loader: set by ipft_journey() for the event.
IPFT_FOLLOWED = 1 << 16  # the skb was looked up in the followed skbs
IPFT_JOURNEY_END = 1 << 17  # this free ended the journey

CONSTANTS = {name: value for name, value in globals().items() if name.startswith("IPFT_")}


# -- the event ---------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    name: str  # names starting with "_" are padding: not in the record tuple
    ctype: str  # u8 u16 u32 u64 s32 char
    count: int = 1  # > 1: an array, one bytes value in Python
    comment: str = ""

    @property
    def format(self) -> str:
        if self.name.startswith("_"):
            return f"{self.size}x"
        if self.count > 1:
            return f"{self.count}s"
        return {"u8": "B", "u16": "H", "s16": "h", "u32": "I", "u64": "Q", "s32": "i"}[self.ctype]

    @property
    def size(self) -> int:
        return {"u8": 1, "char": 1, "u16": 2, "s16": 2, "u32": 4, "s32": 4,
                "u64": 8}[self.ctype] * self.count

    def c(self) -> str:
        array = f"[{self.count}]" if self.count > 1 else ""
        comment = f"  /* {self.comment} */" if self.comment else ""
        return f"    {self.ctype} {self.name}{array};{comment}"


META = (  # struct ipft_meta: what the packet looked like at this probe
    Field("ifindex", "u32"),
    Field("netns", "u32", comment="inode of the device's network namespace"),
    Field("len", "u32", comment="skb->len"),
    Field("l3_proto", "u16", comment="ETH_P_*, host order"),
    Field("l4_proto", "u8", comment="IPPROTO_*"),
    Field("icmp_type", "u8"),
    Field("saddr", "u8", 16, "IPv4 in the first 4 bytes"),
    Field("daddr", "u8", 16),
    Field("sport", "u16", comment="host order"),
    Field("dport", "u16"),
    Field("ifname", "char", 16),
    Field("_pad", "u32"),
)



def capture_room(capture_bytes: int) -> int:
    """struct ipft_capture's byte array: the bytes asked for, rounded up to 8 (alignment)."""
    return (capture_bytes + 7) // 8 * 8


def capture_fields(room: int) -> tuple[Field, ...]:
    """struct ipft_capture: the packet's first bytes at this probe (IPFT_CAPTURE_BYTES)."""
    return (
        Field("skb_len", "u32", comment="skb->len: from skb->data to the end, linear and paged"),
        Field("data_delta", "s16", comment="skb->data minus where the copy starts"),
        Field("captured", "u16", comment="bytes that are the packet's (0: none could be read)"),
        Field("from_mac", "u8", comment="1: from the MAC header; 0: from the network header"),
        Field("_pad4", "u8", 7),
        Field("bytes", "u8", max(room, 8)),
    )


# struct ipft_event: (the define that compiles a part in, its fields), in order.
EVENT = (
    (None, (
        Field("packet_id", "u64", comment="skb address; with IPFT_TRACK_SKB its journey's first"),
        Field("timestamp", "u64", comment="bpf_ktime_get_ns()"),
        Field("probe_id", "u32", comment="index into the loader's probe table"),
        Field("processor_id", "u32"),
        Field("is_return", "u8"),
        Field("_pad", "u8", 3),
        Field("drop_reason", "u32", comment="enum skb_drop_reason where the probe has one, else 0"),
    )),
    ("IPFT_TRACK_SKB", (
        Field("skb", "u64", comment="the skb seen; 0: skb following is off"),
        Field("journey_end", "u32", comment="1: this free released the journey's data (its last skb)"),
        Field("_pad3", "u32"),
    )),
    ("IPFT_STACKS", (
        Field("stack_id", "s32", comment="0: none asked for; id in the stacks map + 1; or -errno"),
        Field("_pad2", "u32"),
    )),
    ("IPFT_WITH_META", META),  # as the member `struct ipft_meta meta`
    ("IPFT_CAPTURE_BYTES", capture_fields),  # `struct ipft_capture capture`, sized per build
    ("IPFT_MODULE", (Field("data", "u8", 64, comment="filled by the extension's module()"),)),
)
RECORD_HEADER = "I4x"  # the ring buffer's length word (and page offset) before each event


@dataclass(frozen=True)
class EventLayout:
    """The event of one program build (which optional parts it has)."""

    track_skb: bool = False
    stacks: bool = False
    meta: bool = False
    module: bool = False
    capture_room: int = 0  # packet bytes per event (capture_room()); 0: none

    def _parts(self):
        on = {None: True, "IPFT_TRACK_SKB": self.track_skb, "IPFT_STACKS": self.stacks,
              "IPFT_WITH_META": self.meta, "IPFT_CAPTURE_BYTES": self.capture_room > 0,
              "IPFT_MODULE": self.module}
        return [(define, fields(self.capture_room) if callable(fields) else fields)
                for define, fields in EVENT if on[define]]

    @cached_property
    def fields(self) -> tuple[Field, ...]:
        return tuple(f for _define, fields in self._parts() for f in fields)

    @cached_property
    def format(self) -> str:
        """struct format of the event (little endian, no alignment: padding is explicit)."""
        return "".join(f.format for f in self.fields)

    @cached_property
    def record_format(self) -> str:
        """A ring buffer record: the length word, then the event."""
        return "<" + RECORD_HEADER + self.format

    @cached_property
    def record_struct(self) -> struct.Struct:
        return struct.Struct(self.record_format)

    @cached_property
    def index(self) -> dict[str, int]:
        """Field name -> its position in a record tuple (the length word is 0)."""
        names = [f.name for f in self.fields if not f.name.startswith("_")]
        return {name: i for i, name in enumerate(names, 1)}

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.format)

    def offsets(self) -> dict[str, int]:
        """Field name -> byte offset in the event, as Python reads it."""
        out, at = {}, 0
        for f in self.fields:
            if not f.name.startswith("_"):
                out[f.name] = at
            at += struct.calcsize("<" + f.format)
        return out


def _struct(name: str, lines: list[str]) -> str:
    return f"struct {name} {{\n" + "\n".join(lines) + "\n};\n"


def _c_value(name: str, value: int) -> str:
    if value > 0xFFFFFFFF:
        return f"{value:#x}"  # no suffix: also written into inline assembly
    return f"{value:#x}u" if value > 0xFFFF or "ETH_P" in name or value == 0xFFFF else f"{value}u"


def c_header(layout: EventLayout) -> str:
    """The C side: constants, struct ipft_meta and struct ipft_event, and compile-time
    checks that, in this build (`layout`), each field sits where Python reads it."""
    out = ["/* Generated from ipft_tui/tracing/event.py. */"]
    out += [f"#define {name} {_c_value(name, value)}" for name, value in CONSTANTS.items()]
    out.append(_struct("ipft_meta", [f.c() for f in META]))
    capture = capture_fields(layout.capture_room)
    out.append(_struct("ipft_capture", [f.c() for f in capture]))
    lines = []
    for define, fields in EVENT:
        if fields is META:
            body = ["    struct ipft_meta meta;"]
        elif fields is capture_fields:
            body = ["    struct ipft_capture capture;"]
        else:
            body = [f.c() for f in fields]
        lines += ([f"#ifdef {define}", *body, "#endif"] if define else body)
    out.append(_struct("ipft_event", lines))
    meta_names = {f.name for f in META}
    capture_names = {f.name for f in capture}
    for name, offset in layout.offsets().items():
        member = (f"meta.{name}" if name in meta_names else
                  f"capture.{name}" if name in capture_names else name)
        out.append(f"_Static_assert(__builtin_offsetof(struct ipft_event, {member}) == {offset}, "
                   f"\"ipft_event.{member}: Python reads it at offset {offset}\");")
    out.append(f"_Static_assert(sizeof(struct ipft_event) == {layout.size}, "
               f"\"ipft_event: Python reads {layout.size} bytes\");")
    return "\n".join(out) + "\n"
