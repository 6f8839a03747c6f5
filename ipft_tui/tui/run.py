"""Start the TUI from the command line: live (optionally on demo traffic) or replay."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace

from ..batching import SampleBuffer
from ..cli import extension_from_args, require_root, settings_from_args
from ..errors import IpftError
from ..settings import parse_positive
from .app import IpftApp
from .sources import LiveSource, ReplaySource


def run_tui(args) -> int:
    max_packets = parse_positive(args.max_packets, "--max-packets")
    buffer = SampleBuffer()
    if args.replay:
        source = ReplaySource(args.replay, buffer)
        if not source.samples and source.problems:
            raise IpftError(f"{args.replay}: no valid sample ({len(source.problems)} malformed lines)")
        app = IpftApp(source, buffer, max_packets=max_packets, follow=False)
        app.run()
        return 0
    settings = replace(settings_from_args(args, mark_required=False), meta=True,
                       live_switches=True)
    require_root()
    extension = extension_from_args(args)
    if extension is not None:
        settings = replace(settings, module_source=extension.c_source, module_label=extension.path)
        extension.init()
    from ..headless import kernel_or_error  # noqa: PLC0415
    kernel = kernel_or_error()
    with ExitStack() as stack:
        source = LiveSource(settings, buffer, record_path=args.record, kernel=kernel,
                            extension=extension, pcap_path=args.write_pcap)
        stack.callback(source.stop)  # detach on every exit path, exceptions included
        if args.demo:
            from ..demo import DemoTraffic  # noqa: PLC0415
            stack.enter_context(DemoTraffic(settings.mark))
        app = IpftApp(source, buffer, max_packets=max_packets, ask_mark=settings.mark == 0)
        app.run()
        if source.error is not None and app.return_code not in (None, 0):
            raise source.error
    return 0
