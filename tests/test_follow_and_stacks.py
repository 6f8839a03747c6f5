"""Skb following and stack traces: decoding, the model's journeys, outputs (no kernel)."""

from ipft_tui.collector import tracer_frames_dropped
from ipft_tui.kernel.kallsyms import Symbolizer
from ipft_tui.model import PacketStore, Sample, is_clone
from ipft_tui.outputs import aggregate, jsonlines
from ipft_tui.tracing.decode import RecordBatch, RecordLayout
from ipft_tui.tracing.event import EventLayout

FIRST, CLONE, OTHER = 0xFFFF0000AA00, 0xFFFF0000BB00, 0xFFFF0000CC00
NAMES = ["net_dev_queue", "kfree_skb", "consume_skb", "skb_copy_datagram_iovec"]


def record(event: EventLayout, **fields):
    """A record tuple as the ring buffer reader returns it, fields placed by name
    (where they sit in the C struct is checked by compiling it: test_bpf_program_real)."""
    values = [0] * (len(event.index) + 1)
    for name, value in fields.items():
        values[event.index[name]] = value
    return tuple(values)


def test_decode_skb_journey_end_and_stacks():
    event = EventLayout(track_skb=True, stacks=True)
    layout = RecordLayout(NAMES, {2: "NO_SOCKET"}, event,
                          stack_frames={4: ("kfree_skb+0x5", "__udp4_lib_rcv+0x4bc")})
    records = [  # followed, no stack asked
        record(event, packet_id=FIRST, timestamp=10, probe_id=0, processor_id=1, skb=FIRST),
        record(event, packet_id=FIRST, timestamp=20, probe_id=1, processor_id=1, drop_reason=2,
               skb=CLONE, journey_end=1, stack_id=5),  # a clone's free, stack id 4
        record(event, packet_id=FIRST, timestamp=30, probe_id=2,
               stack_id=-14),  # following off; stack failed
    ]
    first, dropped, unfollowed = RecordBatch(records, layout).samples()
    assert (first.skb, first.journey_end, first.stack) == (FIRST, False, None)
    assert not is_clone(first)
    assert is_clone(dropped) and dropped.journey_end is True
    assert dropped.drop_reason == "NO_SOCKET"
    assert dropped.stack == ("kfree_skb+0x5", "__udp4_lib_rcv+0x4bc")
    assert (unfollowed.skb, unfollowed.journey_end) == (0, None)
    assert unfollowed.stack == ("[no stack: error 14]",)


def test_a_clone_freed_first_does_not_end_the_journey():
    samples = [
        Sample(FIRST, 1, 0, "net_dev_queue", skb=FIRST, journey_end=False),
        Sample(FIRST, 2, 0, "consume_skb", skb=CLONE, journey_end=False),  # the clone goes
        Sample(FIRST, 3, 0, "kfree_skb", skb=FIRST, journey_end=True),  # the data goes
        Sample(FIRST, 4, 0, "net_dev_queue", skb=FIRST, journey_end=False),  # address reused
    ]
    store = PacketStore()
    store.add(samples)
    first, second = store.packets.values()
    assert [s.function for s in first.samples] == ["net_dev_queue", "consume_skb", "kfree_skb"]
    assert first.samples[1].skb == CLONE and first.freed
    assert len(second) == 1 and not second.freed


def test_without_following_frees_end_journeys_as_before():
    store = PacketStore()
    store.add([Sample(OTHER, 1, 0, "consume_skb"), Sample(OTHER, 2, 0, "net_dev_queue")])
    assert len(store.packets) == 2


def test_json_round_trip_of_skb_journey_end_and_stack():
    sample = Sample(FIRST, 7, 1, "kfree_skb", drop_reason="NO_SOCKET", skb=CLONE,
                    stack=("kfree_skb+0x5", 'odd"name+0x1'), journey_end=True)
    line = jsonlines.format_sample(sample)
    assert line == ('{"packet_id":"0xffff0000aa00","timestamp":7,"processor_id":1,'
                    '"function":"kfree_skb","is_return":false,"drop_reason":"NO_SOCKET",'
                    '"skb":"0xffff0000bb00","journey_end":true,'
                    '"stack":["kfree_skb+0x5","odd\\"name+0x1"]}')
    assert jsonlines.parse_line(line) == sample
    plain = Sample(FIRST, 7, 1, "kfree_skb")
    assert jsonlines.parse_line(jsonlines.format_sample(plain)) == plain


def test_json_stack_must_be_a_list():
    bad = '{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","stack":"x"}'
    try:
        jsonlines.parse_line(bad)
    except ValueError as exc:
        assert "stack" in str(exc)
    else:
        raise AssertionError("accepted a stack that is not a list")


def test_aggregate_names_clones_and_prints_stacks_under_their_line():
    samples = [Sample(FIRST, 100, 0, "net_dev_queue", skb=FIRST),
               Sample(FIRST, 200, 1, "kfree_skb", drop_reason="NO_SOCKET", skb=CLONE,
                      stack=("kfree_skb+0x5", "ip_rcv+0x10"))]
    lines = aggregate.render(samples).splitlines()
    assert lines[3] == f"{100:<20} 000 {'net_dev_queue':>32}"  # not a clone: no suffix
    assert lines[4] == (f"{200:<20} 001 {'kfree_skb':>32} ( drop_reason: NO_SOCKET "
                        "skb: 0xffff0000bb00 )")
    assert lines[5] == " " * 57 + " <- kfree_skb+0x5"
    assert lines[6] == " " * 57 + " <- ip_rcv+0x10"


def test_symbolizer(tmp_path):
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T _stext\n"
                        "ffffffff81001000 t ip_rcv\n"
                        "ffffffff81002000 D some_data\n"
                        "ffffffffc0001000 t veth_xmit\t[veth]\n")
    sym = Symbolizer(str(kallsyms))
    assert sym.name(0xFFFFFFFF81001010) == "ip_rcv+0x10"
    assert sym.name(0xFFFFFFFF81002004) == "ip_rcv+0x1004"  # data symbols are not code
    assert sym.name(0xFFFFFFFFC0001002) == "veth_xmit+0x2 [veth]"
    assert sym.name(0x1000) == "0x1000"


def test_tracer_frames_are_dropped_from_the_top_only():
    frames = ["bpf_prog_abc_ipft_tp_arg0+0x7f2 [bpf]", "bpf_trace_run2+0xf2", "consume_skb+0x7c",
              "bpf_skb_redirect+0x10"]
    assert tracer_frames_dropped(frames) == ("consume_skb+0x7c", "bpf_skb_redirect+0x10")
    assert tracer_frames_dropped(["bpf_prog_x+0x1"]) == ("bpf_prog_x+0x1",)
    fentry = ["bpf_prog_1+0x9 [bpf]", "bpf_trampoline_66+0x8c [bpf]", "icmp_rcv+0x5",
              "bpf_trampoline_64+0x8c [bpf]", "ip_protocol_deliver_rcu+0x1e8"]
    assert tracer_frames_dropped(fentry) == ("icmp_rcv+0x5", "ip_protocol_deliver_rcu+0x1e8")


def test_fentry_stacks_start_at_the_traced_function():
    """7.x's unwinder starts an fentry program's stack at the traced function's caller;
    the ftrace backend's layout puts the function first (where older kernels had it)."""
    event = EventLayout(stacks=True)
    frames = {0: ("ip_protocol_deliver_rcu+0x1b0", "ip_local_deliver_finish+0x85"),
              1: ("icmp_rcv+0x9", "ip_protocol_deliver_rcu+0x170")}
    names = ["icmp_rcv", "udp_rcv"]
    records = [record(event, probe_id=0, stack_id=1), record(event, probe_id=1, stack_id=1),
               record(event, probe_id=0, stack_id=2), record(event, probe_id=0, stack_id=-14)]
    fentry = RecordBatch(records, RecordLayout(names, {}, event, stack_frames=frames,
                                               traced_first=True)).samples()
    assert [s.stack for s in fentry] == [
        ("icmp_rcv+0x0", "ip_protocol_deliver_rcu+0x1b0", "ip_local_deliver_finish+0x85"),
        ("udp_rcv+0x0", "ip_protocol_deliver_rcu+0x1b0", "ip_local_deliver_finish+0x85"),
        ("icmp_rcv+0x9", "ip_protocol_deliver_rcu+0x170"),  # before 7.x: already first
        ("[no stack: error 14]",)]
    kprobe = RecordBatch(records, RecordLayout(names, {}, event, stack_frames=frames)).samples()
    assert kprobe[0].stack == frames[0]  # other backends: as the kernel reported it
