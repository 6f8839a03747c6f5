"""Where the TUI's samples come from: a live collector, or a recorded trace.

The TUI polls `status` and drains the shared SampleBuffer on a timer; nothing
here sends messages to the UI, so the collector thread never floods it.
"""

from __future__ import annotations

import json
import os
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
                 kernel=None, extension=None):
        self.settings = settings
        self.extension = extension  # decodes samples' extension data into fields
        self.buffer = buffer
        self.kernel = kernel
        # Recordings keep device, namespace and flow fields, so a replay shows them too.
        self._record = JsonOutput(open(record_path, "w"), with_tuple=True) if record_path else None  # noqa: SIM115
        self.record_path = record_path
        self._settings_for = record_path  # the recording whose settings file is to write
        self._notices: list[str] = []
        self._lock = threading.Lock()
        self._collector: Collector | None = None

    def _sink(self, batch) -> None:
        if self._settings_for is not None:  # the backend is known once samples flow
            path, self._settings_for = self._settings_for, None
            try:
                write_recorded_settings(path, self.settings, self.status.backend)
            except OSError as exc:
                self._notice(f"cannot write {settings_path(path)}: {exc.strerror}")
        if self._record is not None:
            with self._lock:  # R may stop the recording meanwhile
                if self._record is not None:
                    self._record.write_batches([batch])
        self.buffer.put(batch)

    def start_recording(self, path: str) -> None:
        """Record from now on to a new file (never over an existing one or via a symlink)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        record = JsonOutput(os.fdopen(fd, "w"), with_tuple=True)
        self.stop_recording()
        with self._lock:
            self._record, self.record_path = record, path
            self._settings_for = path

    def stop_recording(self) -> None:
        with self._lock:
            record, self._record, self.record_path = self._record, None, None
        if record is not None:
            record.stream.close()

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


class ReplaySource:
    """A JSON-lines trace (ours or ipftrace2's `-o json`) read from a file: no root, no BPF."""

    live = False
    extension = None

    def __init__(self, path: str, buffer: SampleBuffer, settings: TraceSettings | None = None,
                 progress=None):
        self.path = path
        self.buffer = buffer
        self.settings = settings or TraceSettings(mark=0)
        self.samples, self.problems = load_trace(path, progress)
        self.recorded_settings = recorded_settings(path)
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
        # A replay keeps every sample of its file: the buffer makes room for all of them.
        self.buffer.capacity = max(self.buffer.capacity, len(self.buffer) + len(self.samples))
        self.buffer.put(self.samples)

    def candidate_names(self) -> list[str]:
        return sorted({s.function for s in self.samples})

    def stop(self) -> None:
        pass


def settings_path(trace_path: str) -> str:
    """Where a recording's settings are kept: beside it (the trace stays plain JSON lines)."""
    return trace_path + ".settings.json"


def write_recorded_settings(trace_path: str, settings: TraceSettings, backend: str) -> None:
    data = {"mark": hex(settings.mark), "mask": hex(settings.mask), "regex": settings.regex,
            "backend": backend or settings.backend, "tracer": settings.tracer,
            "track_skb": settings.track_skb, "stack_regex": settings.stack_regex}
    fd = os.open(settings_path(trace_path),
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.write("\n")


def recorded_settings(trace_path: str) -> str | None:
    """The settings a recording was made with, as one line; None without a settings file."""
    try:
        with open(settings_path(trace_path)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    parts = [f"mark {data.get('mark')}/{data.get('mask')}", f"backend {data.get('backend')}",
             f"tracer {data.get('tracer')}", f"regex {data.get('regex') or '(all)'}"]
    if data.get("track_skb"):
        parts.append("skbs followed")
    if data.get("stack_regex"):
        parts.append(f"stacks /{data['stack_regex']}/")
    return ", ".join(str(p) for p in parts)


def load_trace(path: str, progress=None) -> tuple[list[Sample], list[tuple[int, str]]]:
    """Samples from a JSON-lines file, and (line number, reason) for each bad line.
    `progress(fraction, samples)` is called now and then while reading."""
    samples: list[Sample] = []
    problems: list[tuple[int, str]] = []
    try:
        with open(path) as f:
            size = os.fstat(f.fileno()).st_size or 1
            done = 0
            for number, line in enumerate(f, 1):
                if progress is not None:
                    done += len(line)
                    if number % 50_000 == 0:
                        progress(min(done / size, 1.0), len(samples))
                if not line.strip():
                    continue
                try:
                    samples.append(parse_line(line))
                except ValueError as exc:
                    problems.append((number, str(exc)))
    except OSError as exc:
        raise IpftError(f"cannot read {path}: {exc.strerror}") from None
    return samples, problems
