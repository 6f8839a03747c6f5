"""Where one journey ends and the next begins at a recycled skb address (model.py's rules)."""

from ipft_tui.model import (FREE_PATH_WINDOW, NEW_PACKET_GAP, Meta, PacketStore, Sample,
                            flow_text)
from ipft_tui.outputs.aggregate import journeys_of

SKB = 0xFFFF888100001000
NS_A, NS_B = 4026532177, 4026532300


def meta(ifindex=2, ifname="veth-a", netns=NS_A, proto=17, sport=5000, dport=7777,
         saddr="192.0.2.1", daddr="192.0.2.2"):
    return Meta(ifindex, ifname, netns, 100, 0x800, proto, saddr, daddr, sport, dport, 8)


def at(ts, function, m=None, is_return=False, cpu=0, skb=SKB, **kw):
    return Sample(skb, ts, cpu, function, is_return, meta=m, **kw)


def journeys(samples):
    store = PacketStore()
    store.add(samples)
    return list(store.packets.values())


def test_the_free_path_belongs_to_the_journey_it_frees():
    """kfree_skb -> skb_release_head_state -> skb_release_data -> skb_free_head ->
    kfree_skbmem, as a function backend sees it: one journey, not 1 + 4."""
    m = meta()
    samples = [at(1_000, "ip_rcv", m), at(2_000, "kfree_skb", m, drop_reason="NO_SOCKET"),
               at(2_100, "skb_release_head_state", m), at(2_200, "skb_release_data", m),
               at(2_300, "skb_free_head", m), at(2_400, "kfree_skbmem", m)]
    (packet,) = journeys(samples)
    assert [s.function for s in packet.samples] == [s.function for s in samples]
    assert packet.freed and packet.drop_reason == "NO_SOCKET"
    # The same through -o aggregate --split-on-free.
    assert len(journeys_of(samples, split_on_free=True)) == 1


def test_a_new_packet_after_the_free_starts_a_journey():
    m = meta()
    samples = [at(1_000, "net_dev_queue", m), at(2_000, "consume_skb", m),
               at(2_100, "skb_release_data", m),
               at(50_000, "net_dev_queue", m._replace(sport=5001)),
               # a free function long after the free is another packet's, too
               at(60_000, "ip_rcv", m), at(70_000, "kfree_skb", m),
               at(70_000 + FREE_PATH_WINDOW + 1, "kfree_skb", m)]
    first, second, third = journeys(samples)
    assert [s.function for s in first.samples] == ["net_dev_queue", "consume_skb",
                                                   "skb_release_data"]
    assert [s.function for s in second.samples] == ["net_dev_queue", "ip_rcv", "kfree_skb"]
    assert len(third) == 1


def test_a_recycled_address_without_a_seen_free_starts_a_journey_at_the_same_entry_point():
    """The mark is cleared entering the other namespace, the free is never seen: the
    next datagram sent from the same address is queued on the same device again."""
    udp, icmp = meta(), meta(proto=1, sport=0, dport=0)
    one_send = ["net_dev_queue", "net_dev_start_xmit", "net_dev_xmit"]
    samples = []
    for i, m in enumerate([udp, udp, icmp, icmp]):
        samples += [at(i * 1_000_000 + j, f, m) for j, f in enumerate(one_send)]
    packets = journeys(samples)
    assert [len(p) for p in packets] == [3, 3, 3, 3]
    assert [flow_text(p.meta).split()[0] for p in packets] == ["udp", "udp", "icmp", "icmp"]
    assert all(not p.flow_changes and not p.freed for p in packets)  # the end was not seen: open


def test_crossing_a_veth_pair_is_one_journey():
    """Transmitted in one namespace and received in the other: the same packet."""
    samples = [at(1_000, "net_dev_queue", meta()), at(2_000, "net_dev_start_xmit", meta()),
               at(3_000, "netif_rx", meta(3, "veth-b", NS_B)),
               at(4_000, "net_dev_xmit", meta()),
               at(9_000, "netif_receive_skb", meta(3, "veth-b", NS_B)),
               # forwarded out of B on another device: queued again, elsewhere
               at(12_000, "net_dev_queue", meta(4, "eth1", NS_B)),
               at(13_000, "consume_skb", meta(4, "eth1", NS_B))]
    (packet,) = journeys(samples)
    assert len(packet) == len(samples) and packet.freed


def test_a_long_gap_starts_a_journey_and_returns_stay_with_their_call():
    m = meta()
    samples = [at(1_000, "ip_output", m), at(2_000, "ip_output", m, is_return=True),
               at(2_000 + NEW_PACKET_GAP + 1, "ip_output", m),
               at(3_000 + 2 * NEW_PACKET_GAP, "ip_output", m, is_return=True)]
    first, second = journeys(samples)
    assert len(first) == 2 and len(second) == 2


def test_a_flow_change_is_kept_as_a_change():
    before = meta()
    nat = meta(daddr="198.51.100.9", dport=80)
    samples = [at(1_000, "ip_rcv", before), at(2_000, "nf_nat_ipv4_fn", before),
               at(3_000, "ip_forward", nat), at(4_000, "net_dev_queue", nat._replace(ifindex=5))]
    (packet,) = journeys(samples)
    assert packet.meta == before and packet.flow_changes == [nat]
    assert packet.flows == [before, nat]


def test_grouping_by_address_alone_without_split():
    m = meta()
    samples = [at(1_000, "net_dev_queue", m), at(2_000, "kfree_skb", m),
               at(3_000, "net_dev_queue", m)]
    store = PacketStore(split_on_free=False)
    store.add(samples)
    assert len(store.packets) == 1
    assert len(journeys_of(samples)) == 1 and len(journeys_of(samples, True)) == 2


def test_a_reply_is_another_packet():
    """A TCP reset or an ICMP error from B, attributed to the journey of the packet it
    answers (a recycled buffer whose free was not seen): another journey."""
    syn = meta(proto=6, sport=43660, dport=7778)
    rst = meta(ifindex=2, ifname="veth-b", netns=NS_B, proto=6, sport=7778, dport=43660,
               saddr="192.0.2.2", daddr="192.0.2.1")
    icmp = rst._replace(l4_proto=1, sport=0, dport=0)
    samples = [at(1_000, "net_dev_queue", syn), at(5_000, "netif_receive_skb", syn._replace(
        ifindex=2, netns=NS_B)), at(9_000, "net_dev_queue", rst), at(12_000, "net_dev_xmit", rst),
               at(20_000, "net_dev_queue", icmp)]
    first, second, third = journeys(samples)
    assert len(first) == 2 and len(second) == 2 and len(third) == 1
    assert not first.flow_changes and not second.flow_changes
