"""Command line: ipftrace2's options plus ipft-tui's own."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .errors import IpftError
from .settings import (BACKEND_CHOICES, TRACERS, TraceSettings, compile_regex, parse_capture_bytes,
                       parse_mark, parse_mask, parse_positive)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ipft-tui",
        description="Trace marked packets through the Linux kernel. Without -o: the live TUI.")
    p.add_argument("-b", "--backend", default="auto", choices=BACKEND_CHOICES,
                   help="trace backend (default: auto, the best this kernel supports)")
    p.add_argument("-l", "--list", action="store_true",
                   help="list the functions/tracepoints that would be traced, then exit")
    p.add_argument("-m", "--mark", help="mark to match (decimal or 0x hex)")
    p.add_argument("--mask", default="0xffffffff", help="bits of the mark to compare (default 0xffffffff)")
    p.add_argument("-o", "--output", choices=("aggregate", "json"),
                   help="run headless and print this format on stdout")
    p.add_argument("-r", "--regex", help="only trace functions/tracepoints whose name matches")
    p.add_argument("-s", "--script", help="Lua extension script (ipftrace2's API version 1; "
                                             "emit() returns C source for bcc)")
    p.add_argument("-e", "--extension", help="C extension: module() plus a `struct event` "
                                             "whose fields are decoded by name")
    p.add_argument("-t", "--tracer", default="function", choices=TRACERS)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug messages, and print the options in effect")
    p.add_argument("--perf-page-count", default="8", help="perf buffer pages per CPU (default 8)")
    p.add_argument("--perf-sample-period", default="1", help="perf sample period (default 1)")
    p.add_argument("--perf-wakeup-events", default="1", help="perf wakeup events (default 1)")
    p.add_argument("--no-set-rlimit", action="store_true",
                   help="do not raise RLIMIT_MEMLOCK / RLIMIT_NOFILE")
    p.add_argument("--enable-probe-server", action="store_true",
                   help="open a TCP readiness port once every probe is attached")
    p.add_argument("--probe-server-port", default="13720", help="readiness port (default 13720)")
    p.add_argument("--probe-server-address", default="127.0.0.1",
                   help="address the readiness port listens on (default 127.0.0.1)")
    p.add_argument("--event-buffer", choices=("ringbuf", "perf"), default="ringbuf",
                   help="kernel-to-user buffer: BPF ring buffer (default) or perf buffer "
                        "(honours the --perf-* options)")
    p.add_argument("--ringbuf-pages", default="4096",
                   help="ring buffer size in pages, a power of two (default 4096 = 16 MiB)")
    p.add_argument("--demo", action="store_true",
                   help="make marked demo traffic in a private namespace pair while tracing "
                        "(mark defaults to 0xdeadbeef); removed on exit")
    p.add_argument("--replay", metavar="FILE",
                   help="open a JSON-lines trace (ours or ipftrace2's -o json) in the TUI; "
                        "no root or BPF needed")
    p.add_argument("--record", metavar="FILE",
                   help="TUI: also write every sample to FILE as JSON lines")
    p.add_argument("--max-packets", default="10000",
                   help="TUI: packets kept; the oldest are evicted and counted (default 10000)")
    p.add_argument("--output-tuple", action="store_true",
                   help="-o json: add device, namespace and packet header fields (ifname, netns, "
                        "saddr, daddr, sport, dport, ...)")
    p.add_argument("--track-skb", action="store_true",
                   help="keep following a matched packet when its mark changes (e.g. cleared "
                        "between namespaces) and into clones that share its data; samples "
                        "taken on another skb than the journey's first name it (JSON \"skb\")")
    p.add_argument("--stack-trace", metavar="REGEX",
                   help="record the kernel stack of the samples of the functions/tracepoints "
                        "matching REGEX (JSON \"stack\", indented lines in aggregate)")
    p.add_argument("--capture-bytes", metavar="N",
                   help="copy the first N bytes of the packet at each sample (from the MAC header "
                        "when set, else the network header; JSON \"packet\"); default 128 in "
                        "the TUI and with --write-pcap, else 0 (off)")
    p.add_argument("--write-pcap", metavar="FILE",
                   help="also write every sample with packet bytes to FILE as pcapng (new file, "
                        "mode 0600), with the function, packet id, CPU and drop reason as "
                        "packet comments")
    p.add_argument("--split-on-free", action="store_true",
                   help="-o aggregate: end a journey where its skb is freed (the kernel reuses "
                        "skb addresses); default: group by address like ipftrace2")
    p.add_argument("--drops-only", action="store_true",
                   help="-o aggregate: print only the journeys of dropped packets")
    p.add_argument("--check", action="store_true",
                   help="print which backends this kernel supports, and why not, then exit")
    p.add_argument("--version", action="version", version=f"ipft-tui {__version__}")
    return p


def settings_from_args(args: argparse.Namespace, mark_required: bool = True) -> TraceSettings:
    """Validate every user-given value before anything touches the kernel.

    Without -m (and mark_required False), mark is 0: the TUI then asks for it."""
    if args.mark is None and args.demo:
        from .demo import DEMO_MARK  # noqa: PLC0415
        args.mark = hex(DEMO_MARK)
    if args.mark is None and mark_required:
        raise IpftError("-m/--mark is required with -o (e.g. -m 0xdeadbeef)")
    compile_regex(args.regex)
    compile_regex(args.stack_trace)
    capture = getattr(args, "capture_bytes", None)
    if capture is None:  # the TUI shows packets; headless only when asked (--write-pcap)
        capture = "128" if not args.output or getattr(args, "write_pcap", None) else "0"
    capture_bytes = parse_capture_bytes(capture)
    if getattr(args, "write_pcap", None) and not capture_bytes:
        raise IpftError("--write-pcap needs packet bytes: drop --capture-bytes 0")
    pages = parse_positive(args.ringbuf_pages, "--ringbuf-pages")
    if pages & (pages - 1):
        raise IpftError(f"--ringbuf-pages must be a power of two, got {pages}")
    return TraceSettings(
        mark=parse_mark(args.mark) if args.mark is not None else 0,
        mask=parse_mask(args.mask),
        regex=args.regex or None,
        backend=args.backend,
        tracer=args.tracer,
        perf_buffer=args.event_buffer == "perf",
        perf_page_count=parse_positive(args.perf_page_count, "--perf-page-count"),
        perf_sample_period=parse_positive(args.perf_sample_period, "--perf-sample-period"),
        perf_wakeup_events=parse_positive(args.perf_wakeup_events, "--perf-wakeup-events"),
        ringbuf_pages=pages,
        # Devices and namespaces name the pcapng interfaces.
        meta=bool(getattr(args, "output_tuple", False) or getattr(args, "write_pcap", None)),
        capture_bytes=capture_bytes,
        track_skb=args.track_skb,
        stack_regex=args.stack_trace or None,
    )


def extension_from_args(args):
    """The -s/-e extension, loaded and checked (syntax, API) before any tracing."""
    if args.script and args.extension:
        raise IpftError("give either -s (Lua) or -e (C), not both")
    path = args.script or args.extension
    if not path:
        return None
    from .extensions import load_extension  # noqa: PLC0415
    if args.script and not path.endswith(".lua"):
        raise IpftError(f"-s takes a Lua script (.lua): {path}")
    if args.extension and not path.endswith(".c"):
        raise IpftError(f"-e takes a C file (.c): {path}")
    return load_extension(path)


def require_root() -> None:
    if os.geteuid() != 0:
        raise IpftError("ipft-tui needs root to load BPF programs (try: sudo ipft-tui ...)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.check:
            from .headless import run_check  # noqa: PLC0415
            return run_check()
        if args.list:
            from .headless import run_list  # noqa: PLC0415
            return run_list(args)
        if args.output:
            settings = settings_from_args(args)
            probe_port = parse_positive(args.probe_server_port, "--probe-server-port")
            if probe_port > 65535:
                raise IpftError(f"--probe-server-port {probe_port} is not a TCP port")
            if args.drops_only and args.output != "aggregate":
                raise IpftError("--drops-only needs -o aggregate (JSON streams samples before "
                                "it is known whether the packet will be dropped)")
            from .headless import run_headless  # noqa: PLC0415
            return run_headless(settings, args, probe_port)
        from .tui.run import run_tui  # noqa: PLC0415
        return run_tui(args)
    except IpftError as exc:
        print(f"ipft-tui: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
