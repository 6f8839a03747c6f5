"""A stop while the kernel's ring buffer is full: every sample it holds is read and
written before the probes' buffers close, none vanishes uncounted.

The tool is frozen (SIGSTOP) while marked packets flood the buffers, so both the main
ring buffer and the rescue one fill and the rest is counted as lost; it then gets
SIGINT and SIGCONT together: the stop comes while the buffers are still full."""

import os
import re
import signal
import struct

import pytest

from ipft_tui.tracing.event import IPFT_PAGE_SIZE, IPFT_RESCUE_PAGES, EventLayout
from tests.test_trace_real import local_udp

MARK = 0x5709
PAGES = 256  # 1 MiB: several reads' worth of records (a read takes 4096)
pytestmark = pytest.mark.root


def test_a_stop_reads_full_ring_buffers_to_their_end(veth, trace_process, nothing_left_behind):
    tp = trace_process("-m", hex(MARK), "-o", "json", "-v", "--ringbuf-pages", str(PAGES))
    tp.wait_ready()
    os.kill(tp.proc.pid, signal.SIGSTOP)
    try:
        local_udp(veth, 9, MARK, count=50000, pause=0)
        os.kill(tp.proc.pid, signal.SIGINT)  # pending until it runs again
    finally:
        os.kill(tp.proc.pid, signal.SIGCONT)
    assert tp.proc.wait(60) == 0, tp.stderr
    summary = next(line for line in tp.stderr.splitlines() if line.startswith("Summary:"))
    delivered, lost, rescued, dropped = (int(n) for n in re.findall(r"\d+", summary))
    record = struct.calcsize(EventLayout().record_format)  # -o json without tuple fields
    held = (PAGES + IPFT_RESCUE_PAGES) * IPFT_PAGE_SIZE // record
    assert lost > 0, tp.stderr  # both buffers were full when the stop came
    assert "left in the kernel's buffer" not in tp.stderr  # read within the bound
    assert delivered >= 0.95 * held, (delivered, held, tp.stderr)  # all they held
    assert len(tp.stdout.splitlines()) == delivered and dropped == 0
