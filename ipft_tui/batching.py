"""A bounded hand-over from the collector thread to a consumer, drained on a timer."""

from __future__ import annotations

import threading

from .model import Sample


class SampleBuffer:
    """The collector puts batches (RecordBatches, or lists of Samples); the consumer
    drains everything at once. When it falls behind by more than `capacity`
    samples, new ones are dropped and counted."""

    def __init__(self, capacity: int = 1_000_000):
        self.capacity = capacity
        self.dropped = 0
        self._batches: list[list[Sample]] = []
        self._size = 0
        self._lock = threading.Lock()

    def put(self, samples) -> None:
        with self._lock:
            room = self.capacity - self._size
            if room <= 0:
                self.dropped += len(samples)
                return
            if len(samples) > room:
                self.dropped += len(samples) - room
                samples = _first(samples, room)
            self._batches.append(samples)
            self._size += len(samples)

    def drain_batches(self, limit: int | None = None) -> list:
        """Waiting batches, oldest first: all, or whole batches up to about `limit` samples."""
        with self._lock:
            if limit is None or self._size <= limit:
                batches, self._batches, self._size = self._batches, [], 0
                return batches
            taken, count = 0, 0
            while taken < len(self._batches) and (count < limit or taken == 0):
                count += len(self._batches[taken])
                taken += 1
            batches, self._batches = self._batches[:taken], self._batches[taken:]
            self._size -= count
            return batches

    def drain(self, limit: int | None = None) -> list[Sample]:
        """What is waiting (see drain_batches), as Samples."""
        samples: list[Sample] = []
        for batch in self.drain_batches(limit):
            samples.extend(batch.samples() if hasattr(batch, "samples") else batch)
        return samples

    def __len__(self) -> int:
        return self._size


def _first(batch, count: int):
    if hasattr(batch, "records"):
        if batch.raw is not None:
            return type(batch).from_raw(batch.raw[:count * len(batch.raw) // len(batch)],
                                        batch.layout)
        return type(batch)(batch.records[:count], batch.layout)
    return batch[:count]
