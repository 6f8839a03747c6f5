"""Read a BPF ring buffer straight from its memory mapping.

bcc's ring buffer API calls back into Python once per record; here a whole run
of fixed-size records is decoded with one `struct.iter_unpack`, and the BPF
side submits without wakeups, so the reader polls.
"""

from __future__ import annotations

import mmap
import struct

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER = 8  # u32 len (with BUSY/DISCARD bits) + u32 page offset


class RingBufReader:
    def __init__(self, map_fd: int, size: int, event_format: str):
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
        event_size = struct.calcsize("<" + event_format)
        if event_size % 8:
            raise ValueError("event size must be a multiple of 8")
        self.event_size = event_size
        self._record_size = HEADER + event_size
        self._record = struct.Struct("<I4x" + event_format)
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
        records = list(self._record.iter_unpack(self._data[start:start + available]))
        # Stop at the first record still being written.
        for i, record in enumerate(records):
            if record[0] & BUSY_BIT:
                del records[i:]
                break
        self._pos.pack_into(self._consumer, 0, consumer + len(records) * self._record_size)
        return [r for r in records if not r[0] & DISCARD_BIT]

    def close(self) -> None:
        self._data.release()
        self._producer.close()
        self._consumer.close()
