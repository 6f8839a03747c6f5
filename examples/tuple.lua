-- IPv4/IPv6 5-tuple of every sample, read from the packet's headers.
-- Usage: ipft-tui -m 0xdeadbeef -o json -s examples/tuple.lua
api_version = 1

function init() end

function emit()
  return [[
struct tuple_event {
    u8 family;      /* 4 or 6, 0: not IP */
    u8 proto;
    u16 sport;      /* network order */
    u16 dport;
    u8 _pad[2];
    u8 saddr[16];
    u8 daddr[16];
};

int module(void *ctx, struct sk_buff *skb, u8 data[64])
{
    struct tuple_event *ev = (struct tuple_event *)data;
    unsigned char *head = NULL, *l4 = NULL;
    u16 nh = 0, th = 0;
    u8 first = 0;

    IPFT_READ(head, skb, sk_buff, head);
    IPFT_READ(nh, skb, sk_buff, network_header);
    IPFT_READ(th, skb, sk_buff, transport_header);
    if (!head || nh == 0xffff)
        return 0;
    bpf_probe_read_kernel(&first, 1, head + nh);
    if ((first >> 4) == 4) {
        ev->family = 4;
        bpf_probe_read_kernel(&ev->proto, 1, head + nh + 9);
        bpf_probe_read_kernel(ev->saddr, 4, head + nh + 12);
        bpf_probe_read_kernel(ev->daddr, 4, head + nh + 16);
        l4 = (th != 0xffff && th > nh) ? head + th : head + nh + (first & 0xf) * 4;
    } else if ((first >> 4) == 6) {
        ev->family = 6;
        bpf_probe_read_kernel(&ev->proto, 1, head + nh + 6);
        bpf_probe_read_kernel(ev->saddr, 16, head + nh + 8);
        bpf_probe_read_kernel(ev->daddr, 16, head + nh + 24);
        l4 = (th != 0xffff && th > nh) ? head + th : head + nh + 40;
    }
    if (l4 && (ev->proto == 6 || ev->proto == 17)) {
        bpf_probe_read_kernel(&ev->sport, 2, l4);
        bpf_probe_read_kernel(&ev->dport, 2, l4 + 2);
    }
    return 0;
}
]]
end

local function address(family, raw)
  if family == 4 then
    return string.format("%d.%d.%d.%d", raw:byte(1, 4))
  end
  local groups = {}
  for i = 1, 16, 2 do
    groups[#groups + 1] = string.format("%x", (raw:byte(i) << 8) | raw:byte(i + 1))
  end
  return table.concat(groups, ":")
end

function dump(data)
  local family, proto, sport, dport, saddr, daddr = string.unpack("=BB>I2>I2xxc16c16", data)
  if family == 0 then return {} end
  return { saddr = address(family, saddr), daddr = address(family, daddr),
           sport = sport, dport = dport, proto = proto }
end

function fini() end
