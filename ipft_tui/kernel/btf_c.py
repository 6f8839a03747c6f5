"""C definitions of kernel structs generated from the running kernel's BTF, for
extension code that names them (`struct sk_buff *skb; ... &skb->len`).

bcc compiles against headers that may belong to another kernel (or lack the
type), so each definition places every member at the running kernel's offset
explicitly: a struct is an anonymous union of one packed struct per member,
each padded up to its member's offset, plus a byte array of the struct's size.
Members of anonymous structs and unions are reachable as in the kernel's own
definition; embedded structs are defined inline the same way. Generated types
are named `__ipft_k_<name>` (headers cannot clash with them), except sk_buff,
which the headers bcc uses never define and module()'s signature names.
"""

from __future__ import annotations

from . import btf as btfmod

PREFIX = "__ipft_k_"
MAX_DEPTH = 4  # embedded structs deeper than this become plain bytes


def tag(name: str) -> str:
    return name if name == "sk_buff" else PREFIX + name


def kernel_record(vmlinux: btfmod.BTF, name: str) -> int:
    """Type id of struct or union `name` in the kernel's BTF, or 0."""
    return vmlinux.find(btfmod.STRUCT, name) or vmlinux.find(btfmod.UNION, name)


def _int_type(vmlinux: btfmod.BTF, type_id: int) -> str:
    name = vmlinux.name(type_id)
    size = vmlinux.size_of(type_id)
    if name == "char":
        return "char"
    if size not in (1, 2, 4, 8):
        return ""  # __int128 and the like: bytes
    unsigned = "unsigned" in name or name == "_Bool"
    return f"__{'u' if unsigned else 's'}{size * 8}"


def declaration(vmlinux: btfmod.BTF, type_id: int, declarator: str, depth: int = 0) -> str:
    """`type declarator` in C for a BTF type (declarator: a name, `*name`, ...)."""
    t = vmlinux.strip(type_id)
    kind = vmlinux.kind(t) if t else 0
    size = vmlinux.size_of(t) if t else 0
    if not t:
        return f"void {declarator}"
    if kind == btfmod.INT:
        base = _int_type(vmlinux, t)
        return f"{base} {declarator}" if base else f"__u8 {declarator}[{size}]"
    if kind in (btfmod.ENUM, btfmod.ENUM64):
        return f"__u{size * 8} {declarator}" if size in (1, 2, 4, 8) else f"__u8 {declarator}[{size}]"
    if kind == btfmod.PTR:
        pointee = vmlinux.strip(vmlinux.ref(t))
        pkind = vmlinux.kind(pointee) if pointee else 0
        if pkind in (btfmod.STRUCT, btfmod.UNION, btfmod.FWD) and vmlinux.name(pointee):
            keyword = "union" if pkind == btfmod.UNION else "struct"
            return f"{keyword} {tag(vmlinux.name(pointee))} *{declarator}"
        if pkind in (btfmod.INT, btfmod.ENUM, btfmod.ENUM64, btfmod.PTR):
            return declaration(vmlinux, pointee, f"*{declarator}", depth)
        return f"void *{declarator}"  # functions, anonymous structs, arrays
    if kind == btfmod.ARRAY:
        element, _index, count = vmlinux._items_array(t)
        return declaration(vmlinux, element, f"{declarator}[{count}]", depth)
    if kind in (btfmod.STRUCT, btfmod.UNION) and depth < MAX_DEPTH:
        return f"struct {{ {_body(vmlinux, t, depth + 1)} }} {declarator}"
    return f"__u8 {declarator}[{size}]"  # deep structs, floats, anything else: its bytes


def _body(vmlinux: btfmod.BTF, type_id: int, depth: int) -> str:
    parts = []
    for i, member in enumerate(vmlinux.members(type_id).values()):
        byte, bit = divmod(member.bit_offset, 8)
        pad = f"__u8 __ipft_pad{i}[{byte}]; " if byte else ""
        if member.bit_size:
            base = "__u64" if member.bit_size > 32 else "__u32"
            bits = f"__u8 : {bit}; " if bit else ""
            field = f"{bits}{base} {member.name} : {member.bit_size};"
        elif bit:
            continue  # not a bitfield yet not at a byte: no such C member
        else:
            field = declaration(vmlinux, member.type_id, member.name, depth) + ";"
        parts.append(f"struct __attribute__((packed)) {{ {pad}{field} }};")
    parts.append(f"__u8 __ipft_size_{depth}[{vmlinux.size_of(type_id)}];")
    return f"union {{ {' '.join(parts)} }};"


def definition(vmlinux: btfmod.BTF, name: str) -> str:
    """One line: `struct <tag> { ... };` with the running kernel's layout of `name`."""
    type_id = kernel_record(vmlinux, name)
    if not type_id:
        raise btfmod.BTFError(f"struct {name} is not in the kernel's BTF")
    return f"struct {tag(name)} {{ {_body(vmlinux, type_id, 1)} }};"
