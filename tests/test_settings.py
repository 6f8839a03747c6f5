import os
import subprocess
import sys

import pytest

from ipft_tui.cli import build_parser
from ipft_tui.startup import settings_from_args
from ipft_tui.errors import IpftError
from ipft_tui.settings import compile_regex, parse_mark, parse_mask, parse_u32, select


@pytest.mark.parametrize("text, value", [("0xdeadbeef", 0xDEADBEEF), ("0XFF", 255), ("42", 42),
                                         (" 7 ", 7), ("0xffffffff", 0xFFFFFFFF)])
def test_numbers_decimal_and_hex(text, value):
    assert parse_u32(text, "mark") == value


@pytest.mark.parametrize("text, message", [
    ("0xZZ", "not a number"), ("-1", "not a number"), ("0x100000000", "does not fit in 32 bits"),
    ("4294967296", "does not fit"), ("", "not a number"), ("1.5", "not a number"),
])
def test_bad_numbers(text, message):
    with pytest.raises(IpftError, match=message):
        parse_u32(text, "mark")


def test_zero_mark_and_mask_are_refused():
    with pytest.raises(IpftError, match="mark 0"):
        parse_mark("0")
    with pytest.raises(IpftError, match="mask 0"):
        parse_mask("0x0")


def test_regex():
    assert compile_regex(None) is None and compile_regex("") is None
    with pytest.raises(IpftError, match="invalid regex"):
        compile_regex("(")
    names = ["ip_rcv", "ip_rcv_finish", "tcp_v4_rcv"]
    assert select(names, "^ip_") == [0, 1]
    assert select(names, "rcv$") == [0, 2]  # search, like regexec
    assert select(names, None) == [0, 1, 2]
    with pytest.raises(IpftError, match="matches none of the 3"):
        select(names, "nothing")


def parse(*argv):
    return settings_from_args(build_parser().parse_args(list(argv)))


def test_cli_options_map_to_settings():
    s = parse("-m", "0x10", "--mask", "255", "-o", "json", "-r", "^ip", "-b", "tracepoint",
              "--perf-page-count", "16", "--perf-wakeup-events", "4", "--event-buffer", "perf")
    assert (s.mark, s.mask, s.regex, s.backend) == (0x10, 255, "^ip", "tracepoint")
    assert (s.perf_buffer, s.perf_page_count, s.perf_wakeup_events) == (True, 16, 4)


@pytest.mark.parametrize("argv, message", [
    (["-o", "json"], "nothing to trace: give a pcap-filter expression"),
    (["-m", "1", "-o", "json", "--perf-page-count", "0"], "at least 1"),
    (["-m", "1", "-o", "json", "--ringbuf-pages", "3"], "power of two"),
    (["-m", "1", "-o", "json", "-r", "[a"], "invalid regex"),
])
def test_cli_validation(argv, message):
    with pytest.raises(IpftError, match=message):
        parse(*argv)


def test_filters_from_the_command_line(tmp_path):
    from ipft_tui.startup import settings_from_args
    from ipft_tui.errors import UsageError
    args = build_parser().parse_args(["-o", "json", "udp", "and", "dst", "port", "53",
                                      "--filter-netns", "/proc/self/ns/net",
                                      "--filter-ifname", "veth0"])
    s = settings_from_args(args)
    assert s.expression == "udp and dst port 53" and s.mark == 0
    assert s.netns == os.stat("/proc/self/ns/net").st_ino and s.ifname == "veth0"
    assert s.follows_skbs  # selected once, then followed
    with pytest.raises(UsageError, match="illegal port number 99999 > 65535"):
        settings_from_args(build_parser().parse_args(["-o", "json", "port", "99999"]))
    with pytest.raises(UsageError, match="not a network namespace"):
        settings_from_args(build_parser().parse_args(["-o", "json", "--filter-netns",
                                                      str(tmp_path)]))
    with pytest.raises(UsageError, match="at most 15 bytes"):
        settings_from_args(build_parser().parse_args(["-o", "json", "--filter-ifname",
                                                      "a-very-long-device-name"]))


@pytest.mark.parametrize("argv, message", [
    (["-o", "json", "udp", "and"], "syntax error"),
    (["-o", "json", "port", "99999"], "illegal port number 99999 > 65535"),
    (["-o", "json"], "nothing to trace"),
    (["-o", "json", "--filter-netns", "ipft-no-such-netns"], "No such file"),
])
def test_bad_filters_exit_2_with_the_message_and_nothing_loaded(argv, message):
    """A separate process, as a user runs it: libpcap's message, exit 2, no traceback;
    it fails before bcc is even imported (so nothing is compiled or attached)."""
    code = ("import sys, ipft_tui.cli as c; rc = c.main(sys.argv[1:]); "
            "assert 'bcc' not in sys.modules, 'bcc was imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
