"""Packet bytes on real traffic: decoded fields equal what was sent; a DNAT rewrite is found
at the right sample; a VXLAN pair shows the inner packet; tshark reads the pcapng."""

import json
import subprocess
import time

import pytest

from ipft_tui.model import Capture
from ipft_tui.packet import changes, decode

MARK = 0x5161
pytestmark = pytest.mark.root


def fields_of(capture: Capture) -> dict[str, dict[str, str]]:
    return {layer.key: {f.key: f.value for f in layer.fields} for layer in decode(capture)}


def captured(samples: list[dict]) -> list[tuple[dict, Capture]]:
    return [(s, Capture(bytes.fromhex(s["packet"]), s["packet_offset"], s["packet_len"]))
            for s in samples if "packet" in s]


def send(veth, code: str) -> None:
    """Run code in A with `marked(sock)` setting SO_MARK: packets are marked from the start."""
    veth.exec(veth.ns_a, "python3", "-c", "import socket, struct\n"
              "def marked(s):\n"
              f"    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack('I', {MARK}))\n"
              "    return s\n" + code)


def samples_of(tp) -> list[dict]:
    assert tp.stop() == 0, tp.stderr
    return [json.loads(line) for line in tp.stdout.splitlines()]


def test_udp_tcp_icmp_ipv4_and_ipv6_fields_equal_what_was_sent(veth, trace_process, nothing_left_behind):
    for ns in (veth.ns_a, veth.ns_b):
        veth.exec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0")
    veth.exec(veth.ns_a, "ip", "addr", "add", "fd00::1/64", "dev", veth.dev_a, "nodad")
    veth.exec(veth.ns_b, "ip", "addr", "add", "fd00::2/64", "dev", veth.dev_b, "nodad")
    # Marked by the sending sockets; followed into B (crossing namespaces clears the mark).
    tp = trace_process("-m", hex(MARK), "-o", "json", "--capture-bytes", "128", "--output-tuple",
                       "--track-skb")
    tp.wait_ready()
    send(veth, f"s = marked(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n"
               f"s.bind(('0.0.0.0', 40111)); s.sendto(b'A' * 300, ('{veth.b_addr}', 7001))\n")
    send(veth, "s = marked(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))\n"
               "s.bind(('::', 40112)); s.sendto(b'B' * 40, ('fd00::2', 7002))\n")
    veth.exec(veth.ns_a, "ping", "-c", "1", "-W", "1", "-s", "56", "-m", str(MARK), veth.b_addr,
              check=False)
    send(veth, f"s = marked(socket.socket()); s.settimeout(2); s.bind(('0.0.0.0', 40113))\n"
               f"s.connect_ex(('{veth.b_addr}', 7003))\n")  # nobody listens: SYN, then RST back
    time.sleep(0.3)
    samples = captured(samples_of(tp))

    def first(pred):
        return next(c for s, c in samples if pred(s))

    udp = first(lambda s: s.get("dport") == 7001 and s["function"] == "netif_receive_skb")
    f = fields_of(udp)
    assert udp.offset == "l2" and udp.length == 14 + 20 + 8 + 300  # the frame, MAC header included
    assert len(udp.data) == 128  # linear data longer than asked: cut at 128
    assert (f["IPv4"]["src"], f["IPv4"]["dst"], f["IPv4"]["ttl"]) == (veth.a_addr, veth.b_addr, "64")
    assert (f["UDP"]["sport"], f["UDP"]["dport"], f["UDP"]["len"]) == ("40111", "7001", "308")
    assert udp.data.endswith(b"A" * 20)
    # UDP pulled its header and freed the datagram: the length still counts the whole frame.
    freed = first(lambda s: s.get("dport") == 7001 and s["function"] == "kfree_skb")
    assert freed.length == udp.length and freed.offset == "l2"

    six = first(lambda s: s.get("dport") == 7002 and s["function"] == "netif_receive_skb")
    f = fields_of(six)
    assert (f["IPv6"]["src"], f["IPv6"]["dst"], f["UDP"]["dport"], f["UDP"]["len"]) == (
        "fd00::1", "fd00::2", "7002", "48")
    assert len(six.data) == 14 + 40 + 8 + 40  # a short packet is copied whole

    ping = first(lambda s: s.get("l4_proto") == 1 and s["function"] == "netif_receive_skb")
    assert fields_of(ping)["ICMP"]["type"] == "8 (Echo (ping) request)"

    syn = first(lambda s: s.get("dport") == 7003 and s["function"] == "netif_receive_skb")
    f = fields_of(syn)
    assert f["TCP"]["flags"] == "SYN" and f["TCP"]["sport"] == "40113" and "MSS=1460" in f["TCP"]["options"]


def test_dnat_is_found_at_the_rewriting_sample_and_tshark_reads_the_pcap(veth, trace_process,
                                                                        nothing_left_behind, tmp_path):
    veth.exec(veth.ns_b, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "udp", "--dport", "7100",
              "-j", "DNAT", "--to-destination", f"{veth.b_addr}:7200")
    pcap = tmp_path / "trace.pcapng"
    tp = trace_process("-m", hex(MARK), "-o", "json", "--write-pcap", str(pcap), "--output-tuple",
                       "--track-skb")
    tp.wait_ready()
    send(veth, f"s = marked(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n"
               f"s.sendto(b'nat me', ('{veth.b_addr}', 7100))\n")
    time.sleep(0.3)
    samples = [(s, c) for s, c in captured(samples_of(tp)) if s.get("l4_proto") == 17]
    assert samples, "no UDP sample with bytes"
    changed = [(s["function"], c) for (prev_s, prev), (s, c) in zip(samples, samples[1:])
               for c in [changes(prev, c)] if any(x.key == "dport" for x in c)]
    assert len(changed) == 1, changed
    function, found = changed[0]
    # The DNAT rewrite happens in the PREROUTING hook: the first sample after it sees 7200.
    dport = next(x for x in found if x.key == "dport")
    assert (dport.layer, dport.before, dport.after) == ("UDP", "7100", "7200")
    before = [s["function"] for s, _ in samples][:[s["function"] for s, _ in samples].index(function)]
    assert "netif_receive_skb" in before  # received with the old port, rewritten after
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=|",
                          "-e", "udp.dstport", "-e", "frame.comment", "-e", "frame.interface_name"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    assert len(rows) == len(samples)
    assert {r[0] for r in rows} == {"7100", "7200"}
    assert [r[1].split()[0] for r in rows] == [s["function"] for s, _ in samples]
    assert all(f"packet_id={samples[0][0]['packet_id']}" in r[1] for r in rows)
    assert {r[2] for r in rows} >= {f"{veth.dev_b}@{samples[-1][0]['netns']}"}


def test_vxlan_pair_shows_the_inner_packet(veth, trace_process, nothing_left_behind):
    for ns, dev, local, remote, inner in ((veth.ns_a, veth.dev_a, veth.a_addr, veth.b_addr, "10.77.0.1"),
                                          (veth.ns_b, veth.dev_b, veth.b_addr, veth.a_addr, "10.77.0.2")):
        veth.exec(ns, "ip", "link", "add", "vx0", "type", "vxlan", "id", "4242", "local", local, "remote",
                  remote, "dstport", "4789", "dev", dev)
        veth.exec(ns, "ip", "addr", "add", f"{inner}/24", "dev", "vx0")
        veth.exec(ns, "ip", "link", "set", "vx0", "up")
    veth.exec(veth.ns_a, "ip", "neigh", "replace", "10.77.0.2", "lladdr", "02:00:00:77:00:02", "dev", "vx0")
    veth.exec(veth.ns_b, "ip", "link", "set", "vx0", "address", "02:00:00:77:00:02")
    tp = trace_process("-m", hex(MARK), "-o", "json", "--capture-bytes", "160", "--output-tuple",
                       "--track-skb")
    tp.wait_ready()
    send(veth, "s = marked(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n"
               "s.bind(('10.77.0.1', 40222)); s.sendto(b'inner', ('10.77.0.2', 7300))\n")
    time.sleep(0.3)
    samples = captured(samples_of(tp))
    outer = [c for s, c in samples if "VXLAN" in fields_of(c)]
    assert outer, [s["function"] for s, _ in samples]
    f = fields_of(outer[0])
    assert f["VXLAN"]["vni"] == "4242" and f["UDP (outer 1)"]["dport"] == "4789"
    assert (f["IPv4"]["src"], f["IPv4"]["dst"], f["UDP"]["dport"]) == ("10.77.0.1", "10.77.0.2", "7300")
    # After decapsulation the same skb carries only the inner frame: the tunnel was removed.
    inner = [c for s, c in samples if "VXLAN" not in fields_of(c) and "IPv4" in fields_of(c)
             and fields_of(c)["IPv4"]["dst"] == "10.77.0.2"]
    assert inner
    removed = [c.text() for c in changes(outer[-1], inner[0])]
    assert "VXLAN removed" in removed


def test_plain_json_with_bytes_takes_the_fast_path(veth, trace_process, nothing_left_behind):
    """Without tuple fields or skb following, lines are formatted straight from records."""
    tp = trace_process("-m", hex(MARK), "-o", "json", "--capture-bytes", "64")
    tp.wait_ready()
    send(veth, f"s = marked(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n"
               f"s.bind(('0.0.0.0', 40114)); s.sendto(b'C' * 100, ('{veth.b_addr}', 7004))\n")
    time.sleep(0.3)
    samples = captured(samples_of(tp))
    sent = [c for s, c in samples if s["function"] == "net_dev_start_xmit"]
    assert sent and all("ifname" not in s for s, _ in samples)
    f = fields_of(sent[0])
    assert (f["IPv4"]["dst"], f["UDP"]["sport"], f["UDP"]["dport"]) == (veth.b_addr, "40114", "7004")
    assert len(sent[0].data) == 64 and sent[0].length == 14 + 20 + 8 + 100


async def test_live_tui_decodes_packets_and_writes_pcap(nothing_left_behind, tmp_path):
    from ipft_tui.batching import SampleBuffer
    from ipft_tui.demo import DemoTraffic
    from ipft_tui.settings import TraceSettings
    from ipft_tui.tui.app import IpftApp
    from ipft_tui.tui.sources import LiveSource
    from tests.test_tui_real import wait_until

    pcap = tmp_path / "live.pcapng"
    buffer = SampleBuffer()
    source = LiveSource(TraceSettings(mark=0xDEADBEEF, meta=True, capture_bytes=128), buffer,
                        pcap_path=str(pcap))
    app = IpftApp(source, buffer, follow=False)
    with DemoTraffic(interval=0.3):
        async with app.run_test(size=(150, 40)) as pilot:
            assert await wait_until(pilot, lambda: source.ready), source.error

            def captured_packet():
                return next((p for p in app.store.packets.values()
                             if any(s.capture for s in p.samples)), None)

            assert await wait_until(pilot, lambda: captured_packet() is not None)
            await pilot.press("g", "enter", "down")
            detail = app.query_one("#detail").render().plain
            assert "packet (" in detail and "Internet Protocol Version 4, Src: 192.0.2." in detail
            await pilot.press("q")
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e",
                          "frame.comment"], capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert rows and all(r[0].startswith("192.0.2.") and "packet_id=0x" in r[1] for r in rows)
