"""Benchmark: traffic kept, samples kept, losses, CPU, the TUI's display lag and key
latency, replay scale, idle cost, memory.

Every configuration runs against the same workload (marked traffic from a separate
process: 1-byte UDP over a veth pair between namespaces and over loopback inside one,
TCP over veth), each repeated (--repeats, default 3) in interleaved rounds: every round
runs every configuration once, in another order (so drift over the run and the first
slot fall on every configuration alike). Tables show the median and (min-max).

The TUI is the shipped one: the command line goes through ipft_tui.cli / startup /
tui.run exactly as `ipft-tui -m MARK` (or `--replay FILE`) does, in a child process;
only App.run is swapped for Textual's headless driver, and the child watches the
frames Textual paints (App.post_display_hook) for what it waits for on screen.

    make bench                                  # everything, ~10 min, markdown tables
    make bench ARGS="--sections matrix --only none,json,tui --seconds 5"
    make bench ARGS="--sections lag,idle --repeats 5"
    python3 scripts/bench.py --views            # paths view and journey filter (no root)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ipft_tui.collector import Collector  # noqa: E402
from ipft_tui.kernel.targets import load_kernel_btf, skb_functions, skb_tracepoints  # noqa: E402
from ipft_tui.model import Meta, PacketStore, Sample  # noqa: E402
from ipft_tui.netlab import VethPair, unique_prefix  # noqa: E402
from ipft_tui.settings import TraceSettings  # noqa: E402

MARK = 0xBE7C4
PORT = 9999
MARKER_PORT = 7474  # below the ephemeral range: no flood packet's source port is this
TRACEPOINTS = ("net_dev_queue", "net_dev_start_xmit", "net_dev_xmit", "netif_rx",
               "netif_receive_skb", "kfree_skb", "consume_skb")
SCREEN = (160, 45)  # the headless TUI's terminal size
SECTIONS = ("matrix", "lag", "replay", "idle")


def monotonic_ns() -> int:
    """CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns(): kernel timestamps compare directly."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# -- statistics and scheduling (pure; tests/test_bench_stats.py) ------------------------

def schedule(jobs: list, repeats: int, seed: int = 0) -> list[tuple[int, object]]:
    """(round, job) pairs: every job once per round, each round in a new shuffled order,
    and no job first in two rounds running (drift and the first slot are shared)."""
    rng = random.Random(seed)
    out: list[tuple[int, object]] = []
    previous_first = None
    for round_ in range(repeats):
        order = list(jobs)
        rng.shuffle(order)
        if len(order) > 1 and order[0] == previous_first:
            order.append(order.pop(0))
        previous_first = order[0] if order else None
        out += [(round_, job) for job in order]
    return out


def spread(values: list[float]) -> tuple[float, float, float] | None:
    """(median, min, max) of the values given, None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt_spread(values: list, fmt: str = "{:.0f}", missing: str = "-") -> str:
    """'median (min-max)', or just the value when all runs agree (or there is one)."""
    s = spread(values)
    if s is None:
        return missing
    median, low, high = (fmt.format(v) for v in s)
    return median if low == high else f"{median} ({low}-{high})"


def kept_samples(delivered: int, dropped: int) -> int:
    """Samples the consumer kept: delivered to user space minus those it had to drop."""
    return max(delivered - dropped, 0)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def parse_summary(text: str) -> dict:
    """The counters of headless `-v`'s "Summary:" line, by their words (not position)."""
    lines = [line for line in text.splitlines() if line.startswith("Summary:")]
    if not lines:
        raise RuntimeError(f"no summary from ipft-tui: {text[-2000:]}")
    line = lines[-1]
    out = {}
    missed = re.search(r"Missed by the kernel: (\d+)", text)  # a line of its own
    if missed:
        out["misses"] = int(missed.group(1))
    for key, pattern in (("delivered", r"(\d+) samples delivered"), ("lost", r"(\d+) lost"),
                         ("rescued", r"(\d+) saved"), ("dropped", r"(\d+) dropped")):
        m = re.search(pattern, line)
        if m:
            out[key] = int(m.group(1))
    return out


# -- traffic -----------------------------------------------------------------------------

SENDER = textwrap.dedent("""
    import socket, struct, sys, time
    kind, dst, port, mark, seconds, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
        int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    if kind == "marker":  # one datagram; CLOCK_MONOTONIC just before and after sending it
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack("I", mark))
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        s.sendto(b"m", (dst, port))
        print(before, time.clock_gettime_ns(time.CLOCK_MONOTONIC))
        sys.exit(0)
    if kind == "tcp":
        s = socket.create_connection((dst, port))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack("I", mark))
    payload, sent, start = b"x" * (1024 if kind == "tcp" else 1), 0, time.monotonic()
    end = start + seconds
    gap = 1.0 / rate if rate else 0.0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if kind == "tcp":
            s.sendall(payload)
        else:
            s.sendto(payload, (dst, port))
        sent += 1
        if gap:
            next_at = start + sent * gap
            if next_at > now:
                time.sleep(next_at - now)
    print(sent / (time.monotonic() - start))
""")

SINK = textwrap.dedent("""
    import socket, sys
    srv = socket.create_server(("0.0.0.0", int(sys.argv[1])))
    conn, _ = srv.accept()
    while conn.recv(1 << 16):
        pass
""")


class Workload:
    """Marked traffic from another process, at full speed or a fixed rate."""

    def __init__(self, pair: VethPair, path: str, kind: str, seconds: float, rate: float):
        self.pair, self.path, self.kind, self.seconds, self.rate = pair, path, kind, seconds, rate

    @property
    def dst(self) -> str:
        return self.pair.a_addr if self.path == "loopback" else self.pair.b_addr

    def run(self) -> float:
        """Sends for `seconds`; returns packets (UDP) or 1 KiB writes (TCP) per second."""
        sink = None
        if self.kind == "tcp":
            sink_ns = self.pair.ns_a if self.path == "loopback" else self.pair.ns_b
            sink = subprocess.Popen(["ip", "netns", "exec", sink_ns, sys.executable, "-c", SINK,
                                     str(PORT)])
            time.sleep(0.3)
        try:
            out = subprocess.run(["ip", "netns", "exec", self.pair.ns_a, sys.executable, "-c",
                                  SENDER, self.kind, self.dst, str(PORT), str(MARK),
                                  str(self.seconds), str(self.rate)], capture_output=True,
                                 text=True, check=True, timeout=self.seconds + 30)
            return float(out.stdout.strip())
        finally:
            if sink:
                sink.kill()
                sink.wait()

    def marker(self) -> tuple[int, int]:
        """One marked datagram to MARKER_PORT: CLOCK_MONOTONIC ns before and after sendto."""
        out = subprocess.run(["ip", "netns", "exec", self.pair.ns_a, sys.executable, "-c",
                              SENDER, "marker", self.dst, str(MARKER_PORT), str(MARK), "0", "0"],
                             capture_output=True, text=True, check=True, timeout=30)
        before, after = out.stdout.split()
        return int(before), int(after)


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far (user + system), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError("ipft-tui exited before it was ready")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("ipft-tui did not become ready")


def peak_rss(pid: int) -> int | None:
    """Bytes: the process's peak resident set since its exec (VmHWM). getrusage's ru_maxrss
    of a child is not that: exec keeps the larger of it and the pages the child had from
    its parent before exec (the bench's own, hundreds of MB after writing the recording)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reap(pid: int, timeout: float) -> resource.struct_rusage | None:
    """Wait for a child (killing it after `timeout`); its rusage (whole-life CPU, peak RSS)."""
    deadline = time.monotonic() + timeout
    while True:
        done, _status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return usage
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.wait4(pid, 0)
            return None
        time.sleep(0.02)


# -- headless configurations ------------------------------------------------------------

def run_none(workload: Workload) -> dict:
    return {"rate": workload.run()}


def run_floor(workload: Workload) -> dict:
    collector = Collector(TraceSettings(mark=MARK, count_only=True), lambda batch: None)
    collector.start()
    collector.wait_ready(60)
    try:
        rate = workload.run()
    finally:
        collector.stop()  # reads the counters a last time
    matched = collector.status.matched
    return {"rate": rate, "kept": matched, "kept_per_s": matched / workload.seconds}


def expression(workload: Workload) -> str:
    """The workload's own flow as a pcap-filter expression (the "expression" configuration)."""
    return f"{workload.kind} and dst port {PORT} and host {workload.dst}"


def run_headless(workload: Workload, *extra: str, mark: bool = True) -> dict:
    """ipft-tui -o ... to /dev/null. CPU: from the traffic's start until the process has
    exited (so aggregate's formatting at exit counts; "exit CPU" shows that part alone)."""
    port = 13800 + os.getpid() % 1000
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ipft_tui",
                                 *(["-m", hex(MARK)] if mark else []), "-v",
                                 "--enable-probe-server", "--probe-server-port", str(port), *extra],
                                stdout=subprocess.DEVNULL, stderr=err, text=True, cwd=REPO)
        try:
            ready = wait_port(port, proc)
        except RuntimeError:
            proc.kill()
            proc.wait()
            err.seek(0)
            raise RuntimeError(err.read()[-500:]) from None
        before = process_cpu(proc.pid)
        rate = workload.run()
        time.sleep(0.5)  # let the tail drain
        at_end = process_cpu(proc.pid)
        proc.send_signal(signal.SIGTERM)
        usage = reap(proc.pid, 120)
        proc.returncode = 0  # reaped above
        err.seek(0)
        summary = parse_summary(err.read())
    if usage is None:
        raise RuntimeError("ipft-tui did not exit within 120 s of SIGTERM")
    total = usage.ru_utime + usage.ru_stime
    kept = kept_samples(summary["delivered"], summary.get("dropped", 0))
    cpu = total - before
    return {"rate": rate, "delivered": summary["delivered"], "kept": kept,
            "kept_per_s": kept / workload.seconds, "lost": summary.get("lost"),
            "rescued": summary.get("rescued"), "dropped": summary.get("dropped"),
            "misses": summary.get("misses"), "startup_s": ready,
            "cpu_us_per_kept": cpu / max(kept, 1) * 1e6, "exit_cpu_s": max(total - at_end, 0.0)}


def run_bpftrace(workload: Workload) -> dict:
    if not Path("/sys/kernel/tracing/events/net").exists():
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=False)
    probes = ",".join(f"tracepoint:net:{tp}" for tp in TRACEPOINTS[:5]) + \
        ",tracepoint:skb:kfree_skb,tracepoint:skb:consume_skb"
    program = (f"{probes} /((struct sk_buff *)args->skbaddr)->mark == {MARK}/ "
               '{ printf("%llx %llu %d %s\\n", args->skbaddr, nsecs, cpu, probe); }')
    # A private directory: a fixed name in /tmp could be a symlink planted by another user.
    with tempfile.TemporaryDirectory(prefix="ipft-bench-") as private:
        out = Path(private) / "bpftrace.out"
        with out.open("w") as f:
            proc = subprocess.Popen(["bpftrace", "-e", program], stdout=f,
                                    stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while "Attaching" not in out.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            before = process_cpu(proc.pid)
            rate = workload.run()
            time.sleep(0.5)
            cpu = process_cpu(proc.pid) - before
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        output = out.read_text()
    events = sum(1 for line in output.splitlines() if line.startswith(("f", "0")))
    lost_lines = [line for line in (proc.stderr.read() if proc.stderr else "").splitlines()
                  if "lost" in line.lower()]
    return {"rate": rate, "kept": events, "kept_per_s": events / workload.seconds,
            "lost": sum(int(w) for line in lost_lines for w in line.split() if w.isdigit()),
            "cpu_us_per_kept": cpu / max(events, 1) * 1e6}



# -- the shipped TUI in a child process ---------------------------------------------------

def screen_text(app) -> str:
    """What the current frame shows, as text (the compositor's lines of the active screen)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def newest_timestamp(batch) -> int | None:
    """Kernel timestamp of a batch's last sample (a list of Samples or a RecordBatch)."""
    try:
        if hasattr(batch, "records"):
            return batch.samples()[-1].timestamp if len(batch) else None
        return batch[-1].timestamp if batch else None
    except (AttributeError, IndexError, TypeError):
        return None


def samples_of(batch) -> list:
    return batch.samples() if hasattr(batch, "samples") else list(batch)


def shown_count(text: str, label: str) -> float | None:
    """The number the screen shows after `label`: 250000, 250,000, 250.0k or 1.00M."""
    m = re.search(rf"{label}:? ([\d,]+(?:\.\d+)?)([kM]?)", text)
    if m is None:
        return None
    return float(m.group(1).replace(",", "")) * {"": 1, "k": 1e3, "M": 1e6}[m.group(2)]


class Wait:
    """Something the child waits to see on a painted frame."""

    def __init__(self, test, done):
        self.test, self.done = test, done


class Probe:
    """Runs inside the TUI child: answers the bench's commands (stdin, one per line) and
    reports what it sees (stdout, JSON lines) at the frames Textual paints."""

    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.app = None
        self.waits: list[Wait] = []
        self.newest_ts: int | None = None  # of the newest sample taken from the buffer
        self.last_ts: int | None = None  # newest_ts at the previous frame
        self.behind: list[int] = []  # ns per frame: paint time - newest_ts
        self.tracking = False
        self.armed: list[int] | None = None  # timestamps delivered since "arm"
        self.marker_sent: int | None = None
        self.marker_frame: int | None = None
        self.frames = 0
        self.probe_ns = 0  # spent reading frames' text

    def emit(self, **event) -> None:
        with self.lock:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()

    def attach(self, app) -> None:
        self.app = app
        app.post_display_hook = self.on_frame
        buffer = app.buffer
        drain_batches = getattr(buffer, "drain_batches", None)

        def timed_drain(*args, **kwargs):
            batches = drain_batches(*args, **kwargs)
            if batches:
                ts = newest_timestamp(batches[-1])
                if ts and (self.newest_ts is None or ts > self.newest_ts):  # shed: older
                    self.newest_ts = ts
            return batches
        if drain_batches is not None:  # else another hand-over: no "behind" numbers
            buffer.drain_batches = timed_drain
        sink = getattr(app.source, "_sink", None)
        if sink is not None:  # live: the collector's hand-over, seen before the buffer
            def watched_sink(batch):
                armed = self.armed
                if armed is not None and len(armed) < 200_000:
                    armed.extend(s.timestamp for s in samples_of(batch))
                sink(batch)
            app.source._sink = watched_sink  # read by LiveSource.start(), after this
        threading.Thread(target=self.commands, daemon=True).start()
        threading.Thread(target=self.watch_ready, daemon=True).start()

    def watch_ready(self) -> None:
        source = self.app.source
        while not source.ready:
            if source.error is not None:
                self.emit(event="error", text=str(source.error))
                return
            time.sleep(0.02)
        self.emit(event="ready", t=monotonic_ns())

    def wait_for(self, test, done) -> None:
        with self.lock:
            self.waits.append(Wait(test, done))

    def on_frame(self) -> None:
        now = monotonic_ns()
        self.frames += 1
        # Only frames with samples new since the last one: with nothing new, the age of the
        # newest sample is quiet, not lag.
        if self.tracking and self.newest_ts is not None and self.newest_ts != self.last_ts:
            self.behind.append(now - self.newest_ts)
        self.last_ts = self.newest_ts
        if not self.waits:
            return
        text = screen_text(self.app)
        self.probe_ns += monotonic_ns() - now  # the instrument's own cost, reported
        with self.lock:
            ready = [w for w in self.waits if w.test(text)]
            self.waits = [w for w in self.waits if w not in ready]
        for w in ready:
            w.done(now, text)

    def status(self) -> dict:
        status = self.app.source.status
        counters = {k: v for k, v in vars(status).items()
                    if isinstance(v, int) and not isinstance(v, bool)}
        behind = self.behind
        return {"event": "status", "t": monotonic_ns(), "cpu": process_cpu(os.getpid()),
                "ui_drops": self.app.buffer.dropped, "frames": self.frames,
                "ui_shed": self.app.shed,  # dropped to stay current
                "probe_s": self.probe_ns / 1e9,
                "behind_median_ms": (statistics.median(behind) / 1e6) if behind else None,
                "behind_max_ms": max(behind) / 1e6 if behind else None,
                "behind_last_ms": behind[-1] / 1e6 if behind else None, **counters}

    def commands(self) -> None:
        app = self.app
        for line in sys.stdin:
            word, _, rest = line.strip().partition(" ")
            if word == "status":
                self.emit(**self.status())
            elif word == "track":  # "behind now" measured per frame from here
                self.behind, self.tracking = [], True
                self.emit(event="tracking")
            elif word == "untrack":
                self.tracking = False
                self.emit(event="untracked")
            elif word == "arm":  # a marker is about to be sent
                self.armed = []

                def shown(now, _text):
                    with self.lock:
                        self.marker_frame = now
                    self._marker_done_locked()
                self.wait_for(lambda text: f":{MARKER_PORT}" in text, shown)
                self.emit(event="armed")
            elif word == "sent":
                with self.lock:
                    self.marker_sent = int(rest)
                self._marker_done_locked()
            elif word == "key":  # F toggles following: the status bar says which
                text = app.call_from_thread(lambda: screen_text(app))
                following = "not following" not in text
                if following:
                    test = lambda t: "not following" in t  # noqa: E731
                else:
                    test = lambda t: "not following" not in t and "FOLLOW" in t  # noqa: E731
                sent = monotonic_ns()
                self.wait_for(test, lambda now, _t, sent=sent, now_following=not following:
                              self.emit(event="key", ms=(now - sent) / 1e6,
                                        following=now_following))
                from textual import events  # noqa: PLC0415
                app.post_message(events.Key("F", "F"))
            elif word == "expect":  # e.g. "expect packets 250000": once the screen says so
                count = int(rest.split()[-1])

                def loaded(text, count=count):
                    shown = shown_count(text, "packets")
                    return shown is not None and shown >= count
                self.wait_for(loaded, lambda now, _t: self.emit(event="expected", t=now))
            elif word == "rows":  # the first frame showing a journey's flow
                self.wait_for(lambda text: "192.0.2." in text,
                              lambda now, _t: self.emit(event="rows", t=now))
            elif word == "quit":
                app.call_from_thread(app.exit)
                return

    def _marker_done_locked(self) -> None:
        with self.lock:
            frame, sent = self.marker_frame, self.marker_sent
            if frame is None or sent is None:
                return
            self.marker_frame = self.marker_sent = None
        first = min((t for t in self.armed if t >= sent), default=None)
        self.emit(event="marker", paint=frame, first_ts=first)


def child_main(argv: list[str]) -> int:
    """The TUI as `ipft-tui ARGV` runs it (cli -> startup -> tui.run), headless, probed."""
    from textual.app import App  # noqa: PLC0415

    from ipft_tui import cli  # noqa: PLC0415
    from ipft_tui.tui import app as app_module  # noqa: PLC0415

    out = os.fdopen(os.dup(1), "w", buffering=1)  # Textual may redirect sys.stdout
    probe = Probe(out)
    original_init = app_module.IpftApp.__init__

    def probed_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        probe.attach(self)
    app_module.IpftApp.__init__ = probed_init
    app_module.IpftApp.run = lambda self, **_: App.run(self, headless=True, size=SCREEN)
    code = cli.main(argv)
    probe.emit(event="exit", code=code)
    return code or 0


class TuiChild:
    """The parent's side of a TUI child process."""

    def __init__(self, *argv: str):
        self.spawned = monotonic_ns()
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child",
                                      *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, cwd=REPO)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.usage = None

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                pass
        self.events.put({"event": "eof"})

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def wait(self, name: str, timeout: float) -> dict | None:
        """The next event called `name` (others before it are skipped); None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                return None
            if event["event"] == name:
                return event
            if event["event"] in ("error", "eof"):
                self.err.seek(0)
                raise RuntimeError(f"TUI child: {event.get('text', '')} {self.err.read()[-800:]}")

    def ask(self, command: str, answer: str, timeout: float = 30) -> dict:
        self.send(command)
        event = self.wait(answer, timeout)
        if event is None:
            raise RuntimeError(f"TUI child: no {answer!r} after {command!r} in {timeout} s")
        return event

    def cpu(self) -> float:
        return process_cpu(self.proc.pid)

    def close(self, timeout: float = 60) -> None:
        if self.proc.poll() is None and self.usage is None:
            try:
                self.send("quit")
            except (BrokenPipeError, OSError):
                pass
            self.usage = reap(self.proc.pid, timeout)
            self.proc.returncode = 0
        self.err.close()


def key_probes(child: TuiChild, until, gap: float = 0.25, timeout: float = 30.0) -> tuple[list, int]:
    """F pressed again and again while until() is false; ms to the frame showing each."""
    latencies, timeouts, following = [], 0, True
    while not until():
        child.send("key")
        event = child.wait("key", timeout)
        if event is None:
            timeouts += 1
            break  # the state is unknown now: stop probing
        latencies.append(event["ms"])
        following = event["following"]
        time.sleep(gap)
    if not following:  # the marker must be on a followed list
        event = child.ask("key", "key", 30)
        latencies.append(event["ms"])
    return latencies, timeouts


def run_tui(workload: Workload, marker_timeout: float = 30) -> dict:
    """The shipped TUI (`ipft-tui -m MARK`) under the workload, keys pressed meanwhile;
    then one marker datagram: time from its first sample's kernel timestamp to the
    frame that shows its row."""
    child = TuiChild("-m", hex(MARK))
    try:
        ready = child.wait("ready", 180)
        if ready is None:
            raise RuntimeError("the TUI was not tracing after 180 s")
        startup = (ready["t"] - child.spawned) / 1e9
        time.sleep(1.0)  # the first frames
        before = child.ask("status", "status")
        child.ask("track", "tracking")
        result: dict = {}
        flood = threading.Thread(target=lambda: result.update(rate=workload.run()))
        flood.start()
        keys, key_timeouts = key_probes(child, lambda: not flood.is_alive())
        flood.join()
        during = child.ask("status", "status")
        child.ask("untrack", "untracked")
        child.ask("arm", "armed")
        sent, _after = workload.marker()
        child.send(f"sent {sent}")
        marker = child.wait("marker", marker_timeout)
        after = child.ask("status", "status")
    finally:
        child.close()
    delivered = after["samples"] - before["samples"]
    dropped = after["ui_drops"] - before["ui_drops"]
    shed = after.get("ui_shed", 0) - before.get("ui_shed", 0)
    kept = kept_samples(delivered, dropped + shed)
    on_screen = from_send = None
    if marker is not None:
        from_send = (marker["paint"] - sent) / 1e6  # a cross-check: sendto() came first
        if marker.get("first_ts"):
            on_screen = (marker["paint"] - marker["first_ts"]) / 1e6
    out = {"rate": result.get("rate"), "startup_s": startup, "delivered": delivered,
           "kept": kept, "kept_per_s": kept / workload.seconds,
           "lost": after.get("lost", 0) - before.get("lost", 0), "dropped": dropped,
           "shed": shed,
           "rescued": after.get("rescued", 0) - before.get("rescued", 0),
           "cpu_us_per_kept": (after["cpu"] - before["cpu"]) / max(kept, 1) * 1e6,
           "marker_ms": on_screen, "marker_from_send_ms": from_send,
           "marker_shown": marker is not None,
           "behind_max_ms": during["behind_max_ms"], "behind_median_ms": during["behind_median_ms"],
           "key_p50_ms": percentile(keys, 0.5), "key_max_ms": max(keys) if keys else None,
           "key_timeouts": key_timeouts, "frames": after["frames"] - before["frames"],
           "probe_cpu_share": (after["probe_s"] - before["probe_s"]) / max(
               after["cpu"] - before["cpu"], 1e-9)}
    if "missed" in after:  # Status.missed: None (not counted) when the kernel does not tell
        out["misses"] = after["missed"] - before.get("missed", 0)
    return out


def idle_live(seconds: float) -> dict:
    """CPU of the shipped TUI, tracing, with no traffic, after it settled."""
    child = TuiChild("-m", hex(MARK))
    try:
        if child.wait("ready", 180) is None:
            raise RuntimeError("the TUI was not tracing after 180 s")
        time.sleep(2.0)
        before = child.cpu()
        time.sleep(seconds)
        used = child.cpu() - before
    finally:
        child.close()
    return {"idle_cpu_pct": used / seconds * 100}


def run_replay(path: str, journeys: int, samples: int, idle_seconds: float) -> dict:
    """`ipft-tui --replay FILE`: time to the first frame with rows and to the frame that
    says every journey is kept (from the process's start), peak RSS (VmHWM of the
    child), and then its idle CPU."""
    child = TuiChild("--replay", path)
    try:
        child.send("rows")
        child.send(f"expect packets {journeys}")
        rows = child.wait("rows", 300)
        loaded = child.wait("expected", 300) if rows is not None else None
        idle = None
        if loaded is not None and idle_seconds:
            time.sleep(2.0)
            before = child.cpu()
            time.sleep(idle_seconds)
            idle = (child.cpu() - before) / idle_seconds * 100
        rss = peak_rss(child.proc.pid)
    finally:
        child.close()
    return {"samples": samples, "journeys": journeys,
            "first_rows_s": (rows["t"] - child.spawned) / 1e9 if rows else None,
            "all_kept_s": (loaded["t"] - child.spawned) / 1e9 if loaded else None,
            "peak_rss": rss, "idle_cpu_pct": idle}


def write_recording(path: Path, journeys: int, per_journey: int = 4) -> int:
    """A recording in the project's own format (LiveSource's settings line, then JsonOutput
    lines with the tuple fields, as --record writes them): `journeys` UDP journeys of
    `per_journey` samples each, one in five dropped. Returns the samples written."""
    from ipft_tui.outputs.jsonlines import JsonOutput  # noqa: PLC0415
    from ipft_tui.tui.sources import settings_line  # noqa: PLC0415

    sending = ["ip_output", "dev_queue_xmit", "net_dev_start_xmit"]
    ending = ["consume_skb", "kfree_skb"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(settings_line(TraceSettings(mark=MARK, backend="kprobe-multi")) + "\n")
        out = JsonOutput(stream, with_tuple=True)
        ts, batch, written = 10**12, [], 0
        for j in range(journeys):
            pid = 0xFFFF888100000000 + j * 256
            meta = Meta(3, "veth0", 4026531840, 43, 0x0800, 17, "192.0.2.1", "192.0.2.2",
                        32768 + j % 28000, PORT, 0)
            dropped = j % 5 == 0
            functions = (sending + ["netif_rx"])[:per_journey - 1] + [ending[dropped]]
            for function in functions:
                ts += 700
                batch.append(Sample(pid, ts, j % 2, function, meta=meta,
                                    drop_reason="NO_SOCKET" if dropped and function == "kfree_skb"
                                    else None))
            if len(batch) >= 50_000:
                out.write(batch)
                written += len(batch)
                batch = []
        out.write(batch)
        written += len(batch)
    return written


def btf_targets_seconds() -> float:
    """Reading the kernel's BTF and finding every skb function and tracepoint (each start)."""
    start = time.perf_counter()
    blobs = load_kernel_btf()
    skb_functions(blobs)
    skb_tracepoints(blobs)
    return round(time.perf_counter() - start, 3)


def retained_per_sample(fill) -> float:
    """Bytes of Python heap a PacketStore retains per sample after `fill(store)`, which
    adds the samples and returns how many."""
    import gc  # noqa: PLC0415

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = PacketStore(max_packets=None)
    count = fill(store)
    gc.collect()
    retained = (tracemalloc.get_traced_memory()[0] - base) / count
    tracemalloc.stop()
    del store
    gc.collect()
    return retained


def memory_per_sample(journeys: int = 25_000) -> dict:
    """Bytes of Python heap retained per sample in the TUI's packet store, samples with
    their device/flow fields (meta) as the TUI keeps them: read from a recording like a
    replay (a Meta per line), and as live decoding shares them (a Meta per flow)."""
    from ipft_tui.tui.sources import load_trace  # noqa: PLC0415

    def from_recording(store: PacketStore) -> int:
        samples, _problems = load_trace(str(path))
        store.add(samples)
        return len(samples)

    def as_live(store: PacketStore) -> int:
        batch, count = [], 0
        for j in range(journeys):
            meta = Meta(3, "veth0", 4026531840, 43, 0x0800, 17, "192.0.2.1", "192.0.2.2",
                        32768 + j % 28000, PORT, 0)
            for function in ("ip_output", "dev_queue_xmit", "net_dev_start_xmit", "consume_skb"):
                batch.append(Sample(0xFFFF888100000000 + j * 256, 10**12 + count * 700, j % 2,
                                    function, meta=meta))
                count += 1
            if len(batch) >= 10_000:
                store.add(batch)
                batch = []
        store.add(batch)
        return count

    with tempfile.TemporaryDirectory(prefix="ipft-bench-") as private:
        path = Path(private) / "memory.jsonl"
        write_recording(path, journeys)
        out = {"replay": retained_per_sample(from_recording)}
    out["live"] = retained_per_sample(as_live)
    return out


def views_timings(journeys: int = 250_000) -> dict:
    """ms to group the paths and to filter, over `journeys` recorded journeys (pure
    Python, as the TUI does it on its timer), cold (first look) and warm (cached)."""
    from ipft_tui.journey_filter import compile_filter  # noqa: PLC0415
    from ipft_tui.model import Meta  # noqa: PLC0415
    from ipft_tui.paths import PathIndex, group_paths  # noqa: PLC0415

    def meta(dev, netns, dport):
        return Meta(3, dev, netns, 84, 0x0800, 17, "192.0.2.1", "192.0.2.2", 40000, dport, 0)
    send = ["ip_output", "nf_hook_slow", "dev_queue_xmit", "net_dev_start_xmit"]
    shapes = [(["netif_rx", "ip_rcv", "udp_rcv", "consume_skb"], None, 7777),
              (["netif_rx", "ip_rcv", "udp_rcv", "kfree_skb"], "NO_SOCKET", 9),
              (["netif_rx", "ip_rcv", "nf_hook_slow", "kfree_skb"], "NETFILTER_DROP", 7777),
              (["netif_rx", "ip_rcv", "ip_forward", "dev_queue_xmit", "consume_skb"], None, 80),
              (["netif_rx", "kfree_skb"], "OTHERHOST", 7777)]
    metas = {(d, ns, port): meta(d, ns, port) for d, ns in (("veth0", 4026531840),
                                                              ("veth1", 4026532281))
             for _steps, _reason, port in shapes}
    store = PacketStore(max_packets=journeys)
    batch, ts = [], 10**12
    for j in range(journeys):
        steps, reason, port = shapes[j % 7 % len(shapes)]
        pid = 0xFFFF888100000000 + (j % 4096) * 256  # addresses are recycled
        for i, function in enumerate(send + steps):
            ts += 500 + (j % 97) * 10
            inside = i >= len(send)
            batch.append(Sample(pid, ts, int(inside), function,
                                drop_reason=reason if function == "kfree_skb" else None,
                                meta=metas[("veth1", 4026532281, port) if inside
                                           else ("veth0", 4026531840, port)]))
        if len(batch) >= 50_000:
            store.add(batch)
            batch = []
    store.add(batch)

    def ms(work, runs: int = 3) -> float:
        """The best of `runs` (the machine may be shared: the best is the least disturbed)."""
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            work()
            best = min(best, time.perf_counter() - start)
        return best * 1e3

    packets = store.packets
    out = {"journeys": len(packets), "samples": store.samples}
    out["paths first look (every journey's path computed) ms"] = ms(
        lambda: group_paths(packets.values()), runs=1)
    out["paths regrouped, nothing new ms"] = ms(lambda: group_paths(packets.values()))

    def live_update():  # a drain tick's worth of new journeys, then the view's regrouping
        nonlocal ts
        ts += 10**9
        store.add([s._replace(timestamp=s.timestamp + ts) for s in batch_of_new])
        group_paths(packets.values())
    recent = list(packets.values())[-200:]
    batch_of_new = [s._replace(packet_id=s.packet_id + 1) for p in recent for s in p.samples][:1000]
    out["paths regrouped after 1000 new samples ms"] = ms(live_update)
    for packet in packets.values():  # forget the cached paths: the view's first look is cold
        packet._path = None
    index = PathIndex()
    slices = []
    while not slices or not index.complete:  # as the view does it: 50 ms slices between frames
        slices.append(ms(lambda: index.update(packets, budget=0.05), runs=1))
    out["paths view first look: slices"] = len(slices)
    out["paths view first look: longest slice ms"] = max(slices)

    def live_index_update():  # what the live paths view does on its timer
        nonlocal ts
        ts += 10**9
        store.add([s._replace(timestamp=s.timestamp + ts) for s in batch_of_new])
        index.update(packets)
        index.paths()
    out["paths view update after 1000 new samples (PathIndex) ms"] = ms(live_index_update)
    out["paths"] = len(group_paths(packets.values()))
    # The filter bar applies each keystroke to every journey kept.
    for expression in ("drop == NO_SOCKET and dport == 7777", "fn ~ nf_hook and duration > 50us",
                       "dev == veth0", "netns != 4026531840", "samples > 8 or cpu == 1"):
        keep = compile_filter(expression)
        out[f"filter {expression!r} ms"] = ms(lambda keep=keep: [k for k, p in packets.items()
                                                                 if keep(p)])
    return out


CONFIGS = {
    "none": ("untraced", run_none),
    "floor": ("BPF filter only, counted in a map", run_floor),
    "json": ("ipft-tui -m MARK -o json > /dev/null", lambda w: run_headless(w, "-o", "json")),
    "mark-follow": ("ipft-tui -m MARK --track-skb -o json (followed, like expression)",
                    lambda w: run_headless(w, "-o", "json", "--track-skb")),
    "expression": ("ipft-tui -o json 'udp and dst port N and host A' (no mark)",
                   lambda w: run_headless(w, "-o", "json", expression(w), mark=False)),
    "capture": ("ipft-tui -o json --capture-bytes 128 > /dev/null",
                lambda w: run_headless(w, "-o", "json", "--capture-bytes", "128")),
    "aggregate": ("ipft-tui -o aggregate", lambda w: run_headless(w, "-o", "aggregate")),
    "lua": ("ipft-tui -o json -s examples/gso.lua",
            lambda w: run_headless(w, "-o", "json", "-s", str(REPO / "examples/gso.lua"))),
    "tui": ("the shipped TUI (ipft-tui -m MARK), headless", run_tui),
    "bpftrace": ("bpftrace, printf per event", run_bpftrace),
}
DEFAULT_CONFIGS = "none,floor,json,aggregate,tui,bpftrace"


def jobs_for(args) -> list[tuple]:
    """Every measurement of one round."""
    jobs: list[tuple] = []
    sections = args.sections.split(",")
    if "matrix" in sections:
        jobs += [("matrix", w, c) for w in args.workloads.split(",") for c in args.only.split(",")]
    if "lag" in sections:
        jobs += [("lag", f"{rate / 1000:g}k/s" if rate else "full rate", rate)
                 for rate in (float(r) for r in args.lag_rates.split(","))]
    if "replay" in sections:
        jobs += [("replay", "1M"), ("replay", "empty")]
    if "idle" in sections:
        jobs += [("idle", "live")]
    return jobs


def run_job(job: tuple, pair: VethPair | None, args, recordings: dict) -> dict:
    section = job[0]
    if section == "matrix":
        kind, path = job[1].split("-")
        return CONFIGS[job[2]][1](Workload(pair, path, kind, args.seconds, args.rate))
    if section == "lag":
        return run_tui(Workload(pair, "veth", "udp", args.lag_seconds, job[2]))
    if section == "replay":
        path, journeys, samples = recordings[job[1]]
        return run_replay(path, journeys, samples, args.idle_seconds if job[1] == "1M" else 0)
    return idle_live(args.idle_seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"which measurements ({','.join(SECTIONS)})")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (each runs everything once)")
    parser.add_argument("--seconds", type=float, default=3.0, help="traffic per matrix run")
    parser.add_argument("--rate", type=float, default=0.0, help="matrix: packets/s (0: max)")
    parser.add_argument("--only", default=DEFAULT_CONFIGS,
                        help=f"matrix configurations, of: {','.join(CONFIGS)}")
    parser.add_argument("--workloads", default="udp-veth,udp-loopback",
                        help="matrix workloads, of: udp-veth,udp-loopback,tcp-veth")
    parser.add_argument("--lag-rates", default="40000",
                        help="display lag runs: packets/s, comma-separated (0: max; the matrix's "
                             "tui rows are the max-rate case)")
    parser.add_argument("--lag-seconds", type=float, default=5.0)
    parser.add_argument("--replay-journeys", type=int, default=250_000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=int(time.time()),
                        help="order of the configurations within rounds")
    parser.add_argument("--out", default=str(REPO / "bench-results"))
    parser.add_argument("--views", action="store_true",
                        help="only time the paths view and journey filter (pure Python, no root)")
    parser.add_argument("--render", metavar="JSON", help="print the tables of a saved run")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child_main(args.child)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    if args.views:
        for name, value in views_timings().items():
            print(f"{name:<55} {value:.1f}" if isinstance(value, float) else f"{name:<55} {value}")
        return 0
    if os.geteuid() != 0:
        print("bench: needs root", file=sys.stderr)
        return 1
    unknown = set(args.sections.split(",")) - set(SECTIONS) | set(args.only.split(",")) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    results = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
                          f"kernel {platform.release()}",
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": git_commit(),
               "args": {k: v for k, v in vars(args).items() if k not in ("child", "views")},
               "runs": []}
    jobs = jobs_for(args)
    plan = schedule(jobs, args.repeats, args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ipft-bench-") as private:
        recordings = {}
        if "replay" in args.sections.split(","):
            big = Path(private) / "replay-1M.jsonl"
            samples = write_recording(big, args.replay_journeys)
            empty = Path(private) / "replay-empty.jsonl"
            recordings = {"1M": (str(big), args.replay_journeys, samples),
                          "empty": (str(empty), 1, write_recording(empty, 1))}
        with VethPair(unique_prefix("b")) as pair:
            for proto in ("udp", "tcp"):
                pair.mark_incoming(MARK, "-p", proto)
            for n, (round_, job) in enumerate(plan, 1):
                try:
                    run = run_job(job, pair, args, recordings)
                except Exception as exc:  # noqa: BLE001 - one failed run must not hide the rest
                    run = {"error": str(exc)[:300]}
                run.update(job=list(job), round=round_)
                results["runs"].append(run)
                shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in run.items()}
                print(f"  [{n}/{len(plan)} {time.monotonic() - started:.0f}s] {shown}",
                      file=sys.stderr)
    if "matrix" in args.sections.split(","):
        results["memory_bytes_per_sample"] = memory_per_sample()
        results["btf_targets_s"] = btf_targets_seconds()
    out_dir = Path(args.out)
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(render(results))
    print(f"\n(written to {path.relative_to(REPO) if path.is_relative_to(REPO) else path})")
    return 0


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


# -- the README's tables ----------------------------------------------------------------

def runs_of(results: dict, *job) -> list[dict]:
    return [r for r in results["runs"] if tuple(r["job"][:len(job)]) == job and "error" not in r]


def errors_of(results: dict, *job) -> list[str]:
    return [r["error"] for r in results["runs"] if tuple(r["job"][:len(job)]) == job
            and "error" in r]


def column(runs: list[dict], key: str, scale: float = 1.0) -> list:
    return [r[key] * scale for r in runs if r.get(key) is not None]


def kept_ratios(results: dict, workload: str, config: str) -> list[float]:
    """Sender rate against the untraced one of the same round (close in time)."""
    untraced = {r["round"]: r["rate"] for r in runs_of(results, "matrix", workload, "none")}
    return [r["rate"] / untraced[r["round"]] * 100 for r in runs_of(results, "matrix", workload,
                                                                       config)
            if r.get("rate") and untraced.get(r["round"])]


def lost_text(runs: list[dict]) -> str:
    """Samples lost in the kernel, and the kernel's own misses (programs it skipped) when
    the run counted them."""
    text = fmt_spread(column(runs, "lost"))
    misses = column(runs, "misses")
    return text + (f" + {fmt_spread(misses)} missed" if any(misses) else "")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def target_rows(results: dict) -> list[list[str]]:
    """#18's targets against the runs: the worst run decides whether one is met."""
    rows = []

    def check(target: str, values: list, ok, fmt: str = "{:.0f}", worst=max) -> None:
        if not values:
            return
        met = "yes" if all(ok(v) for v in values) else "no"
        rows.append([target, fmt_spread(values, fmt), fmt.format(worst(values)), met])

    for w in ("udp-loopback", "udp-veth"):
        for c in ("json", "aggregate"):
            runs = runs_of(results, "matrix", w, c)
            check(f"{c}, {w} at max rate: 0 dropped", column(runs, "dropped"), lambda v: v == 0)
            check(f"{c}, {w} at max rate: 0 lost", column(runs, "lost"), lambda v: v == 0)
        if w == "udp-loopback":
            for c in ("json", "aggregate"):
                check(f"{c}, {w}: >= 1.5M samples kept/s",
                      column(runs_of(results, "matrix", w, c), "kept_per_s", 1e-6),
                      lambda v: v >= 1.5, "{:.2f}M", worst=min)
    lag = [r for r in results["runs"] if r["job"][0] == "lag" and r["job"][2] == 40_000
           and "error" not in r]
    check("TUI, 40k packets/s on veth: marker on screen < 500 ms",
          [r["marker_ms"] if r.get("marker_ms") is not None else float("inf") for r in lag],
          lambda v: v < 500)
    check("TUI, 40k packets/s: 0 lost", column(lag, "lost"), lambda v: v == 0)
    check("TUI, 40k packets/s: 0 dropped or shed by the UI",
          [r.get("dropped", 0) + r.get("shed", 0) for r in lag], lambda v: v == 0)
    full = [r for r in results["runs"] if "error" not in r and (
        (r["job"][0] == "matrix" and r["job"][2] == "tui") or (r["job"][0] == "lag" and
                                                                 not r["job"][2]))]
    check("TUI at max rate: behind < 1000 ms", column(full, "behind_max_ms"), lambda v: v < 1000)
    check("TUI at max rate: keys answered < 100 ms (max)", column(full, "key_max_ms"),
          lambda v: v < 100)
    big, empty = runs_of(results, "replay", "1M"), runs_of(results, "replay", "empty")
    check("replay 1M samples: every journey kept, on screen < 8 s",
          [r["all_kept_s"] if r.get("all_kept_s") is not None else float("inf") for r in big],
          lambda v: v < 8, "{:.1f}")
    check("replay 1M samples: peak RSS < 600 MB", column(big, "peak_rss", 1 / 2**20),
          lambda v: v < 600)
    base = spread(column(empty, "peak_rss"))
    if base:
        check("replay: <= 100 bytes per retained sample (RSS)",
              [(r["peak_rss"] - base[0]) / r["samples"] for r in big if r.get("peak_rss")],
              lambda v: v <= 100)
    memory = results.get("memory_bytes_per_sample")
    if memory:
        check("<= 100 bytes per retained sample with meta (tracemalloc, replay)",
              [memory["replay"]], lambda v: v <= 100)
    check("idle CPU, live, no traffic: <= 1% of a core",
          column(runs_of(results, "idle", "live"), "idle_cpu_pct"), lambda v: v <= 1, "{:.1f}")
    check("idle CPU, loaded replay: <= 1% of a core", column(big, "idle_cpu_pct"),
          lambda v: v <= 1, "{:.1f}")
    return rows


def render(results: dict) -> str:
    args = results["args"]
    lines = [f"{results['machine']}; {results['date']}; commit {results.get('commit', '?')}; "
             f"{args['repeats']} interleaved rounds; median (min-max) over the rounds", ""]
    ran = {tuple(r["job"][1:3]) for r in results["runs"] if r["job"][0] == "matrix"}
    workloads = [w for w in args["workloads"].split(",") if any(w == r[0] for r in ran)]
    configs = [c for c in args["only"].split(",") if any(c == r[1] for r in ran)]
    if workloads:
        lines += [f"Configurations side by side ({args['seconds']:g} s of traffic per run, sender "
                  f"rate {args['rate'] or 'max'}):", ""]
        rows = []
        for w in workloads:
            for c in configs:
                runs = runs_of(results, "matrix", w, c)
                if not runs:
                    rows.append([w, c, "error: " + "; ".join(errors_of(results, "matrix", w, c))[:80],
                                 *[""] * 7])
                    continue
                rows.append([w, c, fmt_spread(column(runs, "rate", 1e-3)),
                             fmt_spread(kept_ratios(results, w, c), "{:.0f}%"),
                             fmt_spread(column(runs, "kept_per_s", 1e-3)),
                             fmt_spread(column(runs, "dropped")),
                             lost_text(runs),
                             fmt_spread(column(runs, "cpu_us_per_kept"), "{:.2f}"),
                             fmt_spread(column(runs, "exit_cpu_s"), "{:.2f}"),
                             fmt_spread(column(runs, "startup_s"), "{:.1f}")])
        lines += table(["workload", "configuration", "sender k/s", "traffic kept",
                        "samples kept k/s", "dropped (UI)", "lost (kernel)",
                        "CPU µs / kept sample", "exit CPU s", "start-up s"], rows)
        lines.append("")
    tui_rows = []
    for w in workloads:
        if "tui" in configs:
            tui_rows.append((f"{w}, max rate, {args['seconds']:g} s", ("matrix", w, "tui")))
    for label in dict.fromkeys(r["job"][1] for r in results["runs"] if r["job"][0] == "lag"):
        tui_rows.append((f"udp-veth, {label}, {args['lag_seconds']:g} s", ("lag", label)))
    if tui_rows:
        lines += ["The shipped TUI under load (marker: one datagram sent after the traffic, from "
                  "its first sample's kernel timestamp to the painted frame showing its row; "
                  "behind: per frame during the traffic, paint time minus the newest sample's "
                  "kernel timestamp; keys: F, to the frame showing the change):", ""]
        rows = []
        for label, job in tui_rows:
            runs = runs_of(results, *job)
            if not runs:
                rows.append([label, "error: " + "; ".join(errors_of(results, *job))[:80],
                             *[""] * 9])
                continue
            missed = sum(1 for r in runs if not r.get("marker_shown"))
            marker = fmt_spread(column(runs, "marker_ms")) + (f" ({missed} not shown in 30 s)"
                                                              if missed else "")
            keys = (f"{fmt_spread(column(runs, 'key_p50_ms'))} / "
                    f"{fmt_spread(column(runs, 'key_max_ms'))}")
            timeouts = sum(r.get("key_timeouts", 0) for r in runs)
            if timeouts:
                keys += f" ({timeouts} unanswered in 30 s)"
            rows.append([label, fmt_spread(column(runs, "rate", 1e-3)),
                         fmt_spread(column(runs, "kept_per_s", 1e-3)),
                         lost_text(runs), fmt_spread(column(runs, "dropped")),
                         fmt_spread(column(runs, "shed")), marker, fmt_spread(column(runs, "behind_max_ms")), keys,
                         fmt_spread(column(runs, "cpu_us_per_kept"), "{:.2f}"),
                         fmt_spread(column(runs, "startup_s"), "{:.1f}")])
        lines += table(["run", "sender k/s", "samples kept k/s", "lost (kernel)", "dropped (UI)",
                        "shed (UI)", "marker on screen ms", "behind (max) ms", "key p50 / max ms",
                        "CPU µs / kept sample", "start-up s"], rows)
        lines.append("")
    big, empty = runs_of(results, "replay", "1M"), runs_of(results, "replay", "empty")
    if big or errors_of(results, "replay"):
        lines += ["Replay (`ipft-tui --replay FILE`, a recording in --record's format; times from "
                  "the process's start; peak RSS: the child's VmHWM; bytes per sample: "
                  "peak RSS above an empty replay's):", ""]
        if big:
            base = spread(column(empty, "peak_rss"))
            per_sample = [(r["peak_rss"] - base[0]) / r["samples"] for r in big
                          if r.get("peak_rss") and base]
            lines += table(["samples / journeys", "first rows s", "every journey kept s",
                            "peak RSS MB", "bytes / retained sample"],
                           [[f"{big[0]['samples']:,} / {big[0]['journeys']:,}",
                             fmt_spread(column(big, "first_rows_s"), "{:.1f}"),
                             fmt_spread(column(big, "all_kept_s"), "{:.1f}"),
                             fmt_spread(column(big, "peak_rss", 1 / 2**20)),
                             fmt_spread(per_sample)]])
        else:
            lines.append("error: " + "; ".join(errors_of(results, "replay"))[:200])
        lines.append("")
    idle_live_runs = runs_of(results, "idle", "live")
    if idle_live_runs or big:
        lines += [f"Idle CPU (% of one core over {args['idle_seconds']:g} s, nothing changing, "
                  "from /proc/PID/stat):", ""]
        rows = []
        if idle_live_runs:
            rows.append(["live, tracing, no traffic",
                         fmt_spread(column(idle_live_runs, "idle_cpu_pct"), "{:.1f}")])
        if big:
            rows.append([f"replay of the {big[0]['samples']:,}-sample recording, loaded",
                         fmt_spread(column(big, "idle_cpu_pct"), "{:.1f}")])
        lines += table(["TUI", "idle CPU %"], rows)
        lines.append("")
    memory = results.get("memory_bytes_per_sample")
    if memory:
        lines.append("Python heap retained per sample with its device/flow fields (tracemalloc, "
                     f"25k journeys): {memory['replay']:.0f} bytes read from a recording, "
                     f"{memory['live']:.0f} bytes with fields shared per flow as live decoding "
                     "does.")
    targets = target_rows(results)
    if targets:
        lines += ["", "Against #18's targets (met only when every run meets it):", ""]
        lines += table(["target", "measured", "worst run", "met"], targets)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
