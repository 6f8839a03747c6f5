"""Facts about the running kernel: BTF, traceable targets, headers, capabilities."""

from __future__ import annotations

import os
from functools import cached_property

from . import btf as btfmod
from .capabilities import Capabilities, detect
from .layout import drop_reasons, layout_header
from .kallsyms import addresses
from .targets import (FUNCTION_MAX_POSITION, Target, available_filter_functions, check_skb_mark,
                      ftrace_max_args, function_targets, kprobe_blacklist, left_out_reason,
                      load_kernel_btf, skb_functions, skb_tracepoints, tracepoint_returns)


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

    def _function_limits(self, backend: str) -> tuple[set[str] | None, int, int | None]:
        """(hookable names, skb position reach, parameter limit) of a function backend."""
        available = available_filter_functions()
        if available is not None and backend in ("kprobe", "kprobe-multi"):
            available -= kprobe_blacklist()
        if backend == "ftrace":  # the trampoline saves every argument it takes
            max_args = ftrace_max_args(os.uname().release)
            return available, max_args, max_args
        return available, FUNCTION_MAX_POSITION, None

    def backend_targets(self, backend: str) -> tuple[list[Target], dict[str, int]]:
        """What a run with this backend tries (before -r), in probe id order, and the
        kallsyms address of each (a tracepoint's is its __traceiter_ function's).
        -l prints exactly this, so it lists what a run tries."""
        if backend == "tracepoint":
            # kallsyms lists the tracepoint's iterator function even without KALLSYMS_ALL.
            found = addresses({f"__traceiter_{t.name}" for t in self.tracepoints})
            return self.tracepoints, {t.name: found.get(f"__traceiter_{t.name}", 0)
                                      for t in self.tracepoints}
        found = addresses({t.name for t in self.functions})
        return function_targets(self.functions, found, *self._function_limits(backend)), found

    def left_out(self, backend: str) -> dict[str, str]:
        """skb functions of this kernel's BTF that a function backend does not try, and why."""
        if backend == "tracepoint":
            return {}
        found = addresses({t.name for t in self.functions})
        limits = self._function_limits(backend)
        reasons = {t.name: left_out_reason(t, found, *limits) for t in self.functions}
        return {name: why for name, why in reasons.items() if why}

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
