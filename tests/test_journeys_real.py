"""Journeys of real packets whose marks are cleared on the way (their frees unseen)."""

import time

import pytest

from ipft_tui.model import PacketStore, flow_text
from ipft_tui.outputs.jsonlines import parse_line

MARK = 0x5151
PORT = 7790

pytestmark = pytest.mark.root


def test_each_packet_is_its_own_journey_when_its_free_is_not_seen(veth, trace_process,
                                                                   nothing_left_behind):
    """Marked in A (ping -m, SO_MARK), the mark is cleared entering B: no free is seen and
    the kernel reuses the skb addresses. Every datagram and echo request is one journey
    with one flow, as the TUI (no skb following) and --split-on-free build them."""
    tp = trace_process("-m", hex(MARK), "-o", "json", "--output-tuple")
    tp.wait_ready()
    veth.send_udp(PORT, count=3, mark=MARK)
    veth.ping(count=6, mark=MARK)
    time.sleep(0.3)
    assert tp.stop() == 0
    samples = [parse_line(line) for line in tp.stdout.splitlines()]
    sent = [s for s in samples if s.function == "net_dev_queue"]
    assert len(sent) == 9
    assert len({s.packet_id for s in sent}) < 9  # addresses were recycled: the case tested
    store = PacketStore()
    store.add(samples)
    for packet in store.packets.values():
        assert not packet.flow_changes  # no journey mixes flows
    # (Others hold one consume_skb: e.g. the datagram that waited for ARP is freed as a
    # separate skb in the kernel used here.)
    packets = [p for p in store.packets.values() if p.has_function("net_dev_queue")]
    assert len(packets) == 9, [(hex(p.packet_id), flow_text(p.meta),
                                [(s.function, s.meta.ifname if s.meta else "") for s in p.samples])
                               for p in packets]
    flows = [flow_text(p.meta).split()[0] for p in packets]
    assert flows == ["udp"] * 3 + ["icmp"] * 6
    for packet in packets:
        assert sum(s.function == "net_dev_queue" for s in packet.samples) == 1
        assert not packet.freed  # its end was not seen: the TUI says "open"
