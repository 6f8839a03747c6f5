"""Skb following joins only what belongs to a journey, on real packets.

A followed skb's data buffer stays remembered while a clone shares it. Here a packet
socket in B for every protocol (as tcpdump has) gets a clone of each marked datagram;
the datagram is dropped (port closed, its free seen), and the clone is freed after the
socket read it, by consume_skb, which the regex leaves out (attached silently while
skbs are followed; were its free unseen, BPF would still remember the buffer when the
kernel hands it to the next packets: a fresh skb on it is no clone, skb->cloned is
clear, and must not join the old journey either). Unmarked packets never show up as
marked ones; nor after free points the regex leaves out."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

MARK = 0x5A5A
MARKED, UNMARKED = 7777, 8888
# The drop of each datagram (kfree_skb) is seen; the clone's consume_skb is not.
REGEX = r"^(net_dev_queue|net_dev_start_xmit|netif_rx|netif_receive_skb|kfree_skb)$"

pytestmark = pytest.mark.root


def tap_until(veth, port: int) -> subprocess.Popen:
    """An ETH_P_ALL packet socket on B's device (clones are made for it before the IP
    layer sees the skb), reading until a UDP datagram to `port`."""
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        s.bind(("{veth.dev_b}", 0))
        s.settimeout(10)
        print("ready", flush=True)
        while True:
            frame = s.recv(4096)
            if frame[12:14] == b"\\x08\\x00" and frame[23] == 17 and int.from_bytes(frame[36:38], "big") == {port}:
                break
    """)
    proc = subprocess.Popen(["ip", "netns", "exec", veth.ns_b, sys.executable, "-c", code],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.timeout(180)
def test_a_fresh_skb_on_a_remembered_buffer_is_not_followed(veth, trace_process, nothing_left_behind):
    tp = trace_process("-b", "tracepoint", "-m", hex(MARK), "--track-skb", "-r", REGEX,
                       "-o", "json", "--output-tuple")
    tp.wait_ready()
    tap = tap_until(veth, UNMARKED)
    try:
        veth.send_udp(MARKED, count=30, mark=MARK)
        veth.send_udp(UNMARKED, count=30)
        assert tap.wait(15) == 0
    finally:
        if tap.poll() is None:
            tap.kill()
            tap.wait()
    time.sleep(0.3)
    assert tp.stop() == 0, tp.stderr
    samples = [json.loads(line) for line in tp.stdout.splitlines()]
    dropped = [s for s in samples if s.get("dport") == MARKED and s["function"] == "kfree_skb"]
    assert len(dropped) >= 25, samples[:5]  # followed into B
    unmarked = [(s["function"], s["skb"], s["packet_id"]) for s in samples if s.get("dport") == UNMARKED]
    assert unmarked == []


@pytest.mark.timeout(180)
def test_a_followed_skb_freed_where_the_regex_does_not_look_ends_its_journey(
        veth, trace_process, nothing_left_behind):
    """Neither free point selected: the frees are still seen (silently), so the next
    packets at the recycled skb addresses, unmarked, are not reported as followed."""
    tp = trace_process("-b", "tracepoint", "-m", hex(MARK), "--track-skb", "-r",
                       r"^(net_dev_queue|netif_receive_skb)$", "-o", "json", "--output-tuple")
    tp.wait_ready()
    veth.send_udp(MARKED, count=30, mark=MARK)
    veth.send_udp(UNMARKED, count=30)
    time.sleep(0.3)
    assert tp.stop() == 0, tp.stderr
    samples = [json.loads(line) for line in tp.stdout.splitlines()]
    marked = [s for s in samples if s.get("dport") == MARKED]
    assert {s["function"] for s in marked} == {"net_dev_queue", "netif_receive_skb"}
    assert len(marked) >= 50  # both, for (nearly) every datagram: nothing from the frees
    unmarked = [(s["function"], s["skb"], s["packet_id"]) for s in samples if s.get("dport") == UNMARKED]
    assert unmarked == []
