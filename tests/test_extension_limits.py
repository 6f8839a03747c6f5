"""Lua scripts are bounded: a call that never returns is an error naming the script and
the function, and `require` finds only modules next to the script."""

import textwrap
import time

import pytest

from ipft_tui.errors import IpftError
from ipft_tui.extensions import load_extension

HEAD = """
api_version = 1
function init() end
function emit() return "int module(void *ctx, struct sk_buff *skb, u8 data[64]) { return 0; }" end
function fini() end
"""


def script(directory, body, name="s.lua"):
    path = directory / name
    path.write_text(HEAD + textwrap.dedent(body))
    return str(path)


@pytest.mark.parametrize("body, what", [
    ("function dump(data) return {} end\nwhile true do end", "loading the script"),
    ("function dump(data) while true do end end", "dump()"),
    # pcall cannot swallow the budget error
    ("function dump(data) while true do pcall(function() while true do end end) end end", "dump()"),
    # nor can a coroutine escape the hook
    ("function dump(data) coroutine.wrap(function() while true do end end)() end", "dump()"),
    ("function dump(data) local co = coroutine.create(function() while true do end end)\n"
     "  assert(coroutine.resume(co)) end", "dump()"),
    # nor can the script remove it
    ("function dump(data) debug.sethook() while true do end end", "dump()"),
])
def test_code_that_never_returns_is_stopped(tmp_path, body, what):
    started = time.monotonic()
    with pytest.raises(IpftError) as info:
        ext = load_extension(script(tmp_path, body))
        ext.decode(b"\0" * 64)
    assert time.monotonic() - started < 5
    message = str(info.value)
    if "sethook" in body:  # debug.sethook is gone: the script fails at once instead
        assert "attempt to call a nil value (field 'sethook')" in message
        return
    assert message.startswith(f"{tmp_path / 's.lua'}: {what} did not return within its budget")


def test_after_running_over_budget_dump_is_skipped_and_others_still_run(tmp_path):
    ext = load_extension(script(tmp_path, """
        n = 0
        function dump(data) n = n + 1; if n == 1 then while true do end end return {n = n} end
    """))
    with pytest.raises(IpftError, match="budget"):
        ext.decode(b"\0" * 64)
    assert ext.decode(b"\0" * 64) == {}  # said once; no second stall per batch
    ext.fini()


def test_a_busy_but_finite_dump_is_fine(tmp_path):
    ext = load_extension(script(tmp_path, """
        function dump(data) local s = 0 for i = 1, 1000000 do s = s + i end return {s = s} end
    """))
    for _ in range(3):
        assert ext.decode(b"\0" * 64) == {"s": 500000500000}


def test_require_finds_only_modules_next_to_the_script(tmp_path, monkeypatch):
    here, elsewhere = tmp_path / "scripts", tmp_path / "cwd"
    here.mkdir()
    elsewhere.mkdir()
    (here / "helper.lua").write_text("return { answer = 42 }\n")
    (elsewhere / "planted.lua").write_text("error('planted module ran')\n")
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("LUA_PATH", str(elsewhere / "?.lua"))
    monkeypatch.setenv("LUA_PATH_5_4", str(elsewhere / "?.lua"))
    ext = load_extension(script(here, """
        local helper = require("helper")
        function dump(data) return {answer = helper.answer} end
    """))
    assert ext.decode(b"\0" * 64) == {"answer": 42}
    with pytest.raises(IpftError) as info:
        load_extension(script(here, 'require("planted")\nfunction dump(d) return {} end',
                              name="t.lua"))
    assert "module 'planted' not found" in str(info.value)
    assert "planted module ran" not in str(info.value)
