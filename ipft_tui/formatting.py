"""Human-readable numbers for the TUI. Pure."""

from __future__ import annotations


def duration(ns: int | None) -> str:
    if ns is None:
        return "?"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f}ms"
    return f"{ns / 1_000_000_000:.3f}s"


def offset(ns: int, width: int = 11) -> str:
    """Time since trace start in seconds, as precise as `width` allows, unit kept."""
    seconds = ns / 1_000_000_000
    whole = len(str(int(seconds)))
    decimals = max(0, min(6, width - whole - 2))  # the point and the unit
    return f"{seconds:.{decimals}f}s"


def count(n: float) -> str:
    if n < 1_000:
        return f"{n:.0f}"
    if n < 1_000_000:
        return f"{n / 1_000:.1f}k"
    return f"{n / 1_000_000:.2f}M"
