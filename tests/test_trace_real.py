"""Real kernel, real packets: ipft-tui headless on marked traffic across a veth pair."""

import json
import re
import sys
import time

import pytest

from ipft_tui.outputs.aggregate import HEADER

MARK = 0x1234A
UDP_PORT = 7777  # nothing listens there: B answers ICMP port unreachable and drops it

pytestmark = pytest.mark.root


def monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # what bpf_ktime_get_ns() counts


def journeys_from_json(text: str) -> dict[str, list[dict]]:
    packets: dict[str, list[dict]] = {}
    for line in text.splitlines():
        obj = json.loads(line)
        keys = ["packet_id", "timestamp", "processor_id", "function", "is_return"]
        # ipftrace2's keys, in its order; only samples of kfree_skb add the drop reason.
        assert list(obj) == keys + (["drop_reason"] if obj["function"] == "kfree_skb" else [])
        assert re.fullmatch(r"0x[0-9a-f]+", obj["packet_id"])
        packets.setdefault(obj["packet_id"], []).append(obj)
    return packets


def in_order(functions: list[str], *expected: str) -> bool:
    """`expected` appears in `functions` as a subsequence."""
    it = iter(functions)
    return all(name in it for name in expected)


def local_udp(veth, port: int, mark: int, count: int = 1, pause: float = 0.01) -> None:
    """`count` marked 1-byte datagrams over A's own address, `pause` s apart (0: as fast
    as one process can): they stay in one namespace, so the mark survives receive."""
    code = ("import socket, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, {mark})\n"
            f"for _ in range({count}):\n"
            f"    s.sendto(b'x', ('{veth.a_addr}', {port}))\n"
            + (f"    time.sleep({pause})\n" if pause else ""))
    veth.exec(veth.ns_a, sys.executable, "-c", code)


def test_json_journeys_of_marked_traffic(veth, trace_process, nothing_left_behind):
    # The kernel clears the mark when a packet crosses into B; B marks it again.
    veth.mark_incoming(MARK, "-p", "udp", "--dport", str(UDP_PORT))
    veth.mark_incoming(MARK, "-p", "icmp")
    tp = trace_process("-m", hex(MARK), "-o", "json")
    tp.wait_ready()
    veth.ping(count=3, mark=MARK)  # SO_MARK in A
    veth.send_udp(UDP_PORT, count=3, mark=MARK)
    local_udp(veth, UDP_PORT, MARK, count=3)

    def all_seen(lines):  # the three kinds of journey have ended
        every = [json.loads(line)["function"] for line in lines]
        return (every.count("net_dev_start_xmit") >= 9 and every.count("kfree_skb") >= 6
                and every.count("consume_skb") >= 3)
    assert tp.wait_stdout(all_seen), tp.stdout[-3000:]
    assert tp.stop() == 0
    assert "Trace ready!" in tp.stderr
    packets = journeys_from_json(tp.stdout)
    names = {pid: [s["function"] for s in sorted(j, key=lambda s: s["timestamp"])]
             for pid, j in packets.items()}
    every = [f for n in names.values() for f in n]
    # Skbs are recycled, so a packet id can hold several journeys: count samples.
    assert every.count("net_dev_start_xmit") >= 9
    assert every.count("kfree_skb") >= 6  # 3 over veth + 3 local, all to a closed port
    assert every.count("consume_skb") >= 3  # echo requests, consumed in B
    reasons = [s["drop_reason"] for j in packets.values() for s in j if s["function"] == "kfree_skb"]
    assert reasons and set(reasons) == {"NO_SOCKET"}  # UDP to a closed port
    journeys = list(names.values())
    # veth: transmitted in A, dropped in B (closed port)
    assert any(in_order(n, "net_dev_queue", "net_dev_start_xmit", "icmp_send", "kfree_skb")
               for n in journeys), names
    # ping: transmitted in A, consumed in B
    assert any(in_order(n, "net_dev_queue", "net_dev_start_xmit", "consume_skb")
               for n in journeys), names
    # local: the whole way down and up again, then freed
    assert any(in_order(n, "net_dev_queue", "net_dev_start_xmit", "netif_rx", "net_dev_xmit",
                        "netif_receive_skb", "icmp_send", "kfree_skb") for n in journeys), names
    # Per packet, samples stream in timestamp order.
    for journey in packets.values():
        stamps = [s["timestamp"] for s in journey]
        assert stamps == sorted(stamps)


def test_unmarked_and_other_marks_are_not_traced(veth, trace_process, nothing_left_behind):
    tp = trace_process("-m", "0x1200", "--mask", "0xff00", "-o", "json")
    tp.wait_ready()
    quiet_from = monotonic_ns()
    veth.ping(count=2)  # unmarked
    veth.ping(count=2, mark=0x3400)  # differs inside the mask
    veth.send_udp(UDP_PORT, count=2, mark=0x1300)  # differs inside the mask
    quiet_to = monotonic_ns()
    veth.ping(count=2, mark=0x12FF)  # differs only outside the mask: matches
    assert tp.wait_stdout(lambda lines: any(json.loads(line)["function"] == "net_dev_start_xmit"
                                            and json.loads(line)["timestamp"] > quiet_to
                                            for line in lines))
    assert tp.stop() == 0
    samples = [json.loads(line) for line in tp.stdout.splitlines()]
    assert [s for s in samples if quiet_from <= s["timestamp"] <= quiet_to] == []
    matched = [s for s in samples if s["timestamp"] > quiet_to]
    assert {"net_dev_queue", "net_dev_start_xmit"} <= {s["function"] for s in matched}


AGG_LINE = re.compile(r"^(\d+) {1,}(\d{3}) +(\S+)$")


def test_aggregate_output_of_a_ping(veth, trace_process, nothing_left_behind):
    veth.mark_incoming(MARK, "-p", "icmp")
    tp = trace_process("-m", str(MARK), "-o", "aggregate")
    tp.wait_ready()
    veth.ping(count=2, mark=MARK)
    veth.ping(count=2, mark=MARK, local=True)
    time.sleep(0.3)
    assert tp.stop(sig=2) == 0  # Ctrl-C
    assert re.search(r"Got \d+ traces", tp.stderr)
    lines = tp.stdout.split("\n")
    assert lines[0] == "" and lines[1] == HEADER and lines[-1] == ""
    packets, current = [], None
    for line in lines[2:-1]:
        if line == "===":
            current = []
            packets.append(current)
            continue
        assert len(line) == 20 + 1 + 3 + 1 + 32
        m = AGG_LINE.match(line)
        assert m, line
        current.append((int(m.group(1)), m.group(3)))
    assert len(packets) >= 2
    for journey in packets:
        assert [t for t, _ in journey] == sorted(t for t, _ in journey)
    journeys = [[f for _, f in j] for j in packets]
    over_veth = [j for j in journeys if in_order(j, "net_dev_queue", "net_dev_start_xmit", "consume_skb")]
    local = [j for j in journeys if in_order(j, "net_dev_queue", "net_dev_start_xmit", "netif_rx",
                                             "net_dev_xmit", "netif_receive_skb", "consume_skb")]
    assert over_veth and local, journeys


def test_regex_limits_the_probes(veth, trace_process, nothing_left_behind):
    tp = trace_process("-m", hex(MARK), "-o", "json", "-r", "^net_dev_(queue|xmit)$")
    tp.wait_ready()
    veth.ping(count=2, mark=MARK, local=True)
    assert tp.wait_stdout(lambda lines: {json.loads(line)["function"] for line in lines}
                          >= {"net_dev_queue", "net_dev_xmit"})
    assert tp.stop() == 0
    assert re.search(r"succeeded 2, failed 0, filtered: \d+\)", tp.stderr)
    functions = {json.loads(line)["function"] for line in tp.stdout.splitlines()}
    assert functions == {"net_dev_queue", "net_dev_xmit"}


def test_function_graph_pairs_entry_and_exit_tracepoints(veth, trace_process, nothing_left_behind):
    tp = trace_process("-m", hex(MARK), "-t", "function_graph", "-o", "aggregate")
    tp.wait_ready()
    veth.ping(count=2, mark=MARK, local=True)
    time.sleep(0.3)
    assert tp.stop() == 0
    body = [line[25:].rstrip() for line in tp.stdout.split("\n")[2:] if line and line != "==="]
    assert all(len(line) == 20 + 1 + 3 + 1 + 64 for line in tp.stdout.split("\n")[2:]
               if line and line != "===")
    text = "\n".join(body)
    # netif_rx_entry ... netif_rx_exit is a call; netif_rx (a plain tracepoint) fires inside it.
    assert re.search(r"^netif_rx_entry\(\) \{\n  netif_rx\(\);\n\}\nnet_dev_xmit\(\);$", text,
                     re.M), text
    assert text.count("netif_rx_entry() {") >= 2
    assert text.count("netif_rx_entry() {") == len(re.findall(r"^\}$", text, re.M))


def test_function_graph_json_has_returns(veth, trace_process, nothing_left_behind):
    tp = trace_process("-m", hex(MARK), "-t", "function_graph", "-o", "json")
    tp.wait_ready()
    veth.ping(count=2, mark=MARK, local=True)
    # Each marked echo request goes through netif_rx and is consumed: two of each.
    assert tp.wait_stdout(lambda lines: [json.loads(line)["function"] for line in lines
                                         if json.loads(line)["is_return"]].count("netif_rx_entry") >= 2
                          and sum('"consume_skb"' in line for line in lines) >= 2), tp.stdout
    assert tp.stop() == 0
    samples = [json.loads(line) for line in tp.stdout.splitlines()]
    returns = [s for s in samples if s["is_return"]]
    assert {s["function"] for s in returns} == {"netif_rx_entry"}
    for ret in returns:
        entries = [s for s in samples if s["packet_id"] == ret["packet_id"]
                   and s["function"] == "netif_rx_entry" and not s["is_return"]
                   and s["timestamp"] < ret["timestamp"]]
        assert entries, ret
