"""ipft-tui live in a real terminal (tmux), on real packets between two namespaces:
what a user sees, read back with capture-pane."""

import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

MARK = 0x5152
PORT = 7791
SOCKET = "ipft-tui-test"

pytestmark = pytest.mark.root


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], check=True, capture_output=True,
                          text=True, timeout=10).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", "tui")


def wait_for(predicate, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = screen()
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"not on screen after {timeout}s:\n{text}")
        time.sleep(0.2)


ROW = re.compile(r"^│\s+(\d+) .*?(udp|icmp) 192\.0\.2\.1")


def rows(text: str) -> dict[int, str]:
    """Packet rows on screen: number -> the whole line."""
    out = {}
    for line in text.splitlines():
        found = ROW.match(line)
        if found:
            out[int(found.group(1))] = line
    return out


@pytest.fixture
def tui(bpf_ready):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (scripts/setup.sh installs it)")
    tmux("new-session", "-d", "-s", "tui", "-x", "220", "-y", "60", "-c", str(REPO),
         # the size comes from the terminal, not from a test runner's COLUMNS/LINES
         "env", "-u", "COLUMNS", "-u", "LINES", sys.executable, "-m", "ipft_tui", "-m", hex(MARK))
    tmux("resize-window", "-t", "tui", "-x", "220", "-y", "60")
    try:
        yield
    finally:
        try:
            tmux("send-keys", "-t", "tui", "q")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "tui" in tmux("list-sessions"):
                time.sleep(0.2)
        except subprocess.CalledProcessError:
            pass  # the session ended with the TUI
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True, timeout=10)


def test_every_packet_is_its_own_row_with_its_own_flow(nothing_left_behind, veth, tui):
    """3 datagrams and 6 pings, marked in A; the mark is cleared entering B. By default
    the TUI follows the skbs into B: one row per packet, each ended (dropped or
    consumed). With `o` (marks only) the ends are not seen: rows say `open`, and the
    kernel's recycled skbs still make one row per packet."""
    wait_for(lambda t: re.search(r"probes (\d+)/\1\b", t) and "skbs followed" in t)
    veth.send_udp(PORT, count=3, mark=MARK)
    veth.ping(count=6, mark=MARK)
    veth.tcp_connect(PORT, mark=MARK)  # refused: B answers with a reset
    text = wait_for(lambda t: len(rows(t)) >= 9 and " tcp 192.0.2.1:" in t)
    time.sleep(1)
    assert "⇒" not in screen()  # no journey mixes flows, replies included
    shown = rows(screen())
    sent = [line for line in shown.values() if "192.0.2.2" in line]
    assert len(sent) == 9, screen()
    assert sum(" udp " in line for line in sent) == 3 and sum(" icmp " in line for line in sent) == 6
    for line in sent:
        assert "⇒" not in line  # no journey mixes flows
        assert " open " not in line, line  # followed into B: every end seen
    assert sum("kfree_skb: NO_SOCKET" in line for line in sent) == 3
    assert sum("consume_skb" in line for line in sent) == 6

    tmux("send-keys", "-t", "tui", "o")
    text = wait_for(lambda t: "skbs by mark only" in t, 30)
    before = max(rows(text))
    veth.send_udp(PORT, count=3, mark=MARK)
    veth.ping(count=6, mark=MARK)
    text = wait_for(lambda t: len([n for n in rows(t) if n > before]) >= 9)
    time.sleep(1)
    new = [line for n, line in rows(screen()).items() if n > before]
    assert len(new) == 9, screen()
    assert sum(" udp " in line for line in new) == 3 and sum(" icmp " in line for line in new) == 6
    for line in new:
        assert "⇒" not in line
        assert " open " in line, line  # the end (in B) was not seen
