"""Real kernel, real unmarked packets: pcap-filter expressions, namespace and device
filters select exactly the intended flows, which are then followed (also through DNAT
in the receiving namespace) to their end in the other namespace."""

import os
import sys
import textwrap
import time

import pytest

from ipft_tui.collector import Collector
from ipft_tui.model import Sample
from ipft_tui.outputs.aggregate import journeys_of
from ipft_tui.outputs.jsonlines import parse_line
from ipft_tui.settings import TraceSettings, parse_netns

pytestmark = pytest.mark.root

A6, B6 = "2001:db8:1::1", "2001:db8:1::2"


def add_ipv6(veth) -> None:
    for ns, dev, addr in ((veth.ns_a, veth.dev_a, A6), (veth.ns_b, veth.dev_b, B6)):
        veth.exec(ns, "ip", "addr", "add", f"{addr}/64", "dev", dev, "nodad")


def send(veth, family: str, proto: str, dst: str, port: int, count: int = 2) -> None:
    """Unmarked datagrams or connection attempts from A (nothing listens in B)."""
    fam = "socket.AF_INET6" if family == "6" else "socket.AF_INET"
    kind = "socket.SOCK_DGRAM" if proto == "udp" else "socket.SOCK_STREAM"
    code = textwrap.dedent(f"""
        import socket
        for _ in range({count}):
            s = socket.socket({fam}, {kind})
            s.settimeout(1)
            try:
                if {kind} == socket.SOCK_DGRAM:
                    s.sendto(b"x" * 8, ("{dst}", {port}))
                else:
                    s.connect(("{dst}", {port}))
            except OSError:
                pass
            s.close()
    """)
    veth.exec(veth.ns_a, sys.executable, "-c", code)


def journeys(lines: list[str]) -> list[list[Sample]]:
    """The JSON output's journeys as the TUI and `-o aggregate --split-on-free` make them
    (README "Journeys"): packet ids are recycled skb addresses, and an end is not always
    seen (TCP frees the queued original of a segment with `__kfree_skb`, which has no
    tracepoint), so the next packet at that address can carry the same id."""
    return journeys_of([parse_line(line) for line in lines], split_on_free=True)


def flow(s: Sample) -> tuple:
    return (s.meta.l4_proto, s.meta.daddr, s.meta.dport)


def test_expression_selects_the_intended_flows_and_follows_them(veth, trace_process,
                                                                nothing_left_behind):
    add_ipv6(veth)
    ns_b = os.stat(f"/run/netns/{veth.ns_b}").st_ino
    tp = trace_process("-o", "json", "--output-tuple",
                       f"(udp and dst port 7777 and host {veth.b_addr}) or "
                       f"(ip6 and tcp and dst port 8888) or (icmp6 and dst host {B6})")
    tp.wait_ready()
    send(veth, "4", "udp", veth.b_addr, 7777)   # selected
    send(veth, "4", "udp", veth.b_addr, 7778)   # not: another port
    send(veth, "4", "tcp", veth.b_addr, 7777)   # not: tcp
    send(veth, "6", "tcp", B6, 8888)            # selected
    send(veth, "6", "udp", B6, 8888)            # not: udp
    veth.ping(count=2)                          # not: ICMP over IPv4
    veth.exec(veth.ns_a, "ping", "-6", "-c", "2", "-i", "0.05", "-W", "1", B6)  # selected
    time.sleep(0.3)
    assert tp.stop() == 0, tp.stderr
    lines = tp.stdout.splitlines()
    assert lines, tp.stderr
    found = journeys(lines)
    firsts = {flow(j[0]) for j in found}
    # Only the intended flows start journeys (6: UDP, 17: TCP... by IPPROTO number).
    assert firsts <= {(17, veth.b_addr, 7777), (6, B6, 8888), (58, B6, 0)}, firsts
    assert {(17, veth.b_addr, 7777), (6, B6, 8888)} <= firsts, firsts
    assert any(j[0].meta.l4_proto == 58 for j in found), firsts
    # Unselected flows never start a journey (above). (A later skb that reuses a followed
    # skb's data buffer address can still be taken for its clone: skb following's limit.)
    # Selected in A, followed into B (the netns changes, nothing is marked) to the drop.
    udp = [j for j in found if flow(j[0]) == (17, veth.b_addr, 7777)]
    assert any(s.function == "kfree_skb" and s.drop_reason == "NO_SOCKET"
               and s.meta.netns == ns_b for j in udp for s in j), udp[:1]
    tcp6 = [j for j in found if flow(j[0]) == (6, B6, 8888)]
    assert any(s.function == "kfree_skb" and s.meta.netns == ns_b for j in tcp6 for s in j)
    assert "Trace ready!" in tp.stderr


def wait_for(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_live_filter_changes_dnat_netns_and_device(veth, nothing_left_behind):
    """One collector: an expression followed through DNAT; then namespace and device
    filters added live (a map update)."""
    got, notices = [], []
    settings = TraceSettings(mark=0, expression="udp and dst port 7777", meta=True,
                             backend="tracepoint")
    collector = Collector(settings, lambda b: got.extend(b.samples()), on_notice=notices.append)
    collector.start()
    try:
        collector.wait_ready(120)
        # DNAT in B: the destination port changes from 7777 to 9999 after selection.
        veth.exec(veth.ns_b, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "udp",
                  "--dport", "7777", "-j", "DNAT", "--to-destination", f"{veth.b_addr}:9999")
        send(veth, "4", "udp", veth.b_addr, 7777)
        assert wait_for(lambda: any(s.drop_reason == "NO_SOCKET" for s in got)), notices
        by_journey = {}
        for s in got:
            by_journey.setdefault(s.packet_id, []).append(s)
        natted = [j for j in by_journey.values()
                  if {s.meta.dport for s in j} >= {7777, 9999}]
        assert natted, [[(s.function, s.meta.dport) for s in j] for j in by_journey.values()]
        j = sorted(natted[0], key=lambda s: s.timestamp)
        assert j[0].meta.dport == 7777 and j[-1].meta.dport == 9999
        assert any(s.drop_reason == "NO_SOCKET" for s in j)

        # Namespace B only: a journey starts in B, where the packet arrives.
        ns_b = parse_netns(veth.ns_b)
        collector.set_filter(0, 0xFFFFFFFF, "udp and dst port 7777", ns_b, None)
        assert wait_for(lambda: collector.status.netns == ns_b)
        applied_ms = collector.status.filter_applied_ms
        got.clear()
        send(veth, "4", "udp", veth.b_addr, 7777)
        assert wait_for(lambda: any(s.drop_reason == "NO_SOCKET" for s in got))
        firsts = [min(j, key=lambda s: s.timestamp) for j in _journeys(got)]
        assert firsts and all(s.meta.netns == ns_b for s in firsts), firsts
        assert all(s.meta.netns == ns_b or s.meta.netns == 0 for s in got)

        # Device A's veth only: starts where the packet leaves A.
        collector.set_filter(0, 0xFFFFFFFF, "udp and dst port 7777", 0, veth.dev_a)
        assert wait_for(lambda: collector.status.ifname == veth.dev_a)
        got.clear()
        send(veth, "4", "udp", veth.b_addr, 7777)
        assert wait_for(lambda: any(s.drop_reason == "NO_SOCKET" for s in got))
        firsts = [min(j, key=lambda s: s.timestamp) for j in _journeys(got)]
        assert firsts and all(s.meta.ifname == veth.dev_a for s in firsts), firsts
        # followed onto B's device after that
        assert any(s.meta.ifname == veth.dev_b for s in got)
        assert collector.error is None
    finally:
        collector.stop()
    print(f"live filter change applied in {applied_ms:.2f} ms")
    assert applied_ms < 1000


def _journeys(samples):
    by_id = {}
    for s in samples:
        by_id.setdefault(s.packet_id, []).append(s)
    return list(by_id.values())


def test_translated_programs_agree_with_libpcap_in_the_kernel(bpf_ready, nothing_left_behind):
    """The C translation of every unit-test expression, compiled by bcc and run in the
    kernel (BPF_PROG_TEST_RUN) on the unit tests' packets (whole and cut short), against
    libpcap's own verdicts."""
    import ctypes
    import struct

    import bcc

    from ipft_tui.kernel import bpfsys
    from ipft_tui.kernel.headers import find_headers
    from ipft_tui.pcapfilter import DLT_EN10MB, DLT_RAW, compile_filter, libpcap_matches, to_c
    from ipft_tui.tracing.program import bpf_dir
    from tests.test_pcapfilter import EXPRESSIONS, frames

    find_headers().apply()
    source = (bpf_dir() / "ipft.bpf.c").read_text()
    text = source[source.index("/* ipft-cbpf-begin"):source.index("/* ipft-cbpf-end */")]
    text += textwrap.dedent("""
        struct ipft_test_packet { u64 addr; u32 len; u32 _pad; unsigned char data[512]; };
        BPF_ARRAY(test_packet, struct ipft_test_packet, 1);
        static __always_inline const unsigned char *ipft_test_bytes(u32 *len)
        {
            u32 zero = 0;
            struct ipft_test_packet *p = test_packet.lookup(&zero);
            if (!p)
                return 0;
            /* The bytes' address as a plain number, as head + offset is for an skb. */
            p->addr = (u64)p->data;
            *len = p->len > 512 ? 512 : p->len;
            return (const unsigned char *)*(volatile u64 *)&p->addr;
        }
    """)
    cases = []
    for n, expression in enumerate(EXPRESSIONS):
        f = compile_filter(expression)
        for l2, linktype, program in ((True, DLT_EN10MB, f.l2), (False, DLT_RAW, f.l3)):
            name = f"ipft_t{n}_{int(l2)}"
            text += to_c(program, name + "_expr") + textwrap.dedent(f"""
                int {name}(void *ctx)
                {{
                    u32 len = 0;
                    const unsigned char *pkt = ipft_test_bytes(&len);
                    return pkt ? {name}_expr(pkt, len, len) != 0 : 7;
                }}
            """)
            cases.append((name, expression, l2, linktype))
    b = bcc.BPF(text=text.encode(), cflags=["-Wno-unused-label", "-Wno-unused-variable"])
    try:
        packets = b[b"test_packet"]

        def kernel_verdict(fd: int, data: bytes) -> int:
            pkt = packets.Leaf()
            pkt.len = len(data)
            ctypes.memmove(pkt.data, data, len(data))
            packets[ctypes.c_int(0)] = pkt
            attr = ctypes.create_string_buffer(80)  # union bpf_attr, .test
            struct.pack_into("<I", attr, 0, fd)
            if bpfsys._libc.syscall(bpfsys.SYS_BPF, 10, attr, 80) < 0:  # BPF_PROG_TEST_RUN
                raise OSError(ctypes.get_errno(), "BPF_PROG_TEST_RUN failed")
            return struct.unpack_from("<I", attr, 4)[0]  # .retval

        checked = 0
        for name, expression, l2, linktype in cases:
            fd = b.load_func(name.encode(), bcc.BPF.RAW_TRACEPOINT).fd
            for pname, data in frames(l2):
                for cut in (len(data), 34, 20):
                    got = kernel_verdict(fd, data[:cut])
                    expected = libpcap_matches(expression, linktype, data[:cut])
                    assert got == int(expected), (expression, pname, l2, cut, got)
                    checked += 1
        assert checked > 1000
    finally:
        b.cleanup()
