"""A Lua dump() that never returns, headless on real traffic: the trace ends with an
error naming the script and the function, everything detached; Ctrl-C is never needed."""

import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.root

SCRIPT = """
api_version = 1
function init() end
function emit() return "int module(void *ctx, struct sk_buff *skb, u8 data[64]) { return 0; }" end
function dump(data) while true do end end
function fini() end
"""


def test_endless_dump_ends_the_headless_trace(veth, nothing_left_behind, tmp_path):
    script = tmp_path / "endless.lua"
    script.write_text(SCRIPT)
    port = free_port()
    err = tmp_path / "stderr"
    proc = subprocess.Popen([sys.executable, "-m", "ipft_tui", "-m", "0x5eed", "-o", "json",
                             "-s", str(script), "--enable-probe-server",
                             "--probe-server-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=err.open("w"), cwd=REPO)
    try:
        deadline = time.monotonic() + 120

        while time.monotonic() < deadline:
            assert proc.poll() is None, err.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        veth.ping(count=2, mark=0x5EED, local=True)
        try:
            rc = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
                raise AssertionError("dump() held the trace until Ctrl-C")
            except subprocess.TimeoutExpired:
                raise AssertionError("dump() never returns and Ctrl-C does nothing") from None
        assert rc == 1
        assert (f"{script}: dump() did not return within its budget of 100,000,000 Lua "
                "instructions") in err.read_text()
        assert "Traceback" not in err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_compile_errors_do_not_echo_included_files(tmp_path, bpf_ready):
    secret = tmp_path / "secret"
    secret.write_text("int leaked = ; /* TOP-SECRET-BODY */\n")
    extension = tmp_path / "include.c"
    extension.write_text(f'#include "{secret}"\nstruct event {{ u32 len; }};\n'
                         "int module(void *ctx, struct sk_buff *skb, u8 data[64]) { return 0; }\n")
    proc = subprocess.run([sys.executable, "-m", "ipft_tui", "-m", "1", "-o", "json",
                           "-e", str(extension)], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert proc.returncode == 1
    assert "TOP-SECRET-BODY" not in proc.stderr + proc.stdout
    assert f"{secret}:1:14: error: expected expression" in proc.stderr  # clang's message stays
    assert "Traceback" not in proc.stderr
