"""`--write-pcap FILE`: the samples that carry packet bytes, as a pcapng file for Wireshark.

One Section Header Block; an Interface Description Block per (device, namespace, link type)
as they are first seen; an Enhanced Packet Block per sample with its timestamp (ns) and a
comment naming the kernel function, packet id, CPU and drop reason. Written here from the
format's specification (pcapng, IETF draft-ietf-opsawg-pcapng): dpkt's writer cannot give a
packet's original length (skb->len) apart from the bytes captured, nor add interfaces once
packets were written.
"""

from __future__ import annotations

import os
import struct
import time

from ..safefile import create_private
from ..model import Sample, packet_id_text, place_text
from ..packet import L2

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6, told apart by the version nibble

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_EPB = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END = 0
_OPT_COMMENT = 1
_OPT_SHB_OS = 3
_OPT_SHB_USERAPPL = 4
_OPT_IF_NAME = 2
_OPT_IF_DESCRIPTION = 3
_OPT_IF_TSRESOL = 9


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("=HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("=II", block_type, length) + body + struct.pack("=I", length)


def monotonic_to_realtime_ns() -> int:
    """What to add to bpf_ktime_get_ns() (CLOCK_MONOTONIC) to get wall-clock time."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def sample_comment(sample: Sample) -> str:
    parts = [sample.function + (" (return)" if sample.is_return else ""),
             f"packet_id={packet_id_text(sample.packet_id)}", f"cpu={sample.processor_id}"]
    if sample.drop_reason is not None:
        parts.append(f"drop_reason={sample.drop_reason}")
    if sample.skb and sample.skb != sample.packet_id:
        parts.append(f"skb={packet_id_text(sample.skb)}")
    return " ".join(parts)


class PcapngWriter:
    """Streams samples with captured bytes to a pcapng file; others are skipped."""

    def __init__(self, stream, clock_offset_ns: int | None = None, application: str = "ipft-tui"):
        self.stream = stream
        self.clock_offset_ns = monotonic_to_realtime_ns() if clock_offset_ns is None else clock_offset_ns
        self._interfaces: dict[tuple[str, int, int], int] = {}
        self.packets = 0
        uname = os.uname()
        options = (_option(_OPT_SHB_OS, f"{uname.sysname} {uname.release}".encode())
                   + _option(_OPT_SHB_USERAPPL, application.encode()) + _option(_OPT_END, b""))
        self.stream.write(_block(_SHB, struct.pack("=IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + options))

    def _interface(self, sample: Sample, linktype: int) -> int:
        meta = sample.meta
        name = (place_text(meta) if meta is not None else "") or "unknown"
        key = (name, meta.netns if meta is not None else 0, linktype)
        found = self._interfaces.get(key)
        if found is None:
            found = self._interfaces[key] = len(self._interfaces)
            description = (f"{meta.ifname or 'if' + str(meta.ifindex)} in network namespace {meta.netns}"
                           if meta is not None else "device not known")
            options = (_option(_OPT_IF_NAME, name.encode())
                       + _option(_OPT_IF_DESCRIPTION, description.encode())
                       + _option(_OPT_IF_TSRESOL, b"\x09")  # timestamps in nanoseconds
                       + _option(_OPT_END, b""))
            self.stream.write(_block(_IDB, struct.pack("=HHI", linktype, 0, 0) + options))
        return found

    def write(self, samples: list[Sample]) -> None:
        out = []
        for sample in samples:
            capture = sample.capture
            if capture is None or not capture.data:
                continue
            linktype = LINKTYPE_ETHERNET if capture.offset == L2 else LINKTYPE_RAW
            interface = self._interface(sample, linktype)
            ts = sample.timestamp + self.clock_offset_ns
            data = capture.data
            body = (struct.pack("=IIIII", interface, ts >> 32 & 0xFFFFFFFF, ts & 0xFFFFFFFF, len(data),
                                max(capture.length, len(data)))
                    + data + b"\0" * (-len(data) % 4)
                    + _option(_OPT_COMMENT, sample_comment(sample).encode()) + _option(_OPT_END, b""))
            out.append(_block(_EPB, body))
        if out:
            self.stream.write(b"".join(out))
            self.packets += len(out)

    def flush(self) -> None:
        self.stream.flush()

    def finish(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


def write_journeys(path: str, journeys: list[list[Sample]], clock_offset_ns: int | None = None) -> int:
    """One file with the given journeys' samples in time order; returns the packets written."""
    samples = sorted((s for journey in journeys for s in journey), key=lambda s: s.timestamp)
    with create_private(path, "pcapng", binary=True) as stream:
        writer = PcapngWriter(stream, clock_offset_ns)
        writer.write(samples)
    return writer.packets
