"""Kernel symbols from /proc/kallsyms (addresses are zeros unless root)."""

from __future__ import annotations

import re
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


_TEXT_SYMBOL = re.compile(rb"^([0-9a-f]+) [tTwW] (\S+)(?:\t\[(\S+)\])?$", re.M)


class Symbolizer:
    """Kernel text addresses as `function+0xoffset` (`[module]` appended for modules)."""

    def __init__(self, path: str = "/proc/kallsyms"):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        # One regex over the whole file; names are decoded only when asked for.
        found = _TEXT_SYMBOL.findall(data)
        addresses = [int(address, 16) for address, _, _ in found]
        order = sorted(range(len(found)), key=addresses.__getitem__)
        self._addresses = [addresses[i] for i in order]
        self._symbols = [found[i] for i in order]  # (address, name, module) as bytes

    def name(self, address: int) -> str:
        i = bisect_right(self._addresses, address) - 1
        if i < 0 or self._addresses[i] == 0:
            return f"0x{address:x}"
        _, name, module = self._symbols[i]
        return (f"{name.decode()}+0x{address - self._addresses[i]:x}"
                + (f" [{module.decode()}]" if module else ""))
