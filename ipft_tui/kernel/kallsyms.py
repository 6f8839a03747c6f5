"""Kernel symbol addresses from /proc/kallsyms (zeros unless root)."""

from __future__ import annotations


def addresses(names: set[str], path: str = "/proc/kallsyms") -> dict[str, int]:
    """Address of each wanted symbol that kallsyms lists (first occurrence wins)."""
    found: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split(maxsplit=3)
                if len(parts) >= 3 and parts[2] in names and parts[2] not in found:
                    found[parts[2]] = int(parts[0], 16)
    except OSError:
        pass
    return found
