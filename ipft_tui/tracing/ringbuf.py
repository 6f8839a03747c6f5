"""Read a BPF ring buffer straight from its memory mapping.

bcc's ring buffer API calls back into Python once per record; here a whole run
of fixed-size records is decoded with one `struct.iter_unpack`, and the BPF
side submits without wakeups, so the reader polls.
"""

from __future__ import annotations

import mmap
import struct

from .event import RECORD_HEADER, EventLayout

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
DISCARD_FLAG = DISCARD_BIT >> 24  # the same bit in the length word's top byte
HEADER = struct.calcsize("<" + RECORD_HEADER)  # u32 len (with BUSY/DISCARD bits) + u32 page offset


def parse_records(chunk, record: struct.Struct) -> tuple[list[tuple], int]:
    """Committed fixed-size records at the start of `chunk`, and the bytes they take.

    Stops at the first record still being written; skips discarded ones."""
    size = record.size
    # The top byte of every record's length word (little endian), in one slice:
    # BUSY and DISCARD are its only bits (lengths are below 2**24).
    flags = bytes(chunk[3::size])
    if flags and max(flags) >= 0x80:
        committed = next(i for i, f in enumerate(flags) if f & 0x80)
        chunk = chunk[:committed * size]
        flags = flags[:committed]
    records = list(record.iter_unpack(chunk))
    consumed = len(records) * size
    if flags and max(flags) & DISCARD_FLAG:
        records = [r for r in records if not r[0] & DISCARD_BIT]
    return records, consumed


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
        consumer = self._pos.unpack_from(self._consumer, 0)[0]
        producer = self._pos.unpack_from(self._producer, 0)[0]
        available = min(producer - consumer, self.size, limit * self._record_size)
        available -= available % self._record_size
        if available <= 0:
            return []
        start = consumer & self._mask
        records, consumed = parse_records(self._data[start:start + available], self._record)
        self._pos.pack_into(self._consumer, 0, consumer + consumed)
        return records

    def close(self) -> None:
        self._data.release()
        self._producer.close()
        self._consumer.close()
