"""Run inside the kernel-matrix VMs (tests/vm/run_matrix.py), as root: the ftrace
(fentry/fexit) backend on module functions and on skbs past argument 5 (#20.4), with
real packets. One collector start (one bcc compile) on a small regex serves both:
a ping over a veth pair passes `veth_xmit` (module veth, attached through the module's
BTF object), a UDP datagram `__udp4_lib_lookup` (skb is argument 9: x86-64 trampolines
save more than 6 arguments from Linux 6.6). Where the kernel cannot, -l says why."""

import os
import subprocess
import sys
import time

import pytest

from ipft_tui.collector import Collector
from ipft_tui.kernel.targets import ftrace_max_args
from ipft_tui.netlab import VethPair
from ipft_tui.settings import TraceSettings

KERNEL = os.environ.get("IPFT_VM_KERNEL", "")
MARK = 0xFE17
REGEX = r"^(veth_xmit|__udp4_lib_lookup|udp_rcv)$"
MODULE_BTF = KERNEL != "5.10"  # module BTF came in 5.11
WIDE_TRAMPOLINE = ftrace_max_args(os.uname().release) == 12  # 6.6+
EXPECTED_WIDE = KERNEL in ("6.12", "sid")  # the release check agrees with the matrix's kernels


def wait_for(condition, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


@pytest.mark.timeout(900)
def test_ftrace_traces_module_functions_and_late_skb_arguments():
    assert WIDE_TRAMPOLINE == EXPECTED_WIDE, os.uname().release
    with VethPair("ipftfe") as pair:  # loads veth (and its BTF) before the kernel is read
        assert os.path.exists("/sys/kernel/btf/veth") == MODULE_BTF
        listed = subprocess.run([sys.executable, "-m", "ipft_tui", "-l", "-b", "ftrace", "-r", REGEX],
                                capture_output=True, text=True, timeout=300)
        assert listed.returncode == 0, listed.stderr
        rows = {line.split("\t")[0].strip(): line.split("\t") for line in listed.stdout.splitlines()}
        # -l prints what a run tries, the skb position 0-based, the module by name ...
        assert ("veth_xmit" in rows) == MODULE_BTF, listed.stdout
        if MODULE_BTF:
            assert rows["veth_xmit"][1].strip() == "veth"
        assert ("__udp4_lib_lookup" in rows) == WIDE_TRAMPOLINE, listed.stdout
        if WIDE_TRAMPOLINE:
            # 0-based; argument 9 up to 6.x, 8 on 7.x (one argument fewer)
            assert int(rows["__udp4_lib_lookup"][3]) >= 5
        else:  # ... and on stderr why a matching function is not tried
            assert ("ftrace leaves out __udp4_lib_lookup: takes 9 arguments; this kernel's fentry "
                    "trampoline takes at most 6") in listed.stderr, listed.stderr

        got, notices = [], []
        collector = Collector(TraceSettings(mark=MARK, backend="ftrace", regex=REGEX),
                              lambda batch: got.extend(batch.samples()), on_notice=notices.append)
        collector.start()
        try:
            collector.wait_ready(600)
            status = collector.status
            attached = {collector.candidate_names()[i] for i in collector.selected_probes()}
            assert status.failed == 0, notices[:5]
            assert attached == set(rows), (attached, notices[:5])
            # The ping is marked in A, where it leaves through veth_xmit; the datagram in
            # B's PREROUTING (the mark does not cross namespaces), before its socket lookup.
            # The mark filter reads the skb the entry point found: a wrong argument
            # (or a wrong function) gives no sample.
            pair.ping(count=2, mark=MARK)
            pair.mark_incoming(MARK, "-p", "udp")
            pair.send_udp(7777, count=2)
            wanted = {"udp_rcv"} | ({"veth_xmit"} if MODULE_BTF else set()) \
                | ({"__udp4_lib_lookup"} if WIDE_TRAMPOLINE else set())
            assert wait_for(lambda: wanted <= {s.function for s in list(got)}), \
                (sorted({s.function for s in got}), notices[:5])
            lookups = [s for s in got if s.function == "__udp4_lib_lookup"]
            received = {s.skb for s in got if s.function == "udp_rcv"}
            assert all(s.skb in received for s in lookups)  # the datagram's skb, read from argument 9
            if not MODULE_BTF:
                assert "veth_xmit" not in {s.function for s in got}
        finally:
            collector.stop(timeout=600)
