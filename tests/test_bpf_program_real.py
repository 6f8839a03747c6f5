"""The BPF program as bcc compiles it: --dump-bpf, the entry point macros of every
backend, and the event layout Python reads (root, bcc; nothing is attached)."""

import os
import subprocess
import sys
import tempfile
import time

import pytest

from ipft_tui.kernel import Kernel
from ipft_tui.kernel import bpfsys
from ipft_tui.kernel.headers import find_headers
from ipft_tui.kernel.targets import Target
from ipft_tui.tracing import backends
from ipft_tui.tracing.event import IPFT_TRACK_CALL, EventLayout
from ipft_tui.tracing.program import ProgramSpec

pytestmark = pytest.mark.root
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def kernel(bpf_ready):
    find_headers().apply()
    return Kernel()


def compile_file(path: str, cflags: list[str]):
    import bcc
    return bcc.BPF(src_file=path.encode(), cflags=cflags)


def compile_spec(spec: ProgramSpec):
    with tempfile.NamedTemporaryFile("w", suffix=".c") as f:
        f.write(spec.source())
        f.flush()
        return compile_file(f.name, spec.cflags())


@pytest.mark.timeout(300)
def test_dumped_program_compiles_and_loads(kernel, nothing_left_behind, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ipft_tui", "--dump-bpf", "-o", "json",
                           "--track-skb", "--stack-trace", "kfree_skb", "--output-tuple",
                           "-e", "examples/devname.c"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    dump = proc.stdout
    first, cflags_line = dump.splitlines()[:2]
    assert first.startswith("/* ipft-tui --dump-bpf: backend ")
    cflags = cflags_line.removeprefix(" * cflags: ").split()
    for flag in ("-DIPFT_TRACK_SKB=1", "-DIPFT_STACKS=1", "-DIPFT_WITH_META=1", "-DIPFT_MODULE=1"):
        assert flag in cflags
    assert "int module(" in dump  # the extension is in it
    path = tmp_path / "dump.c"
    path.write_text(dump)
    lines = [line for line in dump.splitlines() if line.startswith("IPFT_TRACEPOINT(")]
    assert lines, "the tracepoint backend (the one this machine has) wrote no entry points"
    bpf = compile_file(str(path), cflags)
    try:
        skb, reason = (int(n) for n in lines[0][len("IPFT_TRACEPOINT("):-1].split(","))
        fd = bpf.load_func(f"ipft_tp_s{skb}_r{reason}".encode(), bpf.RAW_TRACEPOINT).fd
        assert fd > 0  # the verifier accepts it
    finally:
        bpf.cleanup()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("options", [
    {}, {"track_skb": True, "stacks": True, "meta": True, "module": True},
    {"track_skb": True, "meta": True}, {"stacks": True, "module": True}])
def test_the_struct_as_compiled_has_every_field_where_python_reads_it(kernel, options):
    """The generated header asserts each offsetof() and the size against EventLayout:
    a layout that drifts fails this compile."""
    event = EventLayout(**options)
    module = ("static __always_inline int module(void *ctx, struct sk_buff *skb, u8 data[64])"
              "{ return 0; }\n") if event.module else None
    spec = ProgramSpec(layout_header=kernel.layout_header, entry_points="IPFT_TRACEPOINT(1, 0)\n",
                       meta=event.meta, track_skb=event.track_skb, stacks=event.stacks,
                       module_source=module)
    assert spec.event_layout() == event
    assert spec.source().count("_Static_assert(__builtin_offsetof(struct ipft_event") == len(event.index)
    compile_spec(spec).cleanup()


COPY, PLAIN, DROP = (Target("skb_copy_header", 1), Target("ip_rcv", 1),
                     Target("kfree_skb_reason", 1, reason_pos=2))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("make", [
    lambda: backends.KprobeBackend([COPY, PLAIN, DROP], {}, use_cookie=True),
    lambda: backends.KprobeBackend([COPY, PLAIN, DROP], {}, use_cookie=False),
    lambda: backends.FentryBackend([COPY, PLAIN, DROP], {}),
    lambda: backends.TracepointBackend(
        [Target("kfree_skb", 0, kind="tracepoint", reason_pos=2),
         Target("netif_rx_entry", 0, kind="tracepoint")], False, {"netif_rx_entry": "netif_rx_exit"}),
], ids=["kprobe-cookie", "kprobe-patched", "fentry", "tracepoint-patched"])
def test_entry_points_of_every_backend_compile_and_carry_their_probe_word(kernel, make):
    backend = make()
    spec = ProgramSpec(layout_header=kernel.layout_header, entry_points=backend.entry_points(),
                       track_skb=True, stacks=True, defines=backend.defines())
    bpf = compile_spec(spec)
    try:
        patching = "IPFT_NO_COOKIE" in backend.defines() or backend.name == "ftrace"
        for probe_id in range(len(backend.candidates)):
            if backend.name == "tracepoint":
                program = backends._program_name("ipft_tp", backends._shape(backend.candidates[probe_id]))
            else:
                program = backend._entry_name(probe_id)
            insns = bpf.dump_func(program.encode())
            if patching:
                word = probe_id | IPFT_TRACK_CALL
                assert backends.patched(insns, word) != insns
                assert word.to_bytes(4, "little") in backends.patched(insns, word)
            else:
                with pytest.raises(Exception, match="IPFT_PATCH_ME"):
                    backends.patched(insns, 1)
        if backend.name == "kprobe":  # kprobe programs load here (only attaching fails)
            fd = backends._load_patched(bpf, backend._entry_name(0), bpfsys.PROG_TYPE_KPROBE, 7) \
                if patching else bpf.load_func(backend._entry_name(0).encode(), bpf.KPROBE).fd
            assert fd > 0
            if patching:
                bpfsys.close(fd)
        copies = [line for line in spec.entry_points.splitlines() if line.endswith(", 2)")]
        assert len(copies) == (1 if backend.name != "tracepoint" else 0)  # skb_copy_header's own
    finally:
        bpf.cleanup()


@pytest.mark.timeout(300)
def test_tracepoints_without_cookies_tell_their_probes_apart(veth, nothing_left_behind):
    """Before 6.10 raw tracepoints have no BPF cookie: each tracepoint gets the shared
    program loaded with its own probe word. Every sample must name the tracepoint it
    came from, and exit tracepoints pair with their entries (function_graph)."""
    from ipft_tui.collector import Collector
    from ipft_tui.model import group_by_packet
    from ipft_tui.settings import TraceSettings

    kernel = Kernel()
    kernel.capabilities.raw_tp_cookie = False
    got, notices = [], []
    collector = Collector(TraceSettings(mark=0x515, tracer="function_graph"),
                          lambda batch: got.extend(batch.samples()), kernel=kernel,
                          on_notice=notices.append)
    collector.start()
    try:
        collector.wait_ready(60)
        assert collector.backend.defines() == {"IPFT_NO_COOKIE": 1}
        assert collector.status.attached == collector.status.total > 10, notices
        veth.mark_incoming(0x515, "-p", "udp")
        veth.send_udp(7777, count=2, mark=0x515)  # dropped in B: a closed port
        veth.ping(count=2, mark=0x515, local=True)  # down and up again in A
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (any(s.drop_reason for s in got)
                                                   and any(s.is_return for s in got)):
            time.sleep(0.05)
    finally:
        collector.stop()
    assert collector.error is None, notices
    journeys = [[(s.function, s.is_return) for s in j] for j in group_by_packet(got).values()]
    # Each sample names its own tracepoint: the kernel's order shows it.
    assert any(in_order(j, ("net_dev_queue", False), ("net_dev_start_xmit", False),
                        ("icmp_send", False), ("kfree_skb", False)) for j in journeys), journeys
    assert {s.drop_reason for s in got if s.function == "kfree_skb"} == {"NO_SOCKET"}
    # netif_rx_entry's exit tracepoint reports its return, after netif_rx inside it.
    assert any(in_order(j, ("netif_rx_entry", False), ("netif_rx", False), ("netif_rx_entry", True),
                        ("net_dev_xmit", False), ("netif_receive_skb", False)) for j in journeys), journeys
    assert {s.function for s in got if s.is_return} == {"netif_rx_entry"}


def in_order(items, *expected):
    it = iter(items)
    return all(x in it for x in expected)


@pytest.mark.timeout(300)
def test_perf_buffer_path_delivers_whole_events(veth, nothing_left_behind):
    """--event-buffer perf (what kernels before 5.8 would need): the same events,
    every optional part included, decoded from perf records."""
    from ipft_tui.collector import Collector
    from ipft_tui.settings import TraceSettings

    got, notices = [], []
    collector = Collector(TraceSettings(mark=0x616, perf_buffer=True, meta=True, track_skb=True,
                                        stack_regex="^kfree_skb$"),
                          lambda batch: got.extend(batch.samples()), on_notice=notices.append)
    collector.start()
    try:
        collector.wait_ready(60)
        veth.mark_incoming(0x616, "-p", "udp")
        veth.send_udp(7777, count=2, mark=0x616)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len([s for s in got if s.drop_reason]) < 2:
            time.sleep(0.05)
    finally:
        collector.stop()
    assert collector.error is None, notices
    assert collector.status.lost == 0
    drops = [s for s in got if s.function == "kfree_skb"]
    assert len(drops) == 2 and {s.drop_reason for s in drops} == {"NO_SOCKET"}
    for s in drops:
        assert (s.meta.saddr, s.meta.daddr, s.meta.dport, s.meta.l4_proto) == (
            veth.a_addr, veth.b_addr, 7777, 17)
        assert s.skb and s.journey_end is not None  # followed (possibly on a clone)
        assert s.stack and not s.stack[0].startswith("[")


@pytest.mark.timeout(300)
def test_a_sample_is_counted_rescued_or_lost_never_both(veth, nothing_left_behind):
    """A one-page ring buffer and a consumer held until the traffic is over: the
    rescue buffer (1 MiB) fills up too. Samples the rescue buffer could not take are
    lost, not rescued: rescued never exceeds what arrived."""
    import threading

    from ipft_tui.collector import Collector
    from ipft_tui.settings import TraceSettings

    got, sent = [], threading.Event()

    def held_sink(batch):
        sent.wait(60)
        got.extend(batch.records)

    collector = Collector(TraceSettings(mark=0x717, ringbuf_pages=1), held_sink)
    collector.start()
    try:
        collector.wait_ready(60)
        veth.mark_incoming(0x717, "-p", "udp")  # samples in B too: about 4 a datagram
        veth.exec(veth.ns_a, sys.executable, "-c",
                  "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  "s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x717)\n"
                  f"for _ in range(12000): s.sendto(b'x', ('{veth.b_addr}', 7777))\n")
        sent.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (collector.status.lost and got):
            time.sleep(0.05)
        time.sleep(0.5)  # the status counters are read every 0.25 s
    finally:
        sent.set()
        collector.stop()
    status = collector.status
    assert status.lost > 0, status  # both buffers overflowed
    assert 0 < status.rescued <= len(got), (status.rescued, len(got), status.lost)
