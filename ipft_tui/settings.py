"""What to trace, and the validation of user-given values (CLI and TUI share it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import IpftError

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


def select(names: list[str], pattern: str | None) -> list[int]:
    """Indexes of the names the regex matches (searching, like ipftrace2's regexec)."""
    compiled = compile_regex(pattern)
    if compiled is None:
        return list(range(len(names)))
    chosen = [i for i, name in enumerate(names) if compiled.search(name)]
    if not chosen:
        raise IpftError(f"regex {pattern!r} matches none of the {len(names)} traceable targets")
    return chosen
