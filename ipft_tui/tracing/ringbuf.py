"""Read a BPF ring buffer straight from its memory mapping.

bcc's ring buffer API calls back into Python once per record; here a whole run
of fixed-size records is copied out at once (`read_raw`: the consumers that can
work on columns never build a tuple per record) or decoded with one
`struct.iter_unpack`. The BPF side submits without wakeups, so the reader polls.
"""

from __future__ import annotations

import mmap
import struct

from .event import RECORD_HEADER, EventLayout

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
DISCARD_FLAG = DISCARD_BIT >> 24  # the same bit in the length word's top byte
HEADER = struct.calcsize("<" + RECORD_HEADER)  # u32 len (with BUSY/DISCARD bits) + u32 page offset


def committed(chunk, size: int) -> tuple[int, bool]:
    """How many fixed-size records at the start of `chunk` are committed (up to the
    first one still being written), and whether any of those was discarded."""
    # The top byte of every record's length word (little endian), in one slice:
    # BUSY and DISCARD are its only bits (lengths are below 2**24).
    flags = bytes(chunk[3::size])
    if flags and max(flags) >= 0x80:
        flags = flags[:next(i for i, f in enumerate(flags) if f & 0x80)]
    return len(flags), bool(flags) and bool(max(flags) & DISCARD_FLAG)


def unpack_records(chunk, record: struct.Struct, discarded: bool = True) -> list[tuple]:
    """Whole committed records as tuples, the discarded ones left out."""
    records = list(record.iter_unpack(chunk))
    return [r for r in records if not r[0] & DISCARD_BIT] if discarded else records


def parse_records(chunk, record: struct.Struct) -> tuple[list[tuple], int]:
    """Committed fixed-size records at the start of `chunk`, and the bytes they take.

    Stops at the first record still being written; skips discarded ones."""
    count, discarded = committed(chunk, record.size)
    consumed = count * record.size
    return unpack_records(chunk[:consumed], record, discarded), consumed


class RingBufReader:
    def __init__(self, map_fd: int, size: int, event: EventLayout):
        page = mmap.PAGESIZE
        if size & (size - 1) or size % page:
            raise ValueError("ring buffer size must be a power-of-two multiple of the page size")
        self.size = size
        self._mask = size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        # Producer page, then the data area mapped twice in a row, so a record
        # that wraps around the end reads as one contiguous run.
        self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=page)
        self._data = memoryview(self._producer)[page:]
        event_size = event.size
        if event_size % 8:
            raise ValueError("event size must be a multiple of 8")
        self.event_size = event_size
        self._record_size = HEADER + event_size
        self._record = struct.Struct(event.record_format)
        self._pos = struct.Struct("<Q")

    def read(self, limit: int = 1 << 16) -> list[tuple]:
        """Decode up to `limit` committed records; each tuple starts with the length word."""
        raw, discarded = self.read_raw(limit)
        return unpack_records(raw, self._record, discarded) if raw else []

    def read_raw(self, limit: int = 1 << 16) -> tuple[bytes, bool]:
        """A copy of up to `limit` committed records (length words included), and
        whether any of them was discarded (its length word has DISCARD_BIT)."""
        consumer = self._pos.unpack_from(self._consumer, 0)[0]
        producer = self._pos.unpack_from(self._producer, 0)[0]
        available = min(producer - consumer, self.size, limit * self._record_size)
        available -= available % self._record_size
        if available <= 0:
            return b"", False
        start = consumer & self._mask
        count, discarded = committed(self._data[start:start + available], self._record_size)
        consumed = count * self._record_size
        raw = bytes(self._data[start:start + consumed])  # before the kernel may reuse it
        self._pos.pack_into(self._consumer, 0, consumer + consumed)
        return raw, discarded

    def pending(self) -> int:
        """How many records are written (or being written) and not read yet."""
        consumer = self._pos.unpack_from(self._consumer, 0)[0]
        producer = self._pos.unpack_from(self._producer, 0)[0]
        return min(producer - consumer, self.size) // self._record_size

    def close(self) -> None:
        self._data.release()
        self._producer.close()
        self._consumer.close()
