"""Kernel symbols from /proc/kallsyms (addresses are zeros unless root)."""

from __future__ import annotations

from bisect import bisect_right


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


class Symbolizer:
    """Kernel text addresses as `function+0xoffset` (`[module]` appended for modules)."""

    def __init__(self, path: str = "/proc/kallsyms"):
        symbols: list[tuple[int, str]] = []
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in "tTwW":
                        name = parts[2] + (f" {parts[3]}" if len(parts) > 3 else "")
                        symbols.append((int(parts[0], 16), name))
        except OSError:
            pass
        symbols.sort()
        self._addresses = [a for a, _ in symbols]
        self._names = [n for _, n in symbols]

    def name(self, address: int) -> str:
        i = bisect_right(self._addresses, address) - 1
        if i < 0 or self._addresses[i] == 0:
            return f"0x{address:x}"
        name, _, module = self._names[i].partition(" ")
        return f"{name}+0x{address - self._addresses[i]:x}" + (f" {module}" if module else "")
