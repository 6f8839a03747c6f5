from ipft_tui.calltree import build_call_tree, flatten
from ipft_tui.model import Sample

P = 0xFFFF0001


def e(t, fn, cpu=0):
    return Sample(P, t, cpu, fn, False)


def r(t, fn, cpu=0):
    return Sample(P, t, cpu, fn, True)


def shape(nodes):
    return [(n.function, n.duration, shape(n.children)) for n in nodes]


def test_nesting_durations_and_self_time():
    roots = build_call_tree([e(1, "ip_local_deliver"), e(3, "ip_local_deliver_finish"),
                             r(10, "ip_local_deliver_finish"), r(15, "ip_local_deliver")])
    assert shape(roots) == [("ip_local_deliver", 14, [("ip_local_deliver_finish", 7, [])])]
    assert roots[0].self_time == 7 and roots[0].children[0].depth == 1


def test_input_order_does_not_matter():
    samples = [e(1, "a"), e(2, "b"), r(3, "b"), r(4, "a")]
    assert shape(build_call_tree(list(reversed(samples)))) == shape(build_call_tree(samples))


def test_functions_that_never_return_are_leaf_events():
    roots = build_call_tree([e(1, "net_dev_queue"), e(2, "a"), e(3, "kfree_skb"), r(5, "a"),
                             e(6, "consume_skb")])
    assert shape(roots) == [("net_dev_queue", None, []), ("a", 3, [("kfree_skb", None, [])]),
                            ("consume_skb", None, [])]


def test_missing_return_is_closed_by_the_outer_return():
    # b returns elsewhere, so it is a call: its second return was lost
    samples = [e(1, "a"), e(2, "b"), e(3, "c"), r(4, "c"), r(9, "a"), e(10, "b"), r(11, "b")]
    roots = build_call_tree(samples)
    assert shape(roots) == [("a", 8, [("b", None, [("c", 1, [])])]), ("b", 1, [])]
    assert roots[0].self_time == 8  # b's unknown duration counts as 0


def test_returning_set_can_come_from_the_whole_trace():
    roots = build_call_tree([e(1, "b"), e(2, "x")], returning={"b"})
    assert shape(roots) == [("b", None, [("x", None, [])])]


def test_return_without_entry_tracing_started_mid_call():
    roots = build_call_tree([r(1, "netif_receive_skb"), e(2, "x"), r(3, "x")])
    assert [(n.function, n.entry, n.duration) for n in roots] == [
        ("netif_receive_skb", None, None), ("x", roots[1].entry, 1)]
    assert roots[0].timestamp == 1


def test_recursion_pairs_innermost_first():
    roots = build_call_tree([e(1, "f"), e(2, "f"), r(3, "f"), r(7, "f")])
    assert shape(roots) == [("f", 6, [("f", 1, [])])]


def test_interleaved_cpus_keep_separate_stacks():
    samples = [e(1, "a", cpu=0), e(2, "b", cpu=1), e(3, "c", cpu=0), r(4, "b", cpu=1),
               r(5, "c", cpu=0), r(6, "a", cpu=0)]
    assert shape(build_call_tree(samples)) == [("a", 5, [("c", 2, [])]), ("b", 2, [])]


def test_flatten_is_depth_first():
    roots = build_call_tree([e(1, "a"), e(2, "b"), r(3, "b"), e(4, "c"), r(5, "c"), r(6, "a"),
                             e(7, "d")])
    assert [n.function for n in flatten(roots)] == ["a", "b", "c", "d"]
