"""--record: a private file, never through a symlink, never over an existing file
unless asked; refused before anything is attached; a full disk ends only the recording."""

import os
import stat
import subprocess
import sys
import time

import pytest

from ipft_tui.batching import SampleBuffer
from ipft_tui.demo import DemoTraffic
from ipft_tui.settings import TraceSettings
from ipft_tui.tui.sources import LiveSource
from tests.conftest import REPO, ipft_bpf_objects_settled

pytestmark = pytest.mark.root


def run_tui(*args):
    # Every refusal comes before the TUI starts, so no terminal is needed.
    return subprocess.run([sys.executable, "-m", "ipft_tui", "-m", "0x1", *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("case", ["symlink", "existing", "dangling", "no_dir", "fifo"])
def test_bad_record_paths_are_refused_before_tracing(case, tmp_path, bpf_ready):
    target = tmp_path / "target"
    record = tmp_path / "record.jsonl"
    message = {"symlink": "is a symbolic link; not following it",
               "dangling": "is a symbolic link; not following it",
               "existing": "the file exists; remove it or add --overwrite",
               "no_dir": "cannot create: No such file or directory",
               "fifo": "the file exists"}[case]
    if case == "symlink":
        target.write_text("precious\n")
        record.symlink_to(target)
    elif case == "dangling":
        record.symlink_to(target)
    elif case == "existing":
        record.write_text("precious\n")
    elif case == "no_dir":
        record = tmp_path / "missing" / "record.jsonl"
    elif case == "fifo":
        os.mkfifo(record)
    proc = run_tui("--record", str(record))
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert ipft_bpf_objects_settled() == []
    if case == "symlink":
        assert target.read_text() == "precious\n"
    if case == "dangling":
        assert not target.exists()
    if case == "existing":
        assert record.read_text() == "precious\n"


def test_overwrite_still_refuses_symlinks_and_fifos(tmp_path, bpf_ready):
    target = tmp_path / "target"
    target.write_text("precious\n")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    for name, message in (("link", "is a symbolic link"), ("fifo", "not a regular file")):
        proc = run_tui("--record", str(tmp_path / name), "--overwrite")
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert target.read_text() == "precious\n"


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "ipft-test", str(mnt)],
                   check=True)
    yield mnt
    subprocess.run(["umount", "--lazy", str(mnt)], check=True)  # even if a file is still open


def test_full_disk_stops_only_the_recording(nothing_left_behind, tiny_tmpfs):
    record = tiny_tmpfs / "trace.jsonl"
    old_umask = os.umask(0)  # the file is 0600 whatever the umask
    try:
        buffer = SampleBuffer()
        source = LiveSource(TraceSettings(mark=0xDEADBEEF, meta=True), buffer,
                            record_path=str(record))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    notices = []
    with DemoTraffic(interval=0.05):
        source.start()
        try:
            assert source.wait_started() is None
            assert wait_for(lambda: notices.extend(source.take_notices()) or
                            any("stopped" in n for n in notices), 60), notices
            stopped = [n for n in notices if "recording to" in n]
            assert stopped == [f"recording to {record} stopped: No space left on device "
                               f"(about {source.recorded} samples written); tracing goes on"]
            assert source.recorded > 0
            assert source.error is None and source._collector.running
            seen = len(buffer.drain())
            assert wait_for(lambda: len(buffer.drain()) > 0, 20), "tracing stopped too"
            assert seen > 0
        finally:
            source.stop()
    assert not source._collector.running
