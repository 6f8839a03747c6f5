"""Where the TUI's samples come from: a live collector, or a recorded trace.

The TUI polls `status` and drains the shared SampleBuffer on a timer; nothing
here sends messages to the UI, so the collector thread never floods it.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from ..batching import SampleBuffer
from ..collector import Collector, Status
from ..errors import IpftError
from ..model import Sample
from ..outputs.jsonlines import JsonOutput, parse_line
from ..settings import TraceSettings


class LiveSource:
    """A Collector, restartable with new settings (tracer, backend) without leaving the TUI."""

    live = True

    def __init__(self, settings: TraceSettings, buffer: SampleBuffer, record_path: str | None = None,
                 kernel=None, extension=None, pcap_path: str | None = None):
        self.settings = settings
        self.extension = extension  # decodes samples' extension data into fields
        self.buffer = buffer
        self.kernel = kernel
        # Recordings keep device, namespace and flow fields, so a replay shows them too.
        self._record = JsonOutput(open(record_path, "w"), with_tuple=True) if record_path else None  # noqa: SIM115
        self._pcap = None
        if pcap_path:  # --write-pcap: every sample with packet bytes, as it comes
            from ..outputs.pcapng import PcapngWriter, create_private  # noqa: PLC0415
            self._pcap = PcapngWriter(create_private(pcap_path))
        self._notices: list[str] = []
        self._lock = threading.Lock()
        self._collector: Collector | None = None

    def _sink(self, batch) -> None:
        if self._record:
            self._record.write_batches([batch])
        if self._pcap:
            self._pcap.write(batch.samples())
            self._pcap.flush()
        self.buffer.put(batch)

    def _notice(self, text: str) -> None:
        with self._lock:
            self._notices.append(text)

    def take_notices(self) -> list[str]:
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def start(self) -> None:
        self._collector = Collector(self.settings, self._sink, kernel=self.kernel,
                                    on_notice=self._notice)
        self.kernel = self._collector.kernel
        self._collector.start()

    @property
    def status(self) -> Status:
        if self._collector is None:
            return Status()
        return self._collector.status

    @property
    def error(self) -> IpftError | None:
        return self._collector.error if self._collector else None

    @property
    def ready(self) -> bool:
        return self._collector is not None and self._collector.status.ready

    def candidate_names(self) -> list[str]:
        return self._collector.candidate_names() if self._collector else []

    def supported_backends(self) -> dict[str, str]:
        """Backend -> '' when usable here, else why not."""
        from ..tracing.backends import IMPLEMENTED  # noqa: PLC0415
        caps = self.kernel.capabilities
        out = {}
        for name, support in caps.backends.items():
            if not support.ok:
                out[name] = support.detail
            elif name not in IMPLEMENTED:
                out[name] = "not implemented in ipft-tui yet"
            else:
                out[name] = ""
        return out

    def set_filter(self, mark: int, mask: int) -> None:
        self.settings = replace(self.settings, mark=mark, mask=mask)
        self._collector.set_filter(mark, mask)

    def set_regex(self, regex: str | None) -> None:
        self.settings = replace(self.settings, regex=regex)
        self._collector.set_regex(regex)

    def set_tracer(self, tracer: str) -> None:
        self.settings = replace(self.settings, tracer=tracer)
        self._collector.set_tracer(tracer)

    def set_track_skb(self, on: bool) -> None:
        self.settings = replace(self.settings, track_skb=on)
        self._collector.set_track_skb(on)

    def set_stack_regex(self, regex: str | None) -> None:
        self.settings = replace(self.settings, stack_regex=regex)
        self._collector.set_stack_regex(regex)

    def restart(self, settings: TraceSettings) -> None:
        """Stop, then start with new settings (blocking: call from a worker thread)."""
        self.stop_collector()
        self.settings = settings
        self.start()

    def wait_started(self, timeout: float = 120) -> IpftError | None:
        """Block until the collector is tracing; its setup error if it failed."""
        try:
            self._collector.wait_ready(timeout)
        except IpftError as exc:
            return exc
        return None

    def switch_extension(self, extension) -> None:
        """Trace with another extension (None: none), keeping the previous one when the
        new one fails to compile or load. Blocking: call from a worker thread."""
        previous_settings, previous = self.settings, self.extension
        self.restart(replace(self.settings,
                             module_source=extension.c_source if extension else None,
                             module_label=extension.path if extension else "extension"))
        error = self.wait_started()
        if error is not None:
            self._notice(f"{extension.path if extension else 'extension'}: {error}; "
                         "keeping the previous extension")
            self.restart(previous_settings)
            return
        if previous is not None:
            previous.fini()
        if extension is not None:
            extension.init()
        self.extension = extension
        self._notice(f"extension {extension.path if extension else 'removed'}: tracing")

    def stop_collector(self) -> None:
        if self._collector is not None:
            self._collector.stop()

    def stop(self) -> None:
        self.stop_collector()
        if self.extension is not None:
            self.extension.fini()
            self.extension = None
        if self._record:
            self._record.stream.close()
            self._record = None
        if self._pcap:
            self._pcap.close()
            self._pcap = None


class ReplaySource:
    """A JSON-lines trace (ours or ipftrace2's `-o json`) read from a file: no root, no BPF."""

    live = False
    extension = None

    def __init__(self, path: str, buffer: SampleBuffer, settings: TraceSettings | None = None):
        self.path = path
        self.buffer = buffer
        self.settings = settings or TraceSettings(mark=0)
        self.samples, self.problems = load_trace(path)
        self._notices = [f"{path}: line {n}: {why}" for n, why in self.problems[:20]]
        if len(self.problems) > 20:
            self._notices.append(f"{path}: {len(self.problems) - 20} more malformed lines")
        tracer = "function_graph" if any(s.is_return for s in self.samples) else "function"
        self.settings = replace(self.settings, tracer=tracer)
        self.status = Status(backend="replay", tracer=tracer, ready=True,
                             samples=len(self.samples))

    error = None
    ready = True

    def take_notices(self) -> list[str]:
        notices, self._notices = self._notices, []
        return notices

    def start(self) -> None:
        self.buffer.put(self.samples)

    def candidate_names(self) -> list[str]:
        return sorted({s.function for s in self.samples})

    def stop(self) -> None:
        pass


def load_trace(path: str) -> tuple[list[Sample], list[tuple[int, str]]]:
    """Samples from a JSON-lines file, and (line number, reason) for each bad line."""
    samples: list[Sample] = []
    problems: list[tuple[int, str]] = []
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    samples.append(parse_line(line))
                except ValueError as exc:
                    problems.append((number, str(exc)))
    except OSError as exc:
        raise IpftError(f"cannot read {path}: {exc.strerror}") from None
    return samples, problems
