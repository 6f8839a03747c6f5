"""Tracing backends: which targets they trace, their BPF entry points, attach/detach.

A probe id is a target's index in the backend's candidate list. It is fixed when
the program is built, so attaching or detaching targets later (a new regex, a
new tracer) never needs a recompile.
"""

from __future__ import annotations

from ..errors import IpftError
from ..kernel import bpfsys
from ..kernel.targets import Target

BACKENDS = ("kprobe", "ftrace", "kprobe-multi", "tracepoint")
IMPLEMENTED = ("tracepoint",)
TRACK_CALL = 1 << 31  # IPFT_TRACK_CALL in bpf/ipft.bpf.c


class TracepointBackend:
    """Raw tracepoints that carry an skb.

    With BPF cookies (kernel 6.10+) one program per skb argument index serves
    every tracepoint, the cookie naming the probe; on older kernels each
    tracepoint gets a tiny entry point of its own that passes a constant.
    For function_graph, `<x>_entry` tracepoints are paired with their `<x>_exit`
    partners (which carry no skb): BPF remembers the skb at entry.
    """

    name = "tracepoint"

    def __init__(self, candidates: list[Target], use_cookie: bool, returns: dict[str, str]):
        self.candidates = candidates
        self.use_cookie = use_cookie
        # probe id -> exit tracepoint, for entries that have one
        self.returns = {i: returns[t.name] for i, t in enumerate(candidates) if t.name in returns}

    def _probe_word(self, probe_id: int) -> int:
        return probe_id | (TRACK_CALL if probe_id in self.returns else 0)

    @staticmethod
    def _shape(target: Target) -> str:
        return f"arg{target.skb_pos}" + (f"_reason{target.reason_pos}" if target.reason_pos >= 0 else "")

    @staticmethod
    def _reason(target: Target) -> str:
        return f"(u32)ctx->args[{target.reason_pos}]" if target.reason_pos >= 0 else "0"

    def _entry_name(self, probe_id: int) -> str:
        target = self.candidates[probe_id]
        return f"ipft_tp_{self._shape(target)}" if self.use_cookie else f"ipft_tp_{probe_id}"

    def _return_name(self, probe_id: int) -> str:
        return "ipft_tp_return" if self.use_cookie else f"ipft_tp_return_{probe_id}"

    def entry_points(self) -> str:
        ctx = "struct bpf_raw_tracepoint_args *ctx"
        lines = []
        if self.use_cookie:
            shapes = {self._shape(t): t for t in self.candidates}
            for shape, t in sorted(shapes.items()):
                lines.append(f"int ipft_tp_{shape}({ctx})\n{{ return ipft_sample(ctx, "
                             f"(void *)ctx->args[{t.skb_pos}], (u32)bpf_get_attach_cookie(ctx), "
                             f"{self._reason(t)}); }}\n")
            lines.append(f"int ipft_tp_return({ctx})\n"
                         f"{{ return ipft_sample_return(ctx, (u32)bpf_get_attach_cookie(ctx)); }}\n")
        else:
            for probe_id, target in enumerate(self.candidates):
                lines.append(f"int ipft_tp_{probe_id}({ctx})\n{{ return ipft_sample(ctx, "
                             f"(void *)ctx->args[{target.skb_pos}], {self._probe_word(probe_id)}u, "
                             f"{self._reason(target)}); }}\n")
            for probe_id in self.returns:
                lines.append(f"int ipft_tp_return_{probe_id}({ctx})\n"
                             f"{{ return ipft_sample_return(ctx, {probe_id}); }}\n")
        return "".join(lines)

    def _open(self, bpf, function: str, tracepoint: str, cookie: int) -> int:
        from bcc import BPF  # noqa: PLC0415 - bcc only exists where tracing runs

        fn = bpf.load_func(function.encode(), BPF.RAW_TRACEPOINT)
        return bpfsys.raw_tracepoint_open(fn.fd, tracepoint, cookie if self.use_cookie else 0)

    def attach(self, bpf, probe_id: int) -> int:
        """Attach one target; returns the link fd (closing it detaches)."""
        return self._open(bpf, self._entry_name(probe_id), self.candidates[probe_id].name,
                          self._probe_word(probe_id))

    def attach_return(self, bpf, probe_id: int) -> int | None:
        """Attach the return probe of a call target; None when it has none."""
        if probe_id not in self.returns:
            return None
        return self._open(bpf, self._return_name(probe_id), self.returns[probe_id], probe_id)

    def detach(self, handle: int) -> None:
        bpfsys.close(handle)


def make_backend(name: str, kernel, capabilities) -> TracepointBackend:
    if name == "tracepoint":
        return TracepointBackend(kernel.tracepoints, capabilities.raw_tp_cookie,
                                 kernel.tracepoint_returns)
    raise IpftError(f"the {name} backend is not implemented yet; "
                    f"implemented: {', '.join(IMPLEMENTED)}")
