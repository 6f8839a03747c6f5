"""Extensions that add per-packet fields: Lua scripts (ipftrace2's API version 1)
and C extensions.

Both contribute BPF C code defining `int module(void *ctx, struct sk_buff *skb,
u8 data[64])`, compiled into the main program; the 64 bytes it fills travel with
each sample and are decoded into fields in the consumer (never in the collector
thread). Extension code reads kernel memory with IPFT_READ(dst, ptr, struct,
member), at offsets from the running kernel's BTF (see kernel/layout.py).
"""

from __future__ import annotations

import os
import re
import socket
import struct
from pathlib import Path

from .errors import IpftError
from .model import FieldValue, Sample

API_VERSION = 1
LUA_FUNCTIONS = ("emit", "dump")  # required; init() and fini() are optional, as in ipftrace2

# Each call into a script (its top level, init, emit, dump, fini) may run this many Lua
# instructions (a few tenths of a second): a script that never returns must not hold
# the trace, the TUI or Ctrl-C hostage.
CALL_BUDGET = 100_000_000
_HOOK_STEP = 10_000  # instructions between looks at the budget
_OVER_BUDGET = "ipft-tui: instruction budget exceeded"

# Runs before the script: a count hook that raises once a call's budget is spent
# (then at every instruction, so a pcall in the script cannot swallow it), set in
# coroutines the script makes too; the script cannot remove it (no debug.sethook),
# and `require` finds only Lua files next to the script.
_GUARD = """
local sethook, create, resume, pack, unpack = debug.sethook, coroutine.create, coroutine.resume,
                                              table.pack, table.unpack
local error, over_budget, step = error, ...
local used, limit = 0, 0
local function hook()
  used = used + step
  if used > limit then
    sethook(hook, "", 1)
    error(over_budget, 0)
  end
end
coroutine.create = function(f)
  local co = create(f)
  sethook(co, hook, "", step)
  return co
end
coroutine.wrap = function(f)
  local co = coroutine.create(f)
  return function(...)
    local r = pack(resume(co, ...))
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
  end
end
debug.sethook, debug.gethook = nil, nil
return sethook, hook, function(budget) used, limit = 0, budget end
"""


class Extension:
    """What the tracer needs from any extension."""

    path: str
    c_source: str

    def decode(self, data: bytes) -> dict[str, FieldValue]:
        raise NotImplementedError

    def init(self) -> None:
        pass

    def fini(self) -> None:
        pass

    def decorate(self, samples: list[Sample]) -> list[Sample]:
        """Samples with their raw data decoded into fields."""
        decode = self.decode
        return [s._replace(fields=decode(s.data), data=None) if s.data is not None else s
                for s in samples]


class LuaExtension(Extension):
    """A Lua script: api_version = 1, init(), emit() -> C source, dump(data) -> table, fini()."""

    def __init__(self, path: str):
        from lupa.lua54 import LuaError, LuaRuntime  # noqa: PLC0415

        self.path = path
        self._LuaError = LuaError
        try:
            source = Path(path).read_text()
        except OSError as exc:
            raise IpftError(f"cannot read script {path}: {exc.strerror}") from None
        self._lua = LuaRuntime(encoding=None, unpack_returned_tuples=True)
        self._sethook, self._hook, self._reset_budget = self._lua.execute(
            _GUARD, _OVER_BUDGET.encode(), _HOOK_STEP)
        package = self._lua.globals().package
        package.path = str(Path(path).resolve().parent / "?.lua").encode()
        package.cpath = b""  # no C modules: they would run outside any budget
        self.broken: str | None = None  # set once dump() ran over its budget
        loaded = self._lua.globals().load(source.encode(), f"@{path}".encode())
        if isinstance(loaded, tuple):  # (nil, message): it did not compile
            raise IpftError(f"Lua syntax error: {_text(loaded[1])}")
        chunk = loaded
        self._call(chunk, what="loading the script")
        g = self._lua.globals()
        version = g.api_version
        if version != API_VERSION:
            raise IpftError(f"{path}: api_version is {_text(version) if version is not None else 'missing'}; "
                            f"ipft-tui supports api_version = {API_VERSION}")
        _accept_ipftrace2_names(self._lua)
        missing = [name for name in LUA_FUNCTIONS if _lua_type(self._lua, getattr(g, name)) != "function"]
        if missing:
            raise IpftError(f"{path}: function{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)} missing (API version 1 needs "
                            f"{', '.join(LUA_FUNCTIONS)})")
        self._dump = g.dump
        source_text = self._call(g.emit, what="emit()")
        _check_not_compiled(path, source_text)
        if not isinstance(source_text, bytes) or b"module" not in source_text:
            raise IpftError(f"{path}: emit() must return C source text defining "
                            "int module(void *ctx, struct sk_buff *skb, u8 data[64])")
        self.c_source = adapt_module_source(source_text.decode())

    def _call(self, fn, *args, what: str):
        self._reset_budget(CALL_BUDGET)
        self._sethook(self._hook, b"", _HOOK_STEP)
        try:
            return fn(*args)
        except self._LuaError as exc:
            message = _text(exc.args[0] if exc.args else exc)
            if _OVER_BUDGET in message:
                raise IpftError(f"{self.path}: {what} did not return within its budget of "
                                f"{CALL_BUDGET:,} Lua instructions (an endless loop?)") from None
            raise IpftError(f"Lua error in {what}: {message}") from None
        finally:
            self._sethook()  # a C function: runs without tripping the hook

    def init(self) -> None:
        self._call_optional("init")

    def fini(self) -> None:
        self._call_optional("fini")

    def _call_optional(self, name: str) -> None:
        function = getattr(self._lua.globals(), name)
        if function is not None:
            self._call(function, what=f"{name}()")

    def decode(self, data: bytes) -> dict[str, FieldValue]:
        if self.broken is not None:
            return {}  # said once; a dump() that never returns would stall every batch
        try:
            table = self._call(self._dump, data, what="dump()")
        except IpftError as exc:
            if "within its budget" in str(exc):
                self.broken = str(exc)
            raise
        if _lua_type(self._lua, table) != "table":
            raise IpftError(f"{self.path}: dump() must return a table, got {_lua_type(self._lua, table)}")
        fields: dict[str, FieldValue] = {}
        for key, value in table.items():
            if not isinstance(key, bytes):
                raise IpftError(f"{self.path}: dump() returned a non-string key {key!r}")
            if isinstance(value, bytes):
                value = value.decode(errors="replace")
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            elif not isinstance(value, (int, float)) or isinstance(value, bool):
                raise IpftError(f"{self.path}: dump() field {key.decode()!r} is a "
                                f"{_lua_type(self._lua, value)}; only strings and numbers are allowed")
            fields[key.decode()] = value
        return dict(sorted(fields.items()))


def _lua_type(lua, value) -> str:
    return _text(lua.globals().type(value))


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# -- C extensions ----------------------------------------------------------------

# C types a C extension's `struct event` may use, as struct-module formats.
C_TYPES = {
    "u8": "B", "__u8": "B", "s8": "b", "__s8": "b", "char": "c",
    "u16": "H", "__u16": "H", "s16": "h", "__s16": "h",
    "u32": "I", "__u32": "I", "s32": "i", "__s32": "i", "int": "i", "unsigned int": "I",
    "u64": "Q", "__u64": "Q", "s64": "q", "__s64": "q",
    "__be16": ">H", "__be32": ">I",
    "ipft_ipv4_t": "4s", "ipft_ipv6_t": "16s",  # typedefs in bpf/ipft.bpf.c
}
_STRUCT_RE = re.compile(r"struct\s+event\s*\{(?P<body>[^}]*)\}\s*;", re.S)
_FIELD_RE = re.compile(r"^\s*(?P<type>unsigned int|[A-Za-z_][A-Za-z0-9_]*)\s+"
                       r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*(?P<count>\d+)\s*\])?\s*$")


class CExtension(Extension):
    """A C file with module() and a `struct event { ... };` that module() fills in `data`.

    Fields are decoded by name and type: integers as numbers, char[N] as text,
    ipft_ipv4_t / ipft_ipv6_t as addresses, other arrays as hex."""

    def __init__(self, path: str):
        self.path = path
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise IpftError(f"cannot read C extension {path}: {exc.strerror}") from None
        if not re.search(r"\bmodule\s*\(", text):
            raise IpftError(f"{path}: no module() function "
                            "(int module(void *ctx, struct sk_buff *skb, u8 data[64]))")
        self.fields = parse_event_struct(text, path)
        self.c_source = adapt_module_source(text)

    def decode(self, data: bytes) -> dict[str, FieldValue]:
        out: dict[str, FieldValue] = {}
        for name, kind, offset, fmt in self.fields:
            raw = struct.unpack_from(fmt, data, offset)[0]
            if kind == "text":
                out[name] = raw.split(b"\0", 1)[0].decode(errors="replace")
            elif kind == "ipv4":
                out[name] = socket.inet_ntop(socket.AF_INET, raw)
            elif kind == "ipv6":
                out[name] = socket.inet_ntop(socket.AF_INET6, raw)
            elif kind == "hex":
                out[name] = raw.hex()
            else:
                out[name] = raw
        return out


def parse_event_struct(text: str, path: str = "extension") -> list[tuple[str, str, int, str]]:
    """(name, kind, offset, struct format) per field of `struct event`, with C alignment."""
    found = _STRUCT_RE.search(re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S))
    if not found:
        raise IpftError(f"{path}: no `struct event {{ ... }};` declaring the fields module() fills")
    fields, offset = [], 0
    for declaration in found.group("body").split(";"):
        if not declaration.strip():
            continue
        m = _FIELD_RE.match(" ".join(declaration.split()))
        if not m or m.group("type") not in C_TYPES:
            raise IpftError(f"{path}: struct event: cannot decode {declaration.strip()!r} "
                            f"(types: {', '.join(sorted(C_TYPES))}, arrays of them)")
        ctype, name, count = m.group("type"), m.group("name"), m.group("count")
        fmt = C_TYPES[ctype]
        order = ">" if fmt.startswith(">") else "<"
        base = fmt.lstrip(">")
        size = struct.calcsize(base)
        align = 4 if base in ("4s",) else 1 if base.endswith("s") else size
        offset = (offset + align - 1) // align * align
        if ctype == "ipft_ipv4_t":
            kind, full = ("ipv4", "4s") if not count else ("hex", f"{4 * int(count)}s")
        elif ctype == "ipft_ipv6_t":
            kind, full = ("ipv6", "16s") if not count else ("hex", f"{16 * int(count)}s")
        elif count:
            kind = "text" if ctype == "char" else "hex"
            full = f"{size * int(count)}s"
        else:
            kind, full = ("text", "1s") if ctype == "char" else ("int", base)
        fields.append((name, kind, offset, order + full))
        offset += struct.calcsize(full)
    if offset > 64:
        raise IpftError(f"{path}: struct event is {offset} bytes; at most 64 travel with a sample")
    return fields


# -- C modules written for ipftrace2 -------------------------------------------------

def _check_not_compiled(path: str, emitted) -> None:
    """ipftrace2 scripts hand over a compiled BPF object; ipft-tui compiles the source."""
    if isinstance(emitted, bytes) and (emitted.startswith(b"\x7fELF") or b"\0" in emitted[:4096]):
        raise IpftError(f"{path}: emit() returned a compiled object (ELF), as ipftrace2's "
                        "scripts do; ipft-tui compiles the module itself: return its C source "
                        "text instead, e.g. `return io.open(\"module.bpf.c\"):read(\"a\")`")
    if isinstance(emitted, bytes):
        try:
            emitted.decode()
        except UnicodeDecodeError as exc:
            raise IpftError(f"{path}: emit() must return C source text (UTF-8); byte "
                            f"{exc.start} is not text") from None


def _accept_ipftrace2_names(lua) -> None:
    """ipftrace2's current scripts set a global `program` instead of emit() and
    name dump() `decode`: take them as such."""
    g = lua.globals()
    if _lua_type(lua, g.emit) != "function" and _lua_type(lua, g.program) == "string":
        g.emit = lua.eval("function() return program end")
    if _lua_type(lua, g.dump) != "function" and _lua_type(lua, g.decode) == "function":
        g.dump = g.decode


def adapt_module_source(source: str) -> str:
    """ipftrace2-style modules (libbpf headers, partial CO-RE structs, BPF_CORE_READ)
    made compilable by bcc with the running kernel's struct layouts."""
    from .ipftrace2_modules import adapt  # noqa: PLC0415
    from .kernel import btf as btfmod  # noqa: PLC0415

    try:
        vmlinux = btfmod.load(os.path.join(os.environ.get("IPFT_BTF_DIR", "/sys/kernel/btf"),
                                           "vmlinux"))
    except (OSError, btfmod.BTFError):
        vmlinux = None  # no BTF: the tracer says so when it starts; kernel structs stay undefined
    return adapt(source, vmlinux)


def load_extension(path: str) -> Extension:
    if path.endswith(".lua"):
        return LuaExtension(path)
    if path.endswith(".c"):
        return CExtension(path)
    raise IpftError(f"{path}: an extension is a Lua script (.lua) or C file (.c)")
