"""The event layout (tracing/event.py) and the two ways records become JSON lines."""

import struct

from ipft_tui.outputs import jsonlines
from ipft_tui.tracing.decode import RecordBatch, RecordLayout
from ipft_tui.tracing.event import EVENT, META, EventLayout, c_header, capture_room

NAMES = ["net_dev_queue", 'odd"name\\x', "kfree_skb", "ip_rcv"]


def test_fast_json_path_writes_the_same_bytes_as_the_sample_writer():
    event = EventLayout()
    packer = struct.Struct(event.record_format)
    raw = b"".join(packer.pack(packer.size - 8, pid, ts, probe, cpu, ret, reason)
                   for pid, ts, probe, cpu, ret, reason in [
                       (0xFFFF8880DEADBE00, 1, 0, 0, 0, 0),
                       (0xFFFF8880DEADBE00, 25340022557487, 1, 3, 1, 0),  # a name to escape
                       (0x1, 2**63, 2, 1, 0, 2),  # a named drop reason
                       (0xABC, 7, 2, 1, 0, 77),  # an unknown one: its number
                       (0xABC, 8, 3, 0xFFFF, 1, 0)])
    records = list(packer.iter_unpack(raw))  # as the ring buffer reader returns them
    batch = RecordBatch(records, RecordLayout(NAMES, {2: "NO_SOCKET"}, event))
    fast = jsonlines.format_records(batch)
    slow = "".join(jsonlines.format_sample(s) + "\n" for s in batch.samples())
    assert fast.encode() == slow.encode()
    assert len(fast.splitlines()) == 5 and '"drop_reason":"77"' in fast
    # The ring buffer's bytes, formatted by columns: the same lines again.
    columns = jsonlines.format_records(RecordBatch.from_raw(raw, batch.layout))
    assert columns.encode() == slow.encode()
    assert RecordBatch.from_raw(raw, batch.layout).records == records
    assert jsonlines.format_records(RecordBatch(records[:0], RecordLayout(NAMES))) == ""


def test_the_fast_path_declines_records_with_more_than_the_base_fields():
    layout = RecordLayout(NAMES, {}, EventLayout(track_skb=True))
    assert jsonlines.format_records(RecordBatch([], layout)) is None


def test_every_field_is_in_the_c_struct_and_in_the_records_by_name():
    everything = EventLayout(track_skb=True, stacks=True, meta=True, module=True,
                             capture_room=capture_room(100))
    header = c_header(everything)
    for define, fields in EVENT:
        if define:
            assert f"#ifdef {define}" in header
        for f in fields(everything.capture_room) if callable(fields) else fields:
            if not f.name.startswith("_"):
                assert f.name in everything.index
    assert struct.calcsize(everything.record_format) == 8 + everything.size
    assert everything.size % 8 == 0  # the ring buffer reader's records stay aligned
    assert len(everything.index) + 1 == len(struct.unpack(everything.record_format,
                                                      bytes(8 + everything.size)))
    assert [f.name for f in META if not f.name.startswith("_")] == [
        n for n in everything.index if n in {f.name for f in META}]
