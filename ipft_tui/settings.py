"""What to trace, and the validation of user-given values (CLI and TUI share it)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import regex

from .errors import IpftError

TRACERS = ("function", "function_graph")
BACKEND_CHOICES = ("auto", "kprobe", "ftrace", "kprobe-multi", "tracepoint")
U32_MAX = 0xFFFFFFFF


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
