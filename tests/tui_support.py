"""Apps on recorded traces for Pilot and snapshot tests."""

from dataclasses import replace
from pathlib import Path

from ipft_tui.batching import SampleBuffer
from ipft_tui.collector import Status
from ipft_tui.settings import TraceSettings
from ipft_tui.tui.app import IpftApp
from ipft_tui.tui.sources import ReplaySource

DATA = Path(__file__).parent / "data"


def replay_app(name: str = "demo.jsonl", **kwargs) -> IpftApp:
    buffer = SampleBuffer()
    return IpftApp(ReplaySource(str(DATA / name), buffer), buffer, **{"follow": False, **kwargs})


class CommandRecorder(ReplaySource):
    """A live-looking source that replays a trace and records the commands the
    TUI sends, as the collector would receive them (the real collector's
    handling of those commands is tested against the kernel)."""

    live = True

    def __init__(self, path, buffer):
        super().__init__(path, buffer, TraceSettings(mark=0xDEADBEEF))
        self.commands = []
        self.status = Status(backend="tracepoint", tracer=self.settings.tracer, mark=0xDEADBEEF,
                             mask=0xFFFFFFFF, total=30, attached=30, ready=True,
                             samples=len(self.samples))
        self.kernel = object()

    def set_filter(self, filters):
        self.commands.append(("filter", filters))
        self.settings = replace(self.settings, mark=filters.mark, mask=filters.mask,
                                expression=filters.expression, netns=filters.netns,
                                ifname=filters.ifname)

    def set_regex(self, regex):
        self.commands.append(("regex", regex))

    def set_tracer(self, tracer):
        self.commands.append(("tracer", tracer))
        self.settings = replace(self.settings, tracer=tracer)

    def set_track_skb(self, on):
        self.commands.append(("track_skb", on))
        self.settings = replace(self.settings, track_skb=on)

    def set_stack_regex(self, regex):
        self.commands.append(("stack_regex", regex))
        self.settings = replace(self.settings, stack_regex=regex)

    def restart(self, settings):
        self.commands.append(("restart", settings.backend, settings.tracer))
        self.settings = settings

    def candidate_names(self):
        return ["kfree_skb", "consume_skb", "net_dev_queue", "net_dev_start_xmit", "net_dev_xmit"]

    def supported_backends(self):
        return {"kprobe": "", "kprobe-multi": "EOPNOTSUPP", "ftrace": "EPERM", "tracepoint": ""}


def recorder_app(name: str = "demo.jsonl", **kwargs):
    buffer = SampleBuffer()
    source = CommandRecorder(str(DATA / name), buffer)
    return IpftApp(source, buffer, **{"follow": False, **kwargs}), source
