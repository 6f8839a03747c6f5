"""Where the TUI's samples come from: a live collector, or a recorded trace.

The TUI polls `status` and drains the shared SampleBuffer on a timer; nothing
here sends messages to the UI, so the collector thread never floods it.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import replace
from operator import itemgetter

import orjson

from ..batching import SampleBuffer
from ..collector import Collector, Status
from ..errors import IpftError
from ..model import Meta, Sample
from ..outputs.jsonlines import JsonOutput, parse_line
from ..outputs.pcapng import PcapngWriter
from ..safefile import create_private
from ..settings import PacketFilters, TraceSettings, filter_label


class LiveSource:
    """A Collector, restartable with new settings (tracer, backend) without leaving the TUI."""

    live = True

    def __init__(self, settings: TraceSettings, buffer: SampleBuffer, record_path: str | None = None,
                 kernel=None, extension=None, overwrite: bool = False,
                 pcap_path: str | None = None):
        self.settings = settings
        self.extension = extension  # decodes samples' extension data into fields
        self.buffer = buffer
        self.kernel = kernel
        # Recordings keep device, namespace and flow fields, so a replay shows them too.
        self._record = None
        self.record_path = record_path
        self.recorded = 0  # samples written to the recording
        if record_path:
            stream = create_private(record_path, "--record", overwrite=overwrite)
            self._record = JsonOutput(stream, with_tuple=True)
        self._pcap = None
        if pcap_path:  # --write-pcap: every sample with packet bytes, as it comes
            self._pcap = PcapngWriter(create_private(pcap_path, "--write-pcap", binary=True))
        self._notices: list[str] = []
        self._lock = threading.Lock()
        self._collector: Collector | None = None
        self._record_lock = threading.Lock()  # samples (collector thread) and settings lines
        self._recorded_backend = ""  # as the last settings line said

    def _sink(self, batch) -> None:
        if self._record and self._recorded_backend != (self.status.backend or
                                                        self.settings.backend):
            self._record_settings()
        if self._record:
            try:
                with self._record_lock:
                    self._record.write_batches([batch])
                self.recorded += len(batch)
            except (OSError, ValueError) as exc:  # ENOSPC, EIO...: the trace goes on
                self._stop_recording(exc)
        if self._pcap:
            try:
                self._pcap.write(batch.samples())
                self._pcap.flush()
            except OSError as exc:  # the trace goes on without it
                pcap, self._pcap = self._pcap, None
                self.notice(f"--write-pcap stopped: {exc.strerror or exc}; tracing goes on")
                try:
                    pcap.close()
                except OSError:
                    pass
        self.buffer.put(batch)

    def _record_settings(self) -> None:
        """A line saying what was traced, before the samples it applies to (again once
        samples flow, when `auto` has become a backend)."""
        if self._record:
            backend = self.status.backend or self.settings.backend
            self._recorded_backend = backend
            try:
                with self._record_lock:
                    self._record.stream.write(
                        settings_line(replace(self.settings, backend=backend)) + "\n")
            except (OSError, ValueError) as exc:
                self._stop_recording(exc)

    def start_recording(self, path: str) -> None:
        """Record from now on to a new file (never over an existing one or via a symlink)."""
        record = JsonOutput(create_private(path, "recording"), with_tuple=True)
        self.stop_recording()
        with self._record_lock:
            self._record, self.record_path, self.recorded = record, path, 0
        self._record_settings()

    def stop_recording(self) -> None:
        with self._record_lock:
            record, self._record, self.record_path = self._record, None, None
        if record is not None:
            record.stream.close()

    def _stop_recording(self, exc: Exception) -> None:
        record, self._record = self._record, None
        if record is None:
            return
        try:
            record.stream.close()
        except OSError:
            pass  # what the failed write left in the buffer fails again
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.notice(f"recording to {self.record_path} stopped: {why} "
                    f"(about {self.recorded} samples written); tracing goes on")

    def notice(self, text: str) -> None:
        """A message the TUI shows on its next tick."""
        with self._lock:
            self._notices.append(text)

    def take_notices(self) -> list[str]:
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def start(self) -> None:
        self._record_settings()
        self._collector = Collector(self.settings, self._sink, kernel=self.kernel,
                                    on_notice=self.notice)
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

    def set_filter(self, f: PacketFilters) -> None:
        self._collector.set_filter(f.mark, f.mask, f.expression, f.netns, f.ifname)
        self.settings = replace(self.settings, mark=f.mark, mask=f.mask,
                                expression=f.expression, netns=f.netns, ifname=f.ifname)
        self._record_settings()

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
            self.notice(f"{extension.path if extension else 'extension'}: {error}; "
                         "keeping the previous extension")
            self.restart(previous_settings)
            return
        if previous is not None:
            previous.fini()
        if extension is not None:
            extension.init()
        self.extension = extension
        self.notice(f"extension {extension.path if extension else 'removed'}: tracing")

    def stop_collector(self, timeout: float = 900) -> None:
        if self._collector is not None:
            self._collector.stop(timeout)

    def stop(self) -> None:
        self.stop_collector()
        if self.extension is not None:
            self.extension.fini()
            self.extension = None
        if self._record:
            try:
                self._record.stream.close()
            except OSError as exc:
                self._stop_recording(exc)
            self._record = None
        if self._pcap:
            self._pcap.close()
            self._pcap = None


class ReplaySource:
    """A JSON-lines trace (ours or ipftrace2's `-o json`) read from a file: no root, no BPF.

    With `background`, a big file is read on: its first samples are on screen at once,
    the rest follow from a thread, as a live trace's do (`loading` meanwhile)."""

    live = False
    extension = None
    FIRST = 20_000  # samples read before the TUI starts, in the background mode

    def __init__(self, path: str, buffer: SampleBuffer, settings: TraceSettings | None = None,
                 progress=None, background: bool = False):
        self.path = path
        self.buffer = buffer
        self.settings = settings or TraceSettings(mark=0)
        self._recorded: list[dict] = []
        self._reader = TraceReader(path, self._recorded, progress)
        # Up to the first valid sample at least (no valid sample at all is an error).
        self.samples = self._reader.read(self.FIRST if background else None)
        while not self.samples and not self._reader.done:
            self.samples = self._reader.read(self.FIRST)
        self.problems = self._reader.problems
        self._reader.progress = None  # from here on, the TUI has the terminal
        self._notices: list[str] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._names: set[str] = set()
        self.status = Status(backend="replay", ready=True, samples=len(self.samples))
        self._learn(self.samples)
        if self._reader.done:
            self._finish()

    error = None
    ready = True

    @property
    def loading(self) -> bool:
        """Still reading the file (background mode), or not yet done with what it said."""
        return not self._finished

    @property
    def read_fraction(self) -> float:
        return self._reader.fraction

    def _learn(self, samples: list[Sample]) -> None:
        """What the samples say about the trace: the tracer (function_graph when any
        sample is a return), the functions."""
        self._names.update({s.function for s in samples})
        tracer = self.status.tracer
        if tracer != "function_graph":
            tracer = "function_graph" if any(s.is_return for s in samples) else "function"
        if tracer != self.status.tracer:
            self.settings = replace(self.settings, tracer=tracer)
            self.status = replace(self.status, tracer=tracer)

    def _finish(self) -> None:
        """The file is read: its problems and the settings it was recorded with."""
        recorded = self._recorded
        self.recorded_settings = settings_text(recorded[-1]) if recorded else None
        notices = [f"{self.path}: line {n}: {why}" for n, why in self.problems[:20]]
        if self.problems.total > 20:
            notices.append(f"{self.path}: {self.problems.total - 20} more malformed lines")
        with self._lock:
            self._notices.extend(notices)
        if recorded:  # the filter in effect when the trace was recorded (the last change)
            last = recorded[-1]
            self.status = replace(self.status, mark=last.get("mark") or 0,
                                  mask=last.get("mask") or 0xFFFFFFFF,
                                  expression=last.get("expression"),
                                  netns=last.get("netns") or 0, ifname=last.get("ifname"))
        self._finished = True

    _finished = False

    recorded_settings: str | None = None

    def take_notices(self) -> list[str]:
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def start(self) -> None:
        # The samples are the store's from now on: not kept twice (a big replay).
        samples, self.samples = self.samples, []
        self._learn(samples)
        self.status = replace(self.status, samples=len(samples))
        self._put(samples)
        if not self._reader.done:
            self._thread = threading.Thread(target=self._read_on, name="ipft-replay",
                                            daemon=True)
            self._thread.start()

    def _put(self, samples: list[Sample]) -> None:
        # A replay keeps every sample of its file: the buffer makes room for all of them.
        self.buffer.capacity = max(self.buffer.capacity, len(self.buffer) + len(samples))
        self.buffer.put(samples)

    def _read_on(self) -> None:
        reader = self._reader
        try:
            while not reader.done and not self._stopping:
                samples = reader.read(self.FIRST)
                self._learn(samples)
                self._put(samples)
                self.status = replace(self.status, samples=self.status.samples + len(samples))
        except IpftError as exc:  # the file went away under us (EIO...): say so
            self.error = exc
        finally:
            self._finish()

    def candidate_names(self) -> list[str]:
        return sorted(self._names | {s.function for s in self.samples})

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join()
        if not self._reader.done:
            self._reader.close()


MAX_LINE = 1 << 20  # bytes: a sample line is a few hundred (a stack, a few thousand)
MAX_REPORTED = 100  # bad lines kept with their reason; the rest are only counted


class BadLines(list):
    """(line number, reason) of the first MAX_REPORTED bad lines; `total` counts them all."""

    total = 0

    def add(self, number: int, reason: str) -> None:
        self.total += 1
        if len(self) < MAX_REPORTED:
            self.append((number, reason))


SETTINGS_KEY = "ipft_tui_settings"


def settings_line(s: TraceSettings) -> str:
    """What a recording says about how it was traced (a replay shows it)."""
    return json.dumps({SETTINGS_KEY: {
        "filter": filter_label(s.mark, s.mask, s.expression, s.netns, s.ifname),
        "expression": s.expression, "mark": s.mark, "mask": s.mask, "netns": s.netns,
        "ifname": s.ifname, "backend": s.backend, "tracer": s.tracer, "regex": s.regex}})


def settings_text(recorded: dict) -> str:
    """A recording's settings line as the replay's subtitle says it."""
    parts = [f"filter {recorded.get('filter') or '?'}", f"backend {recorded.get('backend')}",
             f"tracer {recorded.get('tracer')}", f"regex {recorded.get('regex') or '(all)'}"]
    return ", ".join(parts)


def load_trace(path: str, settings: list[dict] | None = None, progress=None
               ) -> tuple[list[Sample], BadLines]:
    """Samples from a JSON-lines file, and (line number, reason) for each bad line;
    the recording's settings lines go to `settings` when given. `progress(fraction,
    samples)` is called now and then while reading.

    Only regular files (a FIFO or a device could block or never end); lines are
    read in bounded pieces, so memory stays bounded whatever the file holds."""
    reader = TraceReader(path, settings, progress)
    return reader.read(), reader.problems


class TraceReader:
    """A trace file read in pieces (see load_trace)."""

    def __init__(self, path: str, settings: list[dict] | None = None, progress=None):
        self.path = path
        self.problems = BadLines()
        self.settings = settings
        self.progress = progress
        self.done = False
        self.samples = 0  # read so far
        self._fast = _FastParser()
        try:
            # O_NONBLOCK: opening a FIFO nobody writes to must not hang.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise IpftError(f"cannot read {path}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IpftError(f"{path}: not a regular file (replay reads a saved trace; "
                            "save a stream to a file first)")
        os.set_blocking(fd, True)
        self._size = os.fstat(fd).st_size or 1
        self._file = open(fd, "rb")  # noqa: SIM115 - closed when read to its end, or by close()
        self._lines = enumerate(_bounded_lines(self._file), 1)
        self._position = 0  # bytes read, as the reading thread last saw (others never touch
        # the file: it may be closed under them)

    @property
    def fraction(self) -> float:
        """How much of the file has been read."""
        return 1.0 if self.done else min(self._position / self._size, 1.0)

    def read(self, limit: int | None = None) -> list[Sample]:
        """The next samples: all the rest, or about `limit` of them."""
        samples: list[Sample] = []
        problems, settings, progress, fast = self.problems, self.settings, self.progress, self._fast
        try:
            for number, raw in self._lines:
                if progress is not None and number % 50_000 == 0:
                    self._position = self._file.tell()
                    progress(self.fraction, self.samples + len(samples))
                if raw is None:
                    problems.add(number, f"longer than {MAX_LINE >> 20} MiB; skipped")
                    continue
                if not raw.strip():
                    continue
                if raw.startswith(b'{"' + SETTINGS_KEY.encode()):
                    try:
                        recorded = json.loads(raw)[SETTINGS_KEY]
                    except (ValueError, KeyError, TypeError):
                        problems.add(number, "bad settings line")
                        continue
                    if settings is not None and isinstance(recorded, dict):
                        settings.append(recorded)
                    continue
                try:
                    sample = fast(raw)
                    samples.append(sample if sample is not None else parse_line(raw.decode("utf-8")))
                except UnicodeDecodeError:
                    problems.add(number, "not UTF-8 text")
                except ValueError as exc:
                    problems.add(number, str(exc))
                if limit is not None and len(samples) >= limit:
                    self.samples += len(samples)
                    self._position = self._file.tell()
                    return samples
        except OSError as exc:
            self.close()
            raise IpftError(f"cannot read {self.path}: {exc.strerror}") from None
        self.samples += len(samples)
        self.close()
        return samples

    def close(self) -> None:
        self.done = True
        self._file.close()


_TEXT_KEYS = ("ifname", "saddr", "daddr")
_NUMBER_KEYS = ("ifindex", "netns", "len", "l3_proto", "l4_proto", "sport", "dport", "icmp_type")
# What a line of ours or ipftrace2's usually holds; any other key, a stack, packet bytes,
# or anything doubtful goes the strict way (parse_line), which also says what is wrong.
_BASE_KEYS = frozenset({"packet_id", "timestamp", "processor_id", "function", "is_return"})
_FAST_KEYS = _BASE_KEYS | {"drop_reason", "skb", "journey_end", *_TEXT_KEYS, *_NUMBER_KEYS}
_U64 = 1 << 64


class _FastParser:
    """The common lines of a big replay, read about three times faster than parse_line,
    to the same Samples. Repeated values are shared: one Meta object per distinct
    device/flow, one string per function name, one int per packet address."""

    def __init__(self):
        self._metas: dict[tuple, Meta] = {}
        self._addresses: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._values: dict[str | int, str | int] = {}  # the types are checked before

    def __call__(self, raw: bytes) -> Sample | None:
        """The line's Sample, or None when the strict path must read it."""
        try:
            # orjson: a third of json's time per line, and stricter (a lone surrogate or
            # NaN goes to the strict path, which says why; an integer beyond 64 bits comes
            # as a float, refused by the type checks below).
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if type(obj) is not dict or not obj.keys() <= _FAST_KEYS or not obj.keys() >= _BASE_KEYS:
            return None
        packet_id = self._address(obj["packet_id"])
        timestamp, cpu, function = obj["timestamp"], obj["processor_id"], obj["function"]
        is_return = obj["is_return"]
        if (packet_id is None or type(timestamp) is not int or not 0 <= timestamp < _U64
                or type(cpu) is not int or not 0 <= cpu < 1 << 32
                or type(function) is not str or not function or type(is_return) is not bool):
            return None
        reason = obj.get("drop_reason")
        if reason is not None and type(reason) is not str:
            return None
        meta = None
        if "ifindex" in obj:
            try:
                raw_meta = _meta_values(obj)
            except KeyError:  # a missing field: the strict path's defaults
                return None
            # Types on every line (a cached Meta of 1 would also match true or 1.0);
            # equal values of the same types have the same range, checked once.
            if tuple(map(type, raw_meta)) != _META_TYPES:
                return None
            meta = self._metas.get(raw_meta)
            if meta is None:
                if not all(0 <= obj[k] < _U64 for k in _NUMBER_KEYS):
                    return None
                if len(self._metas) > 100_000:
                    self._metas.clear()
                # Its values shared too (the same device, namespace, address in many flows).
                values = self._values
                if len(values) > 100_000:
                    values.clear()
                meta = self._metas[raw_meta] = Meta(*[values.setdefault(v, v) for v in raw_meta])
        skb, journey_end = 0, None
        if "skb" in obj:
            skb = self._address(obj["skb"])
            if skb is None:
                return None
        if skb:
            journey_end = obj.get("journey_end", False)
            if type(journey_end) is not bool:
                return None
        elif "journey_end" in obj:
            return None  # without an skb the strict path keeps it as a field
        name = self._names.get(function)
        if name is None:
            name = self._names[function] = function
        return Sample(packet_id=packet_id, timestamp=timestamp, processor_id=cpu, function=name,
                      is_return=is_return, drop_reason=reason, meta=meta, skb=skb,
                      journey_end=journey_end)

    def _address(self, text) -> int | None:
        found = self._addresses.get(text) if type(text) is str else None
        if found is None:
            if type(text) is not str or not text.startswith("0x"):
                return None
            try:
                found = int(text, 16)
            except ValueError:
                return None
            if not 0 <= found < _U64:
                return None
            if len(self._addresses) > 100_000:
                self._addresses.clear()
            self._addresses[text] = found
        return found


_META_ORDER = ("ifindex", "ifname", "netns", "len", "l3_proto", "l4_proto", "saddr", "daddr",
               "sport", "dport", "icmp_type")
_meta_values = itemgetter(*_META_ORDER)
_META_TYPES = tuple(str if k in _TEXT_KEYS else int for k in _META_ORDER)


def _bounded_lines(f):
    """Lines as bytes, or None for a line longer than MAX_LINE (read past, not kept)."""
    while True:
        line = f.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) <= MAX_LINE:
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = f.readline(MAX_LINE)
        yield None
