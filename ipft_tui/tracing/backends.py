"""Tracing backends: which targets they trace, their BPF entry points, attach/detach.

A probe id is a target's index in the backend's candidate list. It is fixed when
the program is built, so attaching or detaching targets later (a new regex)
never needs a recompile.
"""

from __future__ import annotations

from ..errors import IpftError
from ..kernel import bpfsys
from ..kernel.targets import Target

BACKENDS = ("kprobe", "ftrace", "kprobe-multi", "tracepoint")
IMPLEMENTED = ("tracepoint",)


class TracepointBackend:
    """Raw tracepoints that carry an skb.

    With BPF cookies (kernel 6.10+) one program per skb argument index serves
    every tracepoint, the cookie naming the probe; on older kernels each
    tracepoint gets a tiny entry point of its own that passes a constant.
    """

    name = "tracepoint"

    def __init__(self, candidates: list[Target], use_cookie: bool):
        self.candidates = candidates
        self.use_cookie = use_cookie

    def _entry_name(self, probe_id: int) -> str:
        target = self.candidates[probe_id]
        return f"ipft_tp_arg{target.skb_pos}" if self.use_cookie else f"ipft_tp_{probe_id}"

    def entry_points(self) -> str:
        lines = []
        if self.use_cookie:
            for index in sorted({t.skb_pos for t in self.candidates}):
                lines.append(
                    f"int ipft_tp_arg{index}(struct bpf_raw_tracepoint_args *ctx)\n"
                    f"{{ return ipft_sample(ctx, (void *)ctx->args[{index}], "
                    f"(u32)bpf_get_attach_cookie(ctx), 0); }}\n")
        else:
            for probe_id, target in enumerate(self.candidates):
                lines.append(
                    f"int ipft_tp_{probe_id}(struct bpf_raw_tracepoint_args *ctx)\n"
                    f"{{ return ipft_sample(ctx, (void *)ctx->args[{target.skb_pos}], "
                    f"{probe_id}, 0); }}\n")
        return "".join(lines)

    def attach(self, bpf, probe_id: int) -> int:
        """Attach one target; returns the link fd (closing it detaches)."""
        from bcc import BPF  # noqa: PLC0415 - bcc only exists where tracing runs

        fn = bpf.load_func(self._entry_name(probe_id).encode(), BPF.RAW_TRACEPOINT)
        cookie = probe_id if self.use_cookie else 0
        return bpfsys.raw_tracepoint_open(fn.fd, self.candidates[probe_id].name, cookie)

    def detach(self, handle: int) -> None:
        bpfsys.close(handle)


def make_backend(name: str, kernel, capabilities) -> TracepointBackend:
    if name == "tracepoint":
        return TracepointBackend(kernel.tracepoints, capabilities.raw_tp_cookie)
    raise IpftError(f"the {name} backend is not implemented yet; "
                    f"implemented: {', '.join(IMPLEMENTED)}")
