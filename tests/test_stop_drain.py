"""Stopping the collector: the probes are detached first, then the ring buffer is read
to its end (a full one holds far more than one read's worth); a consumer that cannot
keep up within the bound leaves the rest counted as lost, never uncounted.

The ring buffer here is a memfd laid out as the kernel maps a BPF ring buffer (consumer
page, producer page, data), read by the real RingBufReader; the BPF side is faked."""

import ctypes
import mmap
import os
import struct

import pytest

from ipft_tui import collector as collector_module
from ipft_tui.collector import READ_LIMIT, Collector
from ipft_tui.settings import TraceSettings
from ipft_tui.tracing.decode import RecordLayout
from ipft_tui.tracing.event import EventLayout
from ipft_tui.tracing.ringbuf import RingBufReader

PAGE = mmap.PAGESIZE
EVENT = EventLayout()


class FakeRingBuf:
    """`count` committed records waiting in a ring buffer of `size` bytes."""

    def __init__(self, size: int, count: int):
        self.fd = os.memfd_create("ringbuf")
        os.ftruncate(self.fd, 2 * PAGE + 2 * size)
        record = struct.Struct(EVENT.record_format)
        data = struct.pack("<II", record.size - 8, 0) + bytes(record.size - 8)
        with mmap.mmap(self.fd, 2 * PAGE + size) as m:
            m[2 * PAGE:2 * PAGE + count * record.size] = data * count
            struct.pack_into("<Q", m, PAGE, count * record.size)  # producer position
        self.reader = RingBufReader(self.fd, size, EVENT)

    def close(self):
        os.close(self.fd)


class FakeBackend:
    def __init__(self):
        self.detached = False
        self.candidates = []

    def close(self):
        self.detached = True

    def link_fds(self):
        return []


class FakeCounters:
    def sum(self, _key):
        return ctypes.c_uint64(0)

    def cleanup(self):
        pass

    def __getitem__(self, _name):
        return self


class NoMisses:
    def read(self, _links):
        return None

    def close(self):
        pass


def stopped_collector(count: int, make_sink, size: int = 1 << 20):
    """A collector whose buffer holds `count` records, told to stop at once; its sink
    is make_sink(collector)."""
    main, rescue = FakeRingBuf(size, count), FakeRingBuf(size, 0)
    notices = []
    c = Collector(TraceSettings(mark=1), None, kernel=object(), on_notice=notices.append)
    c._sink = make_sink(c)
    c._setup = lambda: None  # the BPF side, set up here by hand
    c.backend, c._bpf, c._misses = FakeBackend(), FakeCounters(), NoMisses()
    c._reader, c._rescue_reader = main.reader, rescue.reader
    c._layout = RecordLayout([], {}, EVENT)
    c._commands.put(("stop", None))  # queued before the thread reads anything
    c.start()
    c.stop(timeout=60)
    main.close()
    rescue.close()
    assert not c.running and c.error is None, c.error
    return c, notices


def full_buffer_count(size: int = 1 << 20) -> int:
    return size // struct.calcsize(EVENT.record_format)


def test_a_stop_reads_a_full_ring_buffer_to_its_end_after_detaching():
    count = full_buffer_count()
    assert count > 2 * READ_LIMIT  # more than a read or two
    seen = []
    c, notices = stopped_collector(
        count, lambda c: lambda batch: seen.append((len(batch), c.backend.detached)))
    assert sum(n for n, _ in seen) == count == c.status.samples
    assert all(detached for _, detached in seen[1:])  # the first read may come before the stop
    assert c.status.lost == c.status.unread == 0 and notices == []


@pytest.mark.parametrize("how", ["time bound", "hurry"])
def test_what_a_stop_leaves_unread_is_counted_as_lost(monkeypatch, how):
    count = full_buffer_count()
    if how == "time bound":
        monkeypatch.setattr(collector_module, "STOP_DRAIN_LIMIT", 0.0)

    def make_sink(c):
        def sink(batch):
            if how == "hurry":
                c.hurry = True  # as a second Ctrl-C does
        return sink

    c, notices = stopped_collector(count, make_sink)
    assert 0 < c.status.samples <= 2 * READ_LIMIT  # a read or two, then it gave up
    assert c.status.unread == c.status.lost == count - c.status.samples
    assert len(notices) == 1 and f"{c.status.unread} samples" in notices[0]


def test_the_collector_reads_at_once_while_samples_come_and_less_often_when_idle():
    c = collector_module
    assert c.poll_timeout(5, 0.0) == 0.0
    assert c.poll_timeout(0, 0.0) == c.poll_timeout(0, c.IDLE_AFTER / 2) == c.POLL_INTERVAL
    assert c.poll_timeout(0, c.IDLE_AFTER) == c.IDLE_POLL_INTERVAL > c.POLL_INTERVAL
