"""Command line: ipftrace2's options plus ipft-tui's own."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import IpftError
from .headless import run_check, run_dump_bpf, run_headless, run_list
from .settings import BACKEND_CHOICES, TRACERS
from .startup import check_options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ipft-tui",
        description="Trace packets through the Linux kernel: those matching a pcap-filter "
                    "expression and/or a mark. Without -o: the live TUI.")
    p.add_argument("-b", "--backend", default="auto", choices=BACKEND_CHOICES,
                   help="trace backend (default: auto, the best this kernel supports)")
    p.add_argument("-l", "--list", action="store_true",
                   help="list the functions/tracepoints that would be traced, then exit")
    p.add_argument("-m", "--mark", help="mark to match (decimal or 0x hex)")
    p.add_argument("--mask", default="0xffffffff", help="bits of the mark to compare (default 0xffffffff)")
    p.add_argument("-o", "--output", choices=("aggregate", "json", "paths", "paths-json"),
                   help="run headless and print this format on stdout (paths: the distinct "
                        "function sequences with counts, endings and durations, on exit)")
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
                   help="TUI: also write every sample to FILE as JSON lines (created 0600; "
                        "an existing FILE is refused unless --overwrite is given)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --record replace an existing file")
    p.add_argument("--max-packets",
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
    p.add_argument("--no-drop", action="store_true",
                   help="headless: never drop samples in user space. Without -s/-e nothing is "
                        "(the reading thread writes the output); with one, the reader waits for "
                        "the script, the kernel's buffer fills and what finds no room there is "
                        "counted as lost")
    p.add_argument("--check", action="store_true",
                   help="print which backends this kernel supports, and why not, then exit")
    p.add_argument("--dump-bpf", action="store_true",
                   help="print the BPF C program (and its cflags) these options would compile "
                        "on this kernel, then exit without loading it")
    p.add_argument("--version", action="version", version=f"ipft-tui {__version__}")
    p.add_argument("--filter-netns", metavar="NETNS",
                   help="only packets in this network namespace: an inode, a path such as "
                        "/proc/PID/ns/net, or a name from `ip netns`")
    p.add_argument("--filter-ifname", metavar="DEV",
                   help="only packets on the device with this name")
    p.add_argument("expression", nargs="*",
                   help="pcap-filter expression, as for tcpdump (e.g. udp and dst port 53): "
                        "a packet is selected where its headers first match, then followed")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        start = check_options(args)
    except IpftError as exc:
        parser.error(str(exc))  # exit 2, like argparse's own checks: nothing was touched
    try:
        if start.mode == "check":
            return run_check()
        if start.mode == "list":
            return run_list(args)
        if start.mode == "dump":
            return run_dump_bpf(start.settings, args)
        if start.mode == "headless":
            return run_headless(start, args)
        from .tui.run import run_tui  # noqa: PLC0415 - Textual loads only for the TUI
        return run_tui(start, args)
    except IpftError as exc:
        print(f"ipft-tui: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
