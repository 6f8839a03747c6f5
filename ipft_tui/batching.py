"""A bounded hand-over from the collector thread to the UI, drained on a timer."""

from __future__ import annotations

import threading

from .model import Sample


class SampleBuffer:
    """The collector puts batches; the UI drains everything at once. When the UI
    falls behind by more than `capacity` samples, new ones are dropped and counted."""

    def __init__(self, capacity: int = 1_000_000):
        self.capacity = capacity
        self.dropped = 0
        self._batches: list[list[Sample]] = []
        self._size = 0
        self._lock = threading.Lock()

    def put(self, samples: list[Sample]) -> None:
        with self._lock:
            room = self.capacity - self._size
            if room <= 0:
                self.dropped += len(samples)
                return
            if len(samples) > room:
                self.dropped += len(samples) - room
                samples = samples[:room]
            self._batches.append(samples)
            self._size += len(samples)

    def drain(self) -> list[Sample]:
        with self._lock:
            batches, self._batches, self._size = self._batches, [], 0
        if len(batches) == 1:
            return batches[0]
        return [s for batch in batches for s in batch]

    def __len__(self) -> int:
        return self._size
