"""Headless runs: -o aggregate|json, -l, --check. Progress on stderr, the trace on stdout."""

from __future__ import annotations

import signal
import socket
import sys
import threading

from .batching import SampleBuffer
from .cli import extension_from_args, require_root
from .collector import Collector, Status, choose_backend
from .errors import IpftError
from .kernel import Kernel
from .kernel.btf import BTFError
from .kernel.kallsyms import addresses
from .outputs.aggregate import AggregateOutput
from .outputs.jsonlines import JsonOutput
from .settings import TraceSettings, select
from .tracing import backends


def err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def kernel_or_error() -> Kernel:
    kernel = Kernel()
    try:
        kernel.btf  # noqa: B018 - load now, to fail early with a clear message
    except (BTFError, OSError) as exc:
        raise IpftError(f"cannot read kernel BTF: {exc}") from None
    return kernel


def run_check() -> int:
    require_root()
    caps = kernel_or_error().capabilities
    for name in ("kprobe", "kprobe-multi", "ftrace", "tracepoint"):
        support = caps.backends[name]
        state = "supported" if support.ok else "not supported"
        note = "" if name in backends.IMPLEMENTED else " (backend not implemented in ipft-tui yet)"
        print(f"{name:<13} {state:<14} {support.detail}{note}")
    if caps.backends["tracepoint"].ok:
        print(f"{'':<13} {'':<14} raw tracepoint BPF cookies: "
              f"{'yes' if caps.raw_tp_cookie else 'no (one entry point per tracepoint)'}")
    try:
        print(f"auto          -> {choose_backend('auto', caps)}")
    except IpftError as exc:
        print(f"auto          -> none: {exc}")
        return 1
    return 0


def run_list(args) -> int:
    kernel = kernel_or_error()
    backend = args.backend
    if backend == "auto":
        require_root()
        backend = choose_backend("auto", kernel.capabilities)
    if backend == "tracepoint":
        targets = kernel.tracepoints
        # The tracepoint's iterator function: kallsyms lists it without KALLSYMS_ALL.
        symbols = addresses({f"__traceiter_{t.name}" for t in targets})
        address = {t.name: symbols.get(f"__traceiter_{t.name}", 0) for t in targets}
    else:
        max_pos = 5 if backend in ("kprobe", "kprobe-multi") else 12
        targets = [t for t in kernel.functions if t.skb_pos <= max_pos]
        address = addresses({t.name for t in targets})
    chosen = select([t.name for t in targets], args.regex)
    err(f"{'NAME':>64.64}\t{'MOD':>16.16}\t{'ADDR':>18}\tSKB_POSITION\n")
    for i in chosen:
        t = targets[i]
        print(f"{t.name:>64.64}\t{t.module:>16.16}\t0x{address.get(t.name, 0):016x}\t{t.skb_pos}")
    return 0


def dump_options(s: TraceSettings, args) -> None:
    rows = [("mark", f"0x{s.mark:x}"), ("mask", f"0x{s.mask:x}"), ("regex", s.regex),
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


class ProbeServer:
    """Accepts connections and closes them at once: "every probe is attached"."""

    def __init__(self, address: str, port: int):
        try:
            self.sock = socket.create_server((address, port), reuse_port=False)
        except OSError as exc:
            raise IpftError(f"cannot open the probe server on {address}:{port}: {exc}") from None
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ipft-probe-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                conn.close()
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def attach_line(status: Status) -> str:
    return (f"\rAttaching program (total {status.total}, succeeded {status.attached}, "
            f"failed {status.failed}, filtered: {status.filtered})")


def run_headless(settings: TraceSettings, args, probe_port: int) -> int:
    require_root()
    extension = extension_from_args(args)
    kernel = kernel_or_error()
    if extension is not None:
        settings.module_source = extension.c_source
        settings.module_label = extension.path
        extension.init()
    try:
        return _trace(settings, args, probe_port, kernel, extension)
    finally:
        if extension is not None:
            extension.fini()


def _trace(settings: TraceSettings, args, probe_port: int, kernel, extension) -> int:
    if args.verbose:
        dump_options(settings, args)
    settings.set_rlimit = not args.no_set_rlimit
    if args.output == "json":
        output = JsonOutput(sys.stdout, with_tuple=args.output_tuple)
    else:
        output = AggregateOutput(sys.stdout, settings.tracer, progress=err,
                                 with_fields=extension is not None,
                                 split_on_free=args.split_on_free, drops_only=args.drops_only)
    decorate = extension.decorate if extension is not None else None
    pcap = None
    if getattr(args, "write_pcap", None):
        from .outputs.pcapng import PcapngWriter, create_private  # noqa: PLC0415
        pcap = PcapngWriter(create_private(args.write_pcap))  # fails before anything is attached

    def consume() -> None:
        batches = buffer.drain_batches()
        if pcap is not None:
            for batch in batches:
                pcap.write(batch.samples())
            pcap.flush()
        if isinstance(output, JsonOutput):
            output.write_batches(batches, decorate)
            return
        samples = [s for batch in batches for s in batch.samples()]
        output.write(decorate(samples) if decorate else samples)
    # The collector only decodes; formatting (and an extension's dump) happens here,
    # in the main thread, so the collector keeps draining the kernel's buffer.
    buffer = SampleBuffer()

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    notices = (lambda text: err(f"\n{text}\n")) if args.verbose else None
    collector = Collector(settings, buffer.put, kernel=kernel,
                          on_progress=lambda st: err(attach_line(st)), on_notice=notices)
    server = None
    demo = None
    try:
        collector.start()
        # Wait in small steps so Ctrl-C during attach stops cleanly.
        while collector.running and not collector._ready.wait(0.1) and not stop.is_set():
            pass
        if stop.is_set():
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
        if args.enable_probe_server:
            server = ProbeServer(args.probe_server_address, probe_port)
        err("Trace ready!\n")
        if args.demo:
            from .demo import DemoTraffic  # noqa: PLC0415
            demo = DemoTraffic(settings.mark).__enter__()
            err(f"Demo traffic marked 0x{settings.mark:x} in namespaces "
                f"{demo.pair.ns_a} and {demo.pair.ns_b}\n")
        while not stop.wait(0.05):
            consume()
            if not collector.running:
                break
    finally:
        if demo:
            demo.__exit__(None, None, None)
        collector.stop()
        if server:
            server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if collector.error and collector.status.samples == 0 and not stop.is_set():
        raise collector.error
    consume()
    if isinstance(output, AggregateOutput):
        err("\n")
    output.finish()
    if pcap is not None:
        pcap.close()
        if args.verbose:
            err(f"Wrote {pcap.packets} packets to {args.write_pcap}\n")
    lost = collector.status.lost
    if lost:
        err(f"Lost {lost} samples (the buffer was full; try a larger --ringbuf-pages)\n")
    if buffer.dropped:
        err(f"Dropped {buffer.dropped} samples: output could not keep up\n")
    if args.verbose:
        err(f"Summary: {collector.status.samples} samples delivered, {lost} lost in the kernel "
            f"({collector.status.rescued} saved by the rescue buffer), "
            f"{buffer.dropped} dropped in user space\n")
    if collector.error:
        err(f"ipft-tui: error: {collector.error}\n")
        return 1
    return 0
