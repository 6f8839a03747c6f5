"""Pure parts of the waterfall and compare views."""

from ipft_tui.compare import CHANGED, ONLY_A, ONLY_B, SAME, Step, align, compare, first_divergence
from ipft_tui.model import PacketStore, Sample
from ipft_tui.tui.sorting import SORTABLE
from ipft_tui.tui.packet_list import COLUMNS
from ipft_tui.waterfall import scale, slowest, waterfall_bars


def packet(steps, pid=1, cpu=0):
    store = PacketStore()
    store.add([Sample(pid, ts, cpu, fn, ret) for fn, ts, ret in steps])
    return next(iter(store.packets.values()))


def names(rows, side):
    return [getattr(r, side).function if getattr(r, side) else None for r in rows]


def test_align_pairs_replacements_and_keeps_one_sided_steps():
    a = [Step(f, i * 10) for i, f in enumerate(["ip_rcv", "nf_hook_slow", "udp_rcv", "consume_skb"])]
    b = [Step(f, i * 15) for i, f in enumerate(["ip_rcv", "udp_rcv", "kfree_skb", "extra"])]
    rows = align(a, b)
    assert [r.kind for r in rows] == [SAME, ONLY_A, SAME, CHANGED, ONLY_B]
    assert names(rows, "a") == ["ip_rcv", "nf_hook_slow", "udp_rcv", "consume_skb", None]
    assert names(rows, "b") == ["ip_rcv", None, "udp_rcv", "kfree_skb", "extra"]
    assert [r.delta for r in rows] == [0, None, 15 - 20, 30 - 30, None]
    assert first_divergence(rows) == 1


def test_compare_uses_entries_with_repeats_collapsed():
    a = packet([("ip_rcv", 100, False), ("ip_rcv", 150, False), ("ip_rcv", 160, True),
                ("udp_rcv", 300, False)])
    b = packet([("ip_rcv", 1000, False), ("udp_rcv", 1500, False)], pid=2)
    rows, divergence = compare(a, b)
    assert divergence is None
    assert [(r.a.offset, r.b.offset, r.delta) for r in rows] == [(0, 0, 0), (200, 500, 300)]


def test_waterfall_gaps_between_samples_and_the_slowest():
    p = packet([("a", 0, False), ("b", 10, False), ("c", 100, False), ("d", 105, False)])
    bars = waterfall_bars(p, graph=False)
    assert [(b.function, b.length) for b in bars] == [("a", 10), ("b", 90), ("c", 5), ("d", 0)]
    assert slowest(bars) == 1


def test_waterfall_calls_nest_with_self_time():
    p = packet([("outer", 0, False), ("inner", 10, False), ("inner", 60, True),
                ("outer", 100, True)])
    bars = waterfall_bars(p)
    assert [(b.function, b.depth, b.length, b.self_time) for b in bars] == \
        [("outer", 0, 100, 50), ("inner", 1, 50, 50)]
    assert slowest(bars) == 0  # the first of equal self times


def test_scale_keeps_points_visible_and_fits_the_axis():
    assert scale(0, 100, 0, 100, 10) == (0, 10)
    assert scale(100, 100, 0, 100, 10) == (9, 10)  # a point at the end: the last cell
    assert scale(50, 51, 0, 100, 10) == (5, 6)
    assert scale(5, 5, 5, 0, 10) == (0, 1)  # a journey of one instant


def test_every_packet_list_column_sorts():
    assert SORTABLE == {column.title for column in COLUMNS}
