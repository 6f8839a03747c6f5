"""The live TUI: a packet list, the selected packet's journey, and every control
to change the trace without restarting."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, ProgressBar, Tree

from ..batching import SampleBuffer
from ..errors import IpftError
from ..extensions import load_extension
from ..model import PacketStore, packet_id_text
from .screens import ChoiceDialog, FilterDialog, HelpScreen, RegexDialog, TextDialog
from .packet_list import PacketList
from .widgets import DetailPane, JourneyTree, StatusBar, status_text

DRAIN_INTERVAL = 0.05  # s: how often samples move from the collector's buffer to the screen
APPLY_BUDGET = 0.035  # s of sample handling per tick at most: input stays responsive
APPLY_CHUNK = 10_000  # samples handled at a time within that budget


class IpftApp(App):
    TITLE = "ipft-tui"
    CSS = """
    #main { height: 1fr; }
    PacketList { width: 3fr; }
    #right { width: 2fr; }
    JourneyTree { height: 2fr; border: round $panel; }
    DetailPane { height: 1fr; border: round $panel; padding: 0 1; }
    #attach { height: 1; display: none; }
    #attach.active { display: block; }
    StatusBar { height: 1; background: $panel; padding: 0 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("m", "edit_filter", "Mark"),
        Binding("r", "edit_regex", "Regex"),
        Binding("t", "toggle_tracer", "Tracer"),
        Binding("b", "choose_backend", "Backend"),
        Binding("s", "load_extension", "Script"),
        Binding("o", "toggle_track_skb", "Track skb"),
        Binding("S", "edit_stack_regex", "Stacks"),
        Binding("f", "find_function", "Find fn"),
        Binding("d", "toggle_drops", "Drops"),
        Binding("slash", "search", "Search"),
        Binding("n", "search_next", "Next", show=False),
        Binding("F", "toggle_follow", "Follow"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("x", "clear", "Clear"),
        Binding("w", "write_pcap", "Write pcap"),
        Binding("W", "write_pcap(True)", "Write pcap (list)", show=False),
        Binding("H", "toggle_hex", "Hex", show=False),
        Binding("e", "expand_all", "Expand", show=False),
        Binding("c", "collapse_all", "Collapse", show=False),
        Binding("g", "first", "First", show=False),
        Binding("G", "last", "Last", show=False),
        *[Binding(str(d), f"expand_depth({d})", show=False) for d in range(1, 10)],
    ]

    def __init__(self, source, buffer: SampleBuffer, max_packets: int = 10_000,
                 follow: bool = True, ask_mark: bool = False):
        super().__init__()
        self.source = source
        self.buffer = buffer
        self.store = PacketStore(max_packets=max_packets)
        self.follow = follow
        self.paused = False
        self.pending: list = []
        self.function_filter = ""
        self.drops_only = False
        self.search_text = ""
        self.ask_mark = ask_mark
        self._rate = 0.0
        self._last_tick: tuple[float, int] | None = None  # (time, samples) the rate counts from
        self._shown_key: int | None = None

    def compose(self) -> ComposeResult:
        # Kept as attributes: App.query_one searches the active screen, which is
        # a dialog whenever one is open, while the timer keeps updating these.
        self.packet_table = PacketList(self.store, id="packets")
        self.journey = JourneyTree(id="journey")
        self.detail = DetailPane(id="detail-pane")
        self.attach_bar = ProgressBar(id="attach", show_eta=False)
        self.status_bar = StatusBar(id="status")
        yield Header()
        with Horizontal(id="main"):
            yield self.packet_table
            with Vertical(id="right"):
                yield self.journey
                yield self.detail
        yield self.attach_bar
        yield self.status_bar
        yield Footer()

    # -- lifecycle ---------------------------------------------------------------

    def on_mount(self) -> None:
        self.sub_title = self._subtitle()
        try:  # SIGTERM and SIGHUP (terminal closed) quit like 'q': everything is detached
            for sig in (signal.SIGTERM, signal.SIGHUP):
                asyncio.get_running_loop().add_signal_handler(sig, self.exit)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        if self.ask_mark:
            self.push_screen(FilterDialog(0, self.source.settings.mask), self._first_mark)
        else:
            self.source.start()
        self.set_interval(DRAIN_INTERVAL, self.tick)
        self.packet_table.focus()
        self.tick()

    def _first_mark(self, result) -> None:
        if result is None:
            self.exit(message="no mark given")
            return
        mark, mask = result
        self.source.settings = replace(self.source.settings, mark=mark, mask=mask)
        self.source.start()

    def _subtitle(self) -> str:
        if not self.source.live:
            return f"replay {os.path.basename(self.source.path)}"
        return "live"

    def on_unmount(self) -> None:
        self.source.stop()

    # -- the timer: all cross-thread data arrives here, in batches ------------------

    def tick(self) -> None:
        # A time budget per tick keeps the UI responsive; what waits stays in the
        # buffer, which counts what it has to drop when it is full.
        deadline = time.perf_counter() + APPLY_BUDGET
        changed: set[int] = set()
        while time.perf_counter() < deadline:
            samples = self._decorate(self.buffer.drain(limit=APPLY_CHUNK))
            if not samples:
                break
            if self.paused:
                self.pending.extend(samples)
            else:
                changed |= self.apply(samples, update_view=False)
        if changed:
            self._update_view(changed)
        for notice in self.source.take_notices():
            self.notify(notice, severity="warning", timeout=6)
        if self.source.error is not None and not getattr(self, "_error_shown", False):
            self._error_shown = True
            self.notify(str(self.source.error), severity="error", timeout=30)
        self._update_status()

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
        shown = set(table.keys) if (self.drops_only or self.function_filter) else None
        appear = [p.key for p in created if self._visible(p)]
        if shown is not None:  # a filter is on: changed packets may have become visible
            appear += [k for k in changed - new_keys
                       if k not in shown and self._visible(self.store.packets[k])]
        table.add_keys(sorted(appear))
        if update_view:
            self._update_view(changed)
        return changed

    def _update_view(self, changed: set[int]) -> None:
        """Once per batch of batches: list, cursor, and the selected journey."""
        table = self.packet_table
        table.refresh()  # rows on screen may have changed
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1)
        selected = table.selected_key()
        if selected is not None and (selected in changed or selected != self._shown_key):
            self.show_packet(selected)

    def _visible(self, packet) -> bool:
        if self.drops_only and packet.drop_reason is None:
            return False
        return not self.function_filter or packet.has_function(self.function_filter)

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
        bar.set_class(status.attaching, "active")
        if status.attaching:
            bar.update(total=max(status.attach_todo, 1), progress=status.attach_done)
        self.status_bar.update(status_text(
            status, rate=self._rate, packets=len(self.store.packets), evicted=self.store.evicted,
            drops=self.buffer.dropped, follow=self.follow, paused=self.paused,
            pending=len(self.pending), live=self.source.live))

    # -- selection -------------------------------------------------------------------

    def show_packet(self, key: int | None) -> None:
        packet = self.store.packets.get(key) if key is not None else None
        self._shown_key = key
        tree = self.journey
        cursor = tree.cursor_line
        tree.show_packet(packet, self.source.settings.tracer)
        if packet is not None and cursor > 0:
            tree.move_cursor_to_line(min(cursor, tree.last_line))

    def on_packet_list_highlighted(self, event: PacketList.Highlighted) -> None:
        if event.key != self._shown_key:
            self.show_packet(event.key)

    def on_packet_list_selected(self, event: PacketList.Selected) -> None:
        self.journey.focus()

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        self._detail_data = event.node.data
        self.detail.show(event.node.data, self.store.origin or 0, self.journey.packet)

    def action_toggle_hex(self) -> None:
        """The packet's bytes in the detail pane: decoded headers or hex/ASCII."""
        self.detail.hex_view = not self.detail.hex_view
        self.detail.show(getattr(self, "_detail_data", None), self.store.origin or 0,
                         self.journey.packet)

    def action_write_pcap(self, listed: bool = False) -> None:
        """The selected journey (W: every packet in the list) as pcapng in the current directory."""
        from .packet_view import write_pcap  # noqa: PLC0415
        if listed:
            packets = [p for p in self.store.packets.values() if self._visible(p)]
        else:
            packets = [self.journey.packet] if self.journey.packet is not None else []
        if not packets:
            self.notify("no packet selected", severity="warning")
            return
        try:
            path, written = write_pcap(packets)
        except IpftError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        if written:
            self.notify(f"wrote {written} packets to {path}")
        else:
            self.notify(f"{path}: no sample has packet bytes (capture is off)", severity="warning")

    # -- actions -----------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

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
        self.store.clear()
        self.pending.clear()
        self.packet_table.clear()
        self.show_packet(None)
        self._update_status()

    def action_first(self) -> None:
        self.follow = False
        table = self.packet_table
        table.move_cursor(row=0)

    def action_last(self) -> None:
        table = self.packet_table
        table.move_cursor(row=max(table.row_count - 1, 0))

    def action_expand_all(self) -> None:
        self.journey.expand_everything()

    def action_collapse_all(self) -> None:
        tree = self.journey
        for child in tree.root.children:
            child.collapse_all()

    def action_expand_depth(self, depth: int) -> None:
        self.journey.expand_to_depth(depth)

    def _rebuild_table(self) -> None:
        table = self.packet_table
        table.set_keys([k for k, p in self.store.packets.items() if self._visible(p)])
        self.show_packet(table.selected_key())

    def action_toggle_drops(self) -> None:
        self.drops_only = not self.drops_only
        self._rebuild_table()
        self.notify("only dropped packets" if self.drops_only else "all packets")

    def action_find_function(self) -> None:
        names = sorted(self.store.interned.names)

        def done(result) -> None:
            if result is None:
                return
            self.function_filter = result
            self.follow = False if result else self.follow
            self._rebuild_table()
            count = self.packet_table.row_count
            self.notify(f"{count} packets passed through {result}" if result else "showing all packets")

        self.push_screen(TextDialog("Only packets that passed through function",
                                    self.function_filter, "kfree_skb", choices=names), done)

    def action_search(self) -> None:
        def done(result) -> None:
            if result:
                self.search_text = result
                self.action_search_next()

        self.push_screen(TextDialog("Search packets (packet id or function)", self.search_text), done)

    def action_search_next(self) -> None:
        if not self.search_text:
            return
        table = self.packet_table
        keys = table.keys
        start = table.cursor_row + 1
        needle = self.search_text.lower()
        for offset in range(len(keys)):
            i = (start + offset) % len(keys)
            packet = self.store.packets[keys[i]]
            if needle in packet_id_text(packet.packet_id) or any(
                    needle in f.lower() for f in packet.functions):
                self.follow = False
                table.move_cursor(row=i)
                self.show_packet(keys[i])  # now, not when the highlight message arrives
                self._highlight_in_tree(needle)
                return
        self.notify(f"no packet matches {self.search_text!r}", severity="warning")

    def _highlight_in_tree(self, needle: str) -> None:
        tree = self.journey
        for line in range(tree.last_line + 1):
            node = tree.get_node_at_line(line)
            if node is not None and node.data is not None and needle in node.data.function.lower():
                tree.move_cursor_to_line(line)
                return

    # -- changing the trace live ------------------------------------------------------

    def _needs_live(self) -> bool:
        if not self.source.live:
            self.notify("this is a replay: nothing to change", severity="warning")
            return False
        return True

    def action_edit_filter(self) -> None:
        if not self._needs_live():
            return
        s = self.source.settings

        def done(result) -> None:
            if result is not None:
                self.source.set_filter(*result)
                self.notify(f"mark 0x{result[0]:x} mask 0x{result[1]:x}")

        self.push_screen(FilterDialog(s.mark, s.mask), done)

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
        for title, help_text, action in (
            ("Mark / mask", "Change the mark filter (applied at once)", self.action_edit_filter),
            ("Function regex", "Attach/detach probes by name", self.action_edit_regex),
            ("Toggle tracer", "function <-> function_graph", self.action_toggle_tracer),
            ("Follow skbs", "Toggle: keep journeys across mark changes and clones",
             self.action_toggle_track_skb),
            ("Stack traces", "Kernel stacks for functions matching a regex",
             self.action_edit_stack_regex),
            ("Backend", "Switch the tracing backend", self.action_choose_backend),
            ("Load extension", "Lua script or C file adding fields", self.action_load_extension),
            ("Find packets by function", "Only packets that passed a function", self.action_find_function),
            ("Only dropped packets", "Toggle: show only packets that were dropped", self.action_toggle_drops),
            ("Search packets", "By packet id or function", self.action_search),
            ("Follow newest", "Toggle follow mode", self.action_toggle_follow),
            ("Pause display", "Tracing goes on", self.action_toggle_pause),
            ("Clear packets", "Forget every packet shown", self.action_clear),
        ):
            yield SystemCommand(title, help_text, action)

