"""A regex that backtracks exponentially: -l ends with a clear error (or at Ctrl-C, with
no traceback), and the TUI's regex dialog keeps taking keys."""

import os
import signal
import subprocess
import sys
import time

import pytest
from textual.app import App

from ipft_tui.errors import IpftError
from ipft_tui.settings import select
from ipft_tui.tui.screens import RegexDialog
from tests.conftest import REPO

EXPONENTIAL = r"(\w|\w\w)+\W"
LONG_NAMES = [f"{'tcp_v4_do_rcv' * 3}_{i}" for i in range(50)]


def test_select_has_a_time_budget():
    started = time.monotonic()
    with pytest.raises(IpftError, match=r"takes too long to match \(0.3 s for 50 names\)"):
        select(LONG_NAMES, EXPONENTIAL, budget=0.3)
    assert time.monotonic() - started < 3
    assert select(["net_dev_queue", "kfree_skb"], "^net_") == [0]  # re's syntax and meaning


def list_functions(regex):
    return subprocess.Popen([sys.executable, "-m", "ipft_tui", "-l", "-b", "kprobe", "-r", regex],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


@pytest.mark.skipif(not os.access("/sys/kernel/btf/vmlinux", os.R_OK), reason="needs BTF")
def test_list_with_an_exponential_regex_ends_with_a_clear_error():
    proc = list_functions(EXPONENTIAL)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("-l still matching after 30 s") from None
    assert proc.returncode == 1
    assert "takes too long to match (2 s for" in err and "Traceback" not in err


@pytest.mark.skipif(not os.access("/sys/kernel/btf/vmlinux", os.R_OK), reason="needs BTF")
def test_ctrl_c_ends_list_without_a_traceback():
    proc = list_functions(EXPONENTIAL)
    time.sleep(1)  # into the matching (the kernel's function list loads first)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("Ctrl-C did not end -l") from None
    assert "Traceback" not in err, err
    assert proc.returncode in (1, 130)


class DialogApp(App):
    def on_mount(self):
        self.push_screen(RegexDialog(None, LONG_NAMES))


@pytest.mark.timeout(120)
async def test_regex_dialog_stays_responsive():
    app = DialogApp()
    async with app.run_test() as pilot:
        started = time.monotonic()
        await pilot.press(*EXPONENTIAL)  # matched on every keystroke
        typed = time.monotonic() - started
        await pilot.pause()
        error = str(app.screen.query_one("#error").render())
        assert "takes too long to match" in error
        assert typed < 0.5 * len(EXPONENTIAL) + 5, f"{typed:.1f} s for {len(EXPONENTIAL)} keys"
