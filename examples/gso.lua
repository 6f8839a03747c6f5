-- Packet length and GSO fields of every sample (like ipftrace2's gso example).
-- Usage: ipft-tui -m 0xdeadbeef -o aggregate -s examples/gso.lua
api_version = 1

function init() end

-- The BPF side: C compiled with the main program. IPFT_READ reads a member of a
-- kernel struct at the running kernel's offset (from BTF).
function emit()
  return [[
struct gso_event {
    u32 len;
    u16 gso_size;
    u16 gso_segs;
    u32 gso_type;
};

int module(void *ctx, struct sk_buff *skb, u8 data[64])
{
    struct gso_event *ev = (struct gso_event *)data;
    unsigned char *head = NULL;
    u32 end = 0;  /* sk_buff_data_t: an offset from head on 64-bit kernels */

    IPFT_READ(ev->len, skb, sk_buff, len);
    IPFT_READ(head, skb, sk_buff, head);
    IPFT_READ(end, skb, sk_buff, end);
    if (head) {
        void *shinfo = head + end;  /* skb_shinfo(skb) */
        IPFT_READ(ev->gso_size, shinfo, skb_shared_info, gso_size);
        IPFT_READ(ev->gso_segs, shinfo, skb_shared_info, gso_segs);
        IPFT_READ(ev->gso_type, shinfo, skb_shared_info, gso_type);
    }
    return 0;
}
]]
end

local gso_types = { [1] = "tcpv4", [2] = "dodgy", [4] = "tcp_ecn", [16] = "tcpv6",
                    [32] = "fcoe", [64] = "gre", [256] = "ipxip4", [1024] = "udp_tunnel",
                    [65536] = "udp_l4" }

function dump(data)
  local len, gso_size, gso_segs, gso_type = string.unpack("=I4I2I2I4", data)
  local names = {}
  for bit, name in pairs(gso_types) do
    if gso_type & bit ~= 0 then names[#names + 1] = name end
  end
  table.sort(names)
  return { len = len, gso_size = gso_size, gso_segs = gso_segs,
           gso_type = #names > 0 and table.concat(names, "|") or "none" }
end

function fini() end
