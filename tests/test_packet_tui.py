"""The packet in the TUI: change marks in the journey tree, decoded/hex detail pane, `w`."""

import os
import subprocess

from ipft_tui.batching import SampleBuffer
from ipft_tui.model import Capture, Meta, Sample
from ipft_tui.outputs.jsonlines import format_sample
from ipft_tui.tui.app import IpftApp
from ipft_tui.tui.sources import ReplaySource
from ipft_tui.tui.widgets import JourneyTree
from tests.test_packet import eth, ipv4, udp

SIZE = (160, 50)
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
META = Meta(3, "veth1", 4026532000, 60, 0x0800, 17, "10.0.0.1", "10.9.9.9", 4000, 80, 0)


def trace(tmp_path) -> str:
    """One UDP datagram: sent, received, DNATed (10.9.9.9:80 -> 10.0.1.2:8080), dropped."""
    before = ipv4("10.0.0.1", "10.9.9.9", 17, udp(4000, 80, b"hello"), ttl=64)
    after = ipv4("10.0.0.1", "10.0.1.2", 17, udp(4000, 8080, b"hello"), ttl=64)
    frame = eth(MAC_B, MAC_A, 0x0800, before)
    samples = [
        Sample(0xAB00, 1000, 0, "net_dev_queue", meta=META, capture=Capture(before, "l3", len(before))),
        Sample(0xAB00, 2000, 0, "netif_receive_skb", meta=META, capture=Capture(frame, "l2", len(before))),
        Sample(0xAB00, 3000, 0, "nf_hook_slow", meta=META, capture=Capture(frame, "l2", len(before))),
        Sample(0xAB00, 4000, 0, "ip_rcv_finish", meta=META,
               capture=Capture(eth(MAC_B, MAC_A, 0x0800, after), "l2", len(after))),
        Sample(0xAB00, 5000, 1, "kfree_skb", drop_reason="NO_SOCKET", meta=META,
               capture=Capture(after, "l3", len(after))),
    ]
    path = tmp_path / "capture.jsonl"
    path.write_text("".join(format_sample(s, with_tuple=True) + "\n" for s in samples))
    return str(path)


def labels(tree: JourneyTree) -> list[str]:
    return [tree.get_node_at_line(i).label.plain for i in range(tree.last_line + 1)]


async def test_tree_marks_changes_and_detail_highlights_them(tmp_path, monkeypatch):
    buffer = SampleBuffer()
    app = IpftApp(ReplaySource(trace(tmp_path), buffer), buffer, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("g", "enter")
        tree = app.query_one(JourneyTree)
        lines = labels(tree)[1:]
        assert [line.startswith("Δ") for line in lines] == [False, True, False, True, True]
        assert "IPv4.dst: 10.9.9.9 -> 10.0.1.2" in lines[3] and "UDP.dport: 80 -> 8080" in lines[3]
        assert "link header: l3 -> l2" in lines[1]
        await pilot.press("down", "down", "down")  # the DNAT sample (the tree starts on the first)
        detail = app.query_one("#detail").render().plain
        assert "Internet Protocol Version 4, Src: 10.0.0.1, Dst: 10.0.1.2" in detail
        assert "Destination: 10.0.1.2  (was 10.9.9.9)" in detail
        assert "Destination Port: 8080  (was 80)" in detail
        assert "Source: 10.0.0.1  (was" not in detail
        await pilot.press("H")
        detail = app.query_one("#detail").render().plain
        assert "0000  02 00 00 00 00 0b 02 00  00 00 00 0a 08 00 45 00" in detail
        monkeypatch.chdir(tmp_path)
        await pilot.press("w", "ctrl+u", *"journey.pcapng", "enter")  # the journey, as pcapng
        await pilot.pause()
        [written] = [name for name in os.listdir(tmp_path) if name.endswith(".pcapng")]
        assert os.stat(tmp_path / written).st_mode & 0o777 == 0o600
        out = subprocess.run(["tshark", "-n", "-r", str(tmp_path / written), "-T", "fields",
                              "-e", "ip.dst", "-e", "frame.comment"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        rows = [line.split("\t") for line in out.splitlines()]
        assert [r[0] for r in rows] == ["10.9.9.9", "10.9.9.9", "10.9.9.9", "10.0.1.2", "10.0.1.2"]
        assert rows[4][1] == "kfree_skb packet_id=0xab00 cpu=1 drop_reason=NO_SOCKET"


def capture_app() -> IpftApp:
    """A real trace (tests/data/capture.jsonl): a UDP datagram to port 53 of the other namespace,
    DNATed to 5353 there (nobody listens: dropped, NO_SOCKET), then a ping."""
    from tests.tui_support import replay_app
    return replay_app("capture.jsonl")


async def test_recorded_dnat_is_marked_at_the_first_sample_after_the_rewrite():
    app = capture_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("g", "enter")
        lines = labels(app.query_one(JourneyTree))[1:]
        marked = [line.split()[3] for line in lines if line.startswith("Δ")]
        assert marked == ["net_dev_queue", "icmp_send"]  # the MAC header pushed; the DNAT
        assert "UDP.dport: 53 -> 5353" in lines[7]


def test_decoded_detail_pane_snapshot(snap_compare):
    async def to_the_nat(pilot):
        await pilot.pause()
        await pilot.press("g", "enter", *["down"] * 7, "tab")
        await pilot.pause()
        await pilot.press("end")  # the packet, below the sample's fields
        await pilot.pause()

    assert snap_compare(capture_app(), terminal_size=(150, 44), run_before=to_the_nat)
