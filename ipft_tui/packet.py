"""Captured packet bytes: decoding into header layers (like Wireshark's packet details),
a hex/ASCII dump, and what changed between two samples of one journey.

Pure: no bcc, no Textual. Headers are parsed with dpkt (small, fast, maintained); VXLAN and
GENEVE, which dpkt lacks, are dpkt.Packet definitions here. Decoding is done only for what
is displayed or compared, never per event.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

import dpkt

from .model import Capture

L2 = "l2"  # bytes start at the MAC header
L3 = "l3"  # bytes start at the network header (no MAC header set)
OFFSETS = (L2, L3)


class Field(NamedTuple):
    key: str  # stable name for comparing, e.g. "ttl"
    label: str  # as shown, e.g. "Time to Live"
    value: str


class Layer(NamedTuple):
    """One header. `name` is the protocol ("IPv4"); `key` tells apart repeats of a
    protocol, counted from the innermost ("IPv4" is the innermost, "IPv4 (outer 1)" the
    one around it), so that the original packet keeps its keys when a tunnel wraps it."""

    name: str
    key: str
    summary: str
    fields: tuple[Field, ...]


VXLAN_PORTS = frozenset({4789, 8472})  # IANA's and Linux's historical default
GENEVE_PORT = 6081
ETH_P_TEB = 0x6558  # transparent Ethernet bridging: GENEVE's inner Ethernet


class VXLAN(dpkt.Packet):
    """RFC 7348: flags (I bit = 0x08), 24 reserved bits, VNI, 8 reserved bits."""

    __hdr__ = (("flags", "B", 0x08), ("_rsv1", "3s", b"\0\0\0"), ("_vni", "3s", b"\0\0\0"),
               ("_rsv2", "B", 0))

    @property
    def vni(self) -> int:
        return int.from_bytes(self._vni, "big")

    def unpack(self, buf):
        dpkt.Packet.unpack(self, buf)
        self.data = _inner_ethernet(self.data)


class GENEVE(dpkt.Packet):
    """RFC 8926: version/option length, O/C flags, protocol, VNI, options."""

    __hdr__ = (("_ver_optlen", "B", 0), ("flags", "B", 0), ("proto", "H", ETH_P_TEB),
               ("_vni", "3s", b"\0\0\0"), ("_rsv", "B", 0))

    @property
    def vni(self) -> int:
        return int.from_bytes(self._vni, "big")

    @property
    def options_len(self) -> int:
        return (self._ver_optlen & 0x3F) * 4

    def unpack(self, buf):
        dpkt.Packet.unpack(self, buf)
        if len(self.data) < self.options_len:
            raise dpkt.NeedData("GENEVE options")
        self.options = self.data[:self.options_len]
        rest = self.data[self.options_len:]
        self.data = _inner_ethernet(rest) if self.proto == ETH_P_TEB else _inner_ip(rest)


def _inner_ethernet(buf: bytes):
    try:
        return dpkt.ethernet.Ethernet(buf)
    except (dpkt.UnpackError, struct.error):
        return buf


def _inner_ip(buf: bytes):
    try:
        version = buf[0] >> 4 if buf else 0
        if version == 6:
            return dpkt.ip6.IP6(buf)
        if version == 4:
            return dpkt.ip.IP(buf)
        return buf  # not IP (or the network header not set yet): shown as data
    except (dpkt.UnpackError, struct.error):
        return buf


def parse(capture: Capture):
    """The outermost dpkt object (or bytes when even it is cut short)."""
    if capture.offset == L2:
        return _inner_ethernet(capture.data)
    return _inner_ip(capture.data)


def decode(capture: Capture) -> list[Layer]:
    """The headers from the outside in; a last "Data" layer for what is left undecoded."""
    layers: list[tuple[str, str, tuple[Field, ...]]] = []
    obj = parse(capture)
    while True:
        if isinstance(obj, (bytes, bytearray)):
            if obj:
                layers.append(("Data", f"Data ({len(obj)} bytes)", (Field("len", "Length", str(len(obj))),)))
            break
        described = _describe(obj)
        if described is None:
            layers.append(("Data", f"Data ({len(bytes(obj))} bytes, undecoded {type(obj).__name__})",
                           (Field("len", "Length", str(len(bytes(obj)))),)))
            break
        name, summary, fields, inner = described
        layers.append((name, summary, fields))
        obj = inner
    captured = len(capture.data)
    if layers and capture.length > captured:
        name, summary, fields = layers[-1]
        layers[-1] = (name, summary + f" [capture ends here: {captured} of {capture.length} bytes]",
                      fields)
    # Keys counted from the innermost: the original packet keeps its keys under a tunnel.
    counts: dict[str, int] = {}
    out: list[Layer] = []
    for name, summary, fields in reversed(layers):
        n = counts.get(name, 0)
        counts[name] = n + 1
        out.append(Layer(name, name if n == 0 else f"{name} (outer {n})", summary, fields))
    out.reverse()
    return out


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ip4(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


def _ip6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


ETHERTYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q",
              0x88A8: "802.1ad", ETH_P_TEB: "Ethernet"}
IP_PROTOS = {1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE",
             50: "ESP", 51: "AH", 58: "ICMPv6", 132: "SCTP"}
TCP_FLAGS = ((dpkt.tcp.TH_SYN, "SYN"), (dpkt.tcp.TH_FIN, "FIN"), (dpkt.tcp.TH_RST, "RST"),
             (dpkt.tcp.TH_PUSH, "PSH"), (dpkt.tcp.TH_ACK, "ACK"), (dpkt.tcp.TH_URG, "URG"),
             (dpkt.tcp.TH_ECE, "ECE"), (dpkt.tcp.TH_CWR, "CWR"))  # in Wireshark's order
TCP_OPTIONS = {0: "EOL", 1: "NOP", 2: "MSS", 3: "WS", 4: "SACK_PERM", 5: "SACK", 8: "TS",
               30: "MPTCP", 34: "TFO"}
ICMP_TYPES = {0: "Echo (ping) reply", 3: "Destination unreachable", 5: "Redirect",
              8: "Echo (ping) request", 11: "Time exceeded", 12: "Parameter problem"}
ICMP6_TYPES = {1: "Destination unreachable", 2: "Packet too big", 3: "Time exceeded",
               4: "Parameter problem", 128: "Echo (ping) request", 129: "Echo (ping) reply",
               133: "Router solicitation", 134: "Router advertisement",
               135: "Neighbor solicitation", 136: "Neighbor advertisement"}
IP6_EXT_NAMES = {0: "Hop-by-hop options", 43: "Routing", 44: "Fragment", 51: "AH",
                 50: "ESP", 60: "Destination options", 135: "Mobility"}


def _proto_name(table: dict[int, str], value: int) -> str:
    name = table.get(value)
    return f"{name} ({value})" if name else str(value)


def tcp_flags_text(flags: int) -> str:
    return ",".join(name for bit, name in TCP_FLAGS if flags & bit) or "none"


def _tcp_options(raw: bytes) -> str:
    try:
        options = dpkt.tcp.parse_opts(raw)
    except (dpkt.UnpackError, struct.error, IndexError):
        return f"{len(raw)} bytes (malformed)"
    parts = []
    for kind, data in options:
        name = TCP_OPTIONS.get(kind, f"opt{kind}")
        if kind == 2 and len(data) == 2:
            parts.append(f"MSS={struct.unpack('>H', data)[0]}")
        elif kind == 3 and len(data) == 1:
            parts.append(f"WS={data[0]}")
        elif kind == 8 and len(data) == 8:
            tsval, tsecr = struct.unpack(">II", data)
            parts.append(f"TS val={tsval} ecr={tsecr}")
        else:
            parts.append(name)
    return " ".join(parts) or "none"


def _describe(obj):
    """(name, summary, fields, inner object) for one dpkt header, None if unknown."""
    F = Field
    if isinstance(obj, dpkt.ethernet.Ethernet):
        fields = [F("dst", "Destination", _mac(obj.dst)), F("src", "Source", _mac(obj.src))]
        tags = getattr(obj, "vlan_tags", None) or []
        for i, tag in enumerate(tags):
            suffix = "" if i == 0 else f" {i + 1}"
            fields += [F(f"vlan{suffix}.id", f"VLAN{suffix} ID", str(tag.id)),
                       F(f"vlan{suffix}.pcp", f"VLAN{suffix} priority", str(tag.pri))]
        fields.append(F("type", "Type", f"0x{obj.type:04x} ({ETHERTYPES.get(obj.type, '?')})"))
        vlan = "".join(f", VLAN {tag.id}" for tag in tags)
        return ("Ethernet", f"Ethernet II, Src: {_mac(obj.src)}, Dst: {_mac(obj.dst)}{vlan}",
                tuple(fields), obj.data)
    if isinstance(obj, dpkt.arp.ARP):
        op = {1: "request", 2: "reply"}.get(obj.op, str(obj.op))
        ipv4 = obj.pln == 4 and obj.pro == 0x0800
        spa = _ip4(obj.spa) if ipv4 else obj.spa.hex()
        tpa = _ip4(obj.tpa) if ipv4 else obj.tpa.hex()
        return ("ARP", f"Address Resolution Protocol ({op}), who has {tpa}? tell {spa}",
                (F("op", "Opcode", op), F("sha", "Sender MAC", _mac(obj.sha)),
                 F("spa", "Sender IP", spa), F("tha", "Target MAC", _mac(obj.tha)),
                 F("tpa", "Target IP", tpa)), b"")
    if isinstance(obj, dpkt.ip.IP):
        flags = ",".join(n for n, on in (("DF", obj.df), ("MF", obj.mf)) if on) or "none"
        fields = (F("src", "Source", _ip4(obj.src)), F("dst", "Destination", _ip4(obj.dst)),
                  F("ttl", "Time to Live", str(obj.ttl)),
                  F("proto", "Protocol", _proto_name(IP_PROTOS, obj.p)),
                  F("len", "Total Length", str(obj.len)), F("id", "Identification", f"0x{obj.id:04x}"),
                  F("flags", "Flags", flags), F("frag", "Fragment Offset", str(obj.offset)),
                  F("tos", "DSCP/ECN", f"0x{obj.tos:02x}"), F("hl", "Header Length", str(obj.hl * 4)),
                  F("csum", "Header Checksum", f"0x{obj.sum:04x}"))
        return ("IPv4", f"Internet Protocol Version 4, Src: {_ip4(obj.src)}, Dst: {_ip4(obj.dst)}",
                fields, obj.data)
    if isinstance(obj, dpkt.ip6.IP6):
        fields = [F("src", "Source", _ip6(obj.src)), F("dst", "Destination", _ip6(obj.dst)),
                  F("hlim", "Hop Limit", str(obj.hlim)),
                  F("nxt", "Next Header", _proto_name(IP_PROTOS | IP6_EXT_NAMES, obj.nxt)),
                  F("plen", "Payload Length", str(obj.plen)),
                  F("tc", "Traffic Class", f"0x{(obj.fc >> 20) & 0xFF:02x}"),
                  F("flow", "Flow Label", f"0x{obj.flow:05x}")]
        for i, ext in enumerate(getattr(obj, "all_extension_headers", None) or []):
            kind = type(ext).__name__.removeprefix("IP6").removesuffix("Header")
            fields.append(F(f"ext{i}", f"Extension header {i + 1}", f"{kind} ({ext.length} bytes)"))
        return ("IPv6", f"Internet Protocol Version 6, Src: {_ip6(obj.src)}, Dst: {_ip6(obj.dst)}",
                tuple(fields), obj.data)
    if isinstance(obj, dpkt.tcp.TCP):
        flags = tcp_flags_text(obj.flags)
        fields = (F("sport", "Source Port", str(obj.sport)), F("dport", "Destination Port", str(obj.dport)),
                  F("flags", "Flags", flags), F("seq", "Sequence Number", str(obj.seq)),
                  F("ack", "Acknowledgment Number", str(obj.ack)), F("win", "Window", str(obj.win)),
                  F("off", "Header Length", str(obj.off * 4)),
                  F("options", "Options", _tcp_options(obj.opts)),
                  F("csum", "Checksum", f"0x{obj.sum:04x}"), F("urp", "Urgent Pointer", str(obj.urp)))
        return ("TCP", f"Transmission Control Protocol, Src Port: {obj.sport}, Dst Port: {obj.dport}, "
                f"[{flags}] Seq: {obj.seq}, Ack: {obj.ack}, Win: {obj.win}", fields, obj.data)
    if isinstance(obj, dpkt.udp.UDP):
        fields = (F("sport", "Source Port", str(obj.sport)), F("dport", "Destination Port", str(obj.dport)),
                  F("len", "Length", str(obj.ulen)), F("csum", "Checksum", f"0x{obj.sum:04x}"))
        inner = obj.data
        if isinstance(inner, (bytes, bytearray)) and inner:
            try:
                if obj.dport in VXLAN_PORTS:
                    inner = VXLAN(inner)
                elif obj.dport == GENEVE_PORT:
                    inner = GENEVE(inner)
            except (dpkt.UnpackError, struct.error):
                pass
        return ("UDP", f"User Datagram Protocol, Src Port: {obj.sport}, Dst Port: {obj.dport}",
                fields, inner)
    if isinstance(obj, dpkt.icmp6.ICMP6):  # before ICMP: not a subclass, but keep the order clear
        name = ICMP6_TYPES.get(obj.type, str(obj.type))
        fields = [F("type", "Type", f"{obj.type} ({name})"), F("code", "Code", str(obj.code)),
                  F("csum", "Checksum", f"0x{obj.sum:04x}")]
        fields += _echo_fields(obj.data, obj.type in (128, 129))
        return ("ICMPv6", f"Internet Control Message Protocol v6, {name}", tuple(fields), b"")
    if isinstance(obj, dpkt.icmp.ICMP):
        name = ICMP_TYPES.get(obj.type, str(obj.type))
        fields = [F("type", "Type", f"{obj.type} ({name})"), F("code", "Code", str(obj.code)),
                  F("csum", "Checksum", f"0x{obj.sum:04x}")]
        fields += _echo_fields(obj.data, obj.type in (0, 8))
        return ("ICMP", f"Internet Control Message Protocol, {name}", tuple(fields), b"")
    if isinstance(obj, VXLAN):
        return ("VXLAN", f"Virtual eXtensible Local Area Network, VNI: {obj.vni}",
                (F("flags", "Flags", f"0x{obj.flags:02x}"), F("vni", "VNI", str(obj.vni))), obj.data)
    if isinstance(obj, GENEVE):
        return ("GENEVE", f"Generic Network Virtualization Encapsulation, VNI: {obj.vni}",
                (F("vni", "VNI", str(obj.vni)), F("proto", "Protocol", f"0x{obj.proto:04x}"),
                 F("options", "Options Length", str(obj.options_len))), obj.data)
    return None


def _echo_fields(body, is_echo: bool) -> list[Field]:
    raw = bytes(body)
    if not is_echo or len(raw) < 4:
        return []
    ident, seq = struct.unpack(">HH", raw[:4])
    return [Field("echo.id", "Identifier", str(ident)), Field("echo.seq", "Sequence Number", str(seq))]


# ---- hex/ASCII view -----------------------------------------------------------------

def hexdump(data: bytes, width: int = 16) -> list[str]:
    """Lines like Wireshark's bytes pane: offset, hex bytes (two groups of 8), ASCII."""
    lines = []
    half = width // 2
    for start in range(0, len(data), width):
        chunk = data[start:start + width]
        hexes = [f"{b:02x}" for b in chunk]
        left = " ".join(hexes[:half])
        right = " ".join(hexes[half:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{start:04x}  {left:<{half * 3 - 1}}  {right:<{half * 3 - 1}}  {text}")
    return lines


# ---- what changed -------------------------------------------------------------------

class Change(NamedTuple):
    layer: str  # Layer.key, or "" for the capture itself (length, link header)
    key: str  # Field.key, or "" when a whole layer came or went
    before: str
    after: str

    def text(self) -> str:
        where = f"{self.layer}.{self.key}" if self.layer and self.key else (self.layer or self.key)
        if not self.key and self.layer:
            return f"{self.layer} {'added' if self.after else 'removed'}"
        return f"{where}: {self.before} -> {self.after}"


# Fields that say nothing about the packet having changed when alone: the dump layer's length
# follows from the others, and a checksum changes with every other field.
_IGNORED_KEYS = frozenset({("Data", "len")})


def layer_map(layers: list[Layer]) -> dict[str, dict[str, str]]:
    return {layer.key: {f.key: f.value for f in layer.fields} for layer in layers}


def changes(before: Capture | None, after: Capture | None) -> list[Change]:
    """What differs in `after` from `before`: header fields (NAT, TTL, lengths, checksums),
    layers added/removed (encapsulation), the link header appearing or going, the length.
    Empty when either has no bytes, or when the bytes are equal."""
    if before is None or after is None:
        return []
    if before.data == after.data and before.offset == after.offset and before.length == after.length:
        return []
    out: list[Change] = []
    if before.length != after.length and before.offset == after.offset:  # else: the MAC header
        out.append(Change("", "length", str(before.length), str(after.length)))
    old, new = layer_map(decode(before)), layer_map(decode(after))
    # A layer came or went (encapsulation); the link header appearing is said once below.
    same_link = before.offset == after.offset
    for key in old:
        if key not in new and key != "Data" and (key != "Ethernet" or same_link):
            out.append(Change(key, "", key, ""))
    for key in new:
        if key not in old and key != "Data" and (key != "Ethernet" or same_link):
            out.append(Change(key, "", "", key))
    if before.offset != after.offset:
        # The MAC header was set (transmit: pushed; receive: it is where it was) or reset.
        out.append(Change("", "link header", before.offset, after.offset))
    for key in new:
        if key not in old:
            continue
        a, b = old[key], new[key]
        for name in b:
            if (key, name) not in _IGNORED_KEYS and name in a and a[name] != b[name]:
                out.append(Change(key, name, a[name], b[name]))
    return out


def changed_fields(before: Capture | None, after: Capture | None) -> set[tuple[str, str]]:
    """(layer key, field key) pairs to highlight in `after`'s decoded view."""
    return {(c.layer, c.key) for c in changes(before, after) if c.layer and c.key}
