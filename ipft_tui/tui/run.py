"""Start the TUI from the command line: live (optionally on demo traffic) or replay."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace

from ..batching import SampleBuffer
from ..demo import DemoTraffic
from ..errors import IpftError
from ..startup import Startup, extension_from_args, kernel_or_error, require_root
from .app import IpftApp
from .sources import LiveSource, ReplaySource

# After SIGHUP/SIGTERM/SIGINT the app gets this long to exit on its own once the
# probes are detached and the demo removed; then the process ends regardless (a
# closed terminal can block Textual's writer thread, and with it the driver's stop).
EXIT_GRACE = 2.0  # s
STOP_TIMEOUT = 5.0  # s the collector gets to detach before the demo is removed regardless
SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


def _loading(path: str):
    """Progress on stderr while a big trace is read, before the TUI takes the screen."""
    if not sys.stderr.isatty():
        return None

    def show(fraction: float, samples: int) -> None:
        sys.stderr.write(f"\rloading {path}: {fraction:.0%} ({samples} samples)")
        sys.stderr.flush()
    return show


class Shutdown:
    """Ends the process within seconds of a signal, whatever the terminal does.

    On a signal, a watchdog thread runs the cleanups (stop the collector, remove
    the demo: nothing there touches the terminal), and force-exits if the app has
    not returned after EXIT_GRACE; the app is asked to exit. Cleanups run once,
    from the watchdog or from the normal exit path, whichever comes first.

    The handler takes no lock and starts no thread (it runs between two bytecodes
    of the main thread, which may hold the lock it would need): it writes a byte
    to a pipe that the watchdog, started beforehand, waits on."""

    def __init__(self) -> None:
        self._cleanups: list[Callable[[], None]] = []
        self.lock = threading.Lock()
        self._cleaned = False
        self.signum: int | None = None
        self.app: IpftApp | None = None
        self._wake_read, self._wake_write = os.pipe()

    def add(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def cleanup(self) -> None:
        with self.lock:
            if self._cleaned:
                return
            self._cleaned = True
            for cleanup in reversed(self._cleanups):
                try:
                    cleanup()
                except Exception as exc:  # noqa: BLE001 - the others must still run
                    print(f"ipft-tui: cleanup failed: {exc}", file=sys.stderr)

    def install(self) -> None:
        threading.Thread(target=self._watchdog, name="ipft-shutdown", daemon=True).start()
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        if self.signum is not None:
            return  # the watchdog is already on it
        self.signum = signum
        os.write(self._wake_write, b"\0")
        try:  # a signal handler runs in the main thread: the app's loop, if still running
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.app is not None:
            loop.call_soon_threadsafe(self.app.exit)

    def _watchdog(self) -> None:
        os.read(self._wake_read, 1)
        self.cleanup()
        threading.Event().wait(EXIT_GRACE)
        os._exit(self.exit_code)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum is not None else 0


def run_tui(start: Startup, args) -> int:
    shutdown = Shutdown()
    shutdown.install()
    try:
        _run(start, args, shutdown)
    finally:
        shutdown.cleanup()
    return shutdown.exit_code


# Python's cyclic GC runs its youngest generation every 700 new objects: under a busy
# trace (hundreds of thousands of samples a second) that is hundreds of collections a
# second, and the full ones stall the screen for a tenth of a second and more. Samples
# and packets hold no cycles; collecting every 10,000 new objects is plenty.
GC_THRESHOLDS = (10_000, 10, 10)


def _run(start: Startup, args, shutdown: Shutdown) -> None:
    max_packets = start.max_packets
    gc.set_threshold(*GC_THRESHOLDS)
    buffer = SampleBuffer()
    if args.replay:
        source = ReplaySource(args.replay, buffer, progress=_loading(args.replay), background=True)
        if not source.samples and source.problems:
            raise IpftError(f"{args.replay}: no valid sample ({source.problems.total} malformed "
                            f"lines; line {source.problems[0][0]}: {source.problems[0][1]})")
        shutdown.app = IpftApp(source, buffer, max_packets=max_packets, follow=False)
        shutdown.app.run()
        return
    # Skbs are followed by default (start-up; `o` turns it off): a packet's mark is often
    # cleared on its way (between namespaces), and its free would go unseen.
    settings = start.settings
    require_root()
    extension = extension_from_args(args)
    if extension is not None:
        settings = replace(settings, module_source=extension.c_source, module_label=extension.path)
        extension.init()
    kernel = kernel_or_error()
    source = LiveSource(settings, buffer, record_path=args.record, kernel=kernel,
                        extension=extension, overwrite=args.overwrite, pcap_path=args.write_pcap)
    # Cleanups run in reverse: the collector stops (probes detached) before the demo goes.
    if args.demo:
        demo = DemoTraffic(settings.mark)
        with shutdown.lock:  # a signal's cleanup waits for the namespaces to exist
            if shutdown.signum is not None:
                return
            demo.__enter__()
            shutdown.add(lambda: demo.__exit__(None, None, None))
        if demo.removed_leftovers:
            source.notice("removed namespaces left by demos whose process died: "
                          + ", ".join(demo.removed_leftovers))
    # After a signal, a collector still compiling gets a few seconds; then the process
    # ends anyway, which detaches whatever it attached (nothing is pinned).
    # Without a signal, the exit waits for every probe to be detached (bcc's own exit
    # cleanup must not race the collector's).
    shutdown.add(lambda: source.stop_collector(
        timeout=STOP_TIMEOUT if shutdown.signum is not None else 900))
    try:
        app = shutdown.app = IpftApp(source, buffer, max_packets=max_packets,
                                     ask_mark=not settings.has_filter)
        if shutdown.signum is None:
            app.run()
    finally:
        shutdown.cleanup()
        source.stop()  # extension fini, recording closed
    if source.error is not None and app.return_code not in (None, 0):
        raise source.error
