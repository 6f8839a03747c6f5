"""decode(): records of every layout into the same Samples a field-by-field reading gives."""

import socket
import struct

import pytest

from ipft_tui.model import Capture, Meta, Sample
from ipft_tui.tracing.decode import RecordBatch, RecordLayout, decode, decode_raw
from ipft_tui.tracing.event import IPFT_ETH_P_IP, IPFT_ETH_P_IPV6, EventLayout, capture_room

NAMES = ["ip_rcv", "kfree_skb", "consume_skb"]
ROOM = capture_room(20)


def _reference(record: tuple, layout: RecordLayout) -> Sample:
    """A record read by field names, one at a time (the slow, obvious way)."""
    f = {name: record[i] for name, i in layout.event.index.items()}
    meta = capture = None
    if "ifindex" in f:
        family = {IPFT_ETH_P_IP: (socket.AF_INET, 4), IPFT_ETH_P_IPV6: (socket.AF_INET6, 16)}.get(f["l3_proto"])
        address = (lambda raw: socket.inet_ntop(family[0], raw[:family[1]])) if family else (lambda raw: "")
        meta = Meta(ifindex=f["ifindex"], ifname=f["ifname"].rstrip(b"\0").decode(), netns=f["netns"],
                    length=f["len"], l3_proto=f["l3_proto"], l4_proto=f["l4_proto"],
                    saddr=address(f["saddr"]), daddr=address(f["daddr"]), sport=f["sport"],
                    dport=f["dport"], icmp_type=f["icmp_type"])
    if "captured" in f and f["captured"]:
        capture = Capture(f["bytes"][:f["captured"]], "l2" if f["from_mac"] else "l3",
                          max(f["skb_len"] + f["data_delta"], f["captured"]))
    skb = f.get("skb", 0)
    stack_word = f.get("stack_id", 0)
    return Sample(packet_id=f["packet_id"], timestamp=f["timestamp"], processor_id=f["processor_id"],
                  function=NAMES[f["probe_id"]], is_return=f["is_return"] != 0,
                  drop_reason=layout.reason_name(f["drop_reason"]), meta=meta, data=f.get("data"),
                  skb=skb, stack=layout.stack(stack_word) if stack_word else None,
                  journey_end=f["journey_end"] != 0 if skb else None, capture=capture)


def _records(event: EventLayout) -> list[tuple]:
    return list(struct.Struct(event.record_format).iter_unpack(_raw(event)))


def _raw(event: EventLayout) -> bytes:
    """Records as the ring buffer holds them."""
    packer = struct.Struct(event.record_format)
    v4 = socket.inet_aton("192.0.2.1") + bytes(12), socket.inet_aton("192.0.2.2") + bytes(12)
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1"), socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    frame = bytes(range(1, 21)).ljust(ROOM, b"\0")
    rows = [  # pid, probe, ret, reason, skb, end, stack, l3, addresses, captured, from_mac, bytes
        (0xA00, 0, 0, 0, 0xA00, 0, 0, IPFT_ETH_P_IP, v4, 20, 1, frame),
        (0xA00, 0, 1, 0, 0xA00, 0, 3, IPFT_ETH_P_IP, v4, 20, 1, frame),  # same bytes again
        (0xA00, 1, 0, 2, 0xB00, 1, -14, IPFT_ETH_P_IPV6, v6, 12, 1, frame),  # fewer of them
        (0xA00, 2, 0, 77, 0xB00, 0, 0, IPFT_ETH_P_IPV6, v6, 20, 0, frame),  # from l3
        (0xC00, 2, 0, 0, 0, 0, 0, 0x0806, v4, 0, 0, bytes(ROOM)),  # not IP, nothing read
    ]
    values = []
    for n, (pid, probe, ret, reason, skb, end, stack, l3, (sa, da), captured, mac, data) in enumerate(rows):
        fields = {"packet_id": pid, "timestamp": 1000 + n, "probe_id": probe, "processor_id": n,
                  "is_return": ret, "drop_reason": reason, "skb": skb, "journey_end": end,
                  "stack_id": stack, "ifindex": 3 + n % 2, "netns": 4026531840, "len": 60,
                  "l3_proto": l3, "l4_proto": 17, "icmp_type": 0, "saddr": sa, "daddr": da,
                  "sport": 5000, "dport": 7777, "ifname": b"veth%d" % (n % 2), "skb_len": 46,
                  "data_delta": -14 if mac else 0, "captured": captured, "from_mac": mac,
                  "bytes": data, "data": bytes([n]) * 64}
        record = [packer.size - 8] + [fields[name] for name in event.index]
        values.append(packer.pack(*record))
    return b"".join(values)


LAYOUTS = [EventLayout(), EventLayout(meta=True), EventLayout(track_skb=True, stacks=True),
           EventLayout(capture_room=ROOM), EventLayout(module=True),
           EventLayout(track_skb=True, stacks=True, meta=True, capture_room=ROOM, module=True)]


@pytest.mark.parametrize("event", LAYOUTS, ids=lambda e: repr(e)[len("EventLayout"):])
def test_decode_reads_every_field_as_the_field_by_field_reading(event):
    layout = RecordLayout(NAMES, {2: "NO_SOCKET"}, event, stack_frames={2: ("a", "b")})
    records = _records(event)
    samples = decode(records, layout)
    assert samples == [_reference(r, layout) for r in records]
    assert all(type(s) is Sample and len(s) == len(Sample._fields) for s in samples)
    if event.capture_room:
        # Equal bytes at consecutive probes: one Capture object, which the store shares.
        assert samples[0].capture is samples[1].capture
        assert samples[2].capture.data == bytes(range(1, 13)) and samples[4].capture is None

    # The ring buffer's bytes, decoded by columns: the same Samples, the same sharing.
    by_columns = decode_raw(_raw(event), layout)
    assert by_columns == samples
    assert all(type(s) is Sample for s in by_columns)
    if event.capture_room:
        assert by_columns[0].capture is by_columns[1].capture
    batch = RecordBatch.from_raw(_raw(event), layout)
    assert batch.samples() == samples and batch.records == records
    for name, at in event.index.items():
        assert RecordBatch.from_raw(_raw(event), layout).column(name) == [r[at] for r in records]
        assert RecordBatch(records, layout).column(name) == [r[at] for r in records]
