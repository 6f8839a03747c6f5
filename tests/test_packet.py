"""Packet decoding, hex dump and what-changed, on packets built byte by byte here."""

import socket
import struct

from ipft_tui.packet import L2, L3, Capture, changed_fields, changes, decode, hexdump


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def eth(dst: str, src: str, ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    mac = lambda s: bytes.fromhex(s.replace(":", ""))  # noqa: E731
    tag = struct.pack(">HH", 0x8100, (3 << 13) | vlan) if vlan is not None else b""
    return mac(dst) + mac(src) + tag + struct.pack(">H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, ident: int = 0x1234) -> bytes:
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, ttl, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack(">H", csum(header)) + header[12:]
    return header + payload


def ipv6(src: str, dst: str, nxt: int, payload: bytes, hlim: int = 64) -> bytes:
    return (struct.pack(">IHBB", 6 << 28 | 0xABCDE, len(payload), nxt, hlim)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + payload)


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0xBEEF) + payload


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, win: int, options: bytes = b"") -> bytes:
    off = (20 + len(options)) // 4
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0x1111, 0) + options


def fields(layer) -> dict[str, str]:
    return {f.key: f.value for f in layer.fields}


def cap(data: bytes, offset: str = L2, length: int | None = None) -> Capture:
    return Capture(data, offset, len(data) if length is None else length)


MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def test_tcp_over_ipv4_fields_equal_what_was_built():
    options = struct.pack(">BBH", 2, 4, 1460) + b"\x01" + struct.pack(">BBB", 3, 3, 7)
    frame = eth(MAC_B, MAC_A, 0x0800,
                ipv4("192.0.2.1", "198.51.100.7", 6, tcp(40000, 443, 1000, 2000, 0x12, 64240, options),
                     ttl=61))
    layers = decode(cap(frame))
    assert [layer.name for layer in layers] == ["Ethernet", "IPv4", "TCP"]
    assert fields(layers[0]) | {} == {"dst": MAC_B, "src": MAC_A, "type": "0x0800 (IPv4)"}
    ip = fields(layers[1])
    assert (ip["src"], ip["dst"], ip["ttl"], ip["proto"], ip["flags"], ip["id"]) == (
        "192.0.2.1", "198.51.100.7", "61", "TCP (6)", "DF", "0x1234")
    t = fields(layers[2])
    assert (t["sport"], t["dport"], t["seq"], t["ack"], t["win"], t["flags"]) == (
        "40000", "443", "1000", "2000", "64240", "SYN,ACK")
    assert t["options"] == "MSS=1460 NOP WS=7"
    assert "Src Port: 40000" in layers[2].summary


def test_vlan_and_arp():
    arp = struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes.fromhex("02000000000a"),
                      socket.inet_aton("10.0.0.1"), b"\0" * 6, socket.inet_aton("10.0.0.2"))
    layers = decode(cap(eth("ff:ff:ff:ff:ff:ff", MAC_A, 0x0806, arp, vlan=42)))
    assert [layer.name for layer in layers] == ["Ethernet", "ARP"]
    assert fields(layers[0])["vlan.id"] == "42" and fields(layers[0])["vlan.pcp"] == "3"
    a = fields(layers[1])
    assert (a["op"], a["spa"], a["tpa"], a["sha"]) == ("request", "10.0.0.1", "10.0.0.2", MAC_A)


def test_ipv6_with_extension_header_udp_from_network_header():
    # Hop-by-hop options (8 bytes: next header UDP, length 0, PadN) then UDP.
    hbh = struct.pack(">BB", 17, 0) + b"\x01\x04\0\0\0\0"
    packet = ipv6("2001:db8::1", "2001:db8::2", 0, hbh + udp(5353, 53, b"hello"), hlim=7)
    layers = decode(cap(packet, L3))
    assert [layer.name for layer in layers] == ["IPv6", "UDP", "Data"]
    six = fields(layers[0])
    assert (six["src"], six["dst"], six["hlim"], six["flow"]) == ("2001:db8::1", "2001:db8::2", "7", "0xabcde")
    assert six["ext0"].startswith("HopOpts") or "op" in six["ext0"]
    assert fields(layers[1])["dport"] == "53" and fields(layers[1])["len"] == "13"


def test_icmp_and_icmpv6_echo():
    echo = struct.pack(">BBHHH", 8, 0, 0, 0x77, 5) + b"ping"
    layers = decode(cap(ipv4("10.0.0.1", "10.0.0.2", 1, echo), L3))
    assert fields(layers[1])["type"] == "8 (Echo (ping) request)"
    assert (fields(layers[1])["echo.id"], fields(layers[1])["echo.seq"]) == ("119", "5")
    echo6 = struct.pack(">BBHHH", 128, 0, 0, 9, 3)
    layers = decode(cap(ipv6("fd00::1", "fd00::2", 58, echo6), L3))
    assert layers[1].name == "ICMPv6" and fields(layers[1])["echo.seq"] == "3"


def test_vxlan_and_geneve_inner_packets():
    inner = eth(MAC_B, MAC_A, 0x0800, ipv4("10.1.0.1", "10.1.0.2", 17, udp(1111, 2222, b"x")))
    vx = struct.pack(">B3s3sB", 0x08, b"\0\0\0", (4242).to_bytes(3, "big"), 0) + inner
    outer = eth(MAC_A, MAC_B, 0x0800, ipv4("192.168.0.1", "192.168.0.2", 17, udp(50000, 4789, vx)))
    layers = decode(cap(outer))
    assert [layer.name for layer in layers] == ["Ethernet", "IPv4", "UDP", "VXLAN", "Ethernet", "IPv4",
                                                "UDP", "Data"]
    assert fields(layers[3])["vni"] == "4242"
    # Keys count from the inside: the inner packet keeps the plain names.
    assert [layer.key for layer in layers[:3]] == ["Ethernet (outer 1)", "IPv4 (outer 1)", "UDP (outer 1)"]
    assert fields(layers[5])["src"] == "10.1.0.1"
    gen = struct.pack(">BBH3sB", 1, 0, 0x6558, (7).to_bytes(3, "big"), 0) + b"\0" * 4 + inner
    layers = decode(cap(ipv6("fd00::1", "fd00::2", 17, udp(3333, 6081, gen)), L3))
    assert [layer.name for layer in layers][:5] == ["IPv6", "UDP", "GENEVE", "Ethernet", "IPv4"]
    assert fields(layers[2])["vni"] == "7" and fields(layers[2])["options"] == "4"


def test_truncated_capture_decodes_what_is_there():
    frame = eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2, 3, 4, 0x10, 5)))
    layers = decode(cap(frame[:30], length=1500))  # cut inside the IPv4 header
    assert layers[0].name == "Ethernet"
    assert "capture ends here: 30 of 1500 bytes" in layers[-1].summary
    assert decode(cap(b"", L3)) == []


def test_hexdump_offsets_hex_and_ascii():
    lines = hexdump(bytes(range(0x41, 0x41 + 20)))
    assert lines[0] == "0000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP"
    assert lines[1].startswith("0010  51 52 53 54") and lines[1].endswith("QRST")
    assert hexdump(b"\x00\x7f")[0].endswith("..")


def test_changes_nat_ttl_and_checksum():
    before = cap(eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.9.9.9", 17, udp(4000, 80, b"q"), ttl=64)))
    after = cap(eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.1.2", 17, udp(4000, 8080, b"q"), ttl=63)))
    found = {(c.layer, c.key): (c.before, c.after) for c in changes(before, after)}
    assert found[("IPv4", "dst")] == ("10.9.9.9", "10.0.1.2")
    assert found[("IPv4", "ttl")] == ("64", "63")
    assert found[("UDP", "dport")] == ("80", "8080")
    assert ("IPv4", "csum") in found
    assert ("IPv4", "src") not in found and ("Ethernet", "src") not in found
    assert ("IPv4", "dst") in changed_fields(before, after)
    assert changes(before, before) == [] and changes(None, after) == []


def test_changes_encapsulation_added_and_link_header():
    inner_ip = ipv4("10.1.0.1", "10.1.0.2", 17, udp(1111, 2222, b"x"))
    plain = cap(inner_ip, L3)
    vx = struct.pack(">B3s3sB", 0x08, b"\0\0\0", (1).to_bytes(3, "big"), 0) + eth(MAC_B, MAC_A, 0x0800, inner_ip)
    wrapped = cap(eth(MAC_A, MAC_B, 0x0800, ipv4("192.168.0.1", "192.168.0.2", 17, udp(5, 4789, vx))))
    found = changes(plain, wrapped)
    texts = [c.text() for c in found]
    assert "VXLAN added" in texts and "IPv4 (outer 1) added" in texts
    assert "link header: l3 -> l2" in texts
    assert not [t for t in texts if t.startswith("length")]  # the link header explains it
    # The inner packet itself did not change: no field change for it.
    assert not [c for c in found if c.layer == "IPv4" and c.key]
    back = [c.text() for c in changes(wrapped, plain)]
    assert "VXLAN removed" in back


def test_changes_length_only():
    frame = eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"abc")))
    assert [c.text() for c in changes(cap(frame, length=1000), cap(frame, length=980))] == [
        "length: 1000 -> 980"]


def test_json_carries_packet_bytes_and_replay_decodes_them():
    from ipft_tui.model import Sample
    from ipft_tui.outputs import jsonlines

    frame = eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 53, b"abc")))
    sample = Sample(0xFFFF1, 5, 1, "ip_rcv", capture=Capture(frame, L2, 1500))
    line = jsonlines.format_sample(sample)
    assert f'"packet":"{frame.hex()}","packet_offset":"l2","packet_len":1500' in line
    back = jsonlines.parse_line(line)
    assert back == sample and back.fields is None
    assert fields(decode(back.capture)[2])["dport"] == "53"
    bad = line.replace('"l2"', '"l4"')
    import pytest
    with pytest.raises(ValueError, match="packet_offset"):
        jsonlines.parse_line(bad)
    with pytest.raises(ValueError):
        jsonlines.parse_line(line.replace(frame.hex(), "zz"))


def test_store_keeps_bytes_and_shares_unchanged_ones():
    from ipft_tui.model import PacketStore, Sample

    frame = eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 53, b"abc")))
    nat = eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.0.9", 17, udp(1, 53, b"abc")))
    store = PacketStore()
    store.add([Sample(7, 1, 0, "a", capture=Capture(frame, L2, 45)),
               Sample(7, 2, 0, "b", capture=Capture(bytes(frame), L2, 45)),
               Sample(7, 3, 0, "c"),
               Sample(7, 4, 0, "d", capture=Capture(nat, L2, 45))])
    [packet] = store.packets.values()
    got = [s.capture for s in packet.samples]
    assert got[0] == got[1] and got[0] is got[1]  # one copy kept for equal bytes
    assert got[2] is None and got[3].data == nat


def test_store_shares_bytes_with_the_journeys_previous_sample_when_packets_interleave():
    from ipft_tui.model import PacketStore, Sample

    frames = [eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(n, 53, b"abc")))
              for n in (1, 2)]
    store = PacketStore()
    # Two packets in flight (two CPUs): each sample's previous in the store is the other's.
    store.add([Sample(pid, ts, 0, name, capture=Capture(bytes(frames[pid - 7]), L2, 45))
               for ts, (name, pid) in enumerate([("a", 7), ("a", 8), ("b", 7), ("b", 8)])])
    for packet in store.packets.values():
        first, second = (s.capture for s in packet.samples)
        assert first == second and first is second


def test_l3_bytes_that_are_not_ip_are_data():
    layers = decode(cap(tcp(1, 2, 3, 4, 0x10, 5), L3))  # a TCP header where IP was expected
    assert [layer.name for layer in layers] == ["Data"]


def test_packet_bytes_from_records_to_json_and_back():
    from ipft_tui.outputs import jsonlines
    from ipft_tui.tracing.decode import RecordBatch, RecordLayout, decode as decode_records
    from ipft_tui.tracing.event import EventLayout, capture_room

    frame = eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 53, b"abc")))
    room = frame + b"\xee" * (128 - len(frame))  # bytes past `captured` are not the packet's
    layout = RecordLayout(["netif_receive_skb", "kfree_skb"], {2: "NO_SOCKET"},
                          EventLayout(capture_room=capture_room(128)))
    records = [(0, 0xAB, 10, 0, 1, 0, 0, len(frame) - 14, 14, len(frame), 1, room),
               (0, 0xAB, 20, 1, 0, 0, 2, 20, 14, 30, 0, room[14:] + bytes(14)),
               (0, 0xAB, 30, 1, 0, 0, 0, 0, 0, 0, 0, b"\0" * 128)]  # nothing could be read
    assert jsonlines.format_records(RecordBatch(records, layout)) is None  # the sample path
    lines = [jsonlines.format_sample(s) for s in decode_records(records, layout)]
    first, second, third = (jsonlines.parse_line(line) for line in lines)
    assert first.capture == Capture(frame, L2, len(frame))
    assert second.capture.offset == L3 and second.capture.length == 34 and second.drop_reason == "NO_SOCKET"
    assert third.capture is None
