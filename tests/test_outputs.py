"""Output formats, byte for byte (golden lines written from ipftrace2's printf formats)."""

import io

from ipft_tui.model import Sample, group_by_packet
from ipft_tui.outputs import aggregate, jsonlines

P1, P2 = 0xFFFF8DEE8AEA9700, 0xFFFF8DEE8AEA9800


def test_json_line_matches_ipftrace2():
    s = Sample(P1, 25340022557487, 0, "validate_xmit_xfrm", False)
    assert jsonlines.format_sample(s) == (
        '{"packet_id":"0xffff8dee8aea9700","timestamp":25340022557487,"processor_id":0,'
        '"function":"validate_xmit_xfrm","is_return":false}')


def test_json_script_fields_are_appended_as_strings():
    s = Sample(P1, 169530008921, 0, "__ip_finish_output", True, {"len": 40, "dev": 'e"th'})
    assert jsonlines.format_sample(s) == (
        '{"packet_id":"0xffff8dee8aea9700","timestamp":169530008921,"processor_id":0,'
        '"function":"__ip_finish_output","is_return":true,"len":"40","dev":"e\\"th"}')


def test_json_round_trip_and_ipftrace2_lines():
    s = Sample(P1, 5, 3, "kfree_skb", False, {"len": "40"})
    assert jsonlines.parse_line(jsonlines.format_sample(s)) == s
    theirs = ('{"packet_id":"0xffff935007672900","timestamp":169530010558,"processor_id":0,'
              '"function":"ip_finish_output2","is_return":false,"len":"40"}')
    assert jsonlines.parse_line(theirs) == Sample(0xFFFF935007672900, 169530010558, 0,
                                                  "ip_finish_output2", False, {"len": "40"})


class FlushRecorder(io.StringIO):
    """A stream that remembers what had been written at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed: list[str] = []

    def flush(self):
        self.flushed.append(self.getvalue())


def test_json_output_streams_batches():
    out = FlushRecorder()
    o = jsonlines.JsonOutput(out)
    o.write([Sample(P1, 1, 0, "a"), Sample(P2, 2, 1, "b", True)])
    first = ('{"packet_id":"0xffff8dee8aea9700","timestamp":1,"processor_id":0,"function":"a",'
             '"is_return":false}\n'
             '{"packet_id":"0xffff8dee8aea9800","timestamp":2,"processor_id":1,"function":"b",'
             '"is_return":true}\n')
    assert out.flushed[-1] == first  # each batch is on its way before the next comes
    o.write([])
    o.write([Sample(P1, 3, 0, "c")])
    o.finish()
    assert out.getvalue() == first + ('{"packet_id":"0xffff8dee8aea9700","timestamp":3,'
                                      '"processor_id":0,"function":"c","is_return":false}\n')


SAMPLES = [
    Sample(P2, 300, 1, "ip_rcv"),
    Sample(P1, 200, 0, "net_dev_xmit"),
    Sample(P1, 100, 0, "net_dev_queue"),
    Sample(P2, 400, 1, "a_function_name_longer_than_thirty_two_characters"),
]


def test_aggregate_function_tracer_golden():
    assert aggregate.render(SAMPLES) == (
        "\n"
        "Timestamp            CPU                         Function\n"
        "===\n"
        "100                  000                    net_dev_queue\n"
        "200                  000                     net_dev_xmit\n"
        "===\n"
        "300                  001                           ip_rcv\n"
        "400                  001 a_function_name_longer_than_thir\n")


def test_aggregate_with_script_fields():
    samples = [Sample(P1, 96976848684329, 0, "nf_checksum", False, {"len": 2822, "gso_segs": 2})]
    text = aggregate.render(samples, with_fields=True)
    assert text.splitlines()[-1] == (
        "96976848684329       000                      nf_checksum ( len: 2822 gso_segs: 2 )")


def test_aggregate_function_graph_golden():
    samples = [
        Sample(P1, 1, 0, "ip_protocol_deliver_rcu"),
        Sample(P1, 2, 0, "raw_local_deliver"),
        Sample(P1, 3, 0, "raw_local_deliver", True),
        Sample(P1, 4, 0, "tcp_v4_rcv"),
        Sample(P1, 5, 0, "tcp_v4_rcv", True),
        Sample(P1, 6, 0, "ip_protocol_deliver_rcu", True),
        Sample(P1, 7, 0, "stray_return", True),  # unbalanced: depth stays at 0
        Sample(P1, 8, 0, "ip_output"),
        Sample(P1, 9, 0, "nf_hook_slow"),  # its return was lost: no brace opens
        Sample(P1, 10, 0, "ip_finish_output"),
        Sample(P1, 11, 0, "ip_output", True),
        Sample(P1, 12, 0, "nf_hook_slow"),
        Sample(P1, 13, 0, "nf_hook_slow", True),
    ]
    lines = aggregate.render(samples, tracer="function_graph").splitlines()
    body = [line.rstrip() for line in lines[3:]]
    assert body == [
        "1                    000 ip_protocol_deliver_rcu() {",
        "2                    000   raw_local_deliver() {",
        "3                    000   }",
        "4                    000   tcp_v4_rcv() {",
        "5                    000   }",
        "6                    000 }",
        "7                    000 /* stray_return() returned */",
        "8                    000 ip_output() {",
        "9                    000   nf_hook_slow();",
        "10                   000     ip_finish_output();",
        "11                   000 }",
        "12                   000 nf_hook_slow() {",
        "13                   000 }",
    ]
    assert sum(line.count("{") for line in body) == sum(line.count("}") for line in body)
    assert all(len(line) == 20 + 1 + 3 + 1 + 64 for line in lines[3:])


def test_aggregate_graph_label_truncated_like_ipftrace2():
    deep = [Sample(P1, i, 0, "f" * 30) for i in range(20)] + [Sample(P1, 99, 0, "f" * 30, True)]
    last = aggregate.render(deep, tracer="function_graph").splitlines()[-2]
    label = last[25:]
    # depth 19: 38 spaces + 30 + "() {" = 72 chars, cut to the 63 a 64-byte buffer holds
    assert label == " " * 38 + "f" * 25 + " "


def test_aggregate_output_counts_progress():
    messages = []
    out = io.StringIO()
    o = aggregate.AggregateOutput(out, progress=messages.append)
    o.write(SAMPLES[:2])
    o.write(SAMPLES[2:])
    assert messages == ["\rGot 2 traces", "\rGot 4 traces"]
    o.finish()
    assert out.getvalue() == aggregate.render(SAMPLES)


def test_group_by_packet_orders_by_first_sample():
    grouped = group_by_packet(SAMPLES)
    assert list(grouped) == [P1, P2]
    assert [s.timestamp for s in grouped[P1]] == [100, 200]


def test_aggregate_graph_leaf_events_print_like_ftrace():
    samples = [Sample(P1, 1, 0, "netif_rx_entry"), Sample(P1, 2, 0, "netif_rx"),
               Sample(P1, 3, 0, "netif_rx_entry", True), Sample(P1, 4, 0, "kfree_skb")]
    body = [line[25:].rstrip() for line in aggregate.render(samples, "function_graph").splitlines()[3:]]
    assert body == ["netif_rx_entry() {", "  netif_rx();", "}", "kfree_skb();"]


def _raw_batches():
    """Plain ring buffer records in two batches, as the collector hands them out."""
    import struct

    from ipft_tui.tracing.decode import RecordBatch, RecordLayout
    from ipft_tui.tracing.event import EventLayout

    names = ["net_dev_queue", "a_function_name_longer_than_thirty_two_chars", "kfree_skb",
             "consume_skb"]
    layout = RecordLayout(names, {1: "NOT_DROPPED_YET", 2: "NO_SOCKET"}, EventLayout())
    pack = struct.Struct(EventLayout().record_format)
    rows = [  # pid, ts, probe, cpu, is_return, reason
        (P2, 300, 0, 1, 0, 0), (P1, 200, 1, 1234, 1, 0), (P2, 250, 3, 0, 0, 1),
        (P1, 200, 0, 0, 0, 0),  # same timestamp as P1's first: arrival order kept
        (0xABC, 250, 2, 7, 0, 2), (0xABC, 260, 2, 7, 0, 77),  # named and unknown reasons
        (0xDEF, 250, 0, 2, 0, 0),  # first at the same time as 0xABC: seen later, printed later
    ]
    raw = [pack.pack(pack.size - 8, *row) for row in rows]
    return [RecordBatch.from_raw(b"".join(raw[:3]), layout),
            RecordBatch.from_raw(b"".join(raw[3:]), layout)]


def test_aggregate_of_raw_batches_prints_what_the_samples_print():
    for drops_only in (False, True):
        batches = _raw_batches()
        samples = [s for b in batches for s in b.samples()]
        out = io.StringIO()
        o = aggregate.AggregateOutput(out, drops_only=drops_only)
        o.write_batches(batches)
        o.finish()
        expected = aggregate.render(samples, drops_only=drops_only)
        assert out.getvalue() == expected
        assert expected.count("===") == (1 if drops_only else 4)


def test_guarded_stdout_writes_to_dev_null_in_one_go_and_to_pipes_in_pieces():
    import os
    import threading

    from ipft_tui.outputs.stdout import GuardedStdout

    null = os.open(os.devnull, os.O_WRONLY)
    read_end, write_end = os.pipe()
    try:
        assert not GuardedStdout(null, threading.Event().is_set)._may_block
        assert GuardedStdout(write_end, threading.Event().is_set)._may_block
    finally:
        for fd in (null, read_end, write_end):
            os.close(fd)


def test_sample_buffer_without_drops_waits_for_room_until_closed():
    import threading

    from ipft_tui.batching import SampleBuffer

    buffer = SampleBuffer(capacity=2, wait_for_room=True)
    buffer.put([1, 2, 3])  # room for a whole batch while not full
    waiting = threading.Thread(target=buffer.put, args=([4],))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()  # full: the collector waits instead of dropping
    assert buffer.drain() == [1, 2, 3]
    waiting.join(5)
    assert not waiting.is_alive() and buffer.drain() == [4] and buffer.dropped == 0
    buffer.put([5, 6])
    closing = threading.Thread(target=buffer.put, args=([7],))
    closing.start()
    buffer.close()  # stopping: nobody will make room any more
    closing.join(5)
    assert not closing.is_alive() and buffer.dropped == 1 and buffer.drain() == [5, 6]


def test_sample_buffer_drops_beyond_capacity_by_default():
    from ipft_tui.batching import SampleBuffer

    buffer = SampleBuffer(capacity=2)
    buffer.put([1, 2, 3])
    buffer.put([4])
    assert buffer.drain() == [1, 2] and buffer.dropped == 2
