"""The live TUI: a packet list, the selected packet's journey, and every control
to change the trace without restarting."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Header, ProgressBar, Tree

from ..batching import SampleBuffer
from ..errors import IpftError
from ..extensions import load_extension
from ..calltree import CallNode
from ..model import Packet, PacketStore, Sample, is_drop, packet_id_text
from ..outputs.jsonlines import JsonOutput
from ..outputs.pcapng import write_journeys
from ..settings import PacketFilters
from .compare import CompareScreen
from .filter_bar import FilterBar
from .keys import KEYS, LIVE_ACTIONS, bindings
from .packet_list import PacketList, flows_text
from .screens import (ChoiceDialog, ConfirmDialog, FilterDialog, FunctionDialog, HelpScreen,
                      RegexDialog, TextDialog, function_matches)
from .paths_view import PathsScreen
from .waterfall import WaterfallScreen
from .widgets import DetailPane, JourneyTree, StatusBar, status_items, where_text

DRAIN_INTERVAL = 0.05  # s: how often samples move from the collector's buffer to the screen
# After IDLE_AFTER with nothing new, tick every IDLE_INTERVAL instead: an idle TUI costs
# next to nothing, and the first new sample is on screen within a quarter second.
IDLE_INTERVAL = 0.25  # s
IDLE_AFTER = 1.0  # s
APPLY_BUDGET = 0.035  # s of sample handling per tick at most: input stays responsive
APPLY_CHUNK = 4_000  # samples handled at a time within that budget
# Live, the list stays within about this long of now: when more waits than the UI can
# handle in that time (at the rate it has been handling them), the oldest is shed (and
# counted on the status bar) instead of showing ever older packets.
SHED_HORIZON = 0.25  # s
FIRST_RATE = 100_000  # samples/s assumed handled before it is measured
# While following a busy trace the newest packet changes on every tick: its journey and
# details (a tree rebuilt, a screen laid out again) are redrawn at most this often.
FOLLOW_REDRAW = 0.25  # s
LOADING_REDRAW = 0.5  # s between redraws while a replay loads
WIDE = 200  # columns from which the journey and details sit beside the list, not below
NARROW = 120  # below: the details under the journey, not beside it


class IpftApp(App):
    TITLE = "ipft-tui"
    CSS = """
    #main { height: 1fr; }
    PacketList { width: 3fr; border: round $panel; }
    #right { width: 2fr; }
    JourneyTree { height: 2fr; border: round $panel; }
    DetailPane { height: 1fr; border: round $panel; padding: 0 1; }
    PacketList:focus, JourneyTree:focus, DetailPane:focus { border: round $accent; }
    .-stacked #main { layout: vertical; }
    .-stacked PacketList { width: 1fr; height: 1fr; }
    .-stacked #right { width: 1fr; height: 1fr; layout: horizontal; }
    .-stacked JourneyTree { height: 1fr; width: 3fr; }
    .-stacked DetailPane { height: 1fr; width: 2fr; }
    .-narrow PacketList { height: 4fr; }
    .-narrow #right { layout: vertical; height: 5fr; }
    .-narrow JourneyTree, .-narrow DetailPane { width: 1fr; }
    #attach { height: 1; display: none; }
    #attach.active { display: block; }
    StatusBar { background: $panel; padding: 0 1; }
    """
    BINDINGS = bindings("app")

    def __init__(self, source, buffer: SampleBuffer, max_packets: int = 10_000,
                 follow: bool = True, ask_mark: bool = False):
        super().__init__()
        self.source = source
        self.buffer = buffer
        # A replay keeps every packet of its file; a live trace the newest max_packets.
        self.store = PacketStore(max_packets=max_packets if source.live else None)
        self.follow = follow
        self.paused = False
        self.pending: list = []
        self.function_filter = ""
        self.drops_only = False
        self.search_text = ""
        self.ask_mark = ask_mark
        self.recording: str | None = None  # the file --record / R writes to
        self._rate = 0.0
        self._last_tick: tuple[float, int] | None = None  # (time, samples) the rate counts from
        self._shown_key: int | None = None
        self.journey_filter = None  # predicate of the \ filter (journey_filter.py)
        self.compare_a: int | None = None  # key of the packet marked with v
        self._error_shown = False  # the source's error was notified
        self._mask_cache: tuple | None = None  # ((function filter, names), mask)
        self.shed = 0  # samples a live trace dropped to stay current (status bar)
        self._handled_rate = float(FIRST_RATE)  # samples/s the ticks can handle
        self._handled: tuple[int, float] = (0, 0.0)  # (samples handled, s spent) to count from
        self._shown_at = 0.0  # monotonic time the journey was last redrawn
        self._journey_stale = False  # the selected packet grew or changed since
        self._view_at = 0.0  # monotonic time of the last view update
        self._unshown: set[int] = set()  # keys changed since (a replay loading)

    def compose(self) -> ComposeResult:
        # Kept as attributes: App.query_one searches the active screen, which is
        # a dialog whenever one is open, while the timer keeps updating these.
        self.packet_table = PacketList(self.store, id="packets")
        self.journey = JourneyTree(id="journey")
        self.detail = DetailPane(id="detail-pane")
        self.attach_bar = ProgressBar(id="attach", show_eta=False)
        self.status_bar = StatusBar(id="status")
        self.filter_bar = FilterBar(id="journey-filter")
        yield Header()
        with Horizontal(id="main"):
            yield self.packet_table
            with Vertical(id="right"):
                yield self.journey
                yield self.detail
        yield self.attach_bar
        yield self.filter_bar
        yield self.status_bar
        yield Footer()

    # -- lifecycle ---------------------------------------------------------------

    def on_mount(self) -> None:
        self.sub_title = self._subtitle()
        self._subtitle_loading = getattr(self.source, "loading", False)
        self.recording = getattr(self.source, "record_path", None)
        if self.ask_mark:
            self.push_screen(FilterDialog(self._packet_filters()), self._first_mark)
        else:
            self.source.start()
        self._drain_timer = self.set_interval(DRAIN_INTERVAL, self.tick)
        self._idle_timer = self.set_interval(IDLE_INTERVAL, self.tick, pause=True)
        self._busy_at = time.monotonic()
        self.packet_table.focus()
        self.tick()

    def on_resize(self, event) -> None:
        self.screen.set_class(event.size.width < WIDE, "-stacked")
        self.screen.set_class(event.size.width < NARROW, "-narrow")

    def _first_mark(self, result) -> None:
        if result is None:
            self.exit(message="no filter given")
            return
        self.source.settings = replace(self.source.settings, mark=result.mark, mask=result.mask,
                                       expression=result.expression, netns=result.netns,
                                       ifname=result.ifname)
        self.source.start()

    def _packet_filters(self) -> PacketFilters:
        s = self.source.settings
        return PacketFilters(s.mark, s.mask, s.expression, s.netns, s.ifname)

    def _subtitle(self) -> str:
        if not self.source.live:
            recorded = getattr(self.source, "recorded_settings", None)
            return f"replay {os.path.basename(self.source.path)}" + (
                f" · recorded with {recorded}" if recorded else "")
        return "live"

    def on_unmount(self) -> None:
        self.source.stop()

    # -- the timer: all cross-thread data arrives here, in batches ------------------

    def tick(self) -> None:
        # A time budget per tick keeps the UI responsive; what waits stays in the
        # buffer, which counts what it has to drop when it is full.
        deadline = time.perf_counter() + APPLY_BUDGET
        changed: set[int] = set()
        if self.source.live and not self.paused:
            self._shed_backlog()
        handled = 0
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            samples = self._decorate(self.buffer.drain(limit=APPLY_CHUNK))
            if not samples:
                break
            handled += len(samples)
            if self.paused:
                self.pending.extend(samples)
            else:
                changed |= self.apply(samples, update_view=False)
        self._count_handled(handled, time.perf_counter() - started)
        # A big replay loading: the screen shows its progress twice a second, and the
        # time between goes to loading.
        now = time.monotonic()
        held = (not self.source.live and now - self._view_at < LOADING_REDRAW
                and (len(self.buffer) > 0 or getattr(self.source, "loading", False)))
        if held:
            self._unshown |= changed
        elif changed or self._unshown:
            self._update_view(changed | self._unshown)
            self._unshown = set()
            self._view_at = now
        elif self._journey_stale:
            self._show_selected()
        for notice in self.source.take_notices():
            self.notify(notice, severity="warning", timeout=6)
        if self.source.error is not None and not self._error_shown:
            self._error_shown = True
            self.notify(str(self.source.error), severity="error", timeout=30)
        if not held:
            self._update_status()
        self._pace(busy=bool(handled or len(self.buffer) or self._unshown or self._journey_stale
                             or getattr(self.source, "loading", False)
                             or self.source.status.attaching))

    _idling = False
    _drain_timer: Timer | None = None  # from on_mount
    _idle_timer: Timer | None = None

    def _pace(self, busy: bool) -> None:
        """Tick every DRAIN_INTERVAL while samples come, every IDLE_INTERVAL after
        IDLE_AFTER without any."""
        now = time.monotonic()
        if busy:
            self._busy_at = now
        idle = now - self._busy_at >= IDLE_AFTER
        if idle != self._idling and self._drain_timer is not None:
            self._idling = idle
            slow, fast = self._idle_timer, self._drain_timer
            (fast.pause if idle else fast.resume)()
            (slow.resume if idle else slow.pause)()

    def _count_handled(self, handled: int, took: float) -> None:
        """How many samples a second the ticks can handle: per second spent handling them,
        in the share of each tick's interval the budget gives (not per second of wall
        time: what is shed, or did not come, says nothing of what could be handled)."""
        count, spent = self._handled
        count += handled
        spent += took
        if spent >= 0.1 and count:
            rate = count / spent * APPLY_BUDGET / DRAIN_INTERVAL
            self._handled_rate = 0.5 * self._handled_rate + 0.5 * rate
            count, spent = 0, 0.0
        self._handled = (count, spent)

    def _shed_backlog(self) -> None:
        """Drops the oldest waiting samples beyond what can be handled within SHED_HORIZON."""
        room = int(self._handled_rate * SHED_HORIZON)
        excess = len(self.buffer) - room
        if excess > 0:
            self.shed += sum(len(batch) for batch in self.buffer.drain_batches(limit=excess))

    def _decorate(self, samples: list) -> list:
        """An extension's data decoded into fields; on a dump() error, say so and go on without."""
        extension = self.source.extension
        if extension is None or not samples:
            return samples
        try:
            return extension.decorate(samples)
        except IpftError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return [s._replace(data=None) for s in samples]

    def apply(self, samples: list, update_view: bool = True) -> set[int]:
        """Samples into the store and the list; returns the keys of changed packets."""
        created, changed = self.store.add(samples)
        table = self.packet_table
        table.forget_evicted()
        new_keys = {p.key for p in created}
        shown = set(table.keys) if self.filtered else None
        appear = [p.key for p in created if self._visible(p)]
        if shown is not None:  # a filter is on: changed packets may have become visible
            appear += [k for k in changed - new_keys
                       if k not in shown and self._visible(self.store.packets[k])]
        if self.journey_filter is not None:  # a listed packet may no longer match
            gone = {k for k in changed if k in shown and not self._visible(self.store.packets[k])}
            if gone:
                table.set_keys([k for k in table.keys if k not in gone])
        table.add_keys(sorted(appear))
        if update_view:
            self._update_view(changed)
        return changed

    def _update_view(self, changed: set[int]) -> None:
        """Once per batch of batches: list, cursor, and the selected journey."""
        table = self.packet_table
        table.keep_sorted()  # a sort order may have changed with the new samples
        table.refresh()  # rows on screen may have changed
        if self.follow and table.row_count:
            table.move_cursor(table.row_count - 1, user=False)
        selected = table.selected_key()
        if selected is not None and (selected in changed or selected != self._shown_key):
            self._journey_stale = True
        if self._journey_stale:
            self._show_selected()
        self._update_filter_chip()

    def _show_selected(self) -> None:
        """The selected packet's journey, redrawn now or, following, on a later tick."""
        now = time.monotonic()
        if self.follow and now - self._shown_at < FOLLOW_REDRAW:
            return
        self._journey_stale = False
        self._shown_at = now
        self.show_packet(self.packet_table.selected_key())

    @property
    def filtered(self) -> bool:
        return self.drops_only or bool(self.function_filter) or self.journey_filter is not None

    def _visible(self, packet) -> bool:
        if self.drops_only and not packet.dropped:
            return False
        if self.function_filter and not packet._functions & self._function_mask():
            return False
        return self.journey_filter is None or self.journey_filter(packet)

    def _function_mask(self) -> int:
        """Bit per interned function name the function filter matches (names grow live)."""
        names = self.store.interned.names
        cached = self._mask_cache
        if cached is None or cached[0] != (self.function_filter, len(names)):
            matched = set(function_matches(names, self.function_filter))
            mask = 0
            for i, name in enumerate(names):
                if name in matched:
                    mask |= 1 << i
            self._mask_cache = cached = ((self.function_filter, len(names)), mask)
        return cached[1]

    def _update_filter_chip(self) -> None:
        """The list's title says what is shown: `shown/total`, and which filters."""
        table = self.packet_table
        total = len(self.store.packets)
        if not self.filtered:
            title = f"packets {total}"
        else:
            what = (["drops"] if self.drops_only else []) + (
                [f"fn ~ {self.function_filter}"] if self.function_filter else []) + (
                [self.filter_bar.text] if self.journey_filter is not None else [])
            title = f"[b]filter[/b] {' · '.join(what)}: {table.row_count}/{total}  (Esc clears)"
        if title != table.border_title:
            table.border_title = title

    def _update_status(self) -> None:
        status = self.source.status
        now = time.monotonic()
        if self._last_tick is None or status.samples < self._last_tick[1]:  # start, or restarted
            self._last_tick = (now, status.samples)
        last_time, last_samples = self._last_tick
        if now - last_time >= 0.5:
            instant = (status.samples - last_samples) / (now - last_time)
            self._rate = instant if self._rate == 0 else 0.5 * self._rate + 0.5 * instant
            self._last_tick = (now, status.samples)
        bar = self.attach_bar
        loading = None
        if not self.source.live:
            total, about = status.samples, ""
            if getattr(self.source, "loading", False):  # still reading: the total estimated
                total = max(int(total / max(self.source.read_fraction, 0.01)), total + 1)
                about = "~"
            elif self._subtitle_loading:
                self._subtitle_loading = False
                self.sub_title = self._subtitle()  # the recording's settings are known now
            if self.store.samples < total:
                loading = (self.store.samples, total, about)
        busy = status.attaching or loading is not None
        if bar.has_class("active") != busy:
            bar.set_class(busy, "active")
        if status.attaching:
            bar.update(total=max(status.attach_todo, 1), progress=status.attach_done)
        elif loading is not None:
            bar.update(total=loading[1], progress=loading[0])
        self.status_bar.show(status_items(
            status, rate=self._rate, packets=len(self.store.packets), evicted=self.store.evicted,
            drops=self.buffer.dropped, shed=self.shed, follow=self.follow, paused=self.paused,
            pending=len(self.pending), live=self.source.live, loading=loading,
            recording=self.recording))
        self.filter_bar.show_counts(self.packet_table.row_count, len(self.store.packets))

    # -- selection -------------------------------------------------------------------

    def show_packet(self, key: int | None) -> None:
        """The journey tree and the detail pane show this packet (the selected row's)."""
        packet = self.store.packets.get(key) if key is not None else None
        self._shown_key = key
        self.journey.show_packet(packet, self.source.settings.tracer)
        self._show_detail()

    def _show_detail(self) -> None:
        tree = self.journey
        node = tree.cursor_node
        self.detail.show(node.data if node is not None and tree.packet is not None else None,
                         tree.origin, self.store.origin or 0, tree.packet)

    def on_packet_list_highlighted(self, event: PacketList.Highlighted) -> None:
        if event.user and self.follow:
            self.follow = False  # the user moved: stop following
            self._update_status()
        if event.key != self._shown_key:
            self.show_packet(event.key)

    def on_packet_list_follow_newest(self, event: PacketList.FollowNewest) -> None:
        self.follow = True
        self.action_last()
        self._update_status()

    def on_packet_list_selected(self, event: PacketList.Selected) -> None:
        self.journey.focus()

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.node.tree is self.journey:
            self._show_detail()

    def selected_packet(self) -> Packet | None:
        key = self.packet_table.selected_key()
        return self.store.packets.get(key) if key is not None else None

    def action_toggle_hex(self) -> None:
        """The packet's bytes in the detail pane: decoded headers or hex/ASCII."""
        self.detail.hex_view = not self.detail.hex_view
        self._show_detail()

    # -- actions -----------------------------------------------------------------------

    def check_action(self, action: str, parameters) -> bool | None:
        """A replay does not offer what changes a live trace (footer, palette, keys)."""
        if action in LIVE_ACTIONS and not self.source.live:
            return False
        if action == "clear_filters" and not (self.filtered or self.search_text):
            return False
        return True

    def action_help(self) -> None:
        self.push_screen(HelpScreen(live=self.source.live))

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self.action_last()
        self._update_status()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self.pending:
            pending, self.pending = self.pending, []
            self.apply(pending)
        self._update_status()

    def action_clear(self) -> None:
        if self.source.live:
            self._clear()
            return
        self.push_screen(ConfirmDialog("Forget every packet of this replay? (reload the file "
                                       "to see them again)"),
                         lambda yes: self._clear() if yes else None)

    def _clear(self) -> None:
        self.store.clear()
        self.pending.clear()
        self.packet_table.clear()
        self.show_packet(None)
        self._update_filter_chip()
        self._update_status()

    def action_last(self) -> None:
        table = self.packet_table
        table.move_cursor(max(table.row_count - 1, 0), user=False)

    def action_expand_all(self) -> None:
        self.journey.expand_everything()

    def action_collapse_all(self) -> None:
        tree = self.journey
        for child in tree.root.children:
            child.collapse_all()

    def action_expand_depth(self, depth: int) -> None:
        self.journey.expand_to_depth(depth)

    def action_jump_slowest(self) -> None:
        tree = self.journey
        calls = [n for n in _calls(tree.roots) if n.self_time is not None]
        if not calls:
            self.notify("no call with a measured time in this journey (tracer function_graph)",
                        severity="warning")
            return
        slowest = max(calls, key=lambda n: n.self_time)
        tree.reveal(lambda d: d is slowest)
        tree.focus()

    def action_jump_drop(self) -> None:
        tree = self.journey
        packet = tree.packet
        if packet is None or not packet.dropped:
            self.notify("this packet was not dropped", severity="warning")
            return
        where = packet.drop_function

        def is_the_drop(data) -> bool:
            sample = data.entry if isinstance(data, CallNode) else data
            return isinstance(sample, Sample) and sample.function == where and (
                is_drop(sample) or sample.drop_reason is None)
        tree.reveal(is_the_drop)
        tree.focus()

    def _rebuild_table(self) -> None:
        table = self.packet_table
        table.set_keys([k for k, p in self.store.packets.items() if self._visible(p)])
        self.show_packet(table.selected_key())
        self._update_filter_chip()

    def action_toggle_drops(self) -> None:
        self.drops_only = not self.drops_only
        if self.drops_only:
            self.follow = False
        self._rebuild_table()
        self._update_status()

    def action_clear_filters(self) -> None:
        self.drops_only = False
        self.function_filter = ""
        self.search_text = ""
        if self.journey_filter is not None:
            self.filter_bar.clear()  # applies "no filter", which rebuilds the list
        self._rebuild_table()

    def action_paths(self) -> None:
        def done(expression) -> None:
            if expression:
                self.filter_bar.set_expression(expression)
                self.follow = False
                self.packet_table.focus()

        self.push_screen(PathsScreen(self.store), done)

    def _selected_packet(self):
        key = self.packet_table.selected_key()
        packet = self.store.packets.get(key) if key is not None else None
        if packet is None:
            self.notify("no packet selected", severity="warning")
        return packet

    def action_waterfall(self) -> None:
        packet = self._selected_packet()
        if packet is not None:
            graph = self.source.settings.tracer == "function_graph"
            self.push_screen(WaterfallScreen(packet, graph))

    def action_mark_a(self) -> None:
        packet = self._selected_packet()
        if packet is not None:
            self.compare_a = packet.key
            self.notify(f"packet {packet.key} is A: select another and press = to compare")

    def action_compare(self) -> None:
        a = self.store.packets.get(self.compare_a) if self.compare_a is not None else None
        if a is None:
            self.notify("mark packet A with v first", severity="warning")
            return
        b = self._selected_packet()
        if b == a:
            self.notify("this is packet A: select another packet to compare", severity="warning")
        elif b is not None:
            self.push_screen(CompareScreen(a, b))

    def action_filter_journeys(self) -> None:
        self.filter_bar.open()

    def on_filter_bar_applied(self, event: FilterBar.Applied) -> None:
        self.journey_filter = event.predicate
        self._rebuild_table()
        self._update_status()

    def on_filter_bar_done(self, event: FilterBar.Done) -> None:
        self.packet_table.focus()

    def action_find_function(self) -> None:
        def done(result) -> None:
            if result is None:
                return
            self.function_filter = result
            if result:
                self.follow = False
            self._rebuild_table()
            self._update_status()

        self.push_screen(FunctionDialog(self.function_filter, list(self.store.interned.names)),
                         done)

    def action_search(self) -> None:
        def done(result) -> None:
            if result:
                self.search_text = result
                self.follow = False
                self._search(1, from_current=True)
                self._update_status()

        self.push_screen(TextDialog("Search packets: address, port, protocol, drop reason, "
                                    "device, function, packet id", self.search_text), done)

    def action_search_next(self) -> None:
        self._search(1)

    def action_search_previous(self) -> None:
        self._search(-1)

    def packet_text(self, packet: Packet) -> str:
        """Everything shown about a packet, for search: its row, every function, device,
        drop reason and flow of its journey."""
        table = self.packet_table
        parts = [packet_id_text(packet.packet_id), flows_text(packet),
                 *(c for c in table.cells_of(packet))]
        for sample in packet.samples:
            parts.append(sample.function)
            if sample.drop_reason:
                parts.append(sample.drop_reason)
            parts.append(where_text(sample.meta))
            if sample.fields:
                parts.extend(f"{k}={v}" for k, v in sample.fields.items())
        return "\n".join(parts).lower()

    def _search(self, step: int, from_current: bool = False) -> None:
        if not self.search_text:
            return
        table = self.packet_table
        keys = table.keys
        if not keys:
            return
        start = table.cursor_row + (0 if from_current else step)
        needle = self.search_text.lower()
        for offset in range(len(keys)):
            i = (start + step * offset) % len(keys)
            packet = self.store.packets[keys[i]]
            if needle in self.packet_text(packet):
                self.follow = False
                table.move_cursor(i)
                self.show_packet(keys[i])  # now, not when the highlight message arrives
                self._highlight_in_tree(needle)
                return
        self.notify(f"no packet matches {self.search_text!r}", severity="warning")

    def _highlight_in_tree(self, needle: str) -> None:
        def matches(data) -> bool:
            sample = data.entry if isinstance(data, CallNode) else data
            if not isinstance(sample, Sample):
                return False
            return needle in " ".join((sample.function, sample.drop_reason or "",
                                       where_text(sample.meta))).lower()
        self.journey.reveal(matches)
        self._show_detail()

    def action_copy(self) -> None:
        packet = self.selected_packet()
        if packet is None:
            self.notify("no packet selected", severity="warning")
            return
        text = journey_text(packet, self.store.origin or 0)
        self.copy_to_clipboard(text)
        self.notify(f"packet {packet.key} copied ({text.count(chr(10)) + 1} lines)")

    def action_write(self) -> None:
        packet = self.selected_packet()
        focused = self.focused
        one = packet is not None and focused is not self.packet_table
        default = f"ipft-packet-{packet.key}.jsonl" if one else "ipft-packets.jsonl"
        what = (f"the journey of packet {packet.key}" if one
                else f"the {self.packet_table.row_count} packets shown")

        def done(path) -> None:
            if not path:
                return
            packets = [packet] if one else [self.store.packets[k] for k in self.packet_table.keys]
            pcap = path.endswith((".pcapng", ".pcap"))
            try:
                count = (write_journeys(path, [p.samples for p in packets]) if pcap
                         else write_packets(path, packets))
            except (OSError, IpftError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                self.notify(f"cannot write {path}: {why}", severity="error", timeout=10)
                return
            if pcap and not count:
                self.notify(f"{path}: no sample has packet bytes (capture is off)",
                            severity="warning")
                return
            self.notify(f"{count} {'packets' if pcap else 'samples'} written to {path}")

        self.push_screen(TextDialog(f"Write {what} to a new file: JSON lines, or pcapng for "
                                    "Wireshark when the name ends in .pcapng", default), done)

    def action_toggle_record(self) -> None:
        source = self.source
        if self.recording:
            source.stop_recording()
            self.notify(f"recording to {self.recording} stopped")
            self.recording = None
            self._update_status()
            return

        def done(path) -> None:
            if not path:
                return
            try:
                source.start_recording(path)
            except OSError as exc:
                self.notify(f"cannot record to {path}: {exc.strerror}", severity="error",
                            timeout=10)
                return
            self.recording = path
            self._update_status()

        self.push_screen(TextDialog("Record every sample from now on to a new JSON-lines file",
                                    time.strftime("ipft-%Y%m%d-%H%M%S.jsonl")), done)

    # -- changing the trace live ------------------------------------------------------

    def _needs_live(self) -> bool:
        return self.source.live

    def action_edit_filter(self) -> None:
        if not self._needs_live():
            return

        def done(result) -> None:
            if result is None:
                return
            s = self.source.settings
            if result.expression != s.expression:  # compiled into the program: a new one
                self._restart(replace(s, mark=result.mark, mask=result.mask,
                                      expression=result.expression, netns=result.netns,
                                      ifname=result.ifname), f"filter {result.label}")
                return
            self.source.set_filter(result)  # a map update
            self.notify(f"filter: {result.label}")

        self.push_screen(FilterDialog(self._packet_filters()), done)

    def action_edit_regex(self) -> None:
        if not self._needs_live() or not self.source.ready:
            return

        def done(result) -> None:
            if result is not None:
                self.source.set_regex(result or None)

        self.push_screen(RegexDialog(self.source.settings.regex, self.source.candidate_names()), done)

    def action_toggle_tracer(self) -> None:
        if not self._needs_live():
            return
        tracer = "function" if self.source.settings.tracer == "function_graph" else "function_graph"
        self.source.set_tracer(tracer)  # return probes attach/detach; no restart
        self.notify(f"tracer {tracer}")
        self.show_packet(self._shown_key)

    def action_toggle_track_skb(self) -> None:
        if not self._needs_live():
            return
        on = not self.source.settings.track_skb
        self.source.set_track_skb(on)
        self.notify("following skbs across mark changes and clones" if on
                    else "skb following off: marks only")

    def action_edit_stack_regex(self) -> None:
        if not self._needs_live() or not self.source.ready:
            return

        def done(result) -> None:
            if result is not None:
                self.source.set_stack_regex(result or None)
                self.notify(f"stack traces for /{result}/" if result else "stack traces off")

        self.push_screen(RegexDialog(self.source.settings.stack_regex,
                                     self.source.candidate_names(),
                                     "Kernel stack traces for functions/tracepoints matching",
                                     "empty: no stack traces"), done)

    def action_choose_backend(self) -> None:
        if not self._needs_live() or self.source.kernel is None:
            return

        def done(result) -> None:
            if result and result != self.source.status.backend:
                self._restart(replace(self.source.settings, backend=result), f"backend {result}")

        options = self.source.supported_backends()
        self.push_screen(ChoiceDialog("Backend", options, self.source.status.backend), done)

    def action_load_extension(self) -> None:
        if not self._needs_live():
            return

        def done(result) -> None:
            if result is None:
                return
            extension = None
            if result:
                try:
                    extension = load_extension(result)
                except IpftError as exc:
                    self.notify(str(exc), severity="error", timeout=10)
                    return
            self.notify(f"loading {result or 'no extension'}…")
            self.run_worker(lambda: self.source.switch_extension(extension), thread=True,
                            exclusive=True, group="restart")

        current = self.source.extension.path if self.source.extension else ""
        self.push_screen(TextDialog("Extension: Lua script (.lua) or C file (.c); empty: none",
                                    current, "examples/gso.lua"), done)

    def on_worker_state_changed(self, event) -> None:
        # A failed compile prints clang's errors on the terminal we draw on: redraw it all.
        if event.worker.group == "restart" and event.worker.is_finished:
            self.screen.refresh(repaint=True, layout=True)

    def _restart(self, settings, what: str) -> None:
        self.notify(f"switching to {what}…")
        self.run_worker(lambda: self.source.restart(settings), thread=True,
                        exclusive=True, group="restart")

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for key in KEYS:  # the same table as the keys and the help
            if key.palette and self.check_action(key.action, ()):
                yield SystemCommand(key.label, key.help, getattr(self, f"action_{key.action}"))


def _calls(roots: list[CallNode]):
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node.children or node.exit is not None:
            yield node
        todo.extend(node.children)


def journey_text(packet: Packet, trace_origin: int) -> str:
    """A packet as plain text, for the clipboard."""
    from .. import formatting as fmt  # noqa: PLC0415
    lines = [f"packet {packet.key} {packet_id_text(packet.packet_id)} {flows_text(packet)}".rstrip(),
             f"first seen {fmt.offset(packet.first.timestamp - trace_origin)}, "
             + (fmt.duration(packet.duration) if packet.freed else "open (end not seen)")
             + (f", dropped: {packet.drop_function} {packet.drop_reason}" if packet.dropped
                else "")]
    first = packet.first.timestamp
    for sample in packet.samples:
        line = (f"  +{fmt.duration(sample.timestamp - first):>9} cpu{sample.processor_id} "
                f"{sample.function}{' (return)' if sample.is_return else ''}")
        if sample.drop_reason:
            line += f" {sample.drop_reason}"
        where = where_text(sample.meta)
        if where:
            line += f" @{where}"
        lines.append(line)
    return "\n".join(lines)


def write_packets(path: str, packets: list[Packet]) -> int:
    """Journeys to a new file (never over an existing one or through a symlink), 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as stream:
        out = JsonOutput(stream, with_tuple=True)
        count = 0
        for packet in packets:
            samples = packet.samples
            out.write(samples)
            count += len(samples)
    return count
