"""The TUI as a real process in a real terminal (tmux): closing the terminal ends it
promptly, with every probe detached and the demo's namespaces removed."""

import os
import re
import subprocess
import sys
import time

import pytest

from ipft_tui.netlab import leftover_namespaces
from tests.conftest import REPO, ipft_bpf_objects_settled

pytestmark = pytest.mark.root

ROUNDS = 12


def wait_for(predicate, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for tmux to reap it has ended all the same.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


class TmuxTui:
    """ipft-tui in a detached tmux session on a private tmux server."""

    def __init__(self, tmp_path, *args: str):
        self.server = f"ipft-test-{os.getpid()}"
        self.pid_file = tmp_path / "pid"
        self.pid_file.unlink(missing_ok=True)
        command = (f"echo $$ > {self.pid_file}; exec {sys.executable} -m ipft_tui "
                   + " ".join(args))
        self.tmux("new-session", "-d", "-s", "ipft", "-x", "150", "-y", "40", "-c", str(REPO),
                  command)
        self.pid = int(wait_for(lambda: self.pid_file.exists() and self.pid_file.read_text().strip(),
                                10))

    def tmux(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True,
                              timeout=10)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "ipft").stdout

    def kill_server(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def tmux_tui(tmp_path):
    started = []

    def start(*args):
        tui = TmuxTui(tmp_path, *args)
        started.append(tui)
        return tui

    yield start
    for tui in started:
        tui.kill_server()  # SIGHUP, so that a failed test still cleans up
        if not wait_for(lambda tui=tui: not alive(tui.pid), 15):
            os.kill(tui.pid, 9)


def test_closing_the_terminal_always_ends_the_demo_tui(nothing_left_behind, tmux_tui):
    """tmux kill-session (SIGHUP, terminal gone), while attaching and while tracing."""
    before = set(leftover_namespaces())
    for round_ in range(ROUNDS):
        tui = tmux_tui("--demo")
        if round_ % 3 == 0:  # during start-up: the demo exists, probes are being attached
            assert wait_for(lambda: set(leftover_namespaces()) - before, 60), tui.screen()
        else:
            assert wait_for(lambda tui=tui: re.search(r"probes (\d+)/\1\b", tui.screen()), 120), \
                tui.screen()
        closed = time.monotonic()
        tui.tmux("kill-session", "-t", "ipft")
        assert wait_for(lambda tui=tui: not alive(tui.pid), 10), f"round {round_}: still running"
        took = time.monotonic() - closed
        assert ipft_bpf_objects_settled() == [], f"round {round_}"
        assert set(leftover_namespaces()) - before == set(), f"round {round_}"
        assert took < 10
        tui.kill_server()
        print(f"round {round_}: ended {took:.2f} s after the terminal closed")


ENDLESS_DUMP = """
api_version = 1
function init() end
function emit() return "int module(void *ctx, struct sk_buff *skb, u8 data[64]) { return 0; }" end
function dump(data) while true do end end
function fini() end
"""


def test_endless_lua_dump_does_not_freeze_the_tui(nothing_left_behind, tmux_tui, tmp_path):
    script = tmp_path / "endless.lua"
    script.write_text(ENDLESS_DUMP)
    tui = tmux_tui("--demo", "-s", str(script))
    # The first batch with extension data trips the budget: said once, on screen.
    assert wait_for(lambda: "budget" in tui.screen(), 120), tui.screen()  # toasts wrap
    tui.tmux("send-keys", "-t", "ipft", "q")  # the UI still takes keys
    assert wait_for(lambda: not alive(tui.pid), 15), tui.screen()
