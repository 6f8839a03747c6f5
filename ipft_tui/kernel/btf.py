"""A small reader for the kernel's BTF (BPF Type Format).

It reads `/sys/kernel/btf/vmlinux` (and split module BTF on top of it) and
answers the questions ipft-tui has: which functions and raw tracepoints take a
`struct sk_buff *`, and where the members of a struct sit in the running kernel.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

BTF_MAGIC = 0xEB9F

# BTF kinds (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19

# Bytes of kind-specific data after the 12-byte common header:
# (fixed bytes, bytes per vlen item)
_EXTRA = {
    INT: (4, 0), PTR: (0, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12),
    ENUM: (0, 8), FWD: (0, 0), TYPEDEF: (0, 0), VOLATILE: (0, 0), CONST: (0, 0),
    RESTRICT: (0, 0), FUNC: (0, 0), FUNC_PROTO: (0, 8), VAR: (4, 0),
    DATASEC: (0, 12), FLOAT: (0, 0), DECL_TAG: (4, 0), TYPE_TAG: (0, 0),
    ENUM64: (0, 12),
}
_MODIFIERS = (VOLATILE, CONST, RESTRICT, TYPEDEF, TYPE_TAG)


class BTFError(Exception):
    """The BTF data cannot be read."""


@dataclass(frozen=True)
class Member:
    name: str
    bit_offset: int
    bit_size: int  # 0 unless it is a bitfield
    byte_size: int  # size of the member's type
    type_id: int = 0

    @property
    def offset(self) -> int:
        return self.bit_offset // 8


class BTF:
    """Parsed BTF: one blob, optionally split on top of a base BTF (modules)."""

    def __init__(self, data: bytes, base: BTF | None = None, name: str = "vmlinux"):
        self.label = name
        self.base = base
        if len(data) < 24:
            raise BTFError(f"{name}: too short for a BTF header")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BTFError(f"{name}: bad BTF magic 0x{magic:x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        types_start = hdr_len + type_off
        strs_start = hdr_len + str_off
        if types_start + type_len > len(data) or strs_start + str_len > len(data):
            raise BTFError(f"{name}: sections run past the end of the data")
        self._data = data
        self._strs = data[strs_start:strs_start + str_len]
        self._str_base = base._str_base + len(base._strs) if base else 0
        self.first_id = base.last_id + 1 if base else 1
        # Per type (index = id - first_id): kind, name_off, info, size_or_type, data offset.
        self._kind: list[int] = []
        self._name_off: list[int] = []
        self._vlen: list[int] = []
        self._kflag: list[bool] = []
        self._ref: list[int] = []
        self._extra_at: list[int] = []
        pos, end = types_start, types_start + type_len
        unpack = struct.Struct("<III").unpack_from
        kinds, names, vlens, kflags, refs, extras = (
            self._kind, self._name_off, self._vlen, self._kflag, self._ref, self._extra_at)
        try:
            while pos < end:
                name_off, info, ref = unpack(data, pos)
                kind = (info >> 24) & 0x1F
                vlen = info & 0xFFFF
                fixed, per_item = _EXTRA[kind]
                kinds.append(kind)
                names.append(name_off)
                vlens.append(vlen)
                kflags.append(bool(info >> 31))
                refs.append(ref)
                extras.append(pos + 12)
                pos += 12 + fixed + per_item * vlen
        except KeyError as exc:
            raise BTFError(f"{name}: unknown BTF kind {exc.args[0]} at offset {pos}") from None
        except struct.error:
            raise BTFError(f"{name}: truncated type section") from None
        self.last_id = self.first_id + len(kinds) - 1

    # -- raw access ---------------------------------------------------------

    def _owner(self, type_id: int) -> BTF:
        btf = self
        while type_id < btf.first_id:
            if btf.base is None:
                raise BTFError(f"type id {type_id} is not in {self.label}")
            btf = btf.base
        if type_id > btf.last_id:
            raise BTFError(f"type id {type_id} is not in {self.label}")
        return btf

    def string(self, offset: int) -> str:
        btf = self
        while offset < btf._str_base:
            btf = btf.base
        local = offset - btf._str_base
        end = btf._strs.index(b"\0", local)
        return btf._strs[local:end].decode()

    def kind(self, type_id: int) -> int:
        if type_id == 0:
            return 0
        btf = self._owner(type_id)
        return btf._kind[type_id - btf.first_id]

    def name(self, type_id: int) -> str:
        if type_id == 0:
            return "void"
        btf = self._owner(type_id)
        return self.string(btf._name_off[type_id - btf.first_id])

    def ref(self, type_id: int) -> int:
        btf = self._owner(type_id)
        return btf._ref[type_id - btf.first_id]

    def _items(self, type_id: int, fmt: str) -> list[tuple]:
        btf = self._owner(type_id)
        i = type_id - btf.first_id
        fixed, per_item = _EXTRA[btf._kind[i]]
        start = btf._extra_at[i] + fixed
        item = struct.Struct(fmt)
        return [item.unpack_from(btf._data, start + n * per_item) for n in range(btf._vlen[i])]

    def own_ids(self) -> range:
        """Type ids defined in this blob (not its base)."""
        return range(self.first_id, self.last_id + 1)

    # -- type questions -------------------------------------------------------

    def strip(self, type_id: int) -> int:
        """Follow typedefs and const/volatile/restrict/type-tag wrappers."""
        while type_id and self.kind(type_id) in _MODIFIERS:
            type_id = self.ref(type_id)
        return type_id

    def is_struct_pointer(self, type_id: int, struct_name: str) -> bool:
        type_id = self.strip(type_id)
        if self.kind(type_id) != PTR:
            return False
        target = self.strip(self.ref(type_id))
        return self.kind(target) in (STRUCT, FWD) and self.name(target) == struct_name

    def params(self, proto_id: int) -> list[tuple[str, int]]:
        """(name, type id) of a FUNC_PROTO's parameters; varargs end with type 0."""
        return [(self.string(n), t) for n, t in self._items(proto_id, "<II")]

    def size_of(self, type_id: int) -> int:
        type_id = self.strip(type_id)
        kind = self.kind(type_id)
        if kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return self.ref(type_id)
        if kind == PTR:
            return 8
        if kind == ARRAY:
            elem, _index, count = self._items_array(type_id)
            return self.size_of(elem) * count
        return 0

    def _items_array(self, type_id: int) -> tuple[int, int, int]:
        btf = self._owner(type_id)
        return struct.unpack_from("<III", btf._data, btf._extra_at[type_id - btf.first_id])

    def find(self, kind: int, name: str) -> int:
        """Id of the first type of that kind and name, searching base first."""
        if self.base:
            found = self.base.find(kind, name)
            if found:
                return found
        for i, k in enumerate(self._kind):
            if k == kind and self.string(self._name_off[i]) == name:
                return self.first_id + i
        return 0

    def members(self, struct_id: int) -> dict[str, Member]:
        """All members by name, anonymous structs/unions flattened, offsets from the start."""
        found: dict[str, Member] = {}
        self._collect_members(self.strip(struct_id), 0, found)
        return found

    def _collect_members(self, type_id: int, base_bits: int, out: dict[str, Member]) -> None:
        kflag = self._kflag_of(type_id)
        for name_off, member_type, offset in self._items(type_id, "<III"):
            bit_offset, bit_size = offset, 0
            if kflag:
                bit_offset, bit_size = offset & 0xFFFFFF, offset >> 24
            name = self.string(name_off)
            inner = self.strip(member_type)
            if not name and self.kind(inner) in (STRUCT, UNION):
                self._collect_members(inner, base_bits + bit_offset, out)
            elif name and name not in out:
                out[name] = Member(name, base_bits + bit_offset, bit_size, self.size_of(inner), inner)

    def member_path(self, struct_name: str, path: str) -> Member:
        """The member at `a.b.c` inside struct `struct_name` (embedded structs only,
        no pointers), with its offset from the start of the outer struct."""
        type_id = self.find(STRUCT, struct_name) or self.find(UNION, struct_name)
        if not type_id:
            raise BTFError(f"struct {struct_name} is not in the kernel's BTF")
        bits = 0
        member = None
        for part in path.split("."):
            if member is not None:
                type_id = member.type_id
            if self.kind(type_id) not in (STRUCT, UNION):
                raise BTFError(f"{struct_name}.{path}: {part!r} is not inside a struct")
            member = self.members(type_id).get(part)
            if member is None:
                raise BTFError(f"{struct_name}.{path}: no member {part!r} in this kernel")
            bits += member.bit_offset
        return Member(path, bits, member.bit_size, member.byte_size, member.type_id)

    def _kflag_of(self, type_id: int) -> bool:
        btf = self._owner(type_id)
        return btf._kflag[type_id - btf.first_id]

    def enum_values(self, enum_id: int) -> dict[int, str]:
        kind = self.kind(enum_id)
        if kind == ENUM:
            signed = self._kflag_of(enum_id)
            fmt = "<Ii" if signed else "<II"
            return {v: self.string(n) for n, v in self._items(enum_id, fmt)}
        if kind == ENUM64:
            return {lo | (hi << 32): self.string(n)
                    for n, lo, hi in self._items(enum_id, "<III")}
        raise BTFError(f"type {enum_id} is not an enum")


def load(path: str = "/sys/kernel/btf/vmlinux", base: BTF | None = None, name: str | None = None) -> BTF:
    with open(path, "rb") as f:
        data = f.read()
    return BTF(data, base=base, name=name or path.rsplit("/", 1)[-1])
