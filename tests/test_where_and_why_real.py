"""Drop reasons, flows, devices and namespaces, on real packets."""

import json
import os
import time

import pytest

MARK = 0x5150
FIREWALLED = 7779
CLOSED = 7777

pytestmark = pytest.mark.root


def netns_inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def sport_of(veth, port, mark):
    """Send one datagram from a fixed source port, so the flow is known exactly."""
    code = ("import socket, struct\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack('I', {mark}))\n"
            "s.bind(('0.0.0.0', 40123))\n"
            f"s.sendto(b'x' * 100, ('{veth.b_addr}', {port}))\n")
    veth.exec(veth.ns_a, "python3", "-c", code)
    return 40123


def test_drop_reasons_flows_devices_and_namespaces(veth, trace_process, nothing_left_behind):
    veth.mark_incoming(MARK, "-p", "udp")
    veth.drop_incoming("-p", "udp", "--dport", str(FIREWALLED))
    tp = trace_process("-m", hex(MARK), "-o", "json", "--output-tuple")
    tp.wait_ready()
    sport = sport_of(veth, FIREWALLED, MARK)
    veth.send_udp(CLOSED, mark=MARK)
    time.sleep(0.3)
    assert tp.stop() == 0
    samples = [json.loads(line) for line in tp.stdout.splitlines()]
    drops = {s["dport"]: s["drop_reason"] for s in samples if s["function"] == "kfree_skb"}
    assert drops == {FIREWALLED: "NETFILTER_DROP", CLOSED: "NO_SOCKET"}

    flow = [s for s in samples if s["dport"] == FIREWALLED]
    assert {(s["saddr"], s["daddr"], s["sport"], s["dport"], s["l4_proto"]) for s in flow} == {
        (veth.a_addr, veth.b_addr, sport, FIREWALLED, 17)}
    sent = [s for s in flow if s["function"] == "net_dev_start_xmit"][0]
    assert (sent["ifname"], sent["netns"]) == (veth.dev_a, netns_inode(veth.ns_a))
    assert sent["len"] == 100 + 8 + 20 + 14  # payload + UDP + IPv4 + Ethernet
    dropped = [s for s in flow if s["function"] == "kfree_skb"][0]
    assert (dropped["ifname"], dropped["netns"]) == (veth.dev_b, netns_inode(veth.ns_b))


def test_aggregate_drops_only_and_split_on_free(veth, trace_process, nothing_left_behind):
    veth.mark_incoming(MARK, "-p", "udp")
    veth.mark_incoming(MARK, "-p", "icmp")
    veth.drop_incoming("-p", "udp", "--dport", str(FIREWALLED))
    tp = trace_process("-m", hex(MARK), "-o", "aggregate", "--drops-only", "--split-on-free")
    tp.wait_ready()
    veth.ping(count=3, mark=MARK)  # consumed, not dropped
    veth.send_udp(FIREWALLED, count=2, mark=MARK)
    time.sleep(0.3)
    assert tp.stop() == 0
    journeys = tp.stdout.split("===\n")[1:]
    assert len(journeys) == 2
    for journey in journeys:
        lines = journey.strip().split("\n")
        assert lines[-1].endswith("kfree_skb ( drop_reason: NETFILTER_DROP )")
        assert "consume_skb" not in journey
        assert sum("kfree_skb" in line for line in lines) == 1  # split: one packet per journey
