"""The Lua host and the C extension decoder: every error case, no kernel needed."""

import struct
import textwrap

import pytest

from ipft_tui.errors import IpftError
from ipft_tui.extensions import CExtension, LuaExtension, load_extension, parse_event_struct
from ipft_tui.model import Sample

GOOD = """
api_version = 1
calls = {}
function init() calls[#calls + 1] = "init" end
function emit() return "int module(void *ctx, struct sk_buff *skb, u8 data[64]) { return 0; }" end
function dump(data)
  local len, code = string.unpack("=I4I2", data)
  return { len = len, code = code, name = "eth0" }
end
function fini() end
"""


def script(tmp_path, text, name="s.lua"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_a_good_script(tmp_path):
    ext = load_extension(script(tmp_path, GOOD))
    assert isinstance(ext, LuaExtension)
    assert "int module(" in ext.c_source
    ext.init()
    data = struct.pack("=IH", 1500, 7).ljust(64, b"\0")
    assert ext.decode(data) == {"code": 7, "len": 1500, "name": "eth0"}
    [decorated] = ext.decorate([Sample(1, 2, 0, "f", data=data)])
    assert decorated.fields == {"code": 7, "len": 1500, "name": "eth0"} and decorated.data is None
    ext.fini()


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("api_version = 1", "api_version = 2"), "api_version is 2; ipft-tui supports api_version = 1"),
    (GOOD.replace("api_version = 1", ""), "api_version is missing"),
    (GOOD.replace("function dump(data)", "function dump_(data)"), "function dump missing"),
    (GOOD.replace("function dump(data)", "function dump_(data)").replace("function emit()", "function e()"),
     "functions emit, dump missing"),
    (GOOD + "\nfunction (", r"Lua syntax error: .*s\.lua:\d+:"),
    (GOOD + "\nerror('boom at load')", r"Lua error in loading the script: .*boom at load"),
    (GOOD.replace('function emit() return "int module', 'function emit() return 42 end --'),
     r"emit\(\) must return C source"),
])
def test_script_errors_are_clear(tmp_path, text, message):
    with pytest.raises(IpftError, match=message):
        load_extension(script(tmp_path, text))


@pytest.mark.parametrize("body, message", [
    ("error('bad packet')", r"Lua error in dump\(\): .*s\.lua:\d+: bad packet"),
    ("return 5", r"dump\(\) must return a table, got number"),
    ("return { x = {} }", r"field 'x' is a table; only strings and numbers"),
    ("return { [1] = 'a' }", r"non-string key 1"),
])
def test_dump_errors_are_clear(tmp_path, body, message):
    text = GOOD.replace(
        '  local len, code = string.unpack("=I4I2", data)\n'
        '  return { len = len, code = code, name = "eth0" }', "  " + body)
    ext = load_extension(script(tmp_path, text))
    with pytest.raises(IpftError, match=message):
        ext.decode(bytes(64))


def test_runtime_error_in_init(tmp_path):
    ext = load_extension(script(tmp_path, GOOD.replace('calls[#calls + 1] = "init"', "nil_call()")))
    with pytest.raises(IpftError, match=r"Lua error in init\(\)"):
        ext.init()


def test_missing_file_and_unknown_kind(tmp_path):
    with pytest.raises(IpftError, match="cannot read script"):
        load_extension(str(tmp_path / "nope.lua"))
    with pytest.raises(IpftError, match=r"a Lua script \(\.lua\) or C file \(\.c\)"):
        load_extension(str(tmp_path / "x.py"))


C_EXT = """
/* comment with struct event { nonsense } */
struct event {
    char ifname[16];
    u32 ifindex;
    u8 proto;
    __be16 port;    // network order
    ipft_ipv4_t addr;
    ipft_ipv6_t addr6;
    u64 stamp;
    u8 raw[3];
};
int module(void *ctx, struct sk_buff *skb, u8 data[64]) { return 0; }
"""


def test_c_extension_struct_layout_and_decoding(tmp_path):
    ext = load_extension(script(tmp_path, C_EXT, "x.c"))
    assert isinstance(ext, CExtension)
    layout = [(name, offset) for name, _kind, offset, _fmt in ext.fields]
    # C alignment: u8 at 20, __be16 at 22, u32 at 24, 16 bytes at 28, u64 at 48
    assert layout == [("ifname", 0), ("ifindex", 16), ("proto", 20), ("port", 22), ("addr", 24),
                      ("addr6", 28), ("stamp", 48), ("raw", 56)]
    data = bytearray(64)
    data[0:4] = b"eth0"
    struct.pack_into("<I", data, 16, 3)
    data[20] = 17
    struct.pack_into(">H", data, 22, 443)
    data[24:28] = bytes([192, 0, 2, 1])
    data[28:44] = bytes.fromhex("20010db8000000000000000000000001")
    struct.pack_into("<Q", data, 48, 2**40)
    data[56:59] = b"\x01\x02\x03"
    assert ext.decode(bytes(data)) == {"ifname": "eth0", "ifindex": 3, "proto": 17, "port": 443,
                                       "addr": "192.0.2.1", "addr6": "2001:db8::1",
                                       "stamp": 2**40, "raw": "010203"}


@pytest.mark.parametrize("text, message", [
    ("int module(void *c, struct sk_buff *s, u8 d[64]) { return 0; }", "no `struct event"),
    ("struct event { float x; };\nint module() {}", "cannot decode 'float x'"),
    ("struct event { u64 a[9]; };\nint module() {}", "72 bytes; at most 64"),
    ("struct event { u32 a; };", r"no module\(\) function"),
])
def test_c_extension_errors(tmp_path, text, message):
    with pytest.raises(IpftError, match=message):
        load_extension(script(tmp_path, text, "x.c"))


def test_examples_load():
    for path in ("examples/gso.lua", "examples/tuple.lua"):
        assert "int module(" in load_extension(path).c_source
    assert [f[0] for f in parse_event_struct(open("examples/devname.c").read())] == [
        "ifname", "ifindex", "len"]
