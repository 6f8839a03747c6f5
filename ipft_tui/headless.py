"""Headless runs: -o aggregate|json, -l, --check. Progress on stderr, the trace on stdout."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from .batching import SampleBuffer
from .collector import STOP_DRAIN_LIMIT, Collector, Status, choose_backend, program_for
from .demo import DemoTraffic
from .errors import IpftError
from .kernel.targets import FTRACE_ARGS_FACT, ftrace_max_args, list_order
from .outputs.aggregate import AggregateOutput
from .outputs.jsonlines import JsonOutput
from .outputs.paths import PathsOutput
from .outputs.stdout import GuardedStdout
from .outputs.pcapng import PcapngWriter
from .probe_server import ProbeServer
from .safefile import create_private
from .settings import TraceSettings, filter_label, select
from .startup import Startup, extension_from_args, kernel_or_error, require_root
from .tracing import backends


FLUSH_GRACE = 2.0  # s the output may take to reach a slow reader once the trace stops
STOP_BATCH = 10_000  # samples consumed between looks for a second signal while stopping


def err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def run_check() -> int:
    require_root()
    kernel = kernel_or_error()
    caps = kernel.capabilities
    for name in ("kprobe", "kprobe-multi", "ftrace", "tracepoint"):
        support = caps.backends[name]
        state = "supported" if support.ok else "not supported"
        note = "" if name in backends.IMPLEMENTED else " (backend not implemented in ipft-tui yet)"
        print(f"{name:<13} {state:<14} {support.detail}{note}")
    if caps.backends["tracepoint"].ok:
        print(f"{'':<13} {'':<14} raw tracepoint BPF cookies: "
              f"{'yes' if caps.raw_tp_cookie else 'no, before 6.10 (a program loaded per tracepoint)'}")
    if caps.backends["kprobe"].ok:
        print(f"{'':<13} {'':<14} kprobe BPF cookies: "
              f"{'yes' if caps.kprobe_cookie else 'no, before 5.15 (a program loaded per function: slower attach)'}")
    if caps.backends["ftrace"].ok:
        modules = len(kernel.btf) - 1
        print(f"{'':<13} {'':<14} fentry: up to {ftrace_max_args(os.uname().release)} arguments "
              f"({FTRACE_ARGS_FACT}); module functions: "
              + (f"yes ({modules} modules with BTF)" if modules
                 else "none (no module BTF: before 5.11, or none loaded)"))
    print(f"drop reasons  {'yes' if kernel.drop_reasons else 'no':<14} "
          + (f"{len(kernel.drop_reasons)} in enum skb_drop_reason" if kernel.drop_reasons
             else "no enum skb_drop_reason in BTF (kernels before 5.17): drops show no reason"))
    try:
        print(f"auto          -> {choose_backend('auto', caps)}")
    except IpftError as exc:
        print(f"auto          -> none: {exc}")
        return 1
    return 0


def run_dump_bpf(settings: TraceSettings, args) -> int:
    """--dump-bpf: the program these options compile here (the TUI's has the live
    switches compiled in), printed instead of loaded."""
    require_root()  # the backend and its BPF cookies are found by trying
    extension = extension_from_args(args)
    kernel = kernel_or_error()
    if extension is not None:
        settings.module_source, settings.module_label = extension.c_source, extension.path
    name, _backend, spec = program_for(settings, kernel)
    mode = f"-o {args.output}" if args.output else "the TUI"
    sys.stdout.write(spec.dump(f"ipft-tui --dump-bpf: backend {name}, {mode}, "
                               f"kernel {os.uname().release}"))
    return 0


def run_list(args) -> int:
    """What a run with these options tries, exactly (the backend's candidates, through the
    same regex selection), in ipftrace2's format and order: skb position 0-based."""
    require_root()  # kallsyms addresses, and which functions exist, need root
    kernel = kernel_or_error()
    backend = choose_backend(args.backend, kernel.capabilities) if args.backend == "auto" else args.backend
    targets, address = kernel.backend_targets(backend)
    try:
        chosen = [targets[i] for i in select([t.name for t in targets], args.regex)]
        err(f"{'NAME':>64.64}\t{'MOD':>16.16}\t{'ADDR':>18}\tSKB_POSITION\n")
        for t in sorted(chosen, key=list_order):
            print(f"{t.name:>64.64}\t{t.module:>16.16}\t0x{address.get(t.name, 0):016x}\t{t.skb_index}")
        sys.stdout.flush()
        left_out = kernel.left_out(backend)  # why the rest is not tried, on stderr
        if args.regex:
            names = list(left_out)
            try:
                matching = [names[i] for i in select(names, args.regex)]
            except IpftError:  # matches none of them
                matching = []
            for name in matching:
                err(f"ipft-tui: {backend} leaves out {name}: {left_out[name]}\n")
        elif left_out:
            err(f"ipft-tui: {backend} leaves out {len(left_out)} more skb functions "
                "(-r REGEX -l says which and why)\n")
    except KeyboardInterrupt:
        err("\nipft-tui: interrupted\n")
        return 130
    except BrokenPipeError:  # `ipft-tui -l | head`: nothing attached, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    return 0


def dump_options(s: TraceSettings, args) -> None:
    rows = [("mark", f"0x{s.mark:x}"), ("mask", f"0x{s.mask:x}"),
            ("filter", filter_label(s.mark, s.mask, s.expression, s.netns, s.ifname)),
            ("regex", s.regex),
            ("script", args.script), ("tracer", s.tracer), ("backend", s.backend),
            ("output_type", args.output),
            ("event_buffer", "perf" if s.perf_buffer else "ringbuf"),
            ("ringbuf_pages", s.ringbuf_pages), ("perf_page_cnt", s.perf_page_count),
            ("perf_sample_period", s.perf_sample_period), ("perf_wakeup_events", s.perf_wakeup_events),
            ("probe_server", f"{args.probe_server_address}:{args.probe_server_port}"
             if args.enable_probe_server else None)]
    err("============   Options   ============\n")
    for key, value in rows:
        err(f"{key:<19}: {value}\n")
    err("============ End Options ============\n")


def attach_line(status: Status) -> str:
    return (f"\rAttaching program (total {status.total}, succeeded {status.attached}, "
            f"failed {status.failed}, filtered: {status.filtered})")


def missed_line(status: Status) -> str:
    """Probe runs the kernel skipped (its counts: tracing/misses.py), after the summary."""
    if status.missed is None:
        return "Missed by the kernel: not told by this kernel\n"
    per_probe = ", ".join(f"{name} {count}" for name, count in status.missed_by_probe)
    return (f"Missed by the kernel: {status.missed} probe runs skipped (a probe hit while "
            f"its program or another kprobe ran on that CPU)"
            + (f"; per probe: {per_probe}" if per_probe else "") + "\n")


def run_headless(start: Startup, args) -> int:
    require_root()
    settings = start.settings
    server = ProbeServer(*start.probe_server) if start.probe_server else None
    try:
        extension = extension_from_args(args)
        kernel = kernel_or_error()
        if extension is not None:
            settings.module_source = extension.c_source
            settings.module_label = extension.path
            extension.init()
        try:
            return _trace(settings, args, server, kernel, extension)
        finally:
            if extension is not None:
                extension.fini()
    finally:
        if server:
            server.close()


def _trace(settings: TraceSettings, args, server: ProbeServer | None, kernel, extension) -> int:
    if args.verbose:
        dump_options(settings, args)
    settings.set_rlimit = not args.no_set_rlimit
    if sys.stdout is None:
        raise IpftError("stdout is closed: nowhere to write the trace")
    sys.stdout.flush()
    signals: list[int] = []  # appended by the handler (no lock in a signal handler)
    stopping_after: list[int] = []  # set at the stop: how many signals came before it
    # The grace for a reader that does not read starts at the stop or at a signal (the
    # thread writing may be this one, which then never gets back to look at `signals`).
    stdout = GuardedStdout(sys.stdout.fileno(), lambda: bool(stopping_after or signals),
                           grace=FLUSH_GRACE)
    if args.output == "json":
        output = JsonOutput(stdout, with_tuple=args.output_tuple)
    elif args.output in ("paths", "paths-json"):
        output = PathsOutput(stdout, as_json=args.output == "paths-json", progress=err)
    else:
        output = AggregateOutput(stdout, settings.tracer, progress=err,
                                 with_fields=extension is not None,
                                 split_on_free=args.split_on_free, drops_only=args.drops_only)
    decorate = extension.decorate if extension is not None else None
    pcap = None
    if getattr(args, "write_pcap", None):
        pcap = PcapngWriter(create_private(args.write_pcap, "--write-pcap", binary=True))

    def write(batches: list) -> None:
        if pcap is not None:
            for batch in batches:
                pcap.write(batch.samples())
            pcap.flush()
        if isinstance(output, JsonOutput):
            output.write_batches(batches, decorate)
        elif isinstance(output, AggregateOutput) and decorate is None:
            output.write_batches(batches)
        else:
            samples = [s for batch in batches for s in batch.samples()]
            output.write(decorate(samples) if decorate else samples)

    # Without an extension the collector thread writes each batch as it reads it: no
    # queue, no second thread to share the interpreter with, nothing dropped in user
    # space; an output that falls behind leaves the kernel's ring buffer to fill, and
    # what finds no room there is counted as lost. An extension's Lua runs in this
    # thread (never the collector's): its batches wait in a bounded buffer, and what
    # does not fit is dropped and counted, or with --no-drop the collector waits.
    buffer = (SampleBuffer(wait_for_room=getattr(args, "no_drop", False))
              if extension is not None else None)

    def consume(limit: int | None = None) -> None:
        if buffer is not None:
            write(buffer.drain_batches(limit))


    def on_signal(signum, _frame) -> None:
        # Only note it: a signal handler runs between two bytecodes of the main thread,
        # which may hold a lock this would take (an Event.set() here deadlocked, rarely,
        # when it landed inside the main thread's own wait on it: a CI run hung that way).
        signals.append(signum)
        if stopping_after and len(signals) > stopping_after[0]:
            collector.hurry = True  # a signal while stopping: leave what is still buffered

    previous = {sig: signal.signal(sig, on_signal)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    notices = (lambda text: err(f"\n{text}\n")) if args.verbose else None
    sink = buffer.put if buffer is not None else (lambda batch: write([batch]))
    collector = Collector(settings, sink, kernel=kernel,
                          on_progress=lambda st: err(attach_line(st)), on_notice=notices)
    demo = None
    ran_to_the_stop = False
    try:
        collector.start()
        # Wait in small steps so Ctrl-C during attach stops cleanly.
        while collector.running and not collector.settled(0.1) and not signals:
            pass
        if signals:
            return 130
        collector.wait_ready(0)
        err("\n")
        if args.verbose and collector.headers:
            err(f"Kernel headers: {collector.headers.how}\n")
            if collector.limit_notes:
                err("Limits: " + ", ".join(collector.limit_notes) + "\n")
            err(f"Backend: {collector.status.backend}\n")
        elif settings.backend == "auto":
            err(f"Backend: {collector.status.backend} (auto)\n")
        err("Trace ready!\n")
        if server:
            server.start()
        if args.demo:
            demo = DemoTraffic(settings.mark).__enter__()
            if demo.removed_leftovers:
                err(f"Removed namespaces left by demos whose process died: "
                    f"{', '.join(demo.removed_leftovers)}\n")
            err(f"Demo traffic marked 0x{settings.mark:x} in namespaces "
                f"{demo.pair.ns_a} and {demo.pair.ns_b}\n")
        while not signals:
            consume()
            if not collector.running or stdout.error is not None:
                break
            time.sleep(0.05)
        ran_to_the_stop = True
    finally:
        # From here on, however the trace ends, a reader that does not read holds the
        # output (written in the collector's thread too) up for FLUSH_GRACE at most.
        stopping_after.append(len(signals))
        try:
            if demo:
                demo.__exit__(None, None, None)
        finally:
            try:
                _stop_collector(collector, buffer, consume, write_the_rest=ran_to_the_stop)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
    if collector.error and collector.status.samples == 0 and not signals:
        raise collector.error
    if isinstance(output, AggregateOutput):
        output.report_count()
    if isinstance(output, (AggregateOutput, PathsOutput)):
        err("\n")
    output.finish()
    if pcap is not None:
        pcap.close()
        if args.verbose:
            err(f"Wrote {pcap.packets} packets to {args.write_pcap}\n")
    if stdout.error is not None:
        err(f"ipft-tui: {stdout.describe_error()}: stopped tracing, probes detached\n")
        return 1
    if stdout.unwritten_lines:
        what = "samples" if isinstance(output, JsonOutput) else "lines of output"
        err(f"{stdout.unwritten_lines} {what} not written: stdout did not take them within "
            f"{FLUSH_GRACE:g} s of the stop\n")
    lost = collector.status.lost
    if lost - collector.status.unread:
        err(f"Lost {lost - collector.status.unread} samples (the kernel's buffer was full: "
            f"the output did not keep up or the buffer is too small; try a larger "
            f"--ringbuf-pages)\n")
    if collector.status.unread:
        err(f"Lost {collector.status.unread} samples left in the kernel's buffer at the stop "
            f"(not read within {STOP_DRAIN_LIMIT:g} s, or a second signal)\n")
    dropped = buffer.dropped if buffer is not None else 0
    if dropped:
        err(f"Dropped {dropped} samples: output could not keep up"
            + (" (or stopped waiting for it at a second signal)" if collector.hurry else "")
            + "\n")
    if args.verbose:
        err(f"Summary: {collector.status.samples} samples delivered, {lost} lost in the kernel "
            f"({collector.status.rescued} saved by the rescue buffer), "
            f"{dropped} dropped in user space\n")
        err(missed_line(collector.status))
    elif collector.status.missed:
        err(missed_line(collector.status))
    if collector.error:
        err(f"ipft-tui: error: {collector.error}\n")
        return 1
    return 0


def _stop_collector(collector: Collector, buffer: SampleBuffer | None, consume,
                    write_the_rest: bool) -> None:
    """Stop the collector and wait until every probe is detached, then (write_the_rest)
    consume what the buffer still holds. With --no-drop the collector may be waiting for
    room: keep consuming while it stops. If the consumer fails, or a second signal sets
    collector.hurry, abandon the buffer (its samples dropped, counted): nothing waits."""
    if buffer is None:
        collector.stop()
        return
    stopping = threading.Thread(target=collector.stop, daemon=True)
    stopping.start()
    try:
        while stopping.is_alive():
            if collector.hurry:
                buffer.abandon()
            elif buffer.wait_for_room:
                consume(STOP_BATCH)
            stopping.join(0.05)
        while write_the_rest and len(buffer) and not collector.hurry:
            consume(STOP_BATCH)
        if collector.hurry:
            buffer.abandon()
    except BaseException:
        buffer.abandon()
        stopping.join()
        raise
