"""A module written for ipftrace2 (libbpf headers, partial CO-RE structs, __hidden,
BPF_CORE_READ, bpf_probe_read_kernel of &skb->len) returned as source by emit():
compiled unchanged by bcc and read at the running kernel's offsets, on real marked
packets (#20.6). The Lua side has no init() or fini(), as ipftrace2 allows."""

import json
import time

import pytest


MARK = 0xE8
PORT = 7778
pytestmark = pytest.mark.root

MODULE = r"""
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* Only the members used: libbpf relocates them, ipft-tui defines them in full. */
struct sk_buff {
  __u32 mark;
  unsigned int len;
  struct net_device *dev;
} __attribute__((preserve_access_index));

struct net_device {
  int ifindex;
};

struct values {
  __u32 mark;
  __u32 len;
  __u32 len_read;
  __s32 ifindex;
};

__hidden int
module(void *ctx, struct sk_buff *skb, __u8 data[64])
{
  struct values *v = (struct values *)data;
  unsigned int len = 0;

  v->mark = BPF_CORE_READ(skb, mark);
  v->len = BPF_CORE_READ(skb, len);
  bpf_probe_read_kernel(&len, sizeof(len), &skb->len);
  v->len_read = len;
  v->ifindex = BPF_CORE_READ(skb, dev, ifindex);
  return 0;
}
"""

SCRIPT = """
api_version = 1
function emit()
  return [==[%s]==]
end
function dump(data)
  local mark, len, len_read, ifindex = string.unpack("=I4I4I4i4", data)
  return { mark = mark, len = len, len_read = len_read, ifindex = ifindex }
end
""" % MODULE


def ifindex(veth, ns, dev):
    return int(veth.exec(ns, "cat", f"/sys/class/net/{dev}/ifindex").stdout)


def test_ipftrace2_module_reads_the_running_kernels_offsets(veth, trace_process, tmp_path,
                                                            nothing_left_behind):
    script = tmp_path / "ipftrace2_style.lua"
    script.write_text(SCRIPT)
    veth.mark_incoming(MARK, "-p", "udp")
    tp = trace_process("-m", hex(MARK), "-o", "json", "-r", "net_dev_start_xmit|kfree_skb",
                       "-s", str(script))
    tp.wait_ready()
    payload = 300
    code = ("import socket, struct\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack('I', {MARK}))\n"
            f"s.sendto(b'x' * {payload}, ('{veth.b_addr}', {PORT}))\n")
    veth.exec(veth.ns_a, "python3", "-c", code)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "kfree_skb" not in tp.stdout:
        time.sleep(0.1)
    assert tp.stop() == 0, tp.stderr
    got = {s["function"]: s for s in map(json.loads, tp.stdout.splitlines())}
    sent, dropped = got["net_dev_start_xmit"], got["kfree_skb"]
    assert sent["mark"] == dropped["mark"] == str(MARK)  # script fields are strings in JSON
    assert sent["len"] == sent["len_read"] == str(payload + 8 + 20 + 14)
    assert dropped["len"] == dropped["len_read"] == str(payload + 8)  # at the UDP layer in B
    assert sent["ifindex"] == str(ifindex(veth, veth.ns_a, veth.dev_a))
    assert dropped["ifindex"] == str(ifindex(veth, veth.ns_b, veth.dev_b))
    assert "warning" not in tp.stderr.lower(), tp.stderr  # nor did the compile complain
