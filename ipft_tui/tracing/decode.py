"""Turn raw event records into Samples (the collector's hot path: keep it lean)."""

from __future__ import annotations

import socket

from ..model import Meta, Sample


def _address(l3_proto: int, raw: bytes) -> str:
    if l3_proto == 0x0800:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if l3_proto == 0x86DD:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


def make_decoder(names: list[str], reasons: dict[int, str], meta: bool, module: bool):
    """A function from records (tuples of the ring buffer's event format, with the
    ring buffer's length word first) to Samples."""

    def reason_name(value: int) -> str | None:
        return (reasons.get(value) or str(value)) if value else None

    if not meta and not module:
        def decode(records):
            return [Sample(pid, ts, cpu, names[probe], bool(ret), None,
                           reason_name(reason) if reason else None)
                    for _len, pid, ts, probe, cpu, ret, reason in records]
        return decode

    def decode(records):
        out = []
        for record in records:
            _len, pid, ts, probe, cpu, ret, reason = record[:7]
            rest = record[7:]
            meta_value = None
            if meta:
                (ifindex, netns, length, l3, l4, icmp, saddr, daddr, sport, dport,
                 ifname) = rest[:11]
                rest = rest[11:]
                meta_value = Meta(ifindex, ifname.split(b"\0", 1)[0].decode(errors="replace"),
                                  netns, length, l3, l4, _address(l3, saddr), _address(l3, daddr),
                                  sport, dport, icmp)
            data = rest[0] if module else None
            out.append(Sample(pid, ts, cpu, names[probe], bool(ret), None,
                              reason_name(reason) if reason else None, meta_value, data))
        return out

    return decode
