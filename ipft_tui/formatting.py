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


def offset(ns: int) -> str:
    """Time since trace start, fixed width-ish: seconds with microseconds."""
    return f"{ns / 1_000_000_000:.6f}s"


def count(n: float) -> str:
    if n < 1_000:
        return f"{n:.0f}"
    if n < 1_000_000:
        return f"{n / 1_000:.1f}k"
    return f"{n / 1_000_000:.2f}M"
