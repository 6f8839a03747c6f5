"""Facts about the running kernel: BTF, traceable targets, headers, capabilities."""

from __future__ import annotations

import os
from functools import cached_property

from . import btf as btfmod
from .capabilities import Capabilities, detect
from .layout import drop_reasons, layout_header
from .targets import (Target, check_skb_mark, load_kernel_btf, skb_functions, skb_tracepoints,
                      tracepoint_returns)


class Kernel:
    """The running kernel, read lazily from BTF."""

    def __init__(self, btf_dir: str | None = None):
        # IPFT_BTF_DIR: read BTF from elsewhere (another kernel's, or a test's).
        self.btf_dir = btf_dir or os.environ.get("IPFT_BTF_DIR", "/sys/kernel/btf")

    @cached_property
    def btf(self) -> list[btfmod.BTF]:
        return load_kernel_btf(self.btf_dir)

    @cached_property
    def functions(self) -> list[Target]:
        return skb_functions(self.btf)

    @cached_property
    def tracepoints(self) -> list[Target]:
        return skb_tracepoints(self.btf)

    @cached_property
    def tracepoint_returns(self) -> dict[str, str]:
        return tracepoint_returns(self.btf, self.tracepoints)

    @cached_property
    def layout_header(self) -> str:
        """C #defines of struct offsets for BPF code (see layout.py)."""
        check_skb_mark(self.btf[0])
        return layout_header(self.btf[0])

    @cached_property
    def drop_reasons(self) -> dict[int, str]:
        return drop_reasons(self.btf[0])

    @cached_property
    def capabilities(self) -> Capabilities:
        return detect(self)
