"""The collector in this process: live changes, and nothing attached once it stops."""

import threading
import time

import pytest

from ipft_tui.collector import Collector
from ipft_tui.errors import IpftError
from ipft_tui.settings import TraceSettings
from tests.conftest import ipft_bpf_objects, ipft_bpf_objects_settled

pytestmark = pytest.mark.root


class Gathered:
    def __init__(self):
        self.samples = []
        self.lock = threading.Lock()

    def __call__(self, batch):
        with self.lock:
            self.samples.extend(batch.samples())

    def since(self, start_ns):
        with self.lock:
            return [s for s in self.samples if s.timestamp >= start_ns]


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_live_filter_and_regex_changes_then_full_detach(veth, nothing_left_behind):
    got = Gathered()
    notices = []
    collector = Collector(TraceSettings(mark=0x111), got, on_notice=notices.append)
    collector.start()
    try:
        collector.wait_ready(60)
        total = collector.status.total
        assert collector.status.attached == total > 0
        assert len([o for o in ipft_bpf_objects() if o.startswith("link")]) == total

        t0 = now_ns()
        veth.ping(count=2, mark=0x111, local=True)
        assert wait_for(lambda: got.since(t0))

        # New mark: a map update; the old mark stops matching at once.
        collector.set_filter(0x222, 0xFFFFFFFF)
        assert wait_for(lambda: collector.status.mark == 0x222)
        t1 = now_ns()
        veth.ping(count=2, mark=0x111, local=True)
        t2 = now_ns()
        veth.ping(count=2, mark=0x222, local=True)
        assert wait_for(lambda: got.since(t2))
        assert [s for s in got.since(t1) if s.timestamp < t2] == []

        # New regex: detach all but two, without recompiling.
        collector.set_regex("^net_dev_(queue|start_xmit)$")
        assert wait_for(lambda: collector.status.attached == 2)
        assert collector.status.filtered == total - 2
        assert len([o for o in ipft_bpf_objects() if o.startswith("link")]) == 2
        t3 = now_ns()
        veth.ping(count=2, mark=0x222, local=True)
        assert wait_for(lambda: got.since(t3))
        time.sleep(0.1)
        assert {s.function for s in got.since(t3)} == {"net_dev_queue", "net_dev_start_xmit"}

        # A regex that matches nothing changes nothing and says why.
        collector.set_regex("^nothing_matches$")
        assert wait_for(lambda: any("matches none" in n for n in notices))
        assert collector.status.attached == 2
    finally:
        collector.stop()
    assert not collector.running
    assert collector.status.attached == 0
    assert ipft_bpf_objects_settled() == []


def test_an_exception_in_the_consumer_detaches_everything(veth, nothing_left_behind):
    def broken_sink(batch):
        raise RuntimeError("consumer bug")

    collector = Collector(TraceSettings(mark=0x333), broken_sink)
    collector.start()
    collector.wait_ready(60)
    veth.ping(count=1, mark=0x333, local=True)
    assert wait_for(lambda: not collector.running)
    assert isinstance(collector.error, IpftError) and "consumer bug" in str(collector.error)
    assert ipft_bpf_objects_settled() == []


def test_setup_error_is_raised_to_the_consumer(bpf_ready):
    collector = Collector(TraceSettings(mark=1, regex="^nope_nothing$"), lambda b: None)
    collector.start()
    with pytest.raises(IpftError, match="matches none"):
        collector.wait_ready(60)
    assert ipft_bpf_objects_settled() == []


def test_live_skb_following_and_stack_regex(veth, nothing_left_behind):
    """As the TUI switches them (compiled in, off at start): no restart."""
    got = Gathered()
    notices = []
    collector = Collector(TraceSettings(mark=0x333, meta=True, live_switches=True), got,
                          on_notice=notices.append)
    collector.start()
    try:
        collector.wait_ready(60)

        def round_trip():
            start = now_ns()
            veth.send_udp(7777, mark=0x333)
            assert wait_for(lambda: any(s.function == "net_dev_start_xmit" for s in got.since(start)))
            time.sleep(0.2)
            return got.since(start)

        off = round_trip()  # the mark is cleared on entering B: nothing from there
        assert not [s for s in off if s.function == "kfree_skb"]
        assert all(s.stack is None and s.skb == 0 for s in off)

        collector.set_track_skb(True)
        collector.set_stack_regex("^kfree_skb$")
        assert wait_for(lambda: collector.status.track_skb and collector.status.stack_regex)
        on = round_trip()
        [dropped] = [s for s in on if s.function == "kfree_skb"]
        assert dropped.drop_reason == "NO_SOCKET" and dropped.journey_end
        assert any(frame.startswith("__udp4_lib_rcv+") for frame in dropped.stack)
        assert all(s.stack is None for s in on if s.function != "kfree_skb")

        collector.set_stack_regex("no_such_function_anywhere")  # refused, nothing changes
        assert wait_for(lambda: any("matches none" in n for n in notices))
        assert collector.status.stack_regex == "^kfree_skb$"
    finally:
        collector.stop()
    assert collector.error is None, notices
    assert ipft_bpf_objects_settled() == []


def test_free_points_are_watched_silently_while_skbs_are_followed(veth, nothing_left_behind):
    """The regex leaves the frees out: attached anyway while following is on (not
    counted as attached, reporting nothing), detached when it goes off."""
    got = Gathered()
    notices = []
    collector = Collector(TraceSettings(mark=0x444, regex="^net_dev_queue$", live_switches=True),
                          got, on_notice=notices.append)
    collector.start()
    try:
        collector.wait_ready(60)
        links = lambda: len([o for o in ipft_bpf_objects() if o.startswith("link")])  # noqa: E731
        assert collector.status.attached == 1 and links() == 1  # not following yet

        collector.set_track_skb(True)
        assert wait_for(lambda: links() == 3)  # + kfree_skb, consume_skb
        assert collector.status.attached == 1
        start = now_ns()
        veth.send_udp(7777, mark=0x444)  # dropped in B (no socket): kfree_skb ran
        assert wait_for(lambda: got.since(start))
        time.sleep(0.2)
        assert {s.function for s in got.since(start)} == {"net_dev_queue"}

        collector.set_regex("^(net_dev_queue|kfree_skb)$")  # now selected: it reports
        assert wait_for(lambda: collector.status.attached == 2)
        assert links() == 3
        start = now_ns()
        veth.send_udp(7777, mark=0x444)
        assert wait_for(lambda: any(s.function == "kfree_skb" for s in got.since(start)))

        collector.set_track_skb(False)
        assert wait_for(lambda: links() == 2)  # consume_skb went
        assert collector.status.attached == 2
    finally:
        collector.stop()
    assert collector.error is None, notices
    assert ipft_bpf_objects_settled() == []


def test_samples_the_ring_buffer_refuses_go_to_the_rescue_buffer(veth, nothing_left_behind):
    """A one-page ring buffer and a stalled consumer: the main buffer fills up, the
    rescue buffer takes the rest, nothing is lost and every sample arrives."""
    got = Gathered()
    stalled = threading.Event()

    def slow_sink(batch):
        if not stalled.is_set():
            stalled.set()
            time.sleep(2)  # while the traffic below runs
        got(batch)

    collector = Collector(TraceSettings(mark=0x444, ringbuf_pages=1), slow_sink)
    collector.start()
    try:
        collector.wait_ready(60)
        veth.mark_incoming(0x444, "-p", "udp")
        veth.send_udp(7777, count=40, mark=0x444)
        assert wait_for(lambda: collector.status.rescued > 0, timeout=10)
        time.sleep(0.5)
    finally:
        collector.stop()
    assert collector.status.lost == 0
    dropped = [s for s in got.samples if s.function == "kfree_skb"]
    assert len(dropped) == 40  # one drop (closed port) per datagram: none missing
    assert collector.status.rescued > 0
