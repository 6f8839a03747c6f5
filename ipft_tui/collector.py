"""The collector: one thread that owns the BPF object and hands out decoded samples.

Consumers (headless outputs, the TUI) never touch bcc. They get RecordBatches
(raw records, decoded into `Sample`s on demand) through a sink callback
(called from the collector thread), read
`status`, and send commands: new mark/mask (a map update), new regex
(attach/detach the difference), stop. Everything attached is detached when the
thread ends, whatever the reason.
"""

from __future__ import annotations

import ctypes
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .errors import IpftError, UsageError
from .kernel import Kernel
from .kernel.headers import HeadersError, find_headers
from .kernel.kallsyms import Symbolizer
from .kernel.limits import raise_limits
from .model import FREE_FUNCTIONS
from .pcapfilter import c_source, compile_filter
from .settings import FILTER_HINT, TraceSettings, filter_label, select
from .tracing import backends
from .tracing.decode import RecordBatch, RecordLayout
from .tracing.event import (IPFT_LOST_SLOT, IPFT_PAGE_SIZE, IPFT_PROBE_FREES_DATA,
                            IPFT_PROBE_FREES_SKB, IPFT_PROBE_SILENT, IPFT_PROBE_STACK,
                            IPFT_RESCUE_PAGES, IPFT_RESCUED_SLOT)
from .tracing.program import ProgramSpec, compile_program
from .tracing.misses import InfoLayout, MissCounter
from .tracing.ringbuf import RingBufReader, unpack_records

# config.filter bits (IPFT_FILTER_* in bpf/ipft.bpf.c)
FILTER_EXPR, FILTER_NETNS, FILTER_IFNAME = 1, 2, 4
# kfree_skbmem frees only the sk_buff: its data went before it.
FREE_FLAGS = {name: IPFT_PROBE_FREES_SKB | (IPFT_PROBE_FREES_DATA if name != "kfree_skbmem" else 0)
              for name in FREE_FUNCTIONS}

POLL_INTERVAL = 0.005  # s between ring buffer reads when it was empty
# After IDLE_AFTER with nothing read, read less often: an idle trace then costs a
# fraction of a percent of a core, and the first 25 ms of a flood (about 5 MB of
# records at the fastest rates measured) still fit a ring buffer of IDLE_MIN_BUFFER
# (the default); smaller ones, and perf buffers, are read every POLL_INTERVAL.
IDLE_POLL_INTERVAL = 0.025  # s
IDLE_AFTER = 1.0  # s
IDLE_MIN_BUFFER = 16 << 20  # bytes
# Records per read: the column formatting of headless JSON is fastest on batches
# of a few thousand (they stay in the CPU's caches).
READ_LIMIT = 4096
STATUS_INTERVAL = 0.25  # s between reads of the kernel-side lost counter
MISSES_INTERVAL = 1.0  # s between reads of the kernel's missed counts (syscalls per probe)
# At a stop the probes are detached, then the buffers read to the end (a full 16 MiB
# one holds 400 000 records); a consumer slower than this leaves the rest unread.
STOP_DRAIN_LIMIT = 10.0  # s


def poll_timeout(delivered: int, idle_for: float) -> float:
    """How long the collector waits for a command before it reads the buffers again."""
    if delivered:
        return 0.0
    return POLL_INTERVAL if idle_for < IDLE_AFTER else IDLE_POLL_INTERVAL


@dataclass(frozen=True)
class Status:
    backend: str = ""
    tracer: str = ""
    mark: int = 0
    mask: int = 0
    regex: str | None = None
    track_skb: bool = False
    stack_regex: str | None = None
    total: int = 0  # candidate targets
    attached: int = 0
    failed: int = 0
    filtered: int = 0
    samples: int = 0
    lost: int = 0  # matched in BPF but no room in the buffer (or `unread`)
    unread: int = 0  # left in the buffer at a stop that could not wait to read it
    # Probe runs the kernel skipped (recursion, kprobe reentry: tracing/misses.py);
    # None: this kernel does not tell. Per probe (name, count) where it tells that.
    missed: int | None = None
    missed_by_probe: tuple[tuple[str, int], ...] = ()
    rescued: int = 0  # refused by the main ring buffer, taken by the rescue one
    matched: int = 0  # count_only: samples BPF matched (and counted instead of delivering)
    ready: bool = False
    attaching: bool = False  # an attach/detach round is under way
    attach_done: int = 0
    attach_todo: int = 0
    expression: str | None = None
    netns: int = 0
    ifname: str | None = None
    filter_applied_ms: float = 0.0  # how long the last live filter change took

    @property
    def filter_label(self) -> str:
        return filter_label(self.mark, self.mask, self.expression, self.netns, self.ifname)


Progress = Callable[[Status], None]


# The innermost frames of a stack are the BPF program and the probe machinery.
_TRACER_FRAME_PREFIXES = ("bpf_prog_", "bpf_trace_run", "__bpf_trace_", "trace_call_bpf",
                          "kprobe_", "ftrace_", "fprobe", "rethook", "arch_rethook",
                          "__bpf_prog_enter", "bpf_trampoline")


def tracer_frames_dropped(frames: list[str]) -> tuple[str, ...]:
    start = 0
    while start < len(frames) - 1 and frames[start].startswith(_TRACER_FRAME_PREFIXES):
        start += 1
    # fentry trampolines of other traced functions show up further down too.
    return tuple(f for i, f in enumerate(frames)
                 if i >= start and not (i > start and f.startswith("bpf_trampoline_")))


def choose_backend(requested: str, caps) -> str:
    preference = ("kprobe-multi", "kprobe", "ftrace", "tracepoint")
    supported = caps.supported()
    if requested == "auto":
        for name in preference:
            if name in supported and name in backends.IMPLEMENTED:
                return name
        raise IpftError("no usable backend on this kernel: " + "; ".join(
            f"{n}: {s.detail}" for n, s in caps.backends.items()))
    if requested not in supported:
        detail = caps.backends[requested].detail if requested in caps.backends else "unknown"
        raise IpftError(f"backend {requested} is not supported by this kernel ({detail}); "
                        f"supported here: {', '.join(supported) or 'none'}")
    return requested


def program_for(s: TraceSettings, kernel: Kernel) -> tuple[str, backends.PerProbeBackend, ProgramSpec]:
    """The backend these settings choose on this kernel, and the program to compile
    for it (also what --dump-bpf prints)."""
    name = choose_backend(s.backend, kernel.capabilities)
    backend = backends.make_backend(name, kernel, kernel.capabilities)
    defines = backend.defines() | ({"IPFT_COUNT_ONLY": 1} if s.count_only else {})
    spec = ProgramSpec(layout_header=kernel.layout_header, entry_points=backend.entry_points(),
                       perf_buffer=s.perf_buffer, ringbuf_pages=s.ringbuf_pages,
                       meta=s.meta, module_source=s.module_source, module_label=s.module_label,
                       track_skb=s.follows_skbs or s.live_switches,
                       stacks=s.stack_regex is not None or s.live_switches, defines=defines,
                       capture_bytes=s.capture_bytes,
                       filter_source=c_source(compile_filter(s.expression) if s.expression
                                              else None))
    return name, backend, spec


class Collector:
    def __init__(self, settings: TraceSettings, sink: Callable[[RecordBatch], None],
                 kernel: Kernel | None = None, on_progress: Progress | None = None,
                 on_notice: Callable[[str], None] | None = None):
        self.settings = replace(settings)
        self.kernel = kernel or Kernel()
        self._sink = sink
        self._on_progress = on_progress or (lambda status: None)
        self._on_notice = on_notice or (lambda text: None)
        self._commands: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ipft-collector", daemon=True)
        self.error: BaseException | None = None
        self.status = Status()
        self.headers = None
        self.limit_notes: list[str] = []
        self.backend = None
        self._bpf = None
        self._reader = None
        self._rescue_reader = None
        self._pending: list[tuple] = []  # perf buffer callbacks collect records here
        self._probe_flags: dict[int, int] = {}  # as written to the probe_flags map
        self._stack_set: set[int] = set()  # probes that report their kernel stack
        self._wanted: set[int] = set()  # the probes the user's regex selects
        self._may_idle = False  # reads less often when idle (IDLE_AFTER)
        self._silent: set[int] = set()  # free points attached only to end followed skbs
        self._symbolizer: Symbolizer | None = None
        self._stacks_asked = False  # records carry stack ids only once a regex was given
        self._misses: MissCounter | None = None
        self._perf_lost = 0
        self._unread = 0
        # Set (from a signal handler: no lock) to leave what is still buffered at a stop.
        self.hurry = False

    # -- consumer side ----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def settled(self, timeout: float) -> bool:
        """Whether set-up has ended (ready, or failed: see `error`) within timeout."""
        return self._ready.wait(timeout)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every probe is attached; re-raise a setup error."""
        if not self._ready.wait(timeout):
            raise IpftError("timed out waiting for the collector to attach")
        if self.error is not None:
            raise self.error

    def set_filter(self, mark: int, mask: int, expression: str | None = None, netns: int = 0,
                   ifname: str | None = None) -> None:
        """Mark, namespace and device at once (mark 0: none): a map update. The
        expression is compiled into the program: it must stay the same here."""
        if not (mark or expression or netns or ifname):
            raise UsageError(f"nothing to trace: {FILTER_HINT}")
        if (expression or None) != self.settings.expression:
            raise UsageError("a new expression needs a new program: restart the collector "
                             "with it (the mark, namespace and device change live)")
        self._commands.put(("filter", (mark, mask, netns, ifname, time.monotonic())))

    def set_regex(self, regex: str | None) -> None:
        self._commands.put(("regex", regex))

    def set_track_skb(self, on: bool) -> None:
        """Follow matched skbs when their mark changes and into clones (live_switches)."""
        self._commands.put(("track_skb", on))

    def set_stack_regex(self, regex: str | None) -> None:
        """Kernel stacks for the functions matching regex; None: none (live_switches)."""
        self._commands.put(("stack_regex", regex))

    def set_tracer(self, tracer: str) -> None:
        """function or function_graph: attaches/detaches return probes, no restart."""
        self._commands.put(("tracer", tracer))

    def stop(self, timeout: float = 900) -> None:
        """Stop and wait until every probe is detached (the kprobe backend takes about
        a minute under emulation): leaving earlier lets the interpreter's exit clean up
        bcc's module while the collector thread still does (a double free)."""
        self._commands.put(("stop", None))
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def candidate_names(self) -> list[str]:
        return [t.name for t in self.backend.candidates] if self.backend else []

    # -- collector thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            self._setup()
            self._ready.set()
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self.error = exc if isinstance(exc, IpftError) else IpftError(f"{type(exc).__name__}: {exc}")
            self._on_notice(f"collector stopped: {self.error}")
        finally:
            self._teardown()
            self._ready.set()

    def _setup(self) -> None:
        s = self.settings
        try:
            self.headers = find_headers()
        except HeadersError as exc:
            raise IpftError(str(exc)) from None
        self.headers.apply()
        if s.set_rlimit:
            self.limit_notes = raise_limits()
        name, self.backend, spec = program_for(s, self.kernel)
        selected = select(self.candidate_names(), s.regex)
        stack_probes = self._stack_probes(s.stack_regex)
        event = spec.event_layout()
        self._event = struct.Struct(event.record_format)  # as the ring buffer holds it
        self._layout = RecordLayout(self.candidate_names(), self.kernel.drop_reasons, event,
                                    traced_first=name == "ftrace")
        self._bpf = compile_program(spec)
        self.backend.prepare(self._bpf)
        self._write_config(graph=False)  # calls are tracked once return probes are in place
        if spec.track_skb or spec.stacks:
            self._write_probe_flags(stack_probes)
        self._open_buffer()
        self._misses = MissCounter(InfoLayout.from_btf(self.kernel.btf[0]))
        self.status = Status(backend=name, tracer=s.tracer, mark=s.mark, mask=s.mask,
                             regex=s.regex, track_skb=s.follows_skbs,
                             stack_regex=s.stack_regex, total=len(self.backend.candidates),
                             expression=s.expression, netns=s.netns, ifname=s.ifname)
        self._attach_set(set(selected))
        if not self.selected_probes():
            raise IpftError(f"no probe could be attached ({self.status.failed} failed)")
        self._write_config()
        self.status = replace(self.status, ready=True)
        self._on_progress(self.status)

    def _open_buffer(self) -> None:
        events = self._bpf[b"events"]
        if self.settings.perf_buffer:
            events.open_perf_buffer(self._on_perf_event, page_cnt=self.settings.perf_page_count,
                                    lost_cb=self._on_perf_lost,
                                    wakeup_events=self.settings.perf_wakeup_events)
        else:
            event = self._layout.event
            size = self.settings.ringbuf_pages * IPFT_PAGE_SIZE
            self._reader = RingBufReader(events.map_fd, size, event)
            self._may_idle = size >= IDLE_MIN_BUFFER
            self._rescue_reader = RingBufReader(self._bpf[b"rescue"].map_fd,
                                                IPFT_RESCUE_PAGES * IPFT_PAGE_SIZE, event)

    def _write_config(self, graph: bool | None = None) -> None:
        s = self.settings
        if graph is None:
            graph = s.tracer == "function_graph"
        table = self._bpf[b"config"]
        leaf = table.Leaf(s.mark, s.mask if s.mark else 0, int(graph), int(s.follows_skbs))
        self._fill_filter(leaf)
        table[ctypes.c_int(0)] = leaf

    def _fill_filter(self, leaf) -> None:
        """The filters besides the mark, in the config map's leaf."""
        s = self.settings
        leaf.filter = ((FILTER_EXPR if s.expression else 0) | (FILTER_NETNS if s.netns else 0)
                       | (FILTER_IFNAME if s.ifname else 0))
        leaf.netns = s.netns
        name = (s.ifname or "").encode().ljust(16, b"\0")
        leaf.ifname[0] = int.from_bytes(name[:8], "little")
        leaf.ifname[1] = int.from_bytes(name[8:], "little")

    def _stack_probes(self, regex: str | None) -> set[int]:
        return set(select(self.candidate_names(), regex)) if regex is not None else set()

    def _write_probe_flags(self, stack_probes: set[int]) -> None:
        """What BPF needs to know per probe: where skbs are freed (to stop following
        them), which probes report their kernel stack, which report nothing."""
        table = self._bpf[b"probe_flags"]
        if len(self.backend.candidates) > table.max_entries:
            raise IpftError(f"{len(self.backend.candidates)} probes: more than the "
                            f"{table.max_entries} the probe_flags map holds")
        self._stack_set = stack_probes
        for probe_id, name in enumerate(self.candidate_names()):
            flags = (FREE_FLAGS.get(name, 0) | (IPFT_PROBE_STACK if probe_id in stack_probes else 0)
                     | (IPFT_PROBE_SILENT if probe_id in self._silent else 0))
            if flags or self._probe_flags.get(probe_id):
                table[ctypes.c_int(probe_id)] = ctypes.c_uint32(flags)
            self._probe_flags[probe_id] = flags
        self._stacks_asked |= bool(stack_probes)

    def _resolve_stacks(self, stack_words: list[int]) -> None:
        """Symbolize the stacks of a batch before a consumer sees it."""
        frames = self._layout.stack_frames
        new_ids = {word - 1 for word in set(stack_words) if word > 0} - frames.keys()
        if not new_ids:
            return
        if self._symbolizer is None:
            self._symbolizer = Symbolizer()
        table = self._bpf[b"stacks"]
        for stack_id in new_ids:
            try:
                frames[stack_id] = tracer_frames_dropped(
                    [self._symbolizer.name(a) for a in table.walk(stack_id)])
            except KeyError:
                frames[stack_id] = ("[stack not in the map]",)

    def _silent_frees(self, wanted: set[int]) -> set[int]:
        """The free points not in `wanted`, while skbs are followed: attached silently,
        since a followed skb freed unseen would leave its address followed, and the
        next packet there (any packet) would be reported as that journey."""
        if not (self._layout.event.track_skb and self.settings.follows_skbs):
            return set()
        return {probe_id for probe_id, name in enumerate(self.candidate_names())
                if name in FREE_FLAGS} - wanted

    def selected_probes(self) -> set[int]:
        """What is attached for the user (not the silent free points)."""
        return self.backend.attached & self._wanted

    def _set_silent(self, silent: set[int]) -> None:
        if silent != self._silent:
            self._silent = silent
            self._write_probe_flags(self._stack_set)

    def _attach_set(self, wanted: set[int]) -> None:
        """Make the attached set exactly `wanted` (return probes too, for function_graph),
        and the silent free points while skbs are followed."""
        self._wanted = wanted
        silent = self._silent_frees(wanted)
        # Silent before the attaching and detaching: a probe that goes silent, or is
        # being detached as one, never reports a sample; after, only those that stay.
        self._set_silent(self._silent | silent)
        filtered = len(self.backend.candidates) - len(wanted)
        todo = len((wanted | silent) - self.backend.attached)
        self.status = replace(self.status, attaching=True, attach_done=0, attach_todo=todo,
                              filtered=filtered)

        def progress(done: int, total: int) -> None:
            self.status = replace(self.status, attached=len(self.selected_probes()),
                                  attach_done=done, attach_todo=total)
            self._on_progress(self.status)

        self.backend.sync(self._bpf, wanted | silent, self.settings.tracer == "function_graph",
                          progress, self._on_notice)
        self._set_silent(silent)
        # A silent free point that failed is said in a notice, not counted: the user's
        # count is of what the regex selects.
        self.status = replace(self.status, attached=len(self.selected_probes()),
                              failed=len(wanted - self.backend.attached), attaching=False)

    def _loop(self) -> None:
        next_status = next_misses = last_delivery = time.monotonic()
        while True:
            delivered = self._drain()
            now = time.monotonic()
            if delivered or not self._may_idle:
                last_delivery = now
            try:
                command, arg = self._commands.get(timeout=poll_timeout(delivered,
                                                                       now - last_delivery))
            except queue.Empty:
                command = None
            if command == "stop":
                self._read_misses()  # while the probes' links are open
                self.backend.close()  # nothing produces samples from here on
                self._drain_to_the_end()
                self._read_counters()
                return
            if command:
                self._execute(command, arg)
            now = time.monotonic()
            if now >= next_status:
                next_status = now + STATUS_INTERVAL
                self._read_counters()
            if now >= next_misses:
                next_misses = now + MISSES_INTERVAL
                self._read_misses()

    def _read_misses(self) -> None:
        misses = self._misses.read(self.backend.link_fds())
        if misses is not None:
            names = self.candidate_names()
            self.status = replace(self.status, missed=misses.total, missed_by_probe=tuple(
                (names[probe_id], count) for probe_id, count in misses.by_probe
                if probe_id not in self._silent))  # named: only what the user selected

    def _drain_to_the_end(self) -> None:
        """Read what the buffers hold; what a slow consumer (or `hurry`) leaves
        there is counted as lost."""
        deadline = time.monotonic() + STOP_DRAIN_LIMIT
        while self._drain() and not self.hurry and time.monotonic() < deadline:
            pass
        if self._reader is not None:
            self._unread = self._reader.pending() + self._rescue_reader.pending()
        if self._unread:
            self._on_notice(f"stopped reading at the stop: {self._unread} samples "
                            "left in the kernel's buffer, counted as lost")

    def _drain(self) -> int:
        if self._reader is not None:
            raw, discarded = self._reader.read_raw(READ_LIMIT)
            rescued, rescued_discarded = self._rescue_reader.read_raw(READ_LIMIT)
            if rescued:  # a few, out of order by microseconds: consumers sort by time
                raw += rescued
                discarded |= rescued_discarded
            # Records stay bytes: headless reads plain ones as columns, the TUI decodes
            # the others by columns (decode_raw), cheaper than tuples made here.
            batch = (RecordBatch.from_raw(raw, self._layout) if not discarded
                     else RecordBatch(unpack_records(raw, self._event, discarded), self._layout))
        else:
            self._bpf.perf_buffer_poll(timeout=0)
            records, self._pending = self._pending, []
            batch = RecordBatch(records, self._layout)
        count = len(batch)
        if count:
            if self._stacks_asked:
                self._resolve_stacks(batch.column("stack_id"))
            self.status = replace(self.status, samples=self.status.samples + count)
            self._sink(batch)
        return count

    def _on_perf_event(self, _cpu, data, size) -> None:
        # Same tuple shape as the ring buffer's records (a length word first).
        self._pending.append(self._event.unpack(bytes(8) + ctypes.string_at(data, self._event.size - 8)))

    def _on_perf_lost(self, count) -> None:
        self._perf_lost += count

    def _read_counters(self) -> None:
        counters = self._bpf[b"lost"]
        matched = self._bpf[b"matched"].sum(ctypes.c_int(0)).value if self.settings.count_only else 0
        self.status = replace(self.status,
                              lost=counters.sum(ctypes.c_int(IPFT_LOST_SLOT)).value
                              + self._perf_lost + self._unread, unread=self._unread,
                              rescued=counters.sum(ctypes.c_int(IPFT_RESCUED_SLOT)).value,
                              matched=matched)

    def _execute(self, command: str, arg) -> None:
        try:
            if command == "filter":
                mark, mask, netns, ifname, asked = arg
                was_following = self.settings.follows_skbs
                s = self.settings
                s.mark, s.mask, s.netns, s.ifname = mark, mask, netns, ifname
                if s.follows_skbs and not was_following:
                    self._forget_followed()
                self._watch_frees()
                self._write_config()
                self.status = replace(self.status, mark=mark, mask=mask,
                                      expression=s.expression, netns=netns, ifname=ifname,
                                      track_skb=s.follows_skbs,
                                      filter_applied_ms=(time.monotonic() - asked) * 1000)
            elif command == "tracer":
                # Entries are remembered only while return probes are attached: else
                # calls that never report a return would fill the call stacks.
                self.settings.tracer = arg
                if arg == "function_graph":
                    self._attach_set(self._wanted)
                    self._bpf[b"calls"].clear()  # calls left from an earlier graph run
                    self._write_config()
                else:
                    self._write_config()
                    self._attach_set(self._wanted)
                self.status = replace(self.status, tracer=arg)
            elif command == "track_skb":
                self._require_compiled(self._layout.event.track_skb, "skb following")
                if arg and not self.settings.follows_skbs:
                    self._forget_followed()
                self.settings.track_skb = arg
                self._watch_frees()
                self._write_config()
                self.status = replace(self.status, track_skb=self.settings.follows_skbs)
            elif command == "stack_regex":
                self._require_compiled(self._layout.event.stacks, "stack traces")
                self._write_probe_flags(self._stack_probes(arg))
                self.settings.stack_regex = arg
                self.status = replace(self.status, stack_regex=arg)
            elif command == "regex":
                wanted = set(select(self.candidate_names(), arg))
                self.settings.regex = arg
                self.status = replace(self.status, regex=arg)
                self._attach_set(wanted)
            self._on_progress(self.status)
        except IpftError as exc:
            self._on_notice(str(exc))

    def _watch_frees(self) -> None:
        """Following turned on or off: the silent free points with it (before the
        config turns following on, so that no followed skb is freed unseen)."""
        if self._silent_frees(self._wanted) != self._silent:
            self._attach_set(self._wanted)

    def _forget_followed(self) -> None:
        """Frees were not watched while following was off: start from empty maps."""
        self._require_compiled(self._layout.event.track_skb, "skb following")
        for name in (b"tracked_skbs", b"tracked_heads", b"journey_buffers"):
            self._bpf[name].clear()

    @staticmethod
    def _require_compiled(compiled: bool, what: str) -> None:
        if not compiled:
            raise IpftError(f"{what}: not compiled into this program (start with it on)")

    def _teardown(self) -> None:
        if self._misses is not None:
            self._misses.close()
        if self.backend is not None:
            self.backend.close()
        if self._reader is not None:
            self._reader.close()
            self._rescue_reader.close()
            self._reader = self._rescue_reader = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
        self.status = replace(self.status, attached=0, ready=False)
