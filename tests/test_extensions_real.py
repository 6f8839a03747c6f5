"""The example extensions on real marked packets: values checked against what was sent."""

import json
import re
import time

import pytest

from tests.conftest import REPO, ipft_bpf_objects_settled

MARK = 0xE7
PORT = 7777
pytestmark = pytest.mark.root


def send_from_fixed_port(veth, payload: int, sport: int = 40999):
    code = ("import socket, struct\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack('I', {MARK}))\n"
            f"s.bind(('0.0.0.0', {sport}))\n"
            f"s.sendto(b'x' * {payload}, ('{veth.b_addr}', {PORT}))\n")
    veth.exec(veth.ns_a, "python3", "-c", code)


def run_with(trace_process, veth, *args, payload=200):
    veth.mark_incoming(MARK, "-p", "udp")
    tp = trace_process("-m", hex(MARK), "-o", "json", "-r", "net_dev_start_xmit|kfree_skb", *args)
    tp.wait_ready()
    send_from_fixed_port(veth, payload)
    time.sleep(0.3)
    assert tp.stop() == 0, tp.stderr
    samples = [json.loads(line) for line in tp.stdout.splitlines()]
    by_function = {s["function"]: s for s in samples}
    assert set(by_function) == {"net_dev_start_xmit", "kfree_skb"}, samples
    return by_function


def test_gso_lua_reports_lengths(veth, trace_process, nothing_left_behind):
    got = run_with(trace_process, veth, "-s", str(REPO / "examples/gso.lua"), payload=200)
    sent = got["net_dev_start_xmit"]
    assert sent["len"] == str(200 + 8 + 20 + 14)  # script fields are strings in JSON
    assert (sent["gso_size"], sent["gso_segs"], sent["gso_type"]) == ("0", "0", "none")
    assert got["kfree_skb"]["len"] == str(200 + 8)  # freed in B at the UDP layer


def test_tuple_lua_reports_addresses_and_ports(veth, trace_process, nothing_left_behind):
    got = run_with(trace_process, veth, "-s", str(REPO / "examples/tuple.lua"))
    for sample in got.values():
        assert (sample["saddr"], sample["daddr"], sample["sport"], sample["dport"], sample["proto"]) \
            == (veth.a_addr, veth.b_addr, "40999", str(PORT), "17")


def test_devname_c_reports_devices(veth, trace_process, nothing_left_behind):
    got = run_with(trace_process, veth, "-e", str(REPO / "examples/devname.c"), payload=50)
    assert got["net_dev_start_xmit"]["ifname"] == veth.dev_a
    assert got["kfree_skb"]["ifname"] == veth.dev_b
    assert got["net_dev_start_xmit"]["len"] == str(50 + 8 + 20 + 14)


def test_aggregate_with_script(veth, trace_process, nothing_left_behind):
    veth.mark_incoming(MARK, "-p", "udp")
    tp = trace_process("-m", hex(MARK), "-o", "aggregate", "-r", "kfree_skb",
                       "-s", str(REPO / "examples/gso.lua"))
    tp.wait_ready()
    send_from_fixed_port(veth, 100)
    time.sleep(0.3)
    assert tp.stop() == 0
    line = [l for l in tp.stdout.splitlines() if "kfree_skb" in l][0]
    assert re.fullmatch(r"\d+ +\d{3} +kfree_skb \( gso_segs: 0 gso_size: 0 gso_type: none "
                        r"len: 108 drop_reason: NO_SOCKET \)", line), line


def test_c_compile_error_names_file_and_line(tmp_path, bpf_ready):
    bad = tmp_path / "bad.c"
    bad.write_text("struct event { u32 len; };\n"
                   "int module(void *ctx, struct sk_buff *skb, u8 data[64])\n"
                   "{\n    return no_such_thing;\n}\n")
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "ipft_tui", "-m", "1", "-o", "json", "-e", str(bad)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1
    assert f"{bad}:4:12: error: use of undeclared identifier 'no_such_thing'" in proc.stderr
    assert ipft_bpf_objects_settled() == []


def test_dump_error_stops_with_nothing_attached(tmp_path, veth, trace_process, nothing_left_behind):
    script = tmp_path / "broken.lua"
    script.write_text((REPO / "examples/gso.lua").read_text().replace(
        "function dump(data)", "function dump(data)\n  error('cannot decode')"))
    veth.mark_incoming(MARK, "-p", "udp")
    tp = trace_process("-m", hex(MARK), "-o", "json", "-s", str(script))
    tp.wait_ready()
    send_from_fixed_port(veth, 10)
    assert tp.proc.wait(30) == 1
    assert re.search(r"Lua error in dump\(\): .*broken\.lua:\d+: cannot decode", tp.stderr)
