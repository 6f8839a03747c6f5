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
    packets = list(store.packets.values())
    assert len(packets) == 9
    flows = [flow_text(p.meta).split()[0] for p in packets]
    assert flows == ["udp"] * 3 + ["icmp"] * 6
    for packet in packets:
        assert not packet.flow_changes
        assert sum(s.function == "net_dev_queue" for s in packet.samples) == 1
        assert not packet.freed  # its end was not seen: the TUI says "open"
