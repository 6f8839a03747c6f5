"""Start-up shared by every run mode (headless, TUI, -l, --check): command-line values
checked and turned into settings, the extension loaded, root and kernel BTF checked.

Nothing here compiles or attaches anything. cli.py parses and dispatches; the run
modes (headless.py, tui/run.py) call these, so neither imports the other or cli.py.
"""

from __future__ import annotations

import argparse
import os

from .demo import DEMO_MARK
from .errors import IpftError
from .extensions import load_extension
from .kernel import Kernel
from .kernel.btf import BTFError
from .settings import TraceSettings, compile_regex, parse_mark, parse_mask, parse_positive


def settings_from_args(args: argparse.Namespace, mark_required: bool = True) -> TraceSettings:
    """Validate every user-given value before anything touches the kernel.

    Without -m (and mark_required False), mark is 0: the TUI then asks for it."""
    mark = args.mark
    if mark is None and args.demo:
        mark = hex(DEMO_MARK)
    if mark is None and mark_required:
        raise IpftError("-m/--mark is required with -o (e.g. -m 0xdeadbeef)")
    compile_regex(args.regex)
    compile_regex(args.stack_trace)
    pages = parse_positive(args.ringbuf_pages, "--ringbuf-pages")
    if pages & (pages - 1):
        raise IpftError(f"--ringbuf-pages must be a power of two, got {pages}")
    return TraceSettings(
        mark=parse_mark(mark) if mark is not None else 0,
        mask=parse_mask(args.mask),
        regex=args.regex or None,
        backend=args.backend,
        tracer=args.tracer,
        perf_buffer=args.event_buffer == "perf",
        perf_page_count=parse_positive(args.perf_page_count, "--perf-page-count"),
        perf_sample_period=parse_positive(args.perf_sample_period, "--perf-sample-period"),
        perf_wakeup_events=parse_positive(args.perf_wakeup_events, "--perf-wakeup-events"),
        ringbuf_pages=pages,
        meta=bool(getattr(args, "output_tuple", False)),
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
