"""Modules written for ipftrace2 (#20.6): adapted so bcc compiles them unchanged with
the running kernel's offsets; compiled objects refused clearly; init/fini optional.
The real compile and real packets are in tests/test_ipftrace2_modules_real.py."""

import os
import textwrap

import pytest

from ipft_tui.errors import IpftError
from ipft_tui.extensions import load_extension
from ipft_tui.ipftrace2_modules import adapt
from ipft_tui.kernel import btf as K
from ipft_tui.kernel.btf_c import definition
from tests.btf_builder import BTFBuilder

# The C module of ipftrace2's Lua manual, plus a read through the full definition.
MANUAL_MODULE = """\
#include <stdint.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/*
 * CO-RE style kernel struct definition: struct sk_buff { int in_a_comment; };
 */
struct sk_buff {
  uint32_t mark;
};

struct example_info {
  uint32_t mark;
  uint32_t len;
};

__hidden int
module(void *ctx, struct sk_buff *skb, uint8_t data[64])
{
  struct example_info *info = (struct example_info *)data;
  uint32_t v = 0;

  info->mark = BPF_CORE_READ(skb, mark);
  bpf_probe_read_kernel(&v, sizeof(v), &skb->len);
  info->len = v;
  return 0;
}
"""


def small_vmlinux() -> K.BTF:
    b = BTFBuilder()
    u32 = b.int_("unsigned int", 4)
    u8 = b.int_("unsigned char", 1)
    dev = b.struct("net_device", 24, [("ifindex", u32, 128)])
    b.struct("sk_buff", 232, [("dev", b.ptr(dev), 16 * 8), ("len", u32, 112 * 8),
                              ("pkt_type", u8, 0), ("mark", u32, 168 * 8)])
    b.struct("example_info", 4, [("other", u32, 0)])  # a kernel name the user defines anew
    return K.BTF(b.build())


def test_manual_module_is_adapted_line_for_line():
    out = adapt(MANUAL_MODULE, small_vmlinux())
    lines, original = out.splitlines(), MANUAL_MODULE.splitlines()
    assert len(lines) == len(original)
    assert not any("#include" in line for line in lines)
    assert lines[9].strip() == ""  # the partial `uint32_t mark;` is gone
    # the user's own struct keeps its definition; the kernel's sk_buff comes first, in full
    assert lines[12].startswith("struct sk_buff { union {") and lines[12].endswith("struct example_info {")
    assert "__u8 __ipft_pad1[112]; __u32 len; }" in lines[12]
    assert "struct __ipft_k_net_device *dev;" in lines[12]
    assert lines[6] == original[6]  # comments stay as written
    for i in range(17, len(original)):  # the code itself is unchanged
        assert lines[i] == original[i]


def test_kernel_structs_the_code_names_are_renamed_and_defined():
    code = "int module(void *ctx, struct sk_buff *skb, u8 data[64])\n" \
           "{ struct net_device *dev = BPF_CORE_READ(skb, dev); return 0; }\n"
    out = adapt(code, small_vmlinux())
    assert "struct __ipft_k_net_device *dev = BPF_CORE_READ(skb, dev)" in out
    assert out.startswith("struct net_device") is False
    assert "struct __ipft_k_net_device { union {" in out and "struct sk_buff { union {" in out
    assert out.count("\n") == code.count("\n")


def test_partial_definition_with_unknown_member_is_the_users_own():
    code = "struct sk_buff { u32 not_in_the_kernel; };\nint module(void *c, struct sk_buff *s, u8 d[64]);\n"
    out = adapt(code, small_vmlinux())
    assert "not_in_the_kernel" in out and "union {" not in out


def test_without_btf_only_the_headers_go():
    out = adapt(MANUAL_MODULE, None)
    assert "#include" not in out and "struct sk_buff {\n  uint32_t mark;" in out


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="no kernel BTF")
def test_real_sk_buff_definition_places_members_at_their_offsets():
    vmlinux = K.load()
    text = definition(vmlinux, "sk_buff")
    members = vmlinux.members(vmlinux.find(K.STRUCT, "sk_buff"))
    for name in ("len", "mark", "head", "dev"):
        offset = members[name].offset
        assert ("__u8 __ipft_pad" in text and f"[{offset}]; " in text) or offset == 0
    assert f"__ipft_size_1[{vmlinux.size_of(vmlinux.find(K.STRUCT, 'sk_buff'))}]" in text


def script(tmp_path, text):
    path = tmp_path / "m.lua"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_emit_returning_an_elf_object_gets_a_clear_message(tmp_path):
    text = 'api_version = 1\nfunction emit() return "\\x7fELF\\x02\\x01\\x01\\0\\0\\xf7module" end\n' \
           "function dump(data) return {} end\n"
    with pytest.raises(IpftError, match=r"emit\(\) returned a compiled object \(ELF\).*return its C "
                                        r"source text"):
        load_extension(script(tmp_path, text))


def test_init_and_fini_are_optional(tmp_path):
    text = 'api_version = 1\nfunction emit() return "int module(void *c, struct sk_buff *s, u8 d[64]) ' \
           '{ return 0; }" end\nfunction dump(data) return { x = 1 } end\n'
    ext = load_extension(script(tmp_path, text))
    ext.init()
    ext.fini()
    assert ext.decode(bytes(64)) == {"x": 1}


def test_current_ipftrace2_names_program_and_decode(tmp_path):
    source = "int module(void *c, struct sk_buff *s, u8 d[64]) { return 0; }"
    text = f'api_version = 1\nprogram = "{source}"\nfunction decode(data) return {{ y = 2 }} end\n'
    ext = load_extension(script(tmp_path, text))
    assert source in ext.c_source and ext.decode(bytes(64)) == {"y": 2}
    elf = 'api_version = 1\nprogram = "\\x7fELF\\x02\\x01\\x01"\nfunction decode(d) return {} end\n'
    with pytest.raises(IpftError, match="compiled object"):
        load_extension(script(tmp_path, elf))
