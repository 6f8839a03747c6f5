"""Which backends this kernel supports, found by trying.

Each probe loads a two-instruction program (no compiler involved) and attaches
it to one real skb function or tracepoint, then closes everything at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import bpfsys
from .btf import FUNC


@dataclass
class Support:
    ok: bool
    detail: str


@dataclass
class Capabilities:
    backends: dict[str, Support] = field(default_factory=dict)
    raw_tp_cookie: bool = False
    kprobe_cookie: bool = False  # bpf_get_attach_cookie() in kprobes (5.15+)

    def supported(self) -> list[str]:
        return [name for name, s in self.backends.items() if s.ok]


def _explain(exc: OSError, what: str) -> str:
    hints = {
        1: "EPERM: the kernel refuses it (not root, or this program type is locked down)",
        2: "ENOENT: the kernel has no such probe point",
        22: "EINVAL: the kernel does not know this program or attach type",
        95: "EOPNOTSUPP: not built into this kernel",
        524: "ENOTSUPP: not supported by this kernel",
    }
    if exc.strerror and exc.strerror != os.strerror(exc.errno or 0):
        return f"{what}: {exc.strerror}"  # our own, more precise message
    return f"{what}: {hints.get(exc.errno, exc.strerror or str(exc))}"


def _with_fds(steps) -> Support:
    """Run steps (each returns an fd or raises), close every fd, report."""
    fds: list[int] = []
    try:
        for what, step in steps:
            try:
                fds.append(step(fds))
            except OSError as exc:
                return Support(False, _explain(exc, what))
        return Support(True, "attached a test program")
    finally:
        for fd in reversed(fds):
            bpfsys.close(fd)


def probe_tracepoint(tracepoint: str) -> Support:
    return _with_fds([
        ("load raw_tracepoint program",
         lambda fds: bpfsys.prog_load(bpfsys.PROG_TYPE_RAW_TRACEPOINT, bpfsys.RETURN_ZERO)),
        (f"attach to tracepoint {tracepoint}",
         lambda fds: bpfsys.raw_tracepoint_open(fds[0], tracepoint)),
    ])


def probe_raw_tp_cookie(tracepoint: str) -> bool:
    return _with_fds([
        ("load", lambda fds: bpfsys.prog_load(bpfsys.PROG_TYPE_RAW_TRACEPOINT,
                                              bpfsys.CALL_COOKIE_THEN_RETURN)),
        ("attach", lambda fds: bpfsys.raw_tracepoint_open(fds[0], tracepoint, cookie=1)),
    ]).ok


def probe_kprobe_cookie() -> bool:
    """The kernel knows bpf_get_attach_cookie() for kprobes (and perf links with a cookie)."""
    return _with_fds([("load", lambda fds: bpfsys.prog_load(bpfsys.PROG_TYPE_KPROBE,
                                                            bpfsys.CALL_COOKIE_THEN_RETURN))]).ok


def probe_kprobe(function: str) -> Support:
    return _with_fds([
        ("load kprobe program", lambda fds: bpfsys.prog_load(bpfsys.PROG_TYPE_KPROBE, bpfsys.RETURN_ZERO)),
        (f"create kprobe on {function}", lambda fds: bpfsys.perf_kprobe_open(function)),
        ("attach program to kprobe", lambda fds: (bpfsys.perf_set_bpf(fds[1], fds[0]), -1)[1]),
    ])


def probe_kprobe_multi(function: str) -> Support:
    return _with_fds([
        ("load kprobe-multi program",
         lambda fds: bpfsys.prog_load(bpfsys.PROG_TYPE_KPROBE, bpfsys.RETURN_ZERO,
                                      expected_attach_type=bpfsys.ATTACH_TRACE_KPROBE_MULTI)),
        (f"create kprobe-multi link on {function}",
         lambda fds: bpfsys.kprobe_multi_link(fds[0], [function])),
    ])


def probe_fentry(btf_id: int, function: str) -> Support:
    return _with_fds([
        ("load fentry program",
         lambda fds: bpfsys.prog_load(bpfsys.PROG_TYPE_TRACING, bpfsys.RETURN_ZERO,
                                      expected_attach_type=bpfsys.ATTACH_TRACE_FENTRY,
                                      attach_btf_id=btf_id)),
        (f"attach fentry to {function}", lambda fds: bpfsys.raw_tracepoint_open(fds[0], None)),
    ])


# Functions every kernel with networking has; the first one present is used.
_PROBE_FUNCTIONS = ("kfree_skb_reason", "sk_skb_reason_drop", "__kfree_skb", "consume_skb")
_PROBE_TRACEPOINTS = ("kfree_skb", "consume_skb", "net_dev_queue")


def detect(kernel) -> Capabilities:
    vmlinux = kernel.btf[0]
    function_names = {t.name for t in kernel.functions}
    function = next((f for f in _PROBE_FUNCTIONS if f in function_names), None)
    tp_names = {t.name for t in kernel.tracepoints}
    tracepoint = next((t for t in _PROBE_TRACEPOINTS if t in tp_names), None)
    caps = Capabilities()
    if function is None:
        none = Support(False, "no skb function found in BTF")
        caps.backends.update({"kprobe-multi": none, "kprobe": none, "ftrace": none})
    else:
        caps.backends["kprobe-multi"] = probe_kprobe_multi(function)
        caps.backends["kprobe"] = probe_kprobe(function)
        caps.kprobe_cookie = caps.backends["kprobe"].ok and probe_kprobe_cookie()
        caps.backends["ftrace"] = probe_fentry(vmlinux.find(FUNC, function), function)
    if tracepoint is None:
        caps.backends["tracepoint"] = Support(False, "no raw tracepoint with an skb in BTF")
    else:
        caps.backends["tracepoint"] = probe_tracepoint(tracepoint)
        caps.raw_tp_cookie = caps.backends["tracepoint"].ok and probe_raw_tp_cookie(tracepoint)
    return caps
