"""What to trace, and the validation of user-given values (CLI and TUI share it)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import regex

from .errors import IpftError, UsageError

TRACERS = ("function", "function_graph")
BACKEND_CHOICES = ("auto", "kprobe", "ftrace", "kprobe-multi", "tracepoint")
U32_MAX = 0xFFFFFFFF
MAX_CAPTURE_BYTES = 2048  # --capture-bytes: more than a jumbo frame's headers need


@dataclass
class TraceSettings:
    mark: int
    mask: int = U32_MAX
    regex: str | None = None
    backend: str = "auto"
    tracer: str = "function"
    perf_buffer: bool = False
    perf_page_count: int = 8
    perf_sample_period: int = 1
    perf_wakeup_events: int = 1
    ringbuf_pages: int = 4096
    meta: bool = False  # read device, namespace and packet headers in BPF
    track_skb: bool = False  # follow a matched skb when its mark changes, and its clones
    stack_regex: str | None = None  # functions whose samples carry the kernel stack
    capture_bytes: int = 0  # copy the packet's first bytes at each sample (0: off)
    live_switches: bool = False  # compile skb following and stacks in, to switch them live
    module_source: str | None = None  # an extension's C code (Lua emit() or -e FILE)
    module_label: str = "extension"
    count_only: bool = False  # benchmark floor: BPF counts matches, delivers nothing
    set_rlimit: bool = True  # raise RLIMIT_MEMLOCK / RLIMIT_NOFILE before attaching
    # Filters besides the mark (mark 0: none); a journey starts where all given match.
    expression: str | None = None  # pcap-filter expression (ipft_tui/pcapfilter.py)
    netns: int = 0  # inode of a network namespace; 0: any
    ifname: str | None = None  # device name; None: any

    @property
    def has_filter(self) -> bool:
        return bool(self.mark or self.expression or self.netns or self.ifname)

    @property
    def follows_skbs(self) -> bool:
        """Matching on headers, namespace or device selects a packet once, where it first
        matches: from there it must be followed (NAT, encapsulation, other devices)."""
        return self.track_skb or bool(self.expression or self.netns or self.ifname)


@dataclass(frozen=True)
class PacketFilters:
    """Which packets start a journey (the filter dialog's result)."""

    mark: int = 0  # 0: no mark filter
    mask: int = U32_MAX
    expression: str | None = None
    netns: int = 0
    ifname: str | None = None

    @property
    def label(self) -> str:
        return filter_label(self.mark, self.mask, self.expression, self.netns, self.ifname)


def parse_filters(expression: str, mark: str, mask: str, netns: str, ifname: str) -> PacketFilters:
    """The filter dialog's fields, checked; empty fields are no filter. At least one is
    needed (else every packet would be traced)."""
    from .pcapfilter import compile_filter  # noqa: PLC0415 - libpcap, loaded on first use
    expression = expression.strip() or None
    if expression:
        compile_filter(expression)
    filters = PacketFilters(
        mark=parse_mark(mark) if mark.strip() else 0,
        mask=parse_mask(mask) if mask.strip() else U32_MAX,
        expression=expression, netns=parse_netns(netns), ifname=parse_ifname(ifname))
    if not (filters.mark or filters.expression or filters.netns or filters.ifname):
        raise UsageError(f"nothing to trace: {FILTER_HINT}")
    return filters


FILTER_HINT = ("give a pcap-filter expression (e.g. `udp and dst port 53`), -m MARK, "
               "--filter-netns or --filter-ifname")


def filter_label(mark: int, mask: int, expression: str | None, netns: int,
                 ifname: str | None) -> str:
    """The active filter in one line (status bar, recordings, -v)."""
    parts = []
    if expression:
        parts.append(expression)
    if mark:
        parts.append(f"mark 0x{mark:x}" + (f"/0x{mask:x}" if mask != U32_MAX else ""))
    if netns:
        parts.append(f"netns {netns}")
    if ifname:
        parts.append(f"dev {ifname}")
    return " · ".join(parts) or "none"


def parse_netns(text: str | None) -> int:
    """--filter-netns: an inode number, a path such as /proc/PID/ns/net, or a name from
    `ip netns` (/run/netns/NAME). 0 for none."""
    if text is None or not str(text).strip():
        return 0
    cleaned = str(text).strip()
    if cleaned.isdigit():
        value = int(cleaned)
        if not 0 < value <= U32_MAX:
            raise UsageError(f"network namespace inode {cleaned} is out of range")
        return value
    if "/" in cleaned:
        path = cleaned
    elif cleaned in (".", "..") or not re.fullmatch(r"[\w.@:+-]+", cleaned):
        raise UsageError(f"network namespace {cleaned!r}: not an inode, path or `ip netns` name")
    else:
        path = f"/run/netns/{cleaned}"
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(f"network namespace {cleaned!r}: {path}: {exc.strerror}") from None
    if not _is_netns(path):
        raise UsageError(f"network namespace {cleaned!r}: {path} is not a network namespace")
    return st.st_ino


def _is_netns(path: str) -> bool:
    """nsfs files of network namespaces link to net:[inode]."""
    try:
        return os.readlink(path).startswith("net:[")
    except OSError:
        pass
    # /run/netns/NAME is a bind mount of such a file: compare its device with ours.
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def parse_ifname(text: str | None) -> str | None:
    """--filter-ifname: a device name as the kernel holds it (at most 15 bytes)."""
    if text is None or not str(text).strip():
        return None
    cleaned = str(text).strip()
    if len(cleaned.encode()) > 15 or "/" in cleaned or any(c.isspace() for c in cleaned):
        raise UsageError(f"device name {cleaned!r} is not valid (at most 15 bytes, no '/' "
                        "or spaces)")
    return cleaned


def parse_u32(text: str, what: str) -> int:
    """A 32-bit unsigned number in decimal or 0x hex."""
    cleaned = str(text).strip()
    try:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", cleaned):
            value = int(cleaned, 16)
        elif re.fullmatch(r"[0-9]+", cleaned):
            value = int(cleaned, 10)
        else:
            raise ValueError
    except ValueError:
        raise IpftError(f"{what} {text!r} is not a number (use decimal or 0x hex)") from None
    if value > U32_MAX:
        raise IpftError(f"{what} {text!r} does not fit in 32 bits (max 0xffffffff)")
    return value


def parse_mark(text: str) -> int:
    value = parse_u32(text, "mark")
    if value == 0:
        raise IpftError("mark 0 is not allowed: every unmarked packet has mark 0")
    return value


def parse_mask(text: str) -> int:
    value = parse_u32(text, "mask")
    if value == 0:
        raise IpftError("mask 0 is not allowed: it would match every packet")
    return value


def parse_positive(text: str, what: str) -> int:
    try:
        value = int(str(text).strip(), 0)
    except ValueError:
        raise IpftError(f"{what} {text!r} is not a number") from None
    if value < 1:
        raise IpftError(f"{what} must be at least 1, got {value}")
    return value


def parse_capture_bytes(text: str, limit: int = MAX_CAPTURE_BYTES) -> int:
    """--capture-bytes: 0 (off) to limit."""
    try:
        value = int(str(text).strip(), 10)
    except ValueError:
        raise IpftError(f"--capture-bytes {text!r} is not a number") from None
    if not 0 <= value <= limit:
        raise IpftError(f"--capture-bytes must be between 0 (off) and {limit}, got {value}")
    return value


def compile_regex(pattern: str | None) -> re.Pattern | None:
    if pattern is None or pattern == "":
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise IpftError(f"invalid regex {pattern!r}: {exc}") from None


MATCH_BUDGET = 2.0  # s to match a regex against every traceable name


def select(names: list[str], pattern: str | None, budget: float = MATCH_BUDGET) -> list[int]:
    """Indexes of the names the regex matches (searching, like ipftrace2's regexec).

    Matching has a time budget: a pattern such as (a|aa)+$ backtracks exponentially,
    and Python's re can be neither interrupted nor timed out (it holds the GIL), so
    the `regex` module (re-compatible) matches, with its timeout."""
    if compile_regex(pattern) is None:
        return list(range(len(names)))
    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        raise IpftError(f"invalid regex {pattern!r}: {exc}") from None
    deadline = time.monotonic() + budget
    chosen = []
    try:
        for i, name in enumerate(names):
            # concurrent: the GIL is released while matching, so the UI thread keeps
            # running when the collector thread selects.
            if compiled.search(name, timeout=max(deadline - time.monotonic(), 0.001),
                               concurrent=True):
                chosen.append(i)
    except TimeoutError:
        raise IpftError(f"regex {pattern!r} takes too long to match ({budget:g} s for "
                        f"{len(names)} names): nested repetition such as (a|aa)+ backtracks "
                        "exponentially") from None
    if not chosen:
        raise IpftError(f"regex {pattern!r} matches none of the {len(names)} traceable targets")
    return chosen
