"""The pcapng writer, read back by Wireshark's own tools (tshark, capinfos), never by ours."""

import os
import shutil
import subprocess

import pytest

from ipft_tui.errors import IpftError
from ipft_tui.model import Capture, Meta, Sample
from ipft_tui.outputs.pcapng import PcapngWriter, write_journeys
from ipft_tui.safefile import create_private
from tests.test_packet import eth, ipv4, ipv6, tcp, udp

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None and os.environ.get("CI") != "true",
                                reason="tshark not installed (scripts/setup.sh installs it)")

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
VETH = Meta(5, "veth0", 4026531840, 0, 0x0800, 17, "10.0.0.1", "10.0.0.2", 4000, 53, 0)
LO = Meta(1, "lo", 4026532999, 0, 0x86DD, 6, "fd00::1", "fd00::2", 1, 2, 0)


def tshark(path, *fields: str) -> list[list[str]]:
    args = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for name in fields:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def samples() -> list[Sample]:
    frame = eth(MAC_B, MAC_A, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(4000, 53, b"q" * 100)))
    six = ipv6("fd00::1", "fd00::2", 6, tcp(1, 2, 77, 0, 0x02, 1000))
    return [
        Sample(0xFFFF1, 1_000_000_123, 1, "net_dev_queue", meta=VETH,
               capture=Capture(frame[:63], "l2", len(frame))),  # odd: padded
        Sample(0xFFFF1, 1_000_000_500, 0, "ip_rcv", meta=VETH),  # no bytes: not written
        Sample(0xFFFF1, 1_000_002_000, 0, "kfree_skb", drop_reason="NO_SOCKET", meta=VETH,
               capture=Capture(frame[14:], "l3", len(frame) - 14)),
        Sample(0xFFFF2, 1_000_003_000, 1, "ip6_rcv_core", meta=LO, capture=Capture(six, "l3", len(six))),
    ]


def test_tshark_reads_packets_interfaces_comments_and_times(tmp_path):
    path = tmp_path / "trace.pcapng"
    with create_private(str(path), "pcapng", binary=True) as stream:
        writer = PcapngWriter(stream, clock_offset_ns=1_700_000_000_000_000_000)
        writer.write(samples()[:2])
        writer.write(samples()[2:])  # a new interface after packets were written
    assert writer.packets == 3
    assert os.stat(path).st_mode & 0o777 == 0o600
    rows = tshark(path, "frame.interface_name", "frame.cap_len", "frame.len", "ip.src", "ipv6.src",
                  "udp.dstport", "tcp.seq_raw", "frame.comment", "frame.time_epoch", "eth.src")
    assert [r[0] for r in rows] == ["veth0@4026531840", "veth0@4026531840", "lo@4026532999"]
    assert [(r[1], r[2]) for r in rows] == [("63", "142"), ("128", "128"), ("60", "60")]
    assert [r[3] for r in rows] == ["10.0.0.1", "10.0.0.1", ""]
    assert rows[2][4] == "fd00::1" and rows[2][6] == "77" and rows[0][5] == "53"
    assert rows[0][9] == MAC_A and rows[1][9] == ""  # Ethernet, then raw IP
    assert rows[0][7] == "net_dev_queue packet_id=0xffff1 cpu=1"
    assert rows[1][7] == "kfree_skb packet_id=0xffff1 cpu=0 drop_reason=NO_SOCKET"
    assert rows[0][8] == "1700000001.000000123"  # nanosecond timestamps, monotonic + offset
    info = subprocess.run(["capinfos", "-M", str(path)], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    assert "pcapng" in info and "Number of interfaces in file: 3" in info


def test_write_journeys_in_time_order(tmp_path):
    s = samples()
    path = tmp_path / "journey.pcapng"
    assert write_journeys(str(path), [[s[3]], s[:3]], clock_offset_ns=0) == 3
    rows = tshark(path, "frame.comment")
    assert [r[0].split()[0] for r in rows] == ["net_dev_queue", "kfree_skb", "ip6_rcv_core"]


def test_create_private_refuses_existing_files_and_symlinks(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    for path in (target, link, tmp_path / "missing-dir" / "x"):
        with pytest.raises(IpftError):
            create_private(str(path), "pcapng", binary=True)
    assert target.read_text() == "keep"


def test_capture_options_defaults_and_refusals():
    from ipft_tui.cli import build_parser
    from ipft_tui.startup import settings_from_args

    def settings(*argv):
        return settings_from_args(build_parser().parse_args(["-m", "1", *argv]), mark_required=False)

    assert settings().capture_bytes == 128  # the TUI
    assert settings("-o", "json").capture_bytes == 0  # headless: only when asked
    assert settings("-o", "json", "--write-pcap", "x.pcapng").capture_bytes == 128
    pcap = settings("-o", "json", "--write-pcap", "x.pcapng", "--capture-bytes", "60")
    assert pcap.capture_bytes == 60 and pcap.meta  # devices name the interfaces
    for bad, message in (("abc", "not a number"), ("-1", "between 0"), ("4096", "between 0")):
        with pytest.raises(IpftError, match=message):
            settings("-o", "json", "--capture-bytes", bad)
    with pytest.raises(IpftError, match="needs packet bytes"):
        settings("-o", "json", "--write-pcap", "x.pcapng", "--capture-bytes", "0")
