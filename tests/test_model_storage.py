"""The packet store's compact storage (#18.3): what goes in comes back out, segments
are freed with their packets, and a sample costs a few tens of bytes."""

import gc
import random
import tracemalloc
import weakref

from ipft_tui import model
from ipft_tui.model import Capture, Meta, PacketStore, Sample

META_A = Meta(3, "veth0", 4026531840, 43, 0x0800, 17, "192.0.2.1", "192.0.2.2", 4000, 53, 0)
META_B = Meta(4, "veth1", 4026532281, 43, 0x0800, 17, "10.0.0.1", "192.0.2.2", 4000, 53, 0)


def random_samples(count: int, seed: int = 7) -> list[Sample]:
    """Packets of every kind of sample: returns, drop reasons, fields, clones, stacks,
    packet bytes, two metas (a NAT), some out of time order (CPUs' jitter)."""
    rng = random.Random(seed)
    out, ts = [], 10**12
    for i in range(count):
        pid = 0xFFFF888100000000 + rng.randrange(8) * 256
        ts += rng.randrange(1, 2_000)
        late = rng.random() < 0.1
        out.append(Sample(
            packet_id=pid, timestamp=ts - (1_500 if late else 0), processor_id=rng.randrange(4),
            function=rng.choice(["ip_rcv", "udp_rcv", "net_dev_queue", "skb_clone"]),
            is_return=rng.random() < 0.2,
            fields={"n": i} if rng.random() < 0.1 else None,
            drop_reason=rng.choice([None, None, "NO_SOCKET"]),
            meta=rng.choice([None, META_A, META_B]),
            skb=pid + rng.choice([0, 0, 64]),
            stack=("a", "b") if rng.random() < 0.05 else None,
            capture=Capture(b"\x45\x00", "l3", 20) if rng.random() < 0.1 else None))
    return out


def test_every_sample_comes_back_as_it_went_in(monkeypatch):
    monkeypatch.setattr(model, "SEGMENT_PACKETS", 3)  # many segments
    samples = random_samples(3_000)
    store = PacketStore(max_packets=None, split_on_free=False)
    for i in range(0, len(samples), 97):
        store.add(samples[i:i + 97])
    assert len({id(p._seg) for p in store.packets.values()}) > 1
    for packet in store.packets.values():
        # A sample comes back without what the store does not keep: an skb that is the
        # packet's own (not a clone), the journey end (seen in the packet's end).
        mine = sorted((s._replace(skb=s.skb if s.skb != s.packet_id else 0)
                       for s in samples if s.packet_id == packet.packet_id),
                      key=lambda s: s.timestamp)
        assert packet.samples == mine
        assert len(packet) == len(mine)
        assert packet.first == mine[0] and packet.last.timestamp == mine[-1].timestamp
        assert packet.duration == mine[-1].timestamp - mine[0].timestamp
        assert packet.cpus == sorted({s.processor_id for s in mine})
        assert packet.functions == {s.function for s in mine}
        assert packet.metas() == list(dict.fromkeys(s.meta for s in mine if s.meta))
    assert sum(len(p) for p in store.packets.values()) == store.samples == len(samples)


def test_a_segment_goes_with_its_last_packet(monkeypatch):
    monkeypatch.setattr(model, "SEGMENT_PACKETS", 4)
    store = PacketStore(max_packets=6)
    first = [Sample(0x1000 + i * 256, 10**9 + i, 0, "consume_skb") for i in range(4)]
    store.add(first)
    segment = weakref.ref(next(iter(store.packets.values()))._seg)
    store.add([Sample(0x9000 + i * 256, 2 * 10**9 + i, 0, "consume_skb") for i in range(5)])
    assert store.evicted == 3 and segment() is not None  # one of its packets is still kept
    store.add([Sample(0xA000, 3 * 10**9, 0, "consume_skb")])
    gc.collect()
    assert segment() is None
    assert len(store.packets) == 6


def test_a_sample_with_its_meta_costs_a_few_tens_of_bytes():
    """Columns, not a tuple per sample: 25,000 journeys of 8 samples on one flow across
    a veth pair (as decoding hands them out: a Meta per device and flow)."""
    metas = [META_A, META_A._replace(ifindex=4, ifname="veth1", netns=4026532281)]
    samples = [Sample(0xFFFF888100000000 + j * 256, 10**12 + j * 8_000 + k * 700, j % 2,
                      ("ip_output", "net_dev_queue", "net_dev_start_xmit", "netif_rx",
                       "ip_rcv", "udp_rcv", "skb_consume_udp", "consume_skb")[k],
                      meta=metas[k >= 4])
               for j in range(25_000) for k in range(8)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = PacketStore(max_packets=None)
    for i in range(0, len(samples), 10_000):
        store.add(samples[i:i + 10_000])
    gc.collect()
    per_sample = (tracemalloc.get_traced_memory()[0] - base) / len(samples)
    tracemalloc.stop()
    assert len(store.packets) == 25_000
    assert per_sample < 50, per_sample


def test_more_functions_and_entry_places_than_a_column_word_holds():
    """Function ids and entry places past 64 go to the segment's dict, not lost."""
    store = PacketStore(max_packets=None)
    names = [f"f{i}" for i in range(70)]
    store.add([Sample(0x1000, 10**9 + i, 0, name) for i, name in enumerate(names)])
    (packet,) = store.packets.values()
    assert packet.functions == set(names) and packet.has_function("f69")
    # 70 devices each entered once: entering the 70th again is another packet (rule 3).
    metas = [META_A._replace(ifindex=i + 1) for i in range(70)]
    store.add([Sample(0x2000, 2 * 10**9 + i, 0, "netif_receive_skb", meta=m)
               for i, m in enumerate(metas)])
    assert len(store.packets) == 2
    store.add([Sample(0x2000, 3 * 10**9, 0, "netif_receive_skb", meta=metas[69])])
    assert len(store.packets) == 3


def test_extreme_values_a_replay_line_may_hold_come_back_unchanged():
    """Whatever the line parsers accept (u64 timestamps, u32 CPUs, any number of
    function names) is stored as it came, not wrapped or mixed into other fields."""
    store = PacketStore(max_packets=None, split_on_free=False)
    samples = [Sample(0x1000, (1 << 64) - 10, (1 << 32) - 1, "late", is_return=True),
               Sample(0x1000, (1 << 64) - 5, 40_000, "later")]
    names = [f"g{i}" for i in range(70_000)]
    samples += [Sample(0x2000, 10**9 + i, i % 3, name) for i, name in enumerate(names)]
    store.add(samples)
    late, far = store.packets.values()
    assert late.samples == samples[:2]
    assert [s.function for s in far.samples] == names
    assert far.samples[-1].processor_id == (70_000 - 1) % 3
