"""Following a packet across mark changes and clones, and kernel stack traces, on real packets."""

import json
import os
import time

import pytest

from ipft_tui.netlab import PacketTap

MARK = 0x5151
CLOSED = 7777

pytestmark = pytest.mark.root


def journeys(stdout: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in stdout.splitlines():
        sample = json.loads(line)
        out.setdefault(sample["packet_id"], []).append(sample)
    return out


def run_json(trace_process, veth, *options: str, send) -> list[dict]:
    tp = trace_process("-m", hex(MARK), "-o", "json", "--output-tuple", *options)
    tp.wait_ready()
    send()
    time.sleep(0.3)
    assert tp.stop() == 0, tp.stderr
    return [json.loads(line) for line in tp.stdout.splitlines()]


def test_track_skb_follows_the_packet_after_its_mark_is_cleared(veth, trace_process,
                                                                nothing_left_behind):
    """The kernel clears the mark when the packet enters B's namespace: by mark alone
    the journey stops at the veth; followed, it goes on to the drop in B."""
    def send():
        veth.send_udp(CLOSED, mark=MARK)

    by_mark = run_json(trace_process, veth, send=send)
    # Sent from A: the namespace is A's (the inode `ip netns` holds it by).
    ns_a = os.stat(f"/run/netns/{veth.ns_a}").st_ino
    assert {s["netns"] for s in by_mark if s["function"] == "net_dev_start_xmit"} == {ns_a}
    assert not [s for s in by_mark if s["function"] == "kfree_skb"]
    assert "skb" not in by_mark[0]  # default JSON keeps ipftrace2's keys

    followed = run_json(trace_process, veth, "--track-skb", send=send)
    udp = [s for s in followed if s["dport"] == CLOSED]
    [packet_id] = {s["packet_id"] for s in udp}
    journey = [s for s in followed if s["packet_id"] == packet_id]
    where = {s["function"]: s["ifname"] for s in journey}
    assert where["net_dev_start_xmit"] == veth.dev_a
    assert where["kfree_skb"] == veth.dev_b
    dropped = [s for s in journey if s["function"] == "kfree_skb"][0]
    assert dropped["drop_reason"] == "NO_SOCKET"
    assert dropped["journey_end"] is True  # its data had no other user
    assert all(s["skb"] for s in journey)


def test_track_skb_takes_in_a_clone_made_for_a_packet_socket(veth, trace_process,
                                                             nothing_left_behind):
    """A packet socket in B (as tcpdump opens) and IP's receive path each get an skb
    of their own (one is a clone, sharing the data); both join the journey, and it
    ends with the last of them."""
    def send():
        with PacketTap(veth, CLOSED) as tap:
            veth.send_udp(CLOSED, mark=MARK)
            assert tap.wait()

    samples = run_json(trace_process, veth, "--track-skb", send=send)
    sent = [s for s in samples if s["function"] == "net_dev_start_xmit" and s["dport"] == CLOSED]
    [packet_id] = {s["packet_id"] for s in sent}
    journey = sorted((s for s in samples if s["packet_id"] == packet_id),
                     key=lambda s: s["timestamp"])
    functions = [s["function"] for s in journey]
    [read] = [s for s in journey if s["function"] == "skb_copy_datagram_iovec"]
    [dropped] = [s for s in journey if s["function"] == "kfree_skb"]
    assert dropped["drop_reason"] == "NO_SOCKET", functions
    assert read["skb"] != dropped["skb"]  # two skbs, one journey
    assert {read["skb"], dropped["skb"]} - {packet_id}  # at least one is not the first skb
    ends = [s for s in journey if s.get("journey_end")]
    assert ends == [journey[-1]]
    assert journey[-1]["function"] in ("consume_skb", "kfree_skb")


def test_stack_traces_for_selected_functions(veth, trace_process, nothing_left_behind):
    veth.mark_incoming(MARK, "-p", "udp")
    samples = run_json(trace_process, veth, "--stack-trace", "^kfree_skb$",
                       send=lambda: veth.send_udp(CLOSED, mark=MARK))
    with_stack = [s for s in samples if "stack" in s]
    assert with_stack and {s["function"] for s in with_stack} == {"kfree_skb"}
    frames = with_stack[0]["stack"]
    # Innermost first, starting in the kernel (not in the BPF program): the UDP
    # receive path that found no socket, called from IP's local delivery.
    assert not frames[0].startswith("bpf_")
    names = [f.split("+")[0] for f in frames]
    assert "__udp4_lib_rcv" in names
    assert names.index("__udp4_lib_rcv") < names.index("ip_local_deliver_finish")


def test_stack_traces_in_aggregate(veth, trace_process, nothing_left_behind):
    veth.mark_incoming(MARK, "-p", "udp")
    tp = trace_process("-m", hex(MARK), "-o", "aggregate", "--stack-trace", "kfree_skb")
    tp.wait_ready()
    veth.send_udp(CLOSED, mark=MARK)
    time.sleep(0.3)
    assert tp.stop() == 0
    lines = tp.stdout.splitlines()
    drop = next(i for i, line in enumerate(lines) if "kfree_skb ( drop_reason: NO_SOCKET )" in line)
    assert lines[drop + 1].strip().startswith("<- ")
    assert any("__udp4_lib_rcv+0x" in line for line in lines[drop + 1:drop + 20])


@pytest.mark.parametrize("regex, message, status", [
    ("no_such_function_at_all", "matches none of the", 1),  # known only from the kernel
    ("(", "invalid regex", 2),  # a usage error, found before anything is compiled
])
def test_bad_stack_trace_regex(regex, message, status, trace_process, nothing_left_behind):
    tp = trace_process("-m", "1", "-o", "json", "--stack-trace", regex)
    assert tp.proc.wait(60) == status
    assert message in tp.stderr
