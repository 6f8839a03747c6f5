"""pcap-filter expressions: libpcap's programs, our checks of them, and the reference
interpreter with the kernel side's semantics, against libpcap's own verdicts."""

import itertools

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from ipft_tui import pcapfilter
from ipft_tui.pcapfilter import (DLT_EN10MB, DLT_RAW, MAX_INSNS, FilterError, Insn,
                                 compile_filter, libpcap_matches, run, unsupported)

PACKETS = {
    "udp53": IP(src="10.1.2.3", dst="10.9.9.9") / UDP(sport=40000, dport=53) / Raw(b"q" * 20),
    "udp7777": IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=5000, dport=7777) / Raw(b"x"),
    "tcp_syn": IP(src="10.1.2.3", dst="192.0.2.2") / TCP(sport=1234, dport=80, flags="S"),
    "tcp_ack": IP(src="10.1.2.3", dst="192.0.2.2") / TCP(sport=1234, dport=80, flags="A"),
    "http": IP(src="10.1.2.3", dst="192.0.2.2") / TCP(sport=1234, dport=80, flags="PA") / Raw(b"GET /"),
    "tcp_opts": IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01\x01\x01\x00")
    / TCP(sport=443, dport=5555, flags="PA") / Raw(b"data"),
    "icmp": IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(type=8),
    "fragment": IP(src="192.0.2.1", dst="192.0.2.2", frag=100, proto=17) / Raw(b"y" * 8),
    "icmp6": IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(),
    "udp6": IPv6(src="2001:db8::1", dst="fe80::2") / UDP(sport=53, dport=9999),
    "tcp6": IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=1, dport=22, flags="S"),
    "short_ip": IP(src="10.1.2.3", dst="10.9.9.9") / UDP(sport=1, dport=53),
}
EXPRESSIONS = [
    "udp", "tcp", "icmp", "ip6", "icmp6", "udp and dst port 53", "port 53", "port 7777",
    "host 10.1.2.3", "src host 192.0.2.1 and dst host 192.0.2.2", "net 10.0.0.0/8",
    "host 10.1.2.3 and tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-ack",
    "ip6 and udp and dst port 9999", "host 2001:db8::2", "dst net fe80::/10",
    "udp and dst port 7777 and host 192.0.2.2", "portrange 50-100", "len > 60", "less 40",
    "ip[8] > 32", "ip[6:2] & 0x1fff != 0", "tcp port 443 and tcp[((tcp[12] & 0xf0) >> 2):4] = 0x64617461",
    "tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
    "not udp", "icmp[icmptype] == icmp-echo", "ip6 and tcp and dst port 22",
    "udp[8:4] == 0x71717171", "ip[2:2] / 4 > 10", "ip[2:2] % 7 == 6",
]


def frames(l2: bool):
    for name, pkt in PACKETS.items():
        yield name, bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt) if l2 else bytes(pkt)
    if l2:
        yield "arp", bytes(Ether() / ARP(psrc="10.1.2.3", pdst="10.1.2.4"))
        yield "vlan_udp", bytes(Ether() / Dot1Q(vlan=5) / PACKETS["udp53"])


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_reference_interpreter_agrees_with_libpcap(expression):
    f = compile_filter(expression)
    seen = set()
    for l2, linktype, program in ((True, DLT_EN10MB, f.l2), (False, DLT_RAW, f.l3)):
        for name, data in frames(l2):
            for cut in (len(data), 34, 20):  # truncated linear data: loads beyond reject
                data_cut = data[:cut]
                expected = libpcap_matches(expression, linktype, data_cut)
                assert (run(program, data_cut) != 0) == expected, (expression, name, l2, cut)
                seen.add(expected)
    assert seen == {True, False}, f"{expression}: no packet tells match from no match"


def test_expressions_select_the_intended_flows():
    f = compile_filter("udp and dst port 53")
    got = {name for name, data in frames(False) if run(f.l3, data)}
    assert got == {"udp53", "short_ip"}
    f = compile_filter("host 10.1.2.3 and tcp[tcpflags] & tcp-syn != 0")
    assert {name for name, data in frames(True) if run(f.l2, data)} == {"tcp_syn"}


def test_libpcap_messages_are_passed_on():
    with pytest.raises(FilterError, match="syntax error"):
        compile_filter("udp and")
    with pytest.raises(FilterError, match=r"illegal port number 99999 > 65535"):
        compile_filter("port 99999")
    with pytest.raises(FilterError, match="empty expression"):
        compile_filter("   ")


def test_ethernet_only_expressions_match_nothing_without_ethernet_header():
    f = compile_filter("ether host 02:00:00:00:00:01 and udp")
    assert "ethernet" in f.l3_note
    assert all(run(f.l3, data) == 0 for _name, data in frames(False))
    assert {n for n, d in frames(True) if run(f.l2, d)} == {
        n for n, d in frames(True) if libpcap_matches(f.expression, DLT_EN10MB, d)}


def test_programs_the_kernel_cannot_run_are_refused():
    # libpcap accepts it; it compiles to far more instructions than the kernel loop runs.
    long = " or ".join(f"host 10.0.0.{i}" for i in range(1, 255))
    assert len(pcapfilter.libpcap_compile(long, DLT_EN10MB)) > MAX_INSNS
    with pytest.raises(FilterError, match=rf"at most {MAX_INSNS} are translated"):
        compile_filter(long)
    # A Linux socket-filter extension load (negative offset), as a live Linux handle
    # would compile `vlan`: refused, not run.
    assert "socket-filter extension" in unsupported((Insn(0x30, 0, 0, 0xFFFFF000 + 0x2C),
                                                     Insn(0x06, 0, 0, 0)))
    assert "jumps outside" in unsupported((Insn(0x15, 5, 0, 1), Insn(0x06, 0, 0, 0)))


def test_every_program_of_the_list_is_runnable():
    for expression in EXPRESSIONS:
        f = compile_filter(expression)
        assert unsupported(f.l2) is None and unsupported(f.l3) is None


def test_division_by_zero_and_long_shifts_reject_or_zero():
    ld_x0 = Insn(0x01, 0, 0, 0)  # X = 0
    prog = (Insn(0x00, 0, 0, 7), ld_x0, Insn(0x3C, 0, 0, 0), Insn(0x06, 0, 0, 1))  # A /= X
    assert run(prog, b"") == 0
    shift = (Insn(0x00, 0, 0, 7), Insn(0x01, 0, 0, 40), Insn(0x6C, 0, 0, 0), Insn(0x16, 0, 0, 0))
    assert run(shift, b"") == 0  # A <<= 40 is 0, then RET A


def test_reference_matches_libpcap_on_all_expression_packet_pairs_quickly():
    # A cross product in one go, as a guard that nothing above was cherry-picked.
    mismatches = []
    for expression, (name, data) in itertools.product(EXPRESSIONS[:10], frames(True)):
        f = compile_filter(expression)
        if (run(f.l2, data) != 0) != libpcap_matches(expression, DLT_EN10MB, data):
            mismatches.append((expression, name))
    assert mismatches == []
