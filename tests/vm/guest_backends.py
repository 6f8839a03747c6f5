"""Run inside the kernel-matrix VMs (tests/vm/run_matrix.py), as root, by
tests/test_kernel_matrix.py: the function backends on a real kernel of another
version, with real marked packets. One Collector (one bcc compile, 20-30 s under
emulation) per backend: function tracer first, then function_graph switched on
live. Timings go to $IPFT_VM_OUT/results-<kernel>.json."""

import json
import os
import subprocess
import sys
import time

import pytest

from ipft_tui.calltree import build_call_tree, flatten
from ipft_tui.collector import Collector
from ipft_tui.kernel import Kernel
from ipft_tui.model import group_by_packet
from ipft_tui.netlab import VethPair
from ipft_tui.packet import decode
from ipft_tui.settings import TraceSettings

KERNEL = os.environ.get("IPFT_VM_KERNEL", "")
OUT = os.environ.get("IPFT_VM_OUT", "/tmp")
MARK = 0x7E57
RESULTS: dict = {"kernel": KERNEL, "release": os.uname().release, "backends": {}}
# Expected per kernel series (SPEC section 5).
SUPPORTED = {"6.1": {"kprobe", "ftrace", "tracepoint"},
             "6.12": {"kprobe", "kprobe-multi", "ftrace", "tracepoint"}}

pytestmark = pytest.mark.skipif(not KERNEL, reason="runs inside the kernel-matrix VMs only")


@pytest.fixture(scope="module")
def kernel():
    return Kernel()


@pytest.fixture(scope="module", autouse=True)
def write_results():
    yield
    with open(os.path.join(OUT, f"results-{KERNEL}.json"), "w") as f:
        json.dump(RESULTS, f, indent=2)


def test_capabilities_match_the_kernel(kernel):
    caps = kernel.capabilities
    RESULTS["supported"] = caps.supported()
    assert set(caps.supported()) == SUPPORTED[KERNEL], caps.backends


def in_order(functions, *expected):
    it = iter(functions)
    return all(name in it for name in expected)


def traffic(pair: VethPair) -> None:
    pair.mark_incoming(MARK, "-p", "udp")
    pair.send_udp(7777, count=3, mark=MARK)  # A -> B, closed port: dropped in B
    local = ("import socket, struct\n"
             "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             f"s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack('I', {MARK}))\n"
             f"for _ in range(3): s.sendto(b'x', ('{pair.a_addr}', 7777))\n")
    pair.exec(pair.ns_a, sys.executable, "-c", local)
    time.sleep(1.0)


def bpf_objects() -> list[str]:
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                                      text=True).stdout or "[]")
    return [p.get("name", "") for p in progs if p.get("name", "").startswith("ipft")]


# Every skb function, except for ftrace: under emulation each fentry and fexit
# program load takes about a tenth of a second, so it gets the network core.
REGEX = {"ftrace": r"^(__)?(ip|udp|dev|netif|icmp|raw|nf_hook|kfree_skb|sk_skb_reason_drop|consume_skb|skb_release|skb_copy_header)"}
ONLY = os.environ.get("IPFT_VM_BACKENDS")  # e.g. "kprobe": run just those


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("backend", ["kprobe", "kprobe-multi", "ftrace"])
def test_function_backend(kernel, backend):
    if ONLY and backend not in ONLY.split(","):
        pytest.skip(f"IPFT_VM_BACKENDS={ONLY}")
    if backend not in SUPPORTED[KERNEL]:
        proc = subprocess.run([sys.executable, "-m", "ipft_tui", "-m", "1", "-o", "json",
                               "-b", backend], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1
        assert f"backend {backend} is not supported by this kernel" in proc.stderr
        RESULTS["backends"][backend] = {"supported": False, "error": proc.stderr.strip()[-300:]}
        return
    got, notices = [], []
    collector = Collector(TraceSettings(mark=MARK, backend=backend, regex=REGEX.get(backend),
                                        live_switches=True, capture_bytes=128),
                          lambda b: got.extend(b.samples()), on_notice=notices.append)
    started = time.monotonic()
    collector.start()
    try:
        collector.wait_ready(900)
    except Exception:
        print("notices:", *notices[:5], sep="\n")
        raise
    ready = time.monotonic() - started
    status = collector.status
    result = {"supported": True, "regex": REGEX.get(backend), "candidates": status.total,
              "selected": status.total - status.filtered, "attached": status.attached,
              "failed": status.failed, "start_to_ready_s": round(ready, 1)}
    try:
        assert status.attached > (100 if backend in REGEX else 1000), status
        with VethPair("ipftvm") as pair:
            traffic(pair)
            journeys = [[s.function for s in j] for j in group_by_packet(got).values()]
            assert any(in_order(j, "__dev_queue_xmit", "dev_hard_start_xmit") for j in journeys), journeys[:3]
            assert any(in_order(j, "ip_rcv", "ip_local_deliver", "udp_rcv") for j in journeys), journeys[:3]
            drops = {s.drop_reason for s in got if s.drop_reason}
            assert "NO_SOCKET" in drops, drops
            # Packet bytes (--capture-bytes): what was sent, decoded.
            # B marks the datagram in PREROUTING, after ip_rcv: look at it in udp_rcv. (traffic()
            # also sends A -> A over loopback, marked from the start.)
            received = [(c, {layer.key: {f.key: f.value for f in layer.fields} for layer in decode(c)})
                        for c in (s.capture for s in got if s.function == "udp_rcv") if c]
            to_b = [(c, layers) for c, layers in received
                    if layers.get("IPv4", {}).get("dst") == pair.b_addr]
            assert to_b, [layers.get("IPv4") for _, layers in received[:3]]
            capture, layers = to_b[0]
            assert layers["UDP"]["dport"] == "7777" and layers["Ethernet"]["type"] == "0x0800 (IPv4)"
            result["capture_udp_rcv"] = [capture.offset, len(capture.data), capture.length]

            # function_graph, switched on live: return probes attach, calls nest.
            t = time.monotonic()
            collector.set_tracer("function_graph")
            while collector.status.tracer != "function_graph" or collector.status.attaching:
                time.sleep(0.2)
            result["graph_switch_s"] = round(time.monotonic() - t, 1)
            got.clear()
            traffic(pair)
        returns = [s for s in got if s.is_return]
        result["return_samples"] = len(returns)
        assert returns
        nested, shown = False, []
        for journey in group_by_packet(got).values():
            for node in flatten(build_call_tree(journey)):
                if node.function == "ip_local_deliver":
                    inner = {c.function for c in flatten(node.children)}
                    shown.append((node.exit is not None, sorted(inner)[:12]))
                    nested |= node.exit is not None and (
                        "ip_local_deliver_finish" in inner or "ip_protocol_deliver_rcu" in inner)
        detail = [[(x.function, int(x.is_return), x.processor_id) for x in j]
                  for j in group_by_packet(got).values()
                  if any(x.function == "ip_local_deliver" for x in j)][:1]
        assert nested, f"ip_local_deliver did not contain ip_local_deliver_finish: {shown[:3]} {detail}"

        # Skb following and stack traces, switched on live. The ping is not marked
        # again in B (the rule marks UDP): only a followed journey gets there.
        collector.set_track_skb(True)
        collector.set_stack_regex("^icmp_rcv$")
        while not (collector.status.track_skb and collector.status.stack_regex):
            time.sleep(0.2)
        got.clear()
        with VethPair("ipftvm2") as pair:
            pair.ping(count=2, mark=MARK)
            # The first stack makes the collector read kallsyms: seconds under emulation.
            deadline = time.monotonic() + 120
            while (time.monotonic() < deadline
                   and not any(s.function == "icmp_rcv" and s.stack for s in list(got))):
                time.sleep(0.5)
            time.sleep(1.0)
        echoes = [j for j in group_by_packet(got).values()
                  if any(s.function == "icmp_rcv" for s in j)]
        with open(os.path.join(OUT, f"follow-{backend}.txt"), "w") as f:  # for a failure
            print("error:", collector.error, *notices[-10:], sep="\n", file=f)
            for s in sorted(got, key=lambda s: s.timestamp):
                print(hex(s.packet_id), s.function, int(s.is_return), hex(s.skb), s.stack, file=f)
        assert echoes, f"no journey reached icmp_rcv: see follow-{backend}.txt"
        assert in_order([s.function for s in echoes[0]], "__dev_queue_xmit", "ip_rcv", "icmp_rcv")
        # Both echo requests may share one address (recycled), so one journey here.
        stack = [s.stack for s in echoes[0] if s.function == "icmp_rcv" and not s.is_return][0]
        assert any(f.startswith(("ip_protocol_deliver_rcu+", "ip_local_deliver_finish+"))
                   for f in stack), stack
        result["followed_samples"] = len(echoes[0])
        result["icmp_rcv_stack"] = list(stack[:6])

        # A copy (its own data, via pskb_copy -> skb_copy_header): the TEE target in B
        # sends a duplicate of each datagram back to A; it joins the datagram's journey.
        got.clear()
        with VethPair("ipftvm3") as pair:
            pair.mark_incoming(MARK, "-p", "udp")
            pair.exec(pair.ns_b, "iptables", "-t", "mangle", "-A", "PREROUTING", "-s",
                      pair.a_addr, "-p", "udp", "-j", "TEE", "--gateway", pair.a_addr)
            pair.send_udp(7777, count=2, mark=MARK)
            time.sleep(2.0)
        copies = [s for s in got if s.function == "skb_copy_header" and not s.is_return]
        assert copies, sorted({s.function for s in got})
        copy = copies[0]
        journey = [s for s in got if s.packet_id == copy.packet_id]
        assert copy.skb != copy.packet_id
        sent_again = [s for s in journey if s.skb == copy.skb and s.function == "__dev_queue_xmit"]
        assert sent_again, [(s.function, s.skb & 0xffff) for s in journey if not s.is_return]
        result["copy_followed"] = len([s for s in journey if s.skb == copy.skb])
    finally:
        t = time.monotonic()
        collector.stop(timeout=900)
        result["detach_s"] = round(time.monotonic() - t, 1)
        RESULTS["backends"][backend] = result
    deadline = time.monotonic() + 30
    while bpf_objects() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert bpf_objects() == []
