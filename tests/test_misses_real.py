"""Kernel-side misses read from the real kernel: the counts of the programs we
attached are read (this kernel tells recursion_misses), and shown after -v's summary.

Provoking a real recursion miss needs a probe hit while its program runs on the same
CPU; the raw tracepoints of this machine do not nest that way on demand, so the
counting itself is checked against a fake bpf(2) in test_misses.py."""

import re

import pytest

from ipft_tui.collector import Collector
from ipft_tui.kernel import Kernel
from ipft_tui.settings import TraceSettings
from ipft_tui.tracing.misses import InfoLayout, MissCounter
from tests.test_trace_real import MARK, UDP_PORT, local_udp

pytestmark = pytest.mark.root


def test_the_attached_programs_counts_are_read(veth, nothing_left_behind):
    kernel = Kernel()
    collector = Collector(TraceSettings(mark=MARK), lambda batch: None, kernel=kernel)
    collector.start()
    try:
        collector.wait_ready(60)
        local_udp(veth, UDP_PORT, MARK, count=3)  # the programs run before they are read
        counter = MissCounter(InfoLayout.from_btf(kernel.btf[0]))
        try:
            got = counter.read(collector.backend.link_fds())
        finally:
            counter.close()
        assert got is not None and got.programs >= 1  # None: this kernel would not tell
    finally:
        collector.stop()
    assert collector.status.missed is not None and collector.status.missed >= 0


def test_verbose_summary_shows_the_kernels_misses(veth, trace_process, nothing_left_behind):
    tp = trace_process("-m", hex(MARK), "-o", "json", "-v")
    tp.wait_ready()
    local_udp(veth, UDP_PORT, MARK, count=3)
    assert tp.wait_stdout(lambda lines: len(lines) >= 3), tp.stderr
    assert tp.stop() == 0
    summary = tp.stderr.splitlines()
    at = next(i for i, line in enumerate(summary) if line.startswith("Summary:"))
    assert re.fullmatch(r"Missed by the kernel: \d+ probe runs skipped .*", summary[at + 1])
