"""Only the kernel's drop points carry a drop reason into samples (#20.1)."""

import os

import pytest

from ipft_tui import drops
from ipft_tui.kernel import btf as K
from ipft_tui.kernel.targets import load_kernel_btf, reason_carriers, skb_functions, skb_tracepoints
from tests.btf_builder import BTFBuilder


def test_drop_points_and_pass_through_helpers():
    assert drops.reports_drop("sk_skb_reason_drop") and drops.reports_drop("kfree_skb")
    assert drops.reports_drop("perf_trace_kfree_skb")  # runs for the kfree_skb tracepoint
    assert not drops.reports_drop("skb_release_data")
    assert not drops.reports_drop("perf_trace_consume_skb")
    assert not drops.reports_drop("some_new_function")  # unknown: not a drop until classified
    assert drops.unclassified({"skb_release_data", "kfree_skb_reason", "new_one"}) == {"new_one"}


def test_free_path_helpers_lose_their_reason_argument():
    """6.12's skb_release_data(skb, reason, napi_safe) gets NOT_SPECIFIED for consumed
    packets: its reason is not read; sk_skb_reason_drop's is."""
    b = BTFBuilder()
    u32 = b.int_("unsigned int", 4)
    skb_ptr = b.ptr(b.struct("sk_buff", 4, [("mark", u32, 0)]))
    reason = b.enum("skb_drop_reason", [("SKB_DROP_REASON_NOT_SPECIFIED", 2)])
    void_ptr = b.ptr(0)
    b.func("skb_release_data", b.proto(0, [("skb", skb_ptr), ("reason", reason), ("napi", u32)]))
    b.func("sk_skb_reason_drop", b.proto(0, [("sk", void_ptr), ("skb", skb_ptr), ("reason", reason)]))
    b.typedef("btf_trace_kfree_skb", b.ptr(b.proto(0, [("__data", void_ptr), ("skb", skb_ptr),
                                                      ("location", void_ptr), ("reason", reason)])))
    blob = K.BTF(b.build())
    functions = {t.name: t for t in skb_functions([blob])}
    assert functions["skb_release_data"].reason_pos == -1
    assert functions["sk_skb_reason_drop"].reason_pos == 3
    assert {t.name: t.reason_pos for t in skb_tracepoints([blob])} == {"kfree_skb": 2}
    assert reason_carriers([blob]) == {"skb_release_data", "sk_skb_reason_drop"}


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="no kernel BTF")
def test_every_reason_carrier_of_this_kernel_is_classified():
    blobs = load_kernel_btf()
    carriers = reason_carriers(blobs)
    assert "sk_skb_reason_drop" in carriers
    assert drops.unclassified(carriers) == set()
    reading = {t.name for t in skb_functions(blobs) if t.reason_pos >= 0}
    assert "sk_skb_reason_drop" in reading and not reading & drops.PASS_THROUGH
