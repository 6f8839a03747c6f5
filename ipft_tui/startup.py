"""Start-up shared by every run mode (headless, TUI, -l, --check): command-line values
checked and turned into settings, the extension loaded, root and kernel BTF checked.

Nothing here compiles or attaches anything. cli.py parses and dispatches; the run
modes (headless.py, tui/run.py) call these, so neither imports the other or cli.py.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass, replace

from .demo import DEMO_MARK
from .errors import IpftError, UsageError
from .extensions import load_extension
from .kernel import Kernel
from .kernel.btf import BTFError
from .pcapfilter import compile_filter
from .settings import (FILTER_HINT, TraceSettings, compile_regex, parse_capture_bytes,
                       parse_ifname, parse_mark, parse_mask, parse_netns, parse_positive)

# The kernel's limits, checked here so that a bad value fails before compiling, not in
# a map or buffer error afterwards.
RINGBUF_MAX_PAGES = 1 << 19  # a ring buffer's size is a u32 power of two: 2 GiB at most
# A perf buffer's page list is one kernel allocation of at most 4 MiB (MAX_PAGE_ORDER):
# 2^18 pointers, i.e. 1 GiB per CPU.
PERF_MAX_PAGES = 1 << 18
INT_MAX = (1 << 31) - 1  # bcc takes wakeup_events as a C int
DEFAULT_MAX_PACKETS = 10_000


@dataclass(frozen=True)
class Startup:
    """What to run, from checked options. mode: check, list, headless, replay or tui."""

    mode: str
    settings: TraceSettings | None = None
    probe_server: tuple[str, int] | None = None  # (address, port) with --enable-probe-server
    max_packets: int = DEFAULT_MAX_PACKETS


def _refuse(args: argparse.Namespace, why: str, **options: str) -> None:
    """Refuse each given option (its attribute -> its flag) that makes no sense here."""
    given = [flag for attr, flag in options.items() if getattr(args, attr) not in (None, False)]
    if given:
        raise IpftError(f"{', '.join(given)}: {why}")


def _power_of_two(value: int, what: str, most: int, unit: str) -> int:
    if value & (value - 1):
        raise IpftError(f"{what} must be a power of two, got {value}")
    if value > most:
        raise IpftError(f"{what} {value} is more than the kernel allows ({most} {unit})")
    return value


def _probe_server(args: argparse.Namespace) -> tuple[str, int] | None:
    port = parse_positive(args.probe_server_port, "--probe-server-port")
    if port > 65535:
        raise IpftError(f"--probe-server-port {port} is not a TCP port (1-65535)")
    try:
        address = str(ipaddress.ip_address(args.probe_server_address.strip()))
    except ValueError:
        raise IpftError(f"--probe-server-address {args.probe_server_address!r} is not an IPv4 "
                        "or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1, ::)") from None
    return (address, port) if args.enable_probe_server else None


def check_options(args: argparse.Namespace) -> Startup:
    """Every option checked, alone and together, before anything is read from the
    kernel or compiled: an IpftError here is a usage error."""
    if args.check:
        return Startup("check")
    if args.list:
        compile_regex(args.regex)
        return Startup("list")
    if args.replay:
        _refuse(args, "--replay shows a recorded trace in the TUI; it traces nothing",
                write_pcap="--write-pcap", capture_bytes="--capture-bytes", output="-o",
                record="--record", overwrite="--overwrite", demo="--demo", script="-s",
                extension="-e", enable_probe_server="--enable-probe-server")
    if args.output:
        _refuse(args, "TUI only (with -o json, redirect stdout to a file to record)",
                record="--record", overwrite="--overwrite", replay="--replay",
                max_packets="--max-packets")
        if args.output != "aggregate":
            _refuse(args, "-o aggregate only (JSON streams samples before it is known how "
                    "the journey ends; paths always end journeys where the skb is freed)",
                    drops_only="--drops-only", split_on_free="--split-on-free")
        if args.output != "json":
            _refuse(args, "-o json only", output_tuple="--output-tuple")
    else:
        _refuse(args, "headless only (with -o); the TUI shows flows and drops itself",
                drops_only="--drops-only", split_on_free="--split-on-free",
                output_tuple="--output-tuple", enable_probe_server="--enable-probe-server",
                no_drop="--no-drop")
    if args.overwrite and not args.record:
        raise IpftError("--overwrite goes with --record FILE")
    max_packets = DEFAULT_MAX_PACKETS
    if args.max_packets is not None:
        max_packets = parse_positive(args.max_packets, "--max-packets")
    if args.replay:
        if args.dump_bpf:
            raise IpftError("--dump-bpf: a replay compiles nothing")
        return Startup("replay", max_packets=max_packets)
    settings = settings_from_args(args, mark_required=bool(args.output) and not args.dump_bpf)
    probe = _probe_server(args)
    if not args.output:
        # The TUI's program: every live switch compiled in, skbs followed by default.
        settings = replace(settings, meta=True, live_switches=True, track_skb=True)
    if args.dump_bpf:
        return Startup("dump", settings)
    if not args.output:
        return Startup("tui", settings, max_packets=max_packets)
    return Startup("headless", settings, probe_server=probe)


def filter_from_args(args: argparse.Namespace) -> dict:
    """The packet filters besides the mark, checked (libpcap compiles the expression)."""
    expression = " ".join(getattr(args, "expression", None) or []).strip() or None
    if expression is not None:
        compile_filter(expression)
    return {"expression": expression, "netns": parse_netns(getattr(args, "filter_netns", None)),
            "ifname": parse_ifname(getattr(args, "filter_ifname", None))}


def settings_from_args(args: argparse.Namespace, mark_required: bool = True) -> TraceSettings:
    """Validate every user-given value before anything touches the kernel.

    Without any filter (and mark_required False), mark is 0: the TUI then asks."""
    mark = args.mark
    if mark is None and args.demo:
        mark = hex(DEMO_MARK)
    filters = filter_from_args(args)
    if mark is None and mark_required and not any(filters.values()):
        raise UsageError(f"nothing to trace: {FILTER_HINT}")
    capture = args.capture_bytes
    if capture is None:  # the TUI shows packets; headless only when asked (--write-pcap)
        capture = "128" if not args.output or args.write_pcap else "0"
    capture_bytes = parse_capture_bytes(capture)
    if args.write_pcap and not capture_bytes:
        raise IpftError("--write-pcap needs packet bytes: drop --capture-bytes 0")
    compile_regex(args.regex)
    compile_regex(args.stack_trace)
    pages = _power_of_two(parse_positive(args.ringbuf_pages, "--ringbuf-pages"),
                          "--ringbuf-pages", RINGBUF_MAX_PAGES, "pages, 2 GiB")
    perf_pages = _power_of_two(parse_positive(args.perf_page_count, "--perf-page-count"),
                               "--perf-page-count", PERF_MAX_PAGES, "pages per CPU")
    if parse_positive(args.perf_sample_period, "--perf-sample-period") != 1:
        raise IpftError("--perf-sample-period: only 1 is supported (bcc's perf buffer "
                        "delivers every sample)")
    wakeup = parse_positive(args.perf_wakeup_events, "--perf-wakeup-events")
    if wakeup > INT_MAX:
        raise IpftError(f"--perf-wakeup-events {wakeup} is too large (at most {INT_MAX})")
    return TraceSettings(
        mark=parse_mark(mark) if mark is not None else 0,
        mask=parse_mask(args.mask),
        regex=args.regex or None,
        backend=args.backend,
        tracer=args.tracer,
        perf_buffer=args.event_buffer == "perf",
        perf_page_count=perf_pages,
        perf_sample_period=1,
        perf_wakeup_events=wakeup,
        ringbuf_pages=pages,
        # Devices and namespaces name the pcapng interfaces.
        meta=bool(args.output_tuple or args.write_pcap),
        capture_bytes=capture_bytes,
        track_skb=args.track_skb,
        stack_regex=args.stack_trace or None,
        **filters,
    )


def extension_from_args(args):
    """The -s/-e extension, loaded and checked (syntax, API) before any tracing."""
    if args.script and args.extension:
        raise IpftError("give either -s (Lua) or -e (C), not both")
    path = args.script or args.extension
    if not path:
        return None
    if args.script and not path.endswith(".lua"):
        raise IpftError(f"-s takes a Lua script (.lua): {path}")
    if args.extension and not path.endswith(".c"):
        raise IpftError(f"-e takes a C file (.c): {path}")
    return load_extension(path)


def require_root() -> None:
    if os.geteuid() != 0:
        raise IpftError("ipft-tui needs root to load BPF programs (try: sudo ipft-tui ...)")


def kernel_or_error() -> Kernel:
    """The running kernel, its BTF read now to fail early with a clear message."""
    kernel = Kernel()
    try:
        kernel.btf  # noqa: B018 - the property reads and parses the BTF files
    except (BTFError, OSError) as exc:
        raise IpftError(f"cannot read kernel BTF: {exc}") from None
    return kernel
