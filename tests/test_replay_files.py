"""Replay files from anywhere: every bad line reported by number, the rest loads; no
traceback, no hang, bounded memory."""

import os
import subprocess
import sys
import tracemalloc

import pytest

from ipft_tui.tui.sources import load_trace
from tests.conftest import REPO

GOOD = ('{"packet_id":"0xffff0000aa00","timestamp":%d,"processor_id":0,"function":"kfree_skb",'
        '"is_return":false}')
BAD_LINES = {
    b'\xff\xfe\x00binary': "not UTF-8 text",
    b'{"packet_id":"0x1","timestamp":Infinity,"processor_id":0,"function":"f"}':
        "Infinity is not a JSON number",
    b'{"packet_id":"0x1","timestamp":NaN,"processor_id":0,"function":"f"}': "NaN is not a JSON number",
    b'{"packet_id":"0x1","timestamp":' + b"9" * 4000 + b',"processor_id":0,"function":"f"}':
        "integer of 4000 digits",
    b'{"packet_id":"0x1","timestamp":' + b"1" * 21 + b',"processor_id":0,"function":"f"}':
        "integer of 21 digits",
    b'{"packet_id":"0x1","timestamp":18446744073709551616,"processor_id":0,"function":"f"}':
        "timestamp is not an unsigned 64-bit integer",
    b'{"a":' * 100000 + b'1' + b'}' * 100000: "nested more than 32 levels deep",
    b'[' * 100000: "nested more than 32 levels deep",
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","is_return":"false"}':
        'is_return is not true or false: "false"',
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":null}': "function is not a name",
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":""}': "function is not a name",
    b'{"packet_id":"0x1","timestamp":true,"processor_id":0,"function":"f"}':
        "timestamp is not an unsigned 64-bit integer",
    b'{"packet_id":"0x1","timestamp":-5,"processor_id":0,"function":"f"}':
        "timestamp is not an unsigned 64-bit integer",
    b'{"packet_id":"zz","timestamp":1,"processor_id":0,"function":"f"}':
        'packet_id is not a hex address: "zz"',
    b'{"packet_id":[1],"timestamp":1,"processor_id":0,"function":"f"}':
        "packet_id is not an unsigned 64-bit integer",
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","stack":[1,2]}':
        "stack is not a list of strings",
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","ifindex":"eth0"}':
        "ifindex is not an unsigned 64-bit integer",
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","ifindex":1,"ifname":7}':
        "ifname is not a string",
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","drop_reason":5}':
        "drop_reason is not a string",
    b'{"packet_id":"0x1","timestamp":1.5,"processor_id":0,"function":"f"}':
        "timestamp is not an unsigned 64-bit integer",
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":"f","skb":"0x2",'
    b'"journey_end":"yes"}': 'journey_end is not true or false: "yes"',
    b'"just a string"': "not a JSON object",
    b'{"packet_id":"0x1","timestamp":1,"processor_id":0}': "missing key 'function'",
}


def test_each_bad_line_is_reported_by_number_and_the_rest_loads(tmp_path):
    path = tmp_path / "trace.jsonl"
    lines, expected = [], {}
    for i, (bad, reason) in enumerate(BAD_LINES.items()):
        lines.append(GOOD.encode() % i)
        lines.append(bad)
        expected[len(lines)] = reason
    lines.append(GOOD.encode() % 999)
    path.write_bytes(b"\n".join(lines) + b"\n")
    samples, problems = load_trace(str(path))
    assert [s.timestamp for s in samples] == [*range(len(BAD_LINES)), 999]
    assert problems.total == len(BAD_LINES)
    reported = dict(problems)
    assert sorted(reported) == sorted(expected)
    for number, reason in expected.items():
        assert reason in reported[number], (number, reported[number])


def test_many_bad_lines_are_counted_not_all_kept(tmp_path):
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"junk\n" * 5000 + GOOD.encode() % 1 + b"\n")
    samples, problems = load_trace(str(path))
    assert len(samples) == 1 and problems.total == 5000 and len(problems) == 100


def test_a_200_mb_line_is_skipped_in_bounded_memory(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.write(GOOD.encode() % 1 + b"\n")
        chunk = b"x" * (1 << 20)
        for _ in range(200):
            f.write(chunk)
        f.write(b"\n" + GOOD.encode() % 2 + b"\n")
    tracemalloc.start()
    try:
        samples, problems = load_trace(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        path.unlink()
    assert [s.timestamp for s in samples] == [1, 2]
    assert list(problems) == [(2, "longer than 1 MiB; skipped")]
    assert peak < 16 << 20, f"peak {peak >> 20} MiB"


def replay(path):
    return subprocess.run([sys.executable, "-m", "ipft_tui", "--replay", str(path)],
                          capture_output=True, text=True, timeout=20, cwd=REPO,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_not_a_file_is_refused_at_once(tmp_path, kind):
    path = {"fifo": tmp_path / "fifo", "dev_zero": "/dev/zero", "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes to it: opening it must not wait for a writer
    try:
        proc = replay(path)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"--replay {path} hangs") from None
    assert proc.returncode == 1
    message = "not a regular file"
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_file_with_only_bad_lines_says_why(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"packet_id":"0x1","timestamp":1,"processor_id":0,"function":null}\n\xff\n')
    proc = replay(path)
    assert proc.returncode == 1
    assert proc.stderr == (f"ipft-tui: error: {path}: no valid sample (2 malformed lines; "
                           "line 1: bad value: function is not a name)\n")
