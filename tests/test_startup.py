"""Every option checked before anything is compiled: values against the kernel's limits,
and combinations that make no sense refused (no root or BPF needed)."""

import pytest

from ipft_tui.cli import build_parser
from ipft_tui.errors import IpftError
from ipft_tui.startup import PERF_MAX_PAGES, RINGBUF_MAX_PAGES, check_options


def check(*argv):
    return check_options(build_parser().parse_args(list(argv)))


HEADLESS = ("-m", "1", "-o", "json")


@pytest.mark.parametrize("argv, message", [
    ([*HEADLESS, "--ringbuf-pages", str(2**40)], r"--ringbuf-pages 1099511627776 is more than the kernel allows"),
    ([*HEADLESS, "--ringbuf-pages", str(RINGBUF_MAX_PAGES * 2)], "more than the kernel allows"),
    ([*HEADLESS, "--ringbuf-pages", "3"], "--ringbuf-pages must be a power of two"),
    ([*HEADLESS, "--perf-page-count", "3"], "--perf-page-count must be a power of two"),
    ([*HEADLESS, "--perf-page-count", str(2**40)], "--perf-page-count 1099511627776 is more than"),
    ([*HEADLESS, "--perf-page-count", str(PERF_MAX_PAGES * 2)], "more than the kernel allows"),
    ([*HEADLESS, "--perf-sample-period", "2"], "only 1 is supported"),
    ([*HEADLESS, "--perf-wakeup-events", str(2**31)], "too large"),
    ([*HEADLESS, "--probe-server-address", "localhost:1"], "not an IPv4 or IPv6 address"),
    ([*HEADLESS, "--probe-server-address", "300.1.1.1"], "not an IPv4 or IPv6 address"),
    ([*HEADLESS, "--probe-server-port", "65536"], "not a TCP port"),
    ([*HEADLESS, "--probe-server-port", "0"], "at least 1"),
    ([*HEADLESS, "--replay", "t.jsonl"], "-o: --replay shows a recorded trace"),
    (["-o", "json", "--replay", "t.jsonl"], "-o: --replay shows a recorded trace"),
    ([*HEADLESS, "--record", "t.jsonl"], "--record: TUI only"),
    ([*HEADLESS, "--max-packets", "5"], "--max-packets: TUI only"),
    ([*HEADLESS, "--drops-only"], "--drops-only: -o aggregate only"),
    ([*HEADLESS, "--split-on-free"], "--split-on-free: -o aggregate only"),
    (["-m", "1", "-o", "aggregate", "--output-tuple"], "--output-tuple: -o json only"),
    (["--drops-only"], "--drops-only: headless only"),
    (["--output-tuple"], "--output-tuple: headless only"),
    (["--enable-probe-server"], "--enable-probe-server: headless only"),
    (["--no-drop"], "--no-drop: headless only"),
    (["--replay", "t.jsonl", "--record", "u.jsonl"], "--record: --replay shows"),
    (["--replay", "t.jsonl", "--demo"], "--demo: --replay shows"),
    (["--replay", "t.jsonl", "-s", "x.lua"], "-s: --replay shows"),
    (["--max-packets", "0"], "--max-packets must be at least 1"),
    (["-l", "-r", "("], "invalid regex"),
])
def test_refused(argv, message):
    with pytest.raises(IpftError, match=message.replace("(", r"\(")):
        check(*argv)


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", "::", "::1", " ::1 "])
def test_probe_server_addresses(address):
    start = check(*HEADLESS, "--enable-probe-server", "--probe-server-address", address,
                  "--probe-server-port", "4000")
    assert start.probe_server == (address.strip(), 4000)


def test_modes():
    assert check("--check").mode == "check"
    assert check("-l", "-b", "kprobe").mode == "list"
    replay = check("--replay", "t.jsonl", "--max-packets", "7")
    assert (replay.mode, replay.max_packets, replay.settings) == ("replay", 7, None)
    tui = check("-m", "0x10")
    assert tui.mode == "tui" and tui.settings.mark == 0x10 and tui.settings.meta
    assert tui.settings.live_switches and tui.max_packets == 10_000
    assert check().settings.mark == 0  # the TUI asks for it
    headless = check(*HEADLESS, "--ringbuf-pages", str(RINGBUF_MAX_PAGES),
                     "--perf-page-count", str(PERF_MAX_PAGES))
    assert headless.mode == "headless" and headless.probe_server is None
    assert (headless.settings.ringbuf_pages, headless.settings.perf_page_count) == \
        (RINGBUF_MAX_PAGES, PERF_MAX_PAGES)
    assert not headless.settings.meta and not headless.settings.live_switches
    aggregate = check("-m", "1", "-o", "aggregate", "--drops-only", "--split-on-free")
    assert aggregate.mode == "headless"
    assert check(*HEADLESS, "--output-tuple").settings.meta


def test_kernel_limits_are_the_kernels():
    # A ring buffer's size (pages * 4096) is a u32 power of two.
    assert RINGBUF_MAX_PAGES * 4096 == 1 << 31
    # A perf buffer's page pointers fit in one 4 MiB (order-10) allocation, with room for
    # the header struct: 2^18 pointers do, 2^19 do not.
    assert PERF_MAX_PAGES * 8 < 4 << 20 <= PERF_MAX_PAGES * 2 * 8
