"""How a headless trace stops, with the collector faked (its BPF side is covered by
tests/test_stop_drain.py and the real tests): a consumer that fails or a second signal
never leaves the collector waiting, and a stdout nobody reads holds up no exit for
longer than the flush grace, whether the trace ends on a signal or on an error."""

import argparse
import functools
import os
import signal
import struct
import sys
import threading
import time

import pytest

from ipft_tui import headless
from ipft_tui.batching import SampleBuffer
from ipft_tui.collector import Status
from ipft_tui.errors import IpftError
from ipft_tui.settings import TraceSettings
from ipft_tui.tracing.decode import RecordBatch, RecordLayout
from ipft_tui.tracing.event import EventLayout
from ipft_tui.tui import run

BOUND = 20  # s any of these may take before it counts as hung


class FakeCollector:
    """Hands `make_batch()` to its sink until told to stop, in its own thread, as the
    collector does; `produce` is how many batches to hand out (None: until stopped).
    At the stop it hands out `backlog` more (what the kernel's buffer still held)."""

    produce: int | None = None
    backlog = 10  # more than the buffer and a consumer that fails can take
    make_batch = None
    made: list = []

    def __init__(self, settings, sink, kernel=None, on_progress=None, on_notice=None):
        self._sink = sink
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.status = Status(ready=True)
        self.error = None
        self.headers = None
        self.limit_notes = []
        self.hurry = False
        self.given = 0
        FakeCollector.made.append(self)

    def _run(self):
        while not self._stop.is_set() and (self.produce is None or self.given < self.produce):
            batch = self.make_batch()
            self._sink(batch)
            self.given += len(batch)
            self.status = Status(ready=True, samples=self.given)
        self._stop.wait()
        for _ in range(self.backlog if self.produce is None else 0):
            if self.hurry:
                break
            batch = self.make_batch()
            self._sink(batch)
            self.given += len(batch)
            self.status = Status(ready=True, samples=self.given)

    def start(self):
        self._thread.start()

    def settled(self, timeout):
        return True

    def wait_ready(self, timeout=None):
        pass

    @property
    def running(self):
        return self._thread.is_alive()

    def stop(self, timeout=900):  # as the real one: waits until everything is detached
        self._stop.set()
        self._thread.join(timeout)


class Lots:
    """A batch of samples (stand-ins: the scripts here only count them)."""

    def __len__(self):
        return 6

    def samples(self):
        return list(range(6))


@pytest.fixture(autouse=True)
def small_buffer(monkeypatch):
    """Room for fewer than two batches: the collector soon waits for room."""
    monkeypatch.setattr(headless, "SampleBuffer", functools.partial(SampleBuffer, capacity=10))


def args(**kw):
    base = dict(verbose=False, output="aggregate", output_tuple=False, split_on_free=False,
                drops_only=False, write_pcap=None, no_drop=False, demo=False,
                no_set_rlimit=True)
    return argparse.Namespace(**(base | kw))


def records_batch(count: int):
    """A maker of batches of `count` real (zeroed) records, as the collector hands out."""
    event = EventLayout()
    record = struct.Struct(event.record_format)
    raw = (struct.pack("<II", record.size - 8, 0) + bytes(record.size - 8)) * count
    layout = RecordLayout(["f"], {}, event)
    return lambda: RecordBatch.from_raw(raw, layout)


def full_pipe_as_stdout(monkeypatch):
    """sys.stdout on a pipe that is full and that nobody reads; and its read end."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        while True:
            os.write(write_fd, b"x" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(write_fd, True)
    stdout = os.fdopen(write_fd, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    return stdout, open(read_fd, "rb")


class Extension:
    def __init__(self, decorate):
        self.decorate = decorate


@pytest.fixture
def fake_collector(monkeypatch, tmp_path):
    FakeCollector.made = []
    monkeypatch.setattr(headless, "Collector", FakeCollector)
    out = open(tmp_path / "stdout", "w")
    monkeypatch.setattr(sys, "stdout", out)
    yield FakeCollector
    for c in FakeCollector.made:  # never leave one running
        c._stop.set()
    out.close()


def test_a_failing_consumer_does_not_leave_a_no_drop_collector_waiting(fake_collector,
                                                                      monkeypatch):
    monkeypatch.setattr(fake_collector, "make_batch", staticmethod(Lots))

    def dump(samples):
        raise IpftError("dump() failed")  # as a Lua error does

    started = time.monotonic()
    with pytest.raises(IpftError, match="dump"):
        headless._trace(TraceSettings(mark=1), args(no_drop=True), None, None, Extension(dump))
    c = fake_collector.made[0]
    c._thread.join(BOUND)
    assert not c.running  # it got out of put() and stopped: probes detached
    assert time.monotonic() - started < BOUND


def test_a_second_signal_cuts_a_no_drop_backlog_short(fake_collector, monkeypatch):
    monkeypatch.setattr(fake_collector, "make_batch", staticmethod(Lots))
    calls = []

    def slow_script(samples):  # a signal at each of the first two calls
        calls.append(len(samples))
        if len(calls) <= 2:
            os.kill(os.getpid(), signal.SIGINT)
        return []  # nothing for the output to show

    said = []
    monkeypatch.setattr(headless, "err", said.append)
    previous = signal.getsignal(signal.SIGINT)
    code = headless._trace(TraceSettings(mark=1), args(no_drop=True), None, None,
                           Extension(slow_script))
    assert signal.getsignal(signal.SIGINT) is previous  # handlers given back
    c = fake_collector.made[0]
    assert code == 0 and not c.running and c.hurry
    assert len(calls) == 2  # nothing consumed after the second signal
    dropped = int("".join(said).split("Dropped ")[1].split()[0])
    assert dropped > 0 and sum(calls) + dropped == c.given  # every sample accounted for


def test_an_error_before_any_signal_still_bounds_the_wait_for_stdout(fake_collector,
                                                                     monkeypatch):
    """The collector thread is stuck writing to a full pipe nobody reads; the trace
    ends on an error (the demo's set-up) without a signal: the exit takes no longer
    than the flush grace."""
    monkeypatch.setattr(fake_collector, "make_batch", staticmethod(records_batch(100)))
    monkeypatch.setattr(fake_collector, "produce", 1)
    monkeypatch.setattr(headless, "FLUSH_GRACE", 0.5)

    class NoDemo:
        def __init__(self, mark):
            pass

        def __enter__(self):
            raise IpftError("demo set-up failed")

    monkeypatch.setattr(headless, "DemoTraffic", NoDemo)
    stdout, reader = full_pipe_as_stdout(monkeypatch)
    # If the stop waits for the writer, closing the reader (EPIPE) ends it after BOUND.
    unblock = threading.Timer(BOUND, reader.close)
    unblock.start()
    started = time.monotonic()
    try:
        with pytest.raises(IpftError, match="demo"):
            headless._trace(TraceSettings(mark=1), args(output="json", demo=True), None,
                            None, None)
        took = time.monotonic() - started
    finally:
        unblock.cancel()
        reader.close()
        stdout.close()
    assert not fake_collector.made[0].running
    assert took < BOUND / 2, f"the stop waited {took:.1f} s for a stdout nobody reads"



def calls_made_by(handler, signum) -> list[str]:
    """Every Python function and builtin `handler(signum, None)` calls, by name."""
    calls = []

    def profile(frame, event, arg):
        if event == "call":
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_qualname}")
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            calls.append(f"{type(owner).__name__}.{arg.__name__}")
    sys.setprofile(profile)
    try:
        handler(signum, None)
    finally:
        sys.setprofile(None)
    return calls


def takes_a_lock(calls: list[str]) -> list[str]:
    """The calls that take a lock or go through threading (whose locks the main thread,
    interrupted by the signal, may hold: then the handler waits forever)."""
    return [c for c in calls if "lock." in c.lower() or "threading.py" in c]


def test_the_headless_signal_handler_takes_no_lock(fake_collector, monkeypatch):
    """A signal lands between two bytecodes of the main thread, possibly inside its
    own wait on an Event: a handler that sets that Event waits for a lock its own
    thread holds (a CI run hung so). The handler only notes the signal."""
    seen = {}
    original_start = fake_collector.start

    def start(self):
        handler = signal.getsignal(signal.SIGTERM)
        seen["calls"] = calls_made_by(handler, signal.SIGTERM)
        original_start(self)

    monkeypatch.setattr(fake_collector, "make_batch", staticmethod(Lots))
    monkeypatch.setattr(fake_collector, "start", start)
    code = headless._trace(TraceSettings(mark=1), args(), None, None, None)
    assert seen["calls"] is not None and takes_a_lock(seen["calls"]) == []
    assert code == 130  # the noted signal ended the trace before it was ready


def test_the_tui_signal_handler_takes_no_lock_and_starts_no_thread():
    shutdown = run.Shutdown()  # not installed: no watchdog that would end this process
    before = threading.active_count()
    calls = calls_made_by(shutdown._on_signal, signal.SIGHUP)
    assert takes_a_lock(calls) == [] and threading.active_count() == before
    assert shutdown.signum == signal.SIGHUP
    assert os.read(shutdown._wake_read, 1) == b"\0"  # what wakes the watchdog


def test_a_signal_ends_a_trace_whose_own_thread_waits_on_a_stdout_nobody_reads(fake_collector,
                                                                               monkeypatch):
    """With an extension this thread writes the output: stuck on a full pipe, it must
    still see the signal (the grace starts there) and stop within the flush grace."""
    monkeypatch.setattr(fake_collector, "make_batch", staticmethod(records_batch(3)))
    monkeypatch.setattr(headless, "FLUSH_GRACE", 0.5)
    stdout, reader = full_pipe_as_stdout(monkeypatch)
    # If the signal is not seen, closing the reader (EPIPE) ends it after BOUND.
    unblock = threading.Timer(BOUND, reader.close)
    unblock.start()
    interrupt = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    said = []
    monkeypatch.setattr(headless, "err", said.append)
    started = time.monotonic()
    try:
        headless._trace(TraceSettings(mark=1), args(output="json", no_drop=True), None, None,
                        Extension(lambda samples: samples))
        took = time.monotonic() - started
    finally:
        interrupt.cancel()
        unblock.cancel()
        reader.close()
        stdout.close()
    assert not fake_collector.made[0].running
    assert took < BOUND / 2, f"the signal was not seen for {took:.1f} s"
    assert any("not written" in line for line in said), said
