"""Paths (journeys grouped by function sequence) and the journey filter language."""

import json

import pytest

from ipft_tui.journey_filter import FilterError, compile_filter
from ipft_tui.model import Meta, PacketStore, Sample
from ipft_tui.outputs.paths import PathsOutput, render_json, render_text
from ipft_tui.paths import group_paths, percentile

A_NS, B_NS = 4026531840, 4026532281


def meta(dev: str, netns: int, dport: int = 7777, proto: int = 17) -> Meta:
    return Meta(3 if dev == "veth0" else 4, dev, netns, 60, 0x0800, proto, "192.0.2.1",
                "192.0.2.2", 5000, dport, 0)


def journey(pid: int, start: int, steps, cpu: int = 0) -> list[Sample]:
    """steps: (function, gap ns, drop reason or None, meta or None)"""
    out, ts = [], start
    for function, gap, reason, m in steps:
        ts += gap
        out.append(Sample(pid, ts, cpu, function, False, drop_reason=reason, meta=m))
    return out


OUT = meta("veth0", A_NS)
IN = meta("veth1", B_NS)
DELIVERED = [("ip_output", 0, None, OUT), ("nf_hook_slow", 100, None, OUT),
             ("nf_hook_slow", 50, None, OUT), ("netif_rx", 200, None, IN),
             ("udp_rcv", 300, None, IN), ("consume_skb", 400, None, IN)]
DROPPED = [("ip_output", 0, None, OUT), ("netif_rx", 1000, None, IN),
           ("kfree_skb", 2000, "NO_SOCKET", meta("veth1", B_NS, dport=9))]
OPEN = [("ip_output", 0, None, OUT), ("dev_queue_xmit", 10, None, OUT)]


@pytest.fixture
def store() -> PacketStore:
    samples = []
    # Three delivered journeys (one with its address recycled), two drops, one open.
    samples += journey(0x100, 1_000, DELIVERED)
    samples += journey(0x100, 10_000, DELIVERED)
    samples += journey(0x200, 20_000, DELIVERED, cpu=1)
    samples += journey(0x300, 30_000, DROPPED)
    samples += journey(0x400, 40_000, DROPPED)
    samples += journey(0x500, 50_000, OPEN)
    samples[-1] = samples[-1]._replace(fields={"len": 60})  # an extension's field
    s = PacketStore(max_packets=100)
    s.add(samples)
    return s


def test_paths_group_journeys_with_counts_outcomes_and_durations(store):
    paths = group_paths(store.packets.values())
    assert [p.count for p in paths] == [3, 2, 1]
    delivered, dropped, still_open = paths
    # The repeated dev_queue_xmit is collapsed.
    assert delivered.functions == ("ip_output", "nf_hook_slow", "netif_rx", "udp_rcv",
                                   "consume_skb")
    assert dict(delivered.outcomes) == {"consumed": 3}
    assert delivered.duration_stats() == (1050, 1050, 1050)
    assert list(delivered.places) == [f"veth0@{A_NS}", f"veth1@{B_NS}"]
    assert dropped.outcome == "drop: NO_SOCKET"
    assert dropped.duration_stats() == (3000, 3000, 3000)
    assert still_open.outcome == "open" and still_open.duration_stats() is None
    assert sorted(store.packets[k].packet_id for k in dropped.keys) == [0x300, 0x400]


def test_path_cache_follows_new_samples(store):
    packet = next(p for p in store.packets.values() if p.packet_id == 0x500)
    assert packet.path()[0] == ("ip_output", "dev_queue_xmit")
    store.add([Sample(0x500, 60_000, 0, "kfree_skb", False, drop_reason="NETFILTER_DROP")])
    assert packet.path()[0] == ("ip_output", "dev_queue_xmit", "kfree_skb")


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([], 0.5)) == (50, 99, 0)
    assert percentile([7], 0.99) == 7


def test_paths_text_and_json(store):
    paths = group_paths(store.packets.values())
    text = render_text(paths)
    assert text.splitlines()[0] == "3 paths, 6 journeys"
    assert "#1  3 journeys (50.0%)  ends: consumed (3)  duration p50 1.1µs" in text
    assert "#2  2 journeys (33.3%)  ends: drop: NO_SOCKET (2)" in text
    assert "duration: no end seen" in text
    assert "    path (3): ip_output > netif_rx > kfree_skb" in text
    doc = json.loads(render_json(paths))
    assert doc["journeys"] == 6
    assert [p["count"] for p in doc["paths"]] == [3, 2, 1]
    assert doc["paths"][1]["ends"] == {"drop: NO_SOCKET": 2}
    assert doc["paths"][0]["duration_ns"] == {"p50": 1050, "p99": 1050, "max": 1050}


def test_paths_output_collects_batches(store):
    import io
    out = io.StringIO()
    output = PathsOutput(out, as_json=True)
    for packet in store.packets.values():
        output.write(packet.samples)
    output.finish()
    assert [p["count"] for p in json.loads(out.getvalue())["paths"]] == [3, 2, 1]


@pytest.mark.parametrize("expression, expected", [
    ("drop == NO_SOCKET", {0x300, 0x400}),
    ("drop == NO_SOCKET and dport == 9", {0x300, 0x400}),
    ("drop == NO_SOCKET and dport == 7777", {0x300, 0x400}),  # any value along the way
    ("dport != 9", {0x100, 0x200, 0x500}),
    ("fn ~ ^udp_", {0x100, 0x200}),
    ("fn !~ udp", {0x300, 0x400, 0x500}),
    ("duration > 2us", {0x300, 0x400}),
    ("duration >= 1050ns and duration < 1.1us", {0x100, 0x200}),
    ("dev == veth1", {0x100, 0x200, 0x300, 0x400}),
    (f"netns != {B_NS}", {0x500}),
    ("cpu == 1", {0x200}),
    ("ends == open or samples > 5", {0x100, 0x200, 0x500}),
    ("not (ends == consumed)", {0x300, 0x400, 0x500}),
    ("id == 0x300", {0x300}),
    ("last == kfree_skb", {0x300, 0x400}),
    ("proto == udp and saddr == 192.0.2.1", {0x100, 0x200, 0x300, 0x400, 0x500}),
    ("  ", {0x100, 0x200, 0x300, 0x400, 0x500}),
    ("# >= 4", {0x400, 0x500}),  # keys: 0x100 twice (0, 1), then 2, 3, 4, 5
    ('path == "ip_output > netif_rx > kfree_skb"', {0x300, 0x400}),
    ("path ~ dev_queue_xmit$", {0x500}),
    ('fields ~ "len=60"', {0x500}),
])
def test_filter_selects_journeys(store, expression, expected):
    predicate = compile_filter(expression)
    packets = store.packets.values()
    chosen = {p.packet_id for p in packets if predicate is None or predicate(p)}
    assert chosen == expected


@pytest.mark.parametrize("expression, message, column", [
    ("dorp == X", "unknown field 'dorp'", 1),
    ("drop NO_SOCKET", "expected an operator", 6),
    ("duration > fast", "not a duration", 12),
    ("dport > 7x", "not a number", 9),
    ("drop < A", "drop is text", 8),
    ("(drop == A", "expected ')'", 11),
    ("drop == A B", "expected 'and', 'or' or the end", 11),
    ("fn ~ (", "expected a value", 6),
    ("fn ~ '('", "bad regex", 6),
])
def test_filter_errors_say_what_and_where(expression, message, column):
    with pytest.raises(FilterError) as err:
        compile_filter(expression)
    assert message in str(err.value)
    assert err.value.column == column


def summary(paths):
    return [(p.functions, p.count, dict(p.outcomes), sorted(p.durations), set(p.places), p.keys)
            for p in paths]


def test_path_index_follows_new_changed_and_evicted_journeys(store):
    from ipft_tui.paths import PathIndex
    index = PathIndex()
    assert index.update(store.packets)
    assert summary(index.paths()) == summary(group_paths(store.packets.values()))
    assert not index.update(store.packets)  # nothing new: nothing done
    # The open journey ends in a drop (changes path and outcome), a new drop comes,
    # and with a cap of 5 the two oldest (delivered) journeys are evicted.
    store.max_packets = 5
    store.add([Sample(0x500, 60_000, 0, "kfree_skb", False, drop_reason="NETFILTER_DROP"),
               *journey(0x600, 70_000, DROPPED)])
    assert index.update(store.packets)
    assert summary(index.paths()) == summary(group_paths(store.packets.values()))
    assert [(p.count, p.functions[-1]) for p in index.paths()] == [
        (3, "kfree_skb"), (1, "consume_skb"), (1, "kfree_skb")]
    store.clear()
    index.update(store.packets)
    assert index.paths() == []


def test_path_index_in_slices_ends_like_at_once(store):
    from ipft_tui.paths import PathIndex
    big = PacketStore(max_packets=10_000)
    for n in range(3000):  # journeys with the store fixture's three paths
        big.add([s._replace(packet_id=s.packet_id + n * 0x10_000)
                 for p in store.packets.values() for s in p.samples])
    index = PathIndex()
    index.update(big.packets, budget=0)  # no time at all: a slice of 1024 journeys
    assert not index.complete
    assert sum(p.count for p in index.paths()) == 1024
    slices = 1
    while not index.complete:
        index.update(big.packets, budget=0)
        slices += 1
    assert slices > 3
    assert summary(index.paths()) == summary(group_paths(big.packets.values()))
