"""Writes a large synthetic recording (the `--record` format) for replay benchmarks.

usage: python scripts/make_big_recording.py OUT.jsonl [JOURNEYS] (default 250000 journeys
of 4 samples each: 1,000,000 samples with device, namespace and flow fields).
Skb addresses are recycled from a small pool, as the kernel does, and a few journeys
overlap in time, so grouping works as on a live trace."""

from __future__ import annotations

import sys

FUNCTIONS = (("net_dev_queue", "veth0", 2, 4026532281),
             ("net_dev_start_xmit", "veth0", 2, 4026532281),
             ("netif_receive_skb", "veth1", 3, 4026532282),
             ("consume_skb", "veth1", 3, 4026532282))


def main() -> int:
    out, journeys = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 250_000
    ts = 1_000_000_000_000
    pool = [0xffff888100000000 + i * 0x100 for i in range(64)]
    with open(out, "w") as f:
        f.write('{"ipft_tui_settings":{"filter":"mark 0x1","expression":null,"mark":1,'
                '"mask":4294967295,"netns":0,"ifname":null,"backend":"raw_tracepoint",'
                '"tracer":"function","regex":null}}\n')
        for j in range(0, journeys, 2):  # two journeys interleaved at a time
            pair = [j, j + 1] if j + 1 < journeys else [j]
            for step, (function, ifname, ifindex, netns) in enumerate(FUNCTIONS):
                for k in pair:
                    ts += 1_500
                    skb = pool[k % len(pool)]
                    sport = 10_000 + k % 1_000
                    end = ',"journey_end":true' if function == "consume_skb" else ""
                    f.write(f'{{"packet_id":"0x{skb:x}","timestamp":{ts},"processor_id":{k % 2},'
                            f'"function":"{function}","is_return":false,"ifindex":{ifindex},'
                            f'"ifname":"{ifname}","netns":{netns},"len":{60 + step * 14},'
                            f'"l3_proto":2048,"l4_proto":17,"saddr":"10.0.0.1","daddr":'
                            f'"10.0.0.2","sport":{sport},"dport":7777,"icmp_type":0,'
                            f'"skb":"0x{skb:x}"{end}}}\n')
    return 0


if __name__ == "__main__":
    sys.exit(main())
