"""Built-in demo traffic: a private namespace pair and a few kinds of marked packets.

Every kind is marked when sent (SO_MARK) and again on arrival in B (the kernel
clears marks between namespaces), so whole journeys show up: a ping, a UDP
datagram to a closed port (answered with ICMP, then dropped), a TCP connect to
a closed port (reset), and a UDP datagram that a firewall rule drops.
"""

from __future__ import annotations

import threading

from .netlab import VethPair, remove_orphaned_namespaces, unique_prefix

DEMO_MARK = 0xDEADBEEF
TAG = "d"  # namespaces ipftd<pid>-...
CLOSED_UDP_PORT = 7777
CLOSED_TCP_PORT = 7778
FIREWALLED_UDP_PORT = 7779


class DemoTraffic:
    """Creates the network on enter, sends traffic every `interval` seconds, removes all on exit."""

    def __init__(self, mark: int = DEMO_MARK, interval: float = 1.0):
        self.mark = mark
        self.interval = interval
        self.pair = VethPair(unique_prefix(TAG))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ipft-demo-traffic", daemon=True)
        self.rounds = 0
        self.error: Exception | None = None
        self.removed_leftovers: list[str] = []  # of demos whose process died (kill -9)

    def __enter__(self) -> DemoTraffic:
        self.removed_leftovers = remove_orphaned_namespaces(TAG)
        self.pair.create()
        try:
            for proto in ("icmp", "udp", "tcp"):
                self.pair.mark_incoming(self.mark, "-p", proto)
            self.pair.drop_incoming("-p", "udp", "--dport", str(FIREWALLED_UDP_PORT))
        except BaseException:
            self.pair.destroy()
            raise
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        self.pair.destroy()

    def send_round(self) -> None:
        p, mark = self.pair, self.mark
        p.ping(count=1, mark=mark, check=False)
        p.send_udp(CLOSED_UDP_PORT, mark=mark)
        p.tcp_connect(CLOSED_TCP_PORT, mark=mark)
        p.send_udp(FIREWALLED_UDP_PORT, mark=mark)
        self.rounds += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_round()
            except Exception as exc:  # noqa: BLE001 - namespaces gone while stopping
                if not self._stop.is_set():
                    self.error = exc
                return
            self._stop.wait(self.interval)
