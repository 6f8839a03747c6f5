"""Which targets a backend tries (and -l prints), on hand-built BTF."""

import os
import struct

from ipft_tui.kernel import btf as K
from ipft_tui.kernel.targets import (Target, available_filter_functions, ftrace_max_args, function_targets,
                                     kprobe_blacklist, left_out_reason, list_order, skb_functions,
                                     skb_tracepoints)
from tests.btf_builder import BTFBuilder


def kernel_btf_files() -> tuple[bytes, bytes]:
    """vmlinux BTF and a split module BTF (veth) on top of it."""
    b = BTFBuilder()
    u32 = b.int_("unsigned int", 4)
    skb = b.struct("sk_buff", 4, [("mark", u32, 0)])
    skb_ptr, const_skb_ptr = b.ptr(skb), b.ptr(b.const(skb))
    reason = b.enum("skb_drop_reason", [("SKB_DROP_REASON_NO_SOCKET", 3)])
    void_ptr = b.ptr(0)

    def func(name, *params):
        b.func(name, b.proto(u32, [(f"a{i}", t) for i, t in enumerate(params)]))

    func("ip_rcv", skb_ptr)                             # plain
    func("tcp_v4_send_reset", u32, const_skb_ptr)      # const skb: kept
    func("far_skb", u32, u32, u32, u32, u32, skb_ptr)  # 6th argument: out of reach
    func("far_reason", skb_ptr, u32, u32, u32, u32, reason)  # traced, reason not read
    func("kfree_skb_reason", skb_ptr, reason)
    func("seven_args", skb_ptr, u32, u32, u32, u32, u32, u32)  # too many for old trampolines
    func("notrace_fn", skb_ptr)                         # not in available_filter_functions
    func("not_in_kallsyms", skb_ptr)
    for stub in ("__traceiter_kfree_skb", "__probestub_kfree_skb", "__bpf_trace_kfree_skb",
                 "perf_trace_kfree_skb", "trace_event_raw_event_kfree_skb"):
        func(stub, void_ptr, skb_ptr)                    # tracepoint machinery
    func("trace_tg", skb_ptr)                           # a real function despite its name
    b.typedef("btf_trace_kfree_skb", b.ptr(b.proto(0, [("__data", void_ptr), ("skb", skb_ptr)])))
    vmlinux = K.BTF(b.build())

    strings = struct.unpack_from("<HBBIIIII", b.build())[7]
    m = BTFBuilder(base_types=vmlinux.last_id, base_strings=strings)
    m.func("veth_xmit", m.proto(u32, [("skb", m.ptr(skb)), ("dev", u32)]))
    m.func("a_module_fn", m.proto(u32, [("x", u32), ("skb", m.ptr(skb))]))
    return b.build(), m.build()


FILES = kernel_btf_files()
BLOBS = [K.BTF(FILES[0])]
BLOBS.append(K.BTF(FILES[1], base=BLOBS[0], name="veth"))
FUNCTIONS = skb_functions(BLOBS)
ADDRESSES = {t.name: 0xFFFF0000 + i for i, t in enumerate(FUNCTIONS) if t.name != "not_in_kallsyms"}
AVAILABLE = {t.name for t in FUNCTIONS} - {"notrace_fn"}


def names(targets):
    return {t.name for t in targets}


def test_function_backends_try_what_they_can_attach():
    tried = function_targets(FUNCTIONS, ADDRESSES, AVAILABLE)
    assert names(tried) == {"ip_rcv", "tcp_v4_send_reset", "far_reason", "kfree_skb_reason",
                            "seven_args", "trace_tg", "veth_xmit", "a_module_fn"}
    by_name = {t.name: t for t in tried}
    assert by_name["far_reason"].reason_pos == -1  # argument 6 is out of the entry points' reach
    assert by_name["kfree_skb_reason"].reason_pos == 2
    assert by_name["veth_xmit"].module == "veth"


def test_without_available_filter_functions_nothing_is_filtered_by_it():
    tried = function_targets(FUNCTIONS, ADDRESSES, None)
    assert "notrace_fn" in names(tried) and "__traceiter_kfree_skb" not in names(tried)


def test_ftrace_tries_module_functions_and_every_argument_its_trampoline_saves():
    new = function_targets(FUNCTIONS, ADDRESSES, AVAILABLE, max_pos=12, max_args=12)
    assert names(new) == {"ip_rcv", "tcp_v4_send_reset", "far_skb", "far_reason", "kfree_skb_reason",
                          "seven_args", "trace_tg", "veth_xmit", "a_module_fn"}
    by_name = {t.name: t for t in new}
    far_drop = Target("far_drop", 1, reason_pos=6, nargs=6)
    assert function_targets([far_drop], {"far_drop": 1}, None, max_pos=12, max_args=12) == [far_drop]
    assert function_targets([far_drop], {"far_drop": 1}, None)[0].reason_pos == -1  # kprobe: out of reach
    # A module function attaches by its id in the module's split BTF (after vmlinux's ids).
    veth = BLOBS[1]
    assert by_name["veth_xmit"].btf_id == veth.find(K.FUNC, "veth_xmit") > BLOBS[0].last_id
    assert by_name["ip_rcv"].btf_id == BLOBS[0].find(K.FUNC, "ip_rcv")
    old = function_targets(FUNCTIONS, ADDRESSES, AVAILABLE, max_pos=6, max_args=6)
    assert names(old) == names(new) - {"seven_args"}


def test_left_out_says_why():
    def why(name, **limits):
        target = next(t for t in FUNCTIONS if t.name == name)
        return left_out_reason(target, ADDRESSES, AVAILABLE, **limits)

    assert why("ip_rcv") == ""
    assert why("far_skb") == "skb is argument 6; the entry points read arguments 1-5"
    assert why("seven_args", max_pos=6, max_args=6) == (
        "takes 7 arguments; this kernel's fentry trampoline takes at most 6 (x86-64: 12 from Linux 6.6)")
    assert why("notrace_fn").startswith("not hookable")
    assert why("not_in_kallsyms") == "not in /proc/kallsyms"
    assert why("__traceiter_kfree_skb").startswith("tracepoint machinery")


def test_ftrace_max_args_by_release():
    assert ftrace_max_args("6.1.0-56-amd64") == 6
    assert ftrace_max_args("6.4.16") == 6
    assert ftrace_max_args("6.5.13") == 6  # the 12-argument trampoline was merged for 6.6
    assert ftrace_max_args("6.6.0") == 12
    assert ftrace_max_args("6.12.117+deb12-amd64") == 12
    assert ftrace_max_args("7.0.1") == 12
    assert ftrace_max_args("garbage") == 6


def test_list_order_is_ipftrace2s_position_then_btf():
    tried = function_targets(FUNCTIONS, ADDRESSES, AVAILABLE)
    listed = [(t.name, t.skb_index) for t in sorted(tried, key=list_order)]
    assert listed == [("ip_rcv", 0), ("far_reason", 0), ("kfree_skb_reason", 0), ("seven_args", 0),
                      ("trace_tg", 0),
                      ("veth_xmit", 0), ("tcp_v4_send_reset", 1), ("a_module_fn", 1)]
    tp = skb_tracepoints(BLOBS)[0]
    assert (tp.name, tp.skb_index) == ("kfree_skb", 0)  # already the raw args index
    assert Target("x", 3).skb_index == 2


def test_available_filter_functions_file(tmp_path):
    path = tmp_path / "available_filter_functions"
    path.write_text("ip_rcv\nveth_xmit [veth]\n__pfx_x\n\n")
    assert available_filter_functions((str(tmp_path / "missing"), str(path))) == \
        {"ip_rcv", "veth_xmit", "__pfx_x"}
    assert available_filter_functions((str(tmp_path / "missing"),)) is None


def test_kprobe_blacklist_file(tmp_path):
    path = tmp_path / "blacklist"
    path.write_text("0xffffffff81001000-0xffffffff81001020\tdo_int3\n"
                    "0xffffffffc0001000-0xffffffffc0001010\tmod_fn [some_mod]\n")
    assert kprobe_blacklist(str(path)) == {"do_int3", "mod_fn"}
    assert kprobe_blacklist(str(tmp_path / "missing")) == set()


def test_kernel_backend_targets(tmp_path, monkeypatch):
    """What each backend tries on a kernel made of built BTF files, kallsyms and ftrace's
    list: the same call gives the run its candidates and -l its lines."""
    import ipft_tui.kernel as kernel_module

    (tmp_path / "vmlinux").write_bytes(FILES[0])
    (tmp_path / "veth").write_bytes(FILES[1])
    monkeypatch.setattr(kernel_module, "addresses", lambda names: {n: ADDRESSES.get(n, 0) or 0
                                                                   for n in names})
    monkeypatch.setattr(kernel_module, "available_filter_functions", lambda: set(AVAILABLE))
    monkeypatch.setattr(kernel_module, "kprobe_blacklist", lambda: {"trace_tg"})
    kernel = kernel_module.Kernel(str(tmp_path))
    monkeypatch.setattr(kernel_module.os, "uname", lambda: os.uname_result(("Linux", "h", "6.1.0", "", "")))
    common = {"ip_rcv", "tcp_v4_send_reset", "far_reason", "kfree_skb_reason"}
    for backend in ("kprobe", "kprobe-multi"):
        targets, found = kernel.backend_targets(backend)
        assert names(targets) == common | {"seven_args", "veth_xmit", "a_module_fn"}  # not trace_tg
        assert found["veth_xmit"] == ADDRESSES["veth_xmit"]
    # 6.1: modules too, <= 6 arguments, the skb anywhere among them
    assert names(kernel.backend_targets("ftrace")[0]) == common | {"trace_tg", "veth_xmit", "a_module_fn",
                                                                   "far_skb"}
    assert kernel.left_out("ftrace")["seven_args"].startswith("takes 7 arguments")
    assert "far_skb" in kernel.left_out("kprobe") and "far_skb" not in kernel.left_out("ftrace")
    monkeypatch.setattr(kernel_module.os, "uname", lambda: os.uname_result(("Linux", "h", "6.6.1", "", "")))
    assert "seven_args" in names(kernel.backend_targets("ftrace")[0])
    assert kernel.left_out("tracepoint") == {}
    tracepoints, found = kernel.backend_targets("tracepoint")
    assert names(tracepoints) == {"kfree_skb"} and set(found) == {"kfree_skb"}
