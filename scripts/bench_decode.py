"""Micro-benchmark of the live TUI's per-sample path: records into Samples + PacketStore.add().

No root: records are built with the shipped TUI's event layout (skb following, stacks,
meta, 128 captured bytes) as a veth flood makes them: UDP packets through ~7 probes,
two in flight at a time, the bytes unchanged between most probes. Prints the median
(and min-max) microseconds per sample over repeated runs, of: the collector's unpacking
into tuples, decode() of tuples, decode_raw() of the ring buffer's bytes (what the TUI
does when it exists), the store's add, and the TUI's whole path (its thread, plus the
collector's unpacking when it hands tuples; both hold the GIL).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import time

from ipft_tui.model import PacketStore
from ipft_tui.tracing import decode as decoding
from ipft_tui.tracing.decode import RecordLayout, decode
from ipft_tui.tracing.event import EventLayout, capture_room

PROBES = ["__dev_queue_xmit", "dev_hard_start_xmit", "veth_xmit", "__netif_receive_skb",
          "ip_rcv", "udp_rcv", "consume_skb"]


def make_records(packets: int = 4096, capture: int = 128) -> tuple[list[tuple], RecordLayout]:
    event = EventLayout(track_skb=True, stacks=True, meta=True, capture_room=capture_room(capture))
    packer = struct.Struct(event.record_format)
    saddr = socket.inet_aton("10.0.0.1") + bytes(12)
    daddr = socket.inet_aton("10.0.0.2") + bytes(12)
    raw = []
    ts = 10**12
    for n in range(0, packets, 2):
        for probe in range(len(PROBES)):
            for k in (n, n + 1):  # two packets in flight
                pid = 0xFFFF888000000000 + (k % 512) * 256
                rx = probe >= 3
                ifindex, ifname, netns = (5, b"veth1", 4026532000) if rx else (4, b"veth0", 4026531840)
                l2 = not rx or probe == 3
                payload = (bytes(14) if l2 else b"") + bytes(20) + struct.pack(">HHHH", 40000 + k % 7, 7777, 9, 0) \
                    + k.to_bytes(4, "big")
                data = payload[:capture].ljust(event.capture_room, b"\0")
                ts += 700
                fields = [packer.size - 8, pid, ts, probe, k % 2, 0, 0,  # base
                          pid, int(probe == len(PROBES) - 1),  # skb, journey_end
                          0,  # stack_id
                          ifindex, netns, 29, 0x0800, 17, 0, saddr, daddr, 40000 + k % 7, 7777,
                          ifname.ljust(16, b"\0"),
                          len(payload) - (14 if l2 else 0), -14 if l2 else 0, len(payload), int(l2),
                          data]
                raw.append(packer.pack(*fields))
    records = list(packer.iter_unpack(b"".join(raw)))
    return records, RecordLayout(PROBES, {}, event)


def timed(work, count: int) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--capture", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=2000, help="samples per store.add")
    args = parser.parse_args()
    records, layout = make_records(capture=args.capture)
    unpacker = layout.event.record_struct
    raw = b"".join(unpacker.pack(*r) for r in records)
    by_columns = getattr(decoding, "decode_raw", None)
    chunk = args.chunk * unpacker.size
    chunks = [raw[at:at + chunk] for at in range(0, len(raw), chunk)]
    samples = decode(records, layout)

    def store() -> None:
        packets = PacketStore(max_packets=10_000)
        for at in range(0, len(samples), args.chunk):
            packets.add(samples[at:at + args.chunk])

    def whole() -> None:  # as the TUI gets them: a batch at a time
        packets = PacketStore(max_packets=10_000)
        for part in chunks:
            packets.add(by_columns(part, layout) if by_columns
                        else decode(list(unpacker.iter_unpack(part)), layout))

    runs = {"unpack (collector)": lambda: list(unpacker.iter_unpack(raw)),
            "decode (tuples)": lambda: decode(records, layout),
            "store.add": store, "whole path": whole}
    if by_columns:
        runs["decode_raw (bytes)"] = lambda: by_columns(raw, layout)
    times = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved
        for name, work in runs.items():
            times[name].append(timed(work, len(records)))
    for name, values in times.items():
        print(f"{name:20s} {statistics.median(values):6.2f} us/sample "
              f"(min {min(values):.2f}, max {max(values):.2f}; {len(records)} samples x {args.repeats})")


if __name__ == "__main__":
    main()
