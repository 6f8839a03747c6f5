"""C definitions of the running kernel's struct layouts, generated from BTF.

BPF code (ours and users' extensions) reads kernel memory at these offsets with
bpf_probe_read_kernel(), so it is right for the running kernel whatever headers
bcc compiles against. For struct S with member m: IPFT_OFF_S_m (bytes from the
start of S; anonymous structs/unions flattened) and IPFT_SIZE_S_m; IPFT_SIZE_S; for a
bitfield IPFT_BITOFF_S_m (bits from the start of S).
"""

from __future__ import annotations

from . import btf as btfmod

STRUCTS = ("sk_buff", "skb_shared_info", "net_device", "sock_common", "sock", "iphdr",
           "ipv6hdr", "tcphdr", "udphdr", "icmphdr", "ethhdr", "net")
# Members of embedded structs that our own program needs (dotted paths).
PATHS = (("net_device", "nd_net.net"), ("net", "ns.inum"), ("sock_common", "skc_net.net"))

ACCESSORS = """
/* Read a member of a kernel struct at the running kernel's offset. */
#define IPFT_READ(dst, ptr, S, m) \\
    bpf_probe_read_kernel(&(dst), sizeof(dst), (char *)(ptr) + IPFT_OFF_##S##_##m)
/* For instance: u32 len = 0; IPFT_READ(len, skb, sk_buff, len); */
"""


def c_name(text: str) -> str:
    return text.replace(".", "_")


def layout_header(vmlinux: btfmod.BTF) -> str:
    lines = ["/* Generated from the running kernel's BTF by ipft_tui/kernel/layout.py */"]
    for struct in STRUCTS:
        type_id = vmlinux.find(btfmod.STRUCT, struct)
        if not type_id:
            continue
        lines.append(f"#define IPFT_SIZE_{struct} {vmlinux.size_of(type_id)}")
        for name, member in vmlinux.members(type_id).items():
            if member.bit_size or member.bit_offset % 8:
                # bitfields: no byte offset to read at; their bit offset (little-endian:
                # bit n is bit n % 8 of byte n / 8)
                lines.append(f"#define IPFT_BITOFF_{struct}_{name} {member.bit_offset}")
                continue
            lines.append(f"#define IPFT_OFF_{struct}_{name} {member.offset}")
            lines.append(f"#define IPFT_SIZE_{struct}_{name} {member.byte_size}")
    for struct, path in PATHS:
        try:
            member = vmlinux.member_path(struct, path)
        except btfmod.BTFError:
            continue
        lines.append(f"#define IPFT_OFF_{struct}_{c_name(path)} {member.offset}")
    return "\n".join(lines) + "\n" + ACCESSORS


def drop_reasons(vmlinux: btfmod.BTF) -> dict[int, str]:
    """skb_drop_reason values of the running kernel, named without the common prefix."""
    enum = vmlinux.find(btfmod.ENUM, "skb_drop_reason") or vmlinux.find(btfmod.ENUM64, "skb_drop_reason")
    if not enum:
        return {}
    return {value: name.removeprefix("SKB_DROP_REASON_").removeprefix("SKB_")
            for value, name in vmlinux.enum_values(enum).items()}
