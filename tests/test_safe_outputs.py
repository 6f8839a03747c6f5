"""The guarded stdout and the private file creation, on real pipes and files."""

import os
import threading
import time

import pytest

from ipft_tui.errors import IpftError
from ipft_tui.outputs.stdout import GuardedStdout
from ipft_tui.safefile import create_private


def test_writes_reach_a_pipe():
    r, w = os.pipe()
    out = GuardedStdout(w, threading.Event().is_set)
    out.write("a\nb\n")
    assert os.read(r, 100) == b"a\nb\n"
    os.close(r)
    os.close(w)


def test_a_closed_reader_ends_the_output_quietly():
    r, w = os.pipe()
    os.close(r)
    out = GuardedStdout(w, threading.Event().is_set)
    out.write("one\ntwo\n")
    out.write("three\n")
    assert isinstance(out.error, BrokenPipeError)
    assert out.describe_error() == "stdout was closed"
    assert out.unwritten_lines == 3
    os.close(w)


def test_a_full_device():
    fd = os.open("/dev/full", os.O_WRONLY)
    out = GuardedStdout(fd, threading.Event().is_set)
    out.write("x\n")
    assert out.describe_error() == "cannot write to stdout: No space left on device"
    os.close(fd)


def test_a_reader_that_does_not_read_holds_us_up_only_for_the_grace_after_a_stop():
    r, w = os.pipe()
    stopping = threading.Event()
    out = GuardedStdout(w, stopping.is_set, grace=0.5)
    line = "x" * 99 + "\n"
    threading.Timer(0.3, stopping.set).start()
    started = time.monotonic()
    out.write(line * 10_000)  # 1 MB: far more than the pipe holds
    took = time.monotonic() - started
    assert 0.7 < took < 2.0
    assert out.error is None
    assert 0 < out.unwritten_lines < 10_000
    kept = len(os.read(r, 1 << 20))
    assert out.unwritten_lines == 10_000 - kept // 100
    os.close(r)
    os.close(w)


def test_private_file_is_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        with create_private(str(tmp_path / "f"), "--record") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("case, overwrite, message", [
    ("existing", False, "the file exists; remove it or add --overwrite"),
    ("symlink", False, "is a symbolic link"),
    ("symlink", True, "is a symbolic link"),
    ("dangling", True, "is a symbolic link"),
    ("fifo", True, "not a regular file"),
    ("hardlink", True, "has other hard links"),
    ("directory", True, "cannot create: Is a directory"),
])
def test_refusals(tmp_path, case, overwrite, message):
    path, target = tmp_path / "f", tmp_path / "target"
    target.write_text("precious\n")
    if case == "existing":
        path.write_text("precious\n")
    elif case == "symlink":
        path.symlink_to(target)
    elif case == "dangling":
        path.symlink_to(tmp_path / "nowhere")
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "hardlink":
        os.link(target, path)
    elif case == "directory":
        path.mkdir()
    with pytest.raises(IpftError, match=message):
        create_private(str(path), "--record", overwrite=overwrite)
    assert target.read_text() == "precious\n"
    assert not (tmp_path / "nowhere").exists()


def test_overwrite_replaces_a_regular_file_and_makes_it_private(tmp_path):
    path = tmp_path / "f"
    path.write_text("old content that is longer\n")
    path.chmod(0o644)
    with create_private(str(path), "--record", overwrite=True) as f:
        f.write("new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o600
