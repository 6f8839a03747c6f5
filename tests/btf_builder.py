"""Builds small BTF blobs by hand for the parser's unit tests."""

import struct

from ipft_tui.kernel import btf as K


class BTFBuilder:
    def __init__(self, base_types: int = 0, base_strings: int = 0):
        self.types: list[bytes] = []
        self.strings = bytearray(b"\0") if not base_strings else bytearray()
        self.base_types = base_types
        self.base_strings = base_strings

    def s(self, text: str) -> int:
        if not text:
            return 0
        off = self.base_strings + len(self.strings)
        self.strings += text.encode() + b"\0"
        return off

    def _add(self, kind: int, name: str, vlen: int, ref: int, extra: bytes = b"", kflag=False) -> int:
        info = (kind << 24) | vlen | (1 << 31 if kflag else 0)
        self.types.append(struct.pack("<III", self.s(name), info, ref) + extra)
        return self.base_types + len(self.types)

    def int_(self, name: str, size: int) -> int:
        return self._add(K.INT, name, 0, size, struct.pack("<I", size * 8))

    def ptr(self, target: int) -> int:
        return self._add(K.PTR, "", 0, target)

    def const(self, target: int) -> int:
        return self._add(K.CONST, "", 0, target)

    def typedef(self, name: str, target: int) -> int:
        return self._add(K.TYPEDEF, name, 0, target)

    def struct(self, name: str, size: int, members: list[tuple[str, int, int]], union=False,
               kflag=False) -> int:
        extra = b"".join(struct.pack("<III", self.s(n), t, off) for n, t, off in members)
        return self._add(K.UNION if union else K.STRUCT, name, len(members), size, extra, kflag)

    def fwd(self, name: str) -> int:
        return self._add(K.FWD, name, 0, 0)

    def proto(self, ret: int, params: list[tuple[str, int]]) -> int:
        extra = b"".join(struct.pack("<II", self.s(n), t) for n, t in params)
        return self._add(K.FUNC_PROTO, "", len(params), ret, extra)

    def func(self, name: str, proto: int) -> int:
        return self._add(K.FUNC, name, 1, proto)

    def enum(self, name: str, values: list[tuple[str, int]]) -> int:
        extra = b"".join(struct.pack("<Ii", self.s(n), v) for n, v in values)
        return self._add(K.ENUM, name, len(values), 4, extra)

    def build(self) -> bytes:
        types = b"".join(self.types)
        header = struct.pack("<HBBIIIII", K.BTF_MAGIC, 1, 0, 24, 0, len(types), len(types),
                             len(self.strings))
        return header + types + bytes(self.strings)
