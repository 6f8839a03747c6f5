"""Attach/detach mechanics of the backends without a kernel (#20.5): probes attach
and detach from several threads at once (their kernel waits overlap), every result
and failure is kept, bcc programs are loaded once; kprobe-multi leaves out the
functions ftrace cannot trace instead of halving down to them."""

import threading
import time

from ipft_tui.kernel.targets import Target
from ipft_tui.tracing import backends


class FakePerProbe(backends.PerProbeBackend):
    name = "fake"

    def __init__(self, n, refused=()):
        super().__init__()
        self.candidates = [Target(f"f{i}", 1) for i in range(n)]
        self.returns = set(range(n))
        self.refused = set(refused)
        self.threads = set()
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def _attach(self, bpf, probe_id):
        with self.lock:
            self.threads.add(threading.get_ident())
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.01)  # a kernel wait
        with self.lock:
            self.running -= 1
        if probe_id in self.refused:
            raise OSError(22, "refused")
        return 1000 + probe_id

    def _attach_return(self, bpf, probe_id):
        return 5000 + probe_id


def test_parallel_attach_keeps_every_result(monkeypatch):
    closed = []
    monkeypatch.setattr(backends.bpfsys, "close", closed.append)
    backend = FakePerProbe(100, refused={3, 50})
    progress, notices = [], []
    failed = backend.sync(None, set(range(100)), True, lambda d, t: progress.append((d, t)),
                          notices.append)
    assert failed == 2 and len(notices) == 2
    assert backend.attached == set(range(100)) - {3, 50}
    assert backend._returning == {p: 5000 + p for p in backend.attached}
    assert progress[-1] == (100, 100)
    assert backend.most_at_once > 1 and len(backend.threads) > 1
    backend.sync(None, set(range(10)), False, lambda d, t: None, notices.append)
    assert backend.attached == set(range(10)) - {3}
    assert sorted(closed) == sorted([5000 + p for p in range(100) if p not in (3, 50)]
                                    + [1000 + p for p in range(10, 100) if p != 50])
    backend.close()
    assert not backend.attached and len(closed) == 98 + 89 + 9


def test_close_all_closes_each_once(monkeypatch):
    closed = []
    monkeypatch.setattr(backends.bpfsys, "close", closed.append)
    backends.close_all(range(40))
    assert sorted(closed) == list(range(40))


def test_kprobe_multi_halves_to_find_a_refused_function(monkeypatch):
    targets = [Target(f"f{i}", 1) for i in range(16)]
    links = []

    def link(self, bpf, program, ids, return_probe):
        if 7 in ids:
            raise OSError(22, "Invalid argument")
        links.append(list(ids))

    monkeypatch.setattr(backends.KprobeMultiBackend, "_link", link)
    backend = backends.KprobeMultiBackend(targets, {})
    assert backend.sync(None, set(range(16)), False, lambda d, t: None, lambda n: None) == 1
    assert backend.attached == set(range(16)) - {7}
