import struct

from ipft_tui.tracing.ringbuf import BUSY_BIT, DISCARD_BIT, parse_records

RECORD = struct.Struct("<I4xQQ")  # header + a 16-byte event


def rec(n, flags=0):
    return RECORD.pack(16 | flags, n, n * 10)


def test_all_committed():
    records, used = parse_records(memoryview(rec(1) + rec(2) + rec(3)), RECORD)
    assert [r[1] for r in records] == [1, 2, 3] and used == 3 * RECORD.size


def test_stops_at_the_first_busy_record():
    records, used = parse_records(rec(1) + rec(2, BUSY_BIT) + rec(3), RECORD)
    assert [r[1] for r in records] == [1] and used == RECORD.size


def test_discarded_records_are_consumed_but_not_returned():
    records, used = parse_records(rec(1, DISCARD_BIT) + rec(2) + rec(3, DISCARD_BIT), RECORD)
    assert [r[1] for r in records] == [2] and used == 3 * RECORD.size


def test_empty():
    assert parse_records(b"", RECORD) == ([], 0)
    assert parse_records(rec(1, BUSY_BIT), RECORD) == ([], 0)
