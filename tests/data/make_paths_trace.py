"""Writes paths.jsonl: a recorded-looking trace whose paths are known (tests/test_views.py).

    6 journeys  delivered: ip_output > dev_queue_xmit > net_dev_start_xmit > netif_rx >
                           ip_rcv > udp_rcv > consume_skb   (veth0 in A, then veth1 in B)
    3 journeys  dropped NO_SOCKET: ... ip_rcv > udp_rcv > kfree_skb  (port 9)
    2 journeys  dropped NETFILTER_DROP: ... ip_rcv > nf_hook_slow > kfree_skb
    1 journey   open: ip_output > dev_queue_xmit

Run: python3 tests/data/make_paths_trace.py > tests/data/paths.jsonl
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ipft_tui.model import Meta, Sample  # noqa: E402
from ipft_tui.outputs.jsonlines import format_sample  # noqa: E402

A_NS, B_NS = 4026532177, 4026532281
SEND = ["ip_output", "dev_queue_xmit", "net_dev_start_xmit"]


def meta(dev: str, netns: int, dport: int) -> Meta:
    return Meta(2 if dev == "veth0" else 3, dev, netns, 84, 0x0800, 17, "192.0.2.1",
                "192.0.2.2", 40000, dport, 0)


def journey(pid: int, start: int, receive: list[str], dport: int, reason: str | None,
            slow: int) -> list[Sample]:
    """Sending on CPU 0 in A, receiving on CPU 1 in B; `slow` ns more before the last step."""
    out, ts = [], start
    for i, function in enumerate(SEND + receive):
        sending = i < len(SEND)
        ts += 800 + 150 * i + (slow if i == len(SEND + receive) - 1 else 0)
        last = i == len(SEND + receive) - 1
        out.append(Sample(pid, ts, 0 if sending else 1, function,
                          drop_reason=reason if last else None,
                          meta=meta("veth0", A_NS, dport) if sending else meta("veth1", B_NS, dport)))
    return out


def main() -> None:
    samples = []
    t = 7_000_000_000
    base = 0xFFFF888102A40000
    plan = ([("deliver", 7777, None)] * 6 + [("nosock", 9, "NO_SOCKET")] * 3
            + [("nf", 7777, "NETFILTER_DROP")] * 2)
    # Interleaved as traffic would be: delivered and dropped packets alternate.
    order = [0, 6, 1, 2, 9, 3, 7, 4, 10, 5, 8]
    for n, index in enumerate(order):
        kind, dport, reason = plan[index]
        receive = {"deliver": ["netif_rx", "ip_rcv", "udp_rcv", "consume_skb"],
                   "nosock": ["netif_rx", "ip_rcv", "udp_rcv", "kfree_skb"],
                   "nf": ["netif_rx", "ip_rcv", "nf_hook_slow", "kfree_skb"]}[kind]
        slow = 20_000 if n == 4 else 1_000 * n  # one slow drop, the rest grow slowly
        samples += journey(base + 0x100 * n, t + 100_000 * n, receive, dport, reason, slow)
    opened = journey(base + 0x100 * 11, t + 100_000 * 11, [], 7777, None, 0)[:2]
    samples += opened
    samples.sort(key=lambda s: s.timestamp)
    for sample in samples:
        print(format_sample(sample, with_tuple=True))


if __name__ == "__main__":
    main()
