"""A bounded hand-over from the collector thread to a consumer, drained on a timer."""

from __future__ import annotations

import threading

from .model import Sample


class SampleBuffer:
    """The collector puts batches (RecordBatches, or lists of Samples); the consumer
    drains everything at once. When it falls behind by more than `capacity`
    samples, new ones are dropped and counted; or, with wait_for_room (--no-drop),
    the collector waits for room, leaving the kernel's buffer to fill (its losses are
    counted there), until close()."""

    def __init__(self, capacity: int = 1_000_000, wait_for_room: bool = False):
        self.capacity = capacity
        self.wait_for_room = wait_for_room
        self.dropped = 0
        self._batches: list[list[Sample]] = []
        self._size = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._closed = False
        self._abandoned = False

    def put(self, samples) -> None:
        with self._lock:
            if self._abandoned:
                self.dropped += len(samples)
                return
            if self.wait_for_room:
                while self._size >= self.capacity and not self._closed:
                    self._room.wait()
                if not self._closed:
                    self._batches.append(samples)  # whole: at most one batch over capacity
                    self._size += len(samples)
                    return
            room = self.capacity - self._size
            if room <= 0:
                self.dropped += len(samples)
                return
            if len(samples) > room:
                self.dropped += len(samples) - room
                samples = _first(samples, room)
            self._batches.append(samples)
            self._size += len(samples)

    def close(self) -> None:
        """No more waiting for room: from now on what does not fit is dropped."""
        with self._lock:
            self._closed = True
            self._room.notify_all()

    def abandon(self) -> None:
        """The consumer gives up: what waits now and whatever comes later is dropped
        (and counted), and nobody waits for room."""
        with self._lock:
            self._closed = self._abandoned = True
            self.dropped += self._size
            self._batches, self._size = [], 0
            self._room.notify_all()

    def drain_batches(self, limit: int | None = None) -> list:
        """Waiting batches, oldest first: all, or whole batches up to about `limit` samples."""
        with self._lock:
            self._room.notify_all()
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
