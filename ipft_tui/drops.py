"""Which kernel functions make a drop: only there is an skb's drop reason read.

Many functions take an `enum skb_drop_reason`, but in some it is only passed along
the free path, for consumed packets too (6.12: `__kfree_skb()` hands
skb_release_data() SKB_DROP_REASON_NOT_SPECIFIED for every packet consumed
normally). A drop is what the kernel reports as one: the kfree_skb tracepoint and
the functions that fire it, or that always free with the reason they are given.
Pure: no bcc, no BTF parsing.
"""

from __future__ import annotations

# Drop points: the reason they carry is the drop's. SKB_CONSUMED passes through some of
# them (dev_consume_skb_any, sk_skb_reason_drop on consume); model.NOT_DROPS
# keeps that from counting as a drop.
DROP_POINTS = frozenset({
    "kfree_skb",                 # the tracepoint
    "kfree_skb_reason",          # 5.17..6.9 (an inline wrapper of sk_skb_reason_drop since)
    "sk_skb_reason_drop",        # 6.10+
    "__kfree_skb_reason",        # 6.3..6.9: decides consume vs drop, fires the tracepoint
    "__sk_skb_reason_drop",      # 6.10+: the same
    "kfree_skb_list_reason",     # every skb of the list
    "dev_kfree_skb_any_reason",  # drivers, any context
    "dev_kfree_skb_irq_reason",  # drivers, in interrupts
    "tcp_drop_reason",           # TCP's drops (static, traceable where not inlined)
    "icmpv6_param_prob_reason",  # answers with ICMPv6 and frees with the reason
})

# Free-path helpers that only pass a reason on (consumed packets come this way too).
PASS_THROUGH = frozenset({
    "skb_release_data",
    "skb_release_all",
    "__napi_kfree_skb",
})

# The kfree_skb tracepoint's own plumbing: each of these runs for the tracepoint.
_TRACEPOINT_PLUMBING = ("__bpf_trace_", "__probestub_", "__traceiter_", "perf_trace_",
                        "trace_event_raw_event_")


def reports_drop(name: str) -> bool:
    """A function (or tracepoint) whose drop reason argument is a drop's reason."""
    if name in DROP_POINTS:
        return True
    for prefix in _TRACEPOINT_PLUMBING:
        if name.startswith(prefix):
            return name[len(prefix):] in DROP_POINTS
    return False


def drop_reason_position(name: str, position: int) -> int:
    """`position` of a target's drop reason argument if it reports a drop, else -1
    (the reason is not read, so the sample is no drop)."""
    return position if position >= 0 and reports_drop(name) else -1


def unclassified(names: set[str]) -> set[str]:
    """Reason-carrying functions neither list knows: a new kernel's, to classify."""
    return {n for n in names if not reports_drop(n) and n not in PASS_THROUGH}
