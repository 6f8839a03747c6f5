/*
 * Device name and index, and packet length, of every sample: a C extension.
 * Usage: ipft-tui -m 0xdeadbeef -o aggregate -e examples/devname.c
 *
 * module() fills `struct event` in data; ipft-tui decodes its fields by name and
 * type (char[N] as text, integers as numbers, ipft_ipv4_t/ipft_ipv6_t as addresses).
 */

struct event {
    char ifname[16];
    u32 ifindex;
    u32 len;
};

int module(void *ctx, struct sk_buff *skb, u8 data[64])
{
    struct event *ev = (struct event *)data;
    void *dev = NULL;

    IPFT_READ(ev->len, skb, sk_buff, len);
    IPFT_READ(dev, skb, sk_buff, dev);
    if (dev) {
        IPFT_READ(ev->ifname, dev, net_device, name);
        IPFT_READ(ev->ifindex, dev, net_device, ifindex);
    }
    return 0;
}
