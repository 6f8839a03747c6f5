"""Private test networks: a pair of network namespaces joined by a veth link.

Used by `--demo` and by the tests. Everything lives inside namespaces this
module creates (firewall rules too), so deleting the namespaces removes it all.
Addresses come from TEST-NET-1 (192.0.2.0/24), which never leaves the pair.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass

from .errors import IpftError


def _run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise IpftError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass
class VethPair:
    """Namespaces `<prefix>-a` (192.0.2.1) and `<prefix>-b` (192.0.2.2), linked by veth."""

    prefix: str
    a_addr: str = "192.0.2.1"
    b_addr: str = "192.0.2.2"

    @property
    def ns_a(self) -> str:
        return f"{self.prefix}-a"

    @property
    def ns_b(self) -> str:
        return f"{self.prefix}-b"

    @property
    def dev_a(self) -> str:
        return f"{self.prefix[:8]}a0"

    @property
    def dev_b(self) -> str:
        return f"{self.prefix[:8]}b0"

    def create(self) -> VethPair:
        try:
            for ns in (self.ns_a, self.ns_b):
                _run("ip", "netns", "add", ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "link", "add", self.dev_a, "netns", self.ns_a, "type", "veth",
                 "peer", "name", self.dev_b, "netns", self.ns_b)
            for ns, dev, addr in ((self.ns_a, self.dev_a, self.a_addr),
                                  (self.ns_b, self.dev_b, self.b_addr)):
                _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                _run("ip", "-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def destroy(self) -> None:
        for ns in (self.ns_a, self.ns_b):
            if os.path.exists(f"/run/netns/{ns}"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    def __enter__(self) -> VethPair:
        return self.create()

    def __exit__(self, *exc) -> None:
        self.destroy()

    def exec(self, ns: str, *cmd: str, check: bool = True, timeout: float = 30):
        return _run("ip", "netns", "exec", ns, *cmd, check=check, timeout=timeout)

    def mark_incoming(self, mark: int, *match: str) -> None:
        """Mark packets arriving in B (the kernel clears marks between namespaces)."""
        self.exec(self.ns_b, "iptables", "-t", "raw", "-A", "PREROUTING", "-s", self.a_addr,
                  *match, "-j", "MARK", "--set-mark", hex(mark))

    def drop_incoming(self, *match: str) -> None:
        self.exec(self.ns_b, "iptables", "-A", "INPUT", "-s", self.a_addr, *match, "-j", "DROP")

    def ping(self, count: int = 1, mark: int | None = None, local: bool = False,
             check: bool = True) -> None:
        """Ping from A to B, or with local=True to A's own address (the mark then
        survives the receive path: no namespace is crossed)."""
        cmd = ["ping", "-c", str(count), "-i", "0.05", "-W", "1"]
        if mark is not None:
            cmd += ["-m", str(mark)]
        self.exec(self.ns_a, *cmd, self.a_addr if local else self.b_addr, check=check)

    def send_udp(self, port: int, count: int = 1, mark: int | None = None, size: int = 16) -> None:
        """UDP datagrams from A to B:port, with SO_MARK when mark is given."""
        code = textwrap.dedent(f"""
            import socket, struct, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            {_set_mark(mark)}
            for _ in range({count}):
                s.sendto(b"x" * {size}, ("{self.b_addr}", {port}))
                time.sleep(0.01)
        """)
        self.exec(self.ns_a, sys.executable, "-c", code)

    def tcp_connect(self, port: int, mark: int | None = None) -> None:
        """A TCP connection attempt from A to B:port (refused or accepted, both fine)."""
        code = textwrap.dedent(f"""
            import socket, struct
            s = socket.socket()
            {_set_mark(mark)}
            s.settimeout(1)
            try:
                s.connect(("{self.b_addr}", {port}))
            except OSError:
                pass
            s.close()
        """)
        self.exec(self.ns_a, sys.executable, "-c", code)


class PacketTap:
    """An AF_PACKET socket on B's device, as tcpdump has, until one UDP datagram to
    `port` was read through it. The kernel hands such sockets a clone of each skb."""

    def __init__(self, pair: VethPair, port: int, timeout: float = 10):
        code = textwrap.dedent(f"""
            import socket
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
            s.bind(("{pair.dev_b}", 0))
            s.settimeout({timeout})
            print("ready", flush=True)
            while True:
                frame = s.recv(4096)  # Ethernet + IPv4 without options + UDP
                if frame[23] == 17 and int.from_bytes(frame[36:38], "big") == {port}:
                    print("got", flush=True)
                    break
        """)
        self._proc = subprocess.Popen(["ip", "netns", "exec", pair.ns_b, sys.executable, "-c", code],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.timeout = timeout
        if self._proc.stdout.readline().strip() != "ready":
            self.close()
            raise IpftError(f"packet tap did not start: {self._proc.stderr.read().strip()}")

    def wait(self) -> bool:
        """True once the datagram was read."""
        try:
            self._proc.wait(self.timeout + 5)
        except subprocess.TimeoutExpired:
            return False
        return self._proc.stdout.read().strip() == "got"

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def __enter__(self) -> PacketTap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _set_mark(mark: int | None) -> str:
    """Python source that sets SO_MARK on socket `s` (packed: marks above 2**31 too)."""
    if mark is None:
        return "pass"
    return f"s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack('I', {mark}))"


_calls = itertools.count()
# ipft<tag><owner pid>-<owner start time>-<n>-a|b: who made a namespace is in its name,
# so a namespace whose owner died (kill -9) can be told from one in use.
_OWNED_NAME = re.compile(r"^ipft([a-z]+)(\d+)-(\d+)-\d+-[ab]$")


def _start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot); None if there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def unique_prefix(tag: str) -> str:
    """Unique per process and call, naming the owner (pid and start time: pids are
    reused). Devices take only the first 8 characters: they live inside the pair's
    own namespaces, so those need not be unique."""
    pid = os.getpid()
    return f"ipft{tag}{pid}-{_start_time(pid)}-{next(_calls)}"


def orphaned_namespaces(tag: str) -> list[str]:
    """Namespaces made by unique_prefix(tag) whose owner process is gone."""
    orphans = []
    for name in leftover_namespaces(f"ipft{tag}"):
        m = _OWNED_NAME.match(name)
        if m and m.group(1) == tag and _start_time(int(m.group(2))) != int(m.group(3)):
            orphans.append(name)
    return orphans


def remove_orphaned_namespaces(tag: str) -> list[str]:
    """Delete what orphaned_namespaces(tag) finds (firewall rules go with them)."""
    removed = []
    for name in orphaned_namespaces(tag):
        if subprocess.run(["ip", "netns", "del", name], capture_output=True,
                          timeout=30).returncode == 0:
            removed.append(name)
    return removed


def leftover_namespaces(prefix: str = "ipft") -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]
