"""BTF parsing on hand-built blobs, and on the running kernel's BTF."""

import os

import pytest

from ipft_tui.kernel import btf as K
from ipft_tui.kernel.layout import drop_reasons, layout_header
from ipft_tui.kernel.targets import (check_skb_mark, load_kernel_btf, skb_functions, skb_tracepoints,
                                     tracepoint_returns)
from tests.btf_builder import BTFBuilder
from tests.conftest import IN_CI


def small_kernel() -> tuple[bytes, dict]:
    b = BTFBuilder()
    ids = {}
    u32 = ids["u32"] = b.int_("unsigned int", 4)
    u64 = b.int_("long long unsigned int", 8)
    # struct sk_buff { u64 next; union { u32 mark; u32 reserved_tailroom; }; u32 len; }
    union = b.struct("", 4, [("mark", u32, 0), ("reserved_tailroom", u32, 0)], union=True)
    bitfields = b.struct("", 4, [("flag_a", u32, (1 << 24) | 0), ("flag_b", u32, (3 << 24) | 1)],
                         kflag=True)
    skb = ids["sk_buff"] = b.struct("sk_buff", 24, [("next", u64, 0), ("", union, 64 * 2),
                                                    ("len", u32, 64 * 2 + 32),
                                                    ("", bitfields, 64 * 2 + 64)])
    skb_ptr = b.ptr(skb)
    const_skb_ptr = b.ptr(b.const(skb))
    skb_t = b.typedef("skb_t", skb)
    typedef_ptr = b.ptr(skb_t)
    other = b.struct("sock", 8, [("x", u64, 0)])
    other_ptr = b.ptr(other)
    ids["f1"] = b.func("dev_queue_xmit", b.proto(u32, [("skb", skb_ptr)]))
    ids["f2"] = b.func("ip_rcv", b.proto(u32, [("sk", other_ptr), ("skb", const_skb_ptr)]))
    b.func("via_typedef", b.proto(u32, [("a", u32), ("b", u32), ("skb", typedef_ptr)]))
    b.func("no_skb", b.proto(u32, [("sk", other_ptr)]))
    b.func("varargs", b.proto(u32, [("skb", skb_ptr), ("", 0)]))
    b.func("by_value", b.proto(u32, [("skb", skb_ptr), ("s", other)]))
    fwd_skb_ptr = b.ptr(b.fwd("sk_buff"))
    b.func("via_fwd", b.proto(0, [("skb", fwd_skb_ptr)]))
    void_ptr = b.ptr(0)
    tp_proto = b.proto(0, [("__data", void_ptr), ("sk", other_ptr), ("skb", skb_ptr)])
    b.typedef("btf_trace_tcp_probe", b.ptr(tp_proto))
    b.typedef("btf_trace_no_skb", b.ptr(b.proto(0, [("__data", void_ptr), ("x", u32)])))
    b.typedef("not_a_tracepoint", b.ptr(tp_proto))
    ids["enum"] = b.enum("skb_drop_reason", [("SKB_NOT_DROPPED_YET", 0), ("SKB_DROP_REASON_NO_SOCKET", 3)])
    return b.build(), ids


def test_parses_types_and_strings():
    data, ids = small_kernel()
    blob = K.BTF(data)
    assert blob.name(ids["u32"]) == "unsigned int"
    assert blob.kind(ids["sk_buff"]) == K.STRUCT
    assert blob.find(K.STRUCT, "sk_buff") == ids["sk_buff"]
    assert blob.find(K.STRUCT, "nope") == 0
    assert blob.size_of(ids["sk_buff"]) == 24


def test_members_flatten_anonymous_unions_and_bitfields():
    data, ids = small_kernel()
    members = K.BTF(data).members(ids["sk_buff"])
    assert members["mark"] == K.Member("mark", 128, 0, 4, ids["u32"])
    assert members["mark"].offset == 16
    assert members["reserved_tailroom"].offset == 16
    assert members["len"].offset == 20
    assert members["flag_b"] == K.Member("flag_b", 192 + 1, 3, 4, ids["u32"])
    check_skb_mark(K.BTF(data))
    header = layout_header(K.BTF(data))
    assert "#define IPFT_OFF_sk_buff_mark 16\n" in header
    assert "#define IPFT_OFF_sk_buff_reserved_tailroom 16\n" in header
    assert "#define IPFT_OFF_sk_buff_len 20\n" in header
    assert "IPFT_OFF_sk_buff_flag_b" not in header  # bitfields have no byte offset ...
    assert "#define IPFT_BITOFF_sk_buff_flag_b 193\n" in header  # ... but a bit offset
    assert "#define IPFT_SIZE_sk_buff 24\n" in header


def test_skb_functions_positions_and_exclusions():
    data, _ = small_kernel()
    found = {t.name: t.skb_pos for t in skb_functions([K.BTF(data)])}
    assert found == {"dev_queue_xmit": 1, "ip_rcv": 2, "via_typedef": 3, "via_fwd": 1}


def test_skb_tracepoints_index_skips_hidden_data_argument():
    data, _ = small_kernel()
    tps = skb_tracepoints([K.BTF(data)])
    assert [(t.name, t.skb_pos, t.kind) for t in tps] == [("tcp_probe", 1, "tracepoint")]


def test_member_path_through_embedded_structs():
    b = BTFBuilder()
    u32 = b.int_("unsigned int", 4)
    inner = b.struct("ns_common", 8, [("count", u32, 0), ("inum", u32, 32)])
    outer = b.struct("net", 16, [("x", u32, 0), ("ns", inner, 64)])
    blob = K.BTF(b.build())
    assert blob.member_path("net", "ns.inum").offset == 12
    with pytest.raises(K.BTFError, match="no member 'nope'"):
        blob.member_path("net", "ns.nope")
    with pytest.raises(K.BTFError, match="not inside a struct"):
        blob.member_path("net", "x.y")
    assert outer


def test_tracepoint_drop_reason_position():
    b = BTFBuilder()
    u32 = b.int_("unsigned int", 4)
    skb_ptr = b.ptr(b.struct("sk_buff", 4, [("mark", u32, 0)]))
    reason = b.enum("skb_drop_reason", [("SKB_DROP_REASON_NO_SOCKET", 3)])
    void_ptr = b.ptr(0)
    b.typedef("btf_trace_kfree_skb", b.ptr(b.proto(0, [("__data", void_ptr), ("skb", skb_ptr),
                                                      ("location", void_ptr), ("reason", reason)])))
    b.typedef("btf_trace_x_entry", b.ptr(b.proto(0, [("__data", void_ptr), ("skb", skb_ptr)])))
    b.typedef("btf_trace_x_exit", b.ptr(b.proto(0, [("__data", void_ptr), ("ret", u32)])))
    blob = K.BTF(b.build())
    tps = {t.name: t for t in skb_tracepoints([blob])}
    assert (tps["kfree_skb"].skb_pos, tps["kfree_skb"].reason_pos) == (0, 2)
    assert tps["x_entry"].reason_pos == -1
    assert tracepoint_returns([blob], list(tps.values())) == {"x_entry": "x_exit"}
    assert drop_reasons(blob) == {3: "NO_SOCKET"}


def test_enum_values():
    data, ids = small_kernel()
    assert K.BTF(data).enum_values(ids["enum"]) == {0: "SKB_NOT_DROPPED_YET",
                                                     3: "SKB_DROP_REASON_NO_SOCKET"}


def test_split_module_btf_on_top_of_base():
    base_data, ids = small_kernel()
    base = K.BTF(base_data)
    _, _, _, _, _, _, _, base_strlen = __import__("struct").unpack_from("<HBBIIIII", base_data)
    mod = BTFBuilder(base_types=base.last_id, base_strings=base_strlen)
    skb_ptr = mod.ptr(ids["sk_buff"])
    mod.func("veth_xmit", mod.proto(ids["u32"], [("skb", skb_ptr), ("dev", ids["u32"])]))
    module = K.BTF(mod.build(), base=base, name="veth")
    assert module.first_id == base.last_id + 1
    found = skb_functions([base, module])
    assert ("veth_xmit", 1, "veth") in {(t.name, t.skb_pos, t.module) for t in found}


@pytest.mark.parametrize("mangle, message", [
    (lambda d: d[:10], "too short"),
    (lambda d: b"\x00\x00" + d[2:], "bad BTF magic"),
    (lambda d: d[:40], "run past the end"),
])
def test_broken_blobs_raise_clear_errors(mangle, message):
    data, _ = small_kernel()
    with pytest.raises(K.BTFError, match=message):
        K.BTF(mangle(data))


def test_unknown_kind_is_an_error():
    b = BTFBuilder()
    b._add(31, "weird", 0, 0)
    with pytest.raises(K.BTFError, match="unknown BTF kind 31"):
        K.BTF(b.build())


@pytest.fixture
def kernel_btf():
    """The running kernel's BTF; missing in CI is a failure, never a skip. (How fast it is
    read is measured by scripts/bench.py, "btf_targets_s".)"""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        if IN_CI:
            pytest.fail("CI=true and this kernel has no BTF (/sys/kernel/btf/vmlinux)")
        pytest.skip("no kernel BTF")
    return load_kernel_btf()


def test_real_vmlinux_makes_sense(kernel_btf):
    blobs = kernel_btf
    functions = skb_functions(blobs)
    tracepoints = skb_tracepoints(blobs)
    names = {t.name: t for t in functions}
    assert len(functions) > 1000
    assert names["ip_rcv"].skb_pos == 1
    assert names["ip_local_deliver"].skb_pos == 1
    tps = {t.name: t.skb_pos for t in tracepoints}
    tps_full = {t.name: t for t in tracepoints}
    assert tps["kfree_skb"] == 0 and tps["net_dev_queue"] == 0
    assert tps["qdisc_enqueue"] == 2  # (qdisc, txq, skb)
    vmlinux = blobs[0]
    skb = vmlinux.find(K.STRUCT, "sk_buff")
    mark = vmlinux.members(skb)["mark"]
    assert 0 < mark.offset < vmlinux.size_of(skb)
    assert f"#define IPFT_OFF_sk_buff_mark {mark.offset}\n" in layout_header(vmlinux)
    assert vmlinux.member_path("net_device", "nd_net.net").byte_size == 8
    reasons = drop_reasons(vmlinux)
    assert reasons[0] == "NOT_DROPPED_YET" and "NO_SOCKET" in reasons.values()
    assert tps_full["kfree_skb"].reason_pos == 2  # (skb, location, reason, ...)
    assert tracepoint_returns(blobs, tracepoints)["netif_receive_skb_entry"] == "netif_receive_skb_exit"
