"""Run inside the kernel-matrix VMs (tests/vm/run_matrix.py), as root, by
tests/test_kernel_matrix.py: the function backends on a real kernel of another
version, with real marked packets. One Collector (one bcc compile, 20-30 s under
emulation) per backend serves `-l`, the function tracer, function_graph, skb following
and stacks (switched on live); one more per program type for a pcap-filter expression,
and one ftrace function_graph trace for the ipftrace2 parity checks. Timings go to
$IPFT_VM_OUT/results-<kernel>.json."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from ipft_tui.calltree import build_call_tree, flatten
from ipft_tui.collector import Collector
from ipft_tui.kernel import Kernel
from ipft_tui.kernel.targets import ftrace_max_args
from ipft_tui.model import group_by_packet
from ipft_tui.netlab import VethPair
from ipft_tui.packet import decode
from ipft_tui.settings import TraceSettings

KERNEL = os.environ.get("IPFT_VM_KERNEL", "")
OUT = os.environ.get("IPFT_VM_OUT", "/tmp")
MARK = 0x7E57
RESULTS: dict = {"kernel": KERNEL, "release": os.uname().release, "backends": {}}
# Expected per kernel series (SPEC section 5).
SUPPORTED = {"5.10": {"kprobe", "ftrace", "tracepoint"},
             "6.1": {"kprobe", "ftrace", "tracepoint"},
             "6.12": {"kprobe", "kprobe-multi", "ftrace", "tracepoint"},
             "sid": {"kprobe", "kprobe-multi", "ftrace", "tracepoint"}}
# Drop reasons (the kfree_skb tracepoint's and kfree_skb_reason's) came in 5.17.
HAS_DROP_REASONS = KERNEL != "5.10"


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
    # kprobes tell their functions apart by BPF cookie from 5.15, else by a patched
    # constant per loaded program.
    assert caps.kprobe_cookie == (KERNEL != "5.10")
    check = subprocess.run([sys.executable, "-m", "ipft_tui", "--check"], capture_output=True,
                           text=True, timeout=300).stdout
    RESULTS["check"] = check
    if KERNEL == "5.10":  # --check says what is missing and why
        assert "kprobe BPF cookies: no, before 5.15" in check, check
        assert "no enum skb_drop_reason in BTF (kernels before 5.17)" in check, check
        assert "auto          -> kprobe" in check, check


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


# The network core for ftrace (under emulation each fentry and fexit program load takes
# about a tenth of a second) and kprobe (detaching ~1500 kprobes takes over a minute; on
# 5.10, without cookies, a program is loaded per function), with the veth module's
# functions for kprobe (listed through module BTF). kprobe-multi attaches every skb
# function (one link).
NET_CORE = (r"^(__)?(ip_|udp|dev_|netif_|icmp_|kfree_skb|sk_skb_reason_drop|consume_skb"
            r"|skb_release|skb_copy_header")
REGEX = {"ftrace": NET_CORE + ")", "kprobe": NET_CORE + "|veth_)"}
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
    with VethPair("ipftvml"):
        pass  # loads the veth module, whose functions must be listed where module BTF exists
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
        check_list_is_what_the_run_tried(collector, backend, notices, result)
        with VethPair("ipftvm") as pair:
            traffic(pair)
            journeys = [[s.function for s in j] for j in group_by_packet(got).values()]
            assert any(in_order(j, "__dev_queue_xmit", "dev_hard_start_xmit") for j in journeys), journeys[:3]
            assert any(in_order(j, "ip_rcv", "ip_local_deliver", "udp_rcv") for j in journeys), journeys[:3]
            drops = {s.drop_reason for s in got if s.drop_reason}
            if HAS_DROP_REASONS:
                assert "NO_SOCKET" in drops, drops
            else:
                assert not drops, drops
                assert any(s.function in ("kfree_skb", "__kfree_skb") for s in got)
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
        # Returns keep their skb too (fexit passed no flags once, losing it).
        assert all(s.skb for s in echoes[0]), [(s.function, s.is_return, s.skb) for s in echoes[0]]
        assert any(s.is_return for s in echoes[0])
        stack = [s.stack for s in echoes[0] if s.function == "icmp_rcv" and not s.is_return][0]
        callers = ("ip_protocol_deliver_rcu+", "ip_local_deliver_finish+")
        if KERNEL == "5.10" and backend == "kprobe":
            # Before 5.15 the unwinder stops at the kretprobe trampoline that
            # function_graph put in place of a traced caller's return address.
            callers += ("kretprobe_trampoline+",)
        # fentry on 7.x: the kernel's stack starts at the caller; the ftrace backend's
        # record layout puts the traced function first (decode.RecordLayout.traced_first).
        assert stack[0].startswith("icmp_rcv+"), stack
        assert any(f.startswith(callers) for f in stack), stack
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


# --- #20: side by side with ipftrace2 (drops, function_graph nesting, frees) ---------
# One ftrace function_graph trace serves the three checks; the collector is stopped
# before they run (and before the backend tests above start theirs).

PARITY_REGEX = (r"^(__)?(ip_|udp|dev_|netif|icmp|raw_|nf_hook|kfree_skb|sk_skb_reason_drop|"
                r"consume_skb|skb_release|skb_free_head|kfree_skbmem|tcp_drop)")
# The end of a free: it belongs to the journey whose packet it frees (#20.2).
FREE_PATH = frozenset({"skb_release_head_state", "skb_release_data", "skb_release_all",
                       "skb_free_head", "kfree_skbmem", "__kfree_skb", "consume_skb",
                       "kfree_skb_reason", "sk_skb_reason_drop", "__kfree_skb_reason",
                       "__sk_skb_reason_drop", "skb_free_frag"})


PARITY_PINGS: list = []  # samples of the ping phase of parity_trace


@pytest.fixture(scope="module")
def parity_trace(kernel):
    if ONLY and "ftrace" not in ONLY.split(",") and "parity" not in ONLY.split(","):
        pytest.skip(f"IPFT_VM_BACKENDS={ONLY}")
    got, notices = [], []
    collector = Collector(TraceSettings(mark=MARK, backend="ftrace", regex=PARITY_REGEX,
                                        tracer="function_graph"),
                          lambda b: got.extend(b.samples()), on_notice=notices.append)
    collector.start()
    try:
        collector.wait_ready(900)
        with VethPair("ipftpar") as pair:
            # netfilter in A's output path too, as on ipftrace2's hosts: nf_hook_slow
            # runs inside ip_output
            pair.exec(pair.ns_a, "iptables", "-t", "mangle", "-A", "POSTROUTING", "-j", "ACCEPT")
            pair.mark_incoming(MARK, "-p", "icmp")
            pair.mark_incoming(MARK, "-p", "udp")
            pair.ping(count=3, mark=MARK)  # echo requests consumed normally by B
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and sum(
                    s.function == "icmp_rcv" and not s.is_return for s in list(got)) < 3:
                time.sleep(0.3)
            time.sleep(1.0)  # their frees
            # the ping phase on its own: skb addresses are reused by the datagrams below
            PARITY_PINGS[:] = list(got)
            pair.send_udp(7777, count=2, mark=MARK)  # closed port: a real drop
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    s.drop_reason == "NO_SOCKET" for s in list(got)):
                time.sleep(0.3)
            time.sleep(1.0)  # the echo replies' frees
    finally:
        collector.stop(timeout=600)
    with open(os.path.join(OUT, "parity-trace.txt"), "w") as f:  # for a failure
        print("error:", collector.error, *notices[-10:], sep="\n", file=f)
        for s in sorted(got, key=lambda s: s.timestamp):
            print(hex(s.packet_id), s.processor_id, s.function, int(s.is_return), s.drop_reason,
                  file=f)
    assert got, "nothing traced"
    return got


def test_parity_only_drop_points_make_drops(kernel, parity_trace):
    """#20.1: a consumed ping is no drop; the closed port's datagram is one."""
    from ipft_tui import drops
    from ipft_tui.kernel.targets import reason_carriers
    from ipft_tui.model import is_drop

    carriers = reason_carriers(kernel.btf)
    RESULTS["drop_reason_carriers"] = sorted(carriers)
    assert drops.unclassified(carriers) == set(), "classify these in ipft_tui/drops.py"
    pings = PARITY_PINGS
    assert sum(s.function == "icmp_rcv" and not s.is_return for s in pings) >= 3
    false_drops = [(s.function, s.drop_reason) for s in pings if is_drop(s)]
    assert not false_drops, false_drops
    assert not [s for s in parity_trace if s.function in drops.PASS_THROUGH and s.drop_reason]
    journeys = group_by_packet(parity_trace).values()
    # udp_rcv: __udp4_lib_rcv is inlined into it on 7.x
    udp = [j for j in journeys if any(s.function == "udp_rcv" for s in j)]
    freed = {s.function for s in pings}
    RESULTS["ping_free_path"] = sorted(freed & FREE_PATH)
    if KERNEL == "6.12":  # 6.12 hands skb_release_data a reason for consumed packets
        assert "skb_release_data" in freed, sorted(freed)
    if HAS_DROP_REASONS:
        assert any(is_drop(s) and s.drop_reason == "NO_SOCKET" for j in udp for s in j)
    else:  # before 5.17 no reason is passed: the drop is the kfree_skb, and only that
        assert any(s.function == "kfree_skb" for j in udp for s in j)
        assert not any(s.drop_reason for s in parity_trace)


def test_parity_graph_nests_like_ipftrace2(parity_trace):
    """#20.3: ip_output() { nf_hook_slow() { ... } ip_finish_output() ... }, every
    return paired with its entry, braces balanced."""
    from ipft_tui.outputs.aggregate import function_graph_lines

    nested = []
    for journey in group_by_packet(parity_trace).values():
        nodes = flatten(build_call_tree(journey))
        unpaired = [(n.function, n.timestamp) for n in nodes if n.entry is None]
        assert not unpaired, f"returns without their entry: {unpaired[:5]}"
        body = [line[25:].strip() for line in function_graph_lines(journey, False)]
        assert not [label for label in body if "returned */" in label], body
        for node in nodes:
            inner = {c.function for c in flatten(node.children)}
            if node.function == "ip_output" and node.exit is not None and "nf_hook_slow" in inner:
                hook = next(c for c in flatten(node.children) if c.function == "nf_hook_slow")
                nested.append((hook.exit is not None, "ip_finish_output" in inner))
    RESULTS["graph_ip_output"] = nested[:4]
    assert any(hook and finish for hook, finish in nested), nested


def test_parity_a_free_stays_in_its_journey(parity_trace):
    """#20.2 (fixed by helper "tui" in model.py): with split_on_free the end of a free
    is not a journey of its own."""
    from ipft_tui.model import PacketStore

    store = PacketStore(max_packets=len(parity_trace) + 1, split_on_free=True)
    store.add(sorted(parity_trace, key=lambda s: s.timestamp))
    # A journey made only of free functions that follows another at its address is the
    # end of that one's free, split off. (The first at an address can be a packet first
    # matched at its free, e.g. one marked before tracing began.)
    seen: set[int] = set()
    only_free = []
    for journey in store.journeys():
        if all(s.function in FREE_PATH for s in journey) and journey[0].packet_id in seen:
            only_free.append([s.function for s in journey if not s.is_return])
        seen.add(journey[0].packet_id)
    RESULTS["free_only_journeys"] = len(only_free)
    assert not only_free, only_free[:3]


# --- #20.5: start-up and exit time, the way ipftrace2 was timed ----------------------
# The command line, every skb function: start -> "Trace ready", SIGINT -> exit.
# IPFT_VM_SPEED="kprobe-multi:3,kprobe:1" says which backends, how many times;
# IPFT_VM_PROFILE=1 records the first run of each with py-spy (pip install py-spy).

SPEED = os.environ.get("IPFT_VM_SPEED", "")


def _timed_run(backend: str, profile: str | None) -> dict:
    import signal

    started = time.monotonic()
    err_path = os.path.join(OUT, f"speed-{backend}.stderr")
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ipft_tui", "-m", hex(MARK), "-b", backend,
                                 "-o", "json"], stdout=subprocess.DEVNULL, stderr=err)
    spy = None
    if profile:
        spy = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"), "record",
                                "--pid", str(proc.pid), "--idle", "--threads", "--format", "raw",
                                "--rate", "20", "-o", profile],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = None
    while proc.poll() is None and time.monotonic() - started < 900:
        with open(err_path) as f:
            if "Trace ready" in f.read():
                ready = time.monotonic() - started
                break
        time.sleep(0.2)
    assert ready is not None, open(err_path).read()[-2000:]
    stopping = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(600)
    exit_s = time.monotonic() - stopping
    if spy:
        spy.wait(60)
    with open(err_path) as f:
        tail = f.read()[-300:]
    return {"start_to_ready_s": round(ready, 1), "sigint_to_exit_s": round(exit_s, 1), "rc": rc,
            "stderr_tail": tail}


@pytest.mark.timeout(3000)
@pytest.mark.skipif(not SPEED, reason="IPFT_VM_SPEED not set")
def test_parity_speed(kernel):
    runs = {}
    for item in SPEED.split(","):
        backend, _, times = item.partition(":")
        if backend not in SUPPORTED[KERNEL]:
            continue
        for n in range(int(times or 1)):
            profile = (os.path.join(OUT, f"pyspy-{backend}.txt")
                       if n == 0 and os.environ.get("IPFT_VM_PROFILE") else None)
            result = _timed_run(backend, profile)
            runs.setdefault(backend, []).append(result)
            RESULTS["speed"] = runs
            assert result["rc"] == 0, result
            deadline = time.monotonic() + 30
            while bpf_objects() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert bpf_objects() == []


# pcap-filter expressions (issue 15): the translated expression must pass this kernel's
# verifier on every backend, select unmarked packets by their headers, follow them into
# the other namespace; a device filter is added live (a map update).
EXPRESSION_REGEX = (r"^(__)?(ip_rcv|ip_local_deliver|udp|dev_queue_xmit|dev_hard_start_xmit|"
                    r"netif_receive_skb|kfree_skb|sk_skb_reason_drop|consume_skb|skb_release)")


def unmarked_udp(pair: VethPair, port: int) -> None:
    pair.send_udp(port, count=2)
    time.sleep(1.0)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["kprobe", "ftrace"])  # kprobe-multi: kprobe's program type
def test_expression_filter(kernel, backend):
    if ONLY and backend not in ONLY.split(","):
        pytest.skip(f"IPFT_VM_BACKENDS={ONLY}")
    if backend not in SUPPORTED.get(KERNEL, set()):
        pytest.skip(f"{backend} is not supported on {KERNEL}")
    got, notices = [], []
    collector = Collector(TraceSettings(mark=0, expression="udp and dst port 7777",
                                        backend=backend, regex=EXPRESSION_REGEX, meta=True,
                                        live_switches=True),
                          lambda b: got.extend(b.samples()), on_notice=notices.append)
    result = {}
    started = time.monotonic()
    collector.start()
    try:
        collector.wait_ready(600)
        result["start_to_ready_s"] = round(time.monotonic() - started, 1)
        with VethPair("ipftvmx") as pair:
            ns_b = os.stat(f"/run/netns/{pair.ns_b}").st_ino
            # 7778 first: no followed skb exists yet whose freed buffer or address a
            # later skb could reuse (skb following's limit, not the selection's).
            unmarked_udp(pair, 7778)
            unmarked_udp(pair, 7777)
            ports = {s.meta.dport for s in got if s.meta and s.meta.l4_proto == 17}
            assert 7777 in ports and 7778 not in ports, (ports, notices[:5])
            if HAS_DROP_REASONS:
                drops = [s for s in got if s.drop_reason == "NO_SOCKET"]
            else:  # before 5.17: the free that drops it, without a reason
                drops = [s for s in got if s.function in ("kfree_skb", "__kfree_skb")]
            assert any(s.meta.netns == ns_b for s in drops), [s.function for s in got][:40]
            # The device filter added live (a map update): journeys now start in B.
            t = time.monotonic()
            collector.set_filter(0, 0xFFFFFFFF, "udp and dst port 7777", 0, pair.dev_b)
            while collector.status.ifname != pair.dev_b:
                time.sleep(0.05)
            result["filter_change_s"] = round(time.monotonic() - t, 3)
            seen = {s.packet_id for s in got}
            got.clear()
            unmarked_udp(pair, 7777)
            firsts = {}
            for s in sorted(got, key=lambda s: s.timestamp):
                if s.packet_id not in seen:  # journeys started since the change
                    firsts.setdefault(s.packet_id, s)
            # Without the device filter they would start in A, on its veth (dev_a).
            where = [(s.function, s.meta.ifname) for s in firsts.values()]
            result["new_journeys"] = where[:5]
            if not where:
                # Seen 2026-11-27 (ftrace on 6.1 and 6.12, kprobe-multi on 6.12): the second
                # round's skbs reuse the first round's addresses, so they either continue
                # those journeys (a free not seen: skb following's limit) or start journeys
                # under an id already seen. The device filter itself is checked on real
                # traffic on the host (test_pcapfilter_real.py).
                result["device_filter_live"] = f"not checked: no new journey id ({backend})"
            else:
                assert any(name == pair.dev_b for _f, name in where), where
                assert not any(name == pair.dev_a for _f, name in where), where
        result["samples"] = len(got)
        assert collector.error is None, collector.error
    finally:
        collector.stop(timeout=600)
        RESULTS.setdefault("expression", {})[backend] = result
    deadline = time.monotonic() + 30
    while bpf_objects() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert bpf_objects() == []


def check_list_is_what_the_run_tried(collector: Collector, backend: str, notices: list,
                                     result: dict) -> None:
    """`-l` prints exactly the targets a run tries (#13.4), and those attach (#20.4:
    what cannot be attached is left out up front, not tried). Checked against the
    backend test's running collector (same backend and regex)."""
    regex = REGEX.get(backend)
    proc = subprocess.run([sys.executable, "-m", "ipft_tui", "-l", "-b", backend,
                           *(["-r", regex] if regex else [])],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    listed = [r[0].strip() for r in rows]
    status = collector.status
    names = collector.candidate_names()
    attached = {names[i] for i in collector.selected_probes()}
    result["list"] = {"listed": len(listed), "modules": sorted({r[1].strip() for r in rows} - {"vmlinux"})}
    assert len(listed) == len(set(listed)) == status.total - status.filtered
    assert attached <= set(listed) and status.attached + status.failed == len(listed)
    assert status.failed == 0, notices[:10]
    positions = [int(r[3]) for r in rows]
    reach = ftrace_max_args(os.uname().release) if backend == "ftrace" else 5  # fentry: any saved argument
    assert positions == sorted(positions) and 0 <= positions[0] and positions[-1] < reach
    # Module functions are found through module BTF (5.11+), on every backend whose
    # regex takes them.
    if regex is None or re.search(regex, "veth_xmit"):
        assert ("veth_xmit" in listed) == os.path.exists("/sys/kernel/btf/veth"), listed[-20:]
