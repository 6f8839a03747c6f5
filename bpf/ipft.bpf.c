/*
 * ipft-tui: the BPF side, compiled by bcc.
 *
 * Every probe calls ipft_sample() with the skb it saw. Kernel memory is read at
 * offsets from the running kernel's BTF (IPFT_OFF_* in the generated layout
 * header the loader puts in front of this file): the headers bcc compiles
 * against may belong to another kernel.
 *
 * bpf/entry_points.h follows this file, then the loader's entry point lines
 * (ipft_tui/tracing/backends.py). The loader may define:
 *   IPFT_RINGBUF_PAGES    ring buffer size in pages (ring buffer mode)
 *   IPFT_PERF_BUFFER      use a perf buffer instead of the ring buffer
 *   IPFT_WITH_META        add device, namespace and packet headers to each event
 *   IPFT_MODULE           an extension's module() is compiled in; its 64 bytes travel along
 *   IPFT_CAPTURE_BYTES    copy that many of the packet's first bytes into each event
 *                         (IPFT_CAPTURE_ROOM: the same rounded up to 8, the array's size)
 *   IPFT_TRACK_SKB        follow a matched skb when its mark changes and into its clones
 *   IPFT_STACKS           kernel stack traces for the probes flagged in probe_flags
 *   IPFT_COUNT_ONLY       benchmark floor: count matching samples in a map, send nothing
 *   IPFT_NO_COOKIE        probes are told apart by a patched constant, not a BPF cookie
 */

#include <uapi/linux/ptrace.h>  /* struct pt_regs: the kprobe context (an arch ABI, stable) */

struct ipft_config {
    u32 mark;
    u32 mask;
    u32 graph;  /* function_graph: remember calls so their returns can be reported */
    u32 track;  /* IPFT_TRACK_SKB: follow matched skbs (the map code is compiled in) */
    /* Packet filters besides the mark (mask 0: no mark filter); IPFT_FILTER_* bits. */
    u32 filter;
    u32 netns;        /* IPFT_FILTER_NETNS: inode of the device's (or socket's) namespace */
    u64 ifname[2];    /* IPFT_FILTER_IFNAME: the device's name, NUL-padded */
};
#define IPFT_FILTER_EXPR   1u  /* the pcap-filter expression compiled in (ipft_expr_l2/l3) */
#define IPFT_FILTER_NETNS  2u
#define IPFT_FILTER_IFNAME 4u

/* struct ipft_meta and struct ipft_event, the IPFT_* constants shared with Python
 * (protocol numbers, map sizes, probe flags): generated from ipft_tui/tracing/event.py
 * in front of this file. */

/* Open calls of marked skbs, per CPU, thread and probe: the return probe cannot see
 * the skb, so it takes it from here. LRU: calls that never return do not pile up. */
struct ipft_call_key {
    u32 cpu;
    u32 tid;
    u32 probe_id;
};

struct ipft_call_stack {
    u64 skb[IPFT_MAX_NESTING];
    u64 journey[IPFT_MAX_NESTING];  /* the packet id the entry was reported under */
    u32 depth;
    u32 _pad;
};

BPF_ARRAY(config, struct ipft_config, 1);
/* [IPFT_LOST_SLOT] samples that matched but found no room: never lost silently;
 * [IPFT_RESCUED_SLOT] samples the main ring buffer refused and the rescue buffer took. */
BPF_PERCPU_ARRAY(lost, u64, 2);
BPF_TABLE("lru_hash", struct ipft_call_key, struct ipft_call_stack, calls, IPFT_MAX_CALLS);

#ifdef IPFT_PERF_BUFFER
BPF_PERF_OUTPUT(events);
/* The event is built here: too large for the BPF stack with an extension's data. */
BPF_PERCPU_ARRAY(scratch, struct ipft_event, 1);
#else
BPF_RINGBUF_OUTPUT(events, IPFT_RINGBUF_PAGES);
BPF_RINGBUF_OUTPUT(rescue, IPFT_RESCUE_PAGES);
#endif

#ifdef IPFT_MODULE
/* Types a C extension's struct event can use to have addresses shown as such. */
typedef u32 ipft_ipv4_t;
typedef struct { u8 bytes[16]; } ipft_ipv6_t;
/* What C modules written for ipftrace2 use of libbpf's headers (ipft_tui/ipftrace2_modules.py
 * drops those and defines the kernel structs they name at the running kernel's offsets,
 * so plain reads are right without CO-RE relocations). */
#ifndef __hidden
#define __hidden
#endif
#define bpf_core_read(dst, size, src) bpf_probe_read_kernel(dst, size, (const void *)(src))
#define __ipft_read(src, a) ({ typeof((src)->a) __ipft_v; \
    __builtin_memset(&__ipft_v, 0, sizeof(__ipft_v)); \
    bpf_probe_read_kernel(&__ipft_v, sizeof(__ipft_v), &(src)->a); __ipft_v; })
#define __ipft_read1(s, a) __ipft_read(s, a)
#define __ipft_read2(s, a, b) __ipft_read(__ipft_read(s, a), b)
#define __ipft_read3(s, a, b, c) __ipft_read(__ipft_read2(s, a, b), c)
#define __ipft_read4(s, a, b, c, d) __ipft_read(__ipft_read3(s, a, b, c), d)
#define __ipft_read5(s, a, b, c, d, e) __ipft_read(__ipft_read4(s, a, b, c, d), e)
#define __ipft_nargs(...) __ipft_nargs_(__VA_ARGS__, 5, 4, 3, 2, 1, 0)
#define __ipft_nargs_(_1, _2, _3, _4, _5, n, ...) n
#define __ipft_concat(a, b) __ipft_concat_(a, b)
#define __ipft_concat_(a, b) a##b
/* BPF_CORE_READ(skb, dev, ifindex): skb->dev->ifindex, every step read from the kernel */
#define BPF_CORE_READ(src, ...) \
    __ipft_concat(__ipft_read, __ipft_nargs(__VA_ARGS__))(src, __VA_ARGS__)
#define BPF_CORE_READ_INTO(dst, src, ...) ({ *(dst) = BPF_CORE_READ(src, __VA_ARGS__); 0; })
/* Members of the generated structs are packed: their addresses are read, not dereferenced. */
#pragma clang diagnostic ignored "-Waddress-of-packed-member"

/* The extension defines it after this file; this declaration makes it static and inlined. */
static __always_inline int module(void *ctx, struct sk_buff *skb, u8 data[64]);
#endif

static __always_inline void ipft_count(u32 slot)
{
    u64 *count = lost.lookup(&slot);
    if (count)
        (*count)++;
}

static __always_inline void ipft_count_lost(void)
{
    ipft_count(IPFT_LOST_SLOT);
}

#ifdef IPFT_WITH_META
static __always_inline void ipft_read_meta(void *skb, struct ipft_meta *m)
{
    void *dev = NULL, *net = NULL;
    unsigned char *head = NULL;
    u16 nh = 0, th = 0, proto = 0;
    unsigned char *l4 = NULL;

    bpf_probe_read_kernel(&m->len, 4, (char *)skb + IPFT_OFF_sk_buff_len);
    bpf_probe_read_kernel(&dev, 8, (char *)skb + IPFT_OFF_sk_buff_dev);
    if (dev) {
        bpf_probe_read_kernel(&m->ifindex, 4, (char *)dev + IPFT_OFF_net_device_ifindex);
        bpf_probe_read_kernel(&m->ifname, 16, (char *)dev + IPFT_OFF_net_device_name);
        bpf_probe_read_kernel(&net, 8, (char *)dev + IPFT_OFF_net_device_nd_net_net);
        if (net)
            bpf_probe_read_kernel(&m->netns, 4, (char *)net + IPFT_OFF_net_ns_inum);
    }
    bpf_probe_read_kernel(&head, 8, (char *)skb + IPFT_OFF_sk_buff_head);
    bpf_probe_read_kernel(&nh, 2, (char *)skb + IPFT_OFF_sk_buff_network_header);
    bpf_probe_read_kernel(&th, 2, (char *)skb + IPFT_OFF_sk_buff_transport_header);
    bpf_probe_read_kernel(&proto, 2, (char *)skb + IPFT_OFF_sk_buff_protocol);
    m->l3_proto = __builtin_bswap16(proto);
    if (!head || nh == IPFT_HEADER_UNSET)
        return;

    if (m->l3_proto == IPFT_ETH_P_IP) {
        u8 ip[20] = {};
        if (bpf_probe_read_kernel(ip, sizeof(ip), head + nh) || (ip[0] >> 4) != 4)
            return;
        m->l4_proto = ip[9];
        __builtin_memcpy(m->saddr, ip + 12, 4);
        __builtin_memcpy(m->daddr, ip + 16, 4);
        /* Before the IP layer has run, the transport header is not set yet. */
        l4 = (th != IPFT_HEADER_UNSET && th > nh) ? head + th : head + nh + (ip[0] & 0xf) * 4;
    } else if (m->l3_proto == IPFT_ETH_P_IPV6) {
        u8 ip6[40] = {};
        if (bpf_probe_read_kernel(ip6, sizeof(ip6), head + nh) || (ip6[0] >> 4) != 6)
            return;
        m->l4_proto = ip6[6];
        __builtin_memcpy(m->saddr, ip6 + 8, 16);
        __builtin_memcpy(m->daddr, ip6 + 24, 16);
        l4 = (th != IPFT_HEADER_UNSET && th > nh) ? head + th : head + nh + 40;
    } else {
        return;
    }
    if (m->l4_proto == IPFT_IPPROTO_TCP || m->l4_proto == IPFT_IPPROTO_UDP
        || m->l4_proto == IPFT_IPPROTO_SCTP) {
        u16 ports[2] = {};
        bpf_probe_read_kernel(ports, sizeof(ports), l4);
        m->sport = __builtin_bswap16(ports[0]);
        m->dport = __builtin_bswap16(ports[1]);
    } else if (m->l4_proto == IPFT_IPPROTO_ICMP || m->l4_proto == IPFT_IPPROTO_ICMPV6) {
        bpf_probe_read_kernel(&m->icmp_type, 1, l4);
    }
}
#endif

/* The filters a packet must pass to start a journey: its mark, and (ipft_tui/pcapfilter.py
 * and settings.py) a pcap-filter expression, a network namespace, a device name. */

/* ipft-cbpf-begin: tests/test_pcapfilter_real.py runs this part alone (BPF_PROG_TEST_RUN) */
/* size bytes (1, 2 or 4) at off, big-endian; -1 beyond the linear data. */
static __always_inline int ipft_cbpf_load(const unsigned char *pkt, u32 avail, u32 off,
                                          u32 size, u32 *val)
{
    u8 b[4] = {};

    if (off >= avail || size > avail - off)
        return -1;
    if (size == 4) {
        if (bpf_probe_read_kernel(b, 4, pkt + off))
            return -1;
        *val = ((u32)b[0] << 24) | ((u32)b[1] << 16) | ((u32)b[2] << 8) | b[3];
    } else if (size == 2) {
        if (bpf_probe_read_kernel(b, 2, pkt + off))
            return -1;
        *val = ((u32)b[0] << 8) | b[1];
    } else {
        if (bpf_probe_read_kernel(b, 1, pkt + off))
            return -1;
        *val = b[0];
    }
    return 0;
}

/* The expression's classic BPF programs, translated to C by ipft_tui/pcapfilter.py and
 * appended after this file: for Ethernet frames and for IP packets without an Ethernet
 * header. They return the program's return value (0: no match). */
static __always_inline u32 ipft_expr_l2(const unsigned char *pkt, u32 avail, u32 wirelen);
static __always_inline u32 ipft_expr_l3(const unsigned char *pkt, u32 avail, u32 wirelen);
/* ipft-cbpf-end */

/* The expression on the skb's bytes: from its Ethernet header when that is set, else
 * from its IP header; no match before the network header is set. */
static __always_inline int ipft_expr_matches(void *skb)
{
    unsigned char *head = NULL, *data = NULL;
    u16 mh = 0xffff, nh = 0xffff;
    u32 len = 0, tail = 0, start;
    int l2;

    bpf_probe_read_kernel(&head, 8, (char *)skb + IPFT_OFF_sk_buff_head);
    bpf_probe_read_kernel(&data, 8, (char *)skb + IPFT_OFF_sk_buff_data);
    bpf_probe_read_kernel(&mh, 2, (char *)skb + IPFT_OFF_sk_buff_mac_header);
    bpf_probe_read_kernel(&nh, 2, (char *)skb + IPFT_OFF_sk_buff_network_header);
    bpf_probe_read_kernel(&len, 4, (char *)skb + IPFT_OFF_sk_buff_len);
    /* skb->tail: an offset from head on 64-bit kernels, a pointer on 32-bit ones */
    bpf_probe_read_kernel(&tail, 4, (char *)skb + IPFT_OFF_sk_buff_tail);
    if (!head || !data || nh == 0xffff || nh == 0)
        return 0;
    l2 = mh != 0xffff && mh + 14 == nh;
    start = l2 ? mh : nh;
    if (tail <= start)
        return 0;
    u32 data_off = (u32)(data - head);
    u32 wirelen = len + (data_off > start ? data_off - start : 0);
    if (l2)
        return ipft_expr_l2(head + start, tail - start, wirelen) != 0;
    return ipft_expr_l3(head + start, tail - start, wirelen) != 0;
}

/* The namespace inode and name of the skb's device; without a device, the namespace
 * of its socket. */
static __always_inline int ipft_where_matches(struct ipft_config *cfg, void *skb)
{
    void *dev = NULL, *net = NULL;
    u32 inum = 0;
    u64 name[2] = {};

    bpf_probe_read_kernel(&dev, 8, (char *)skb + IPFT_OFF_sk_buff_dev);
    if (cfg->filter & IPFT_FILTER_IFNAME) {
        if (!dev || bpf_probe_read_kernel(name, 16, (char *)dev + IPFT_OFF_net_device_name)
            || name[0] != cfg->ifname[0] || name[1] != cfg->ifname[1])
            return 0;
    }
    if (cfg->filter & IPFT_FILTER_NETNS) {
        if (dev) {
            bpf_probe_read_kernel(&net, 8, (char *)dev + IPFT_OFF_net_device_nd_net_net);
        } else {
#ifdef IPFT_OFF_sock_common_skc_net_net
            void *sk = NULL;
            bpf_probe_read_kernel(&sk, 8, (char *)skb + IPFT_OFF_sk_buff_sk);
            if (sk)
                bpf_probe_read_kernel(&net, 8, (char *)sk + IPFT_OFF_sock_common_skc_net_net);
#endif
        }
        if (!net || bpf_probe_read_kernel(&inum, 4, (char *)net + IPFT_OFF_net_ns_inum)
            || inum != cfg->netns)
            return 0;
    }
    return 1;
}

#ifdef IPFT_CAPTURE_BYTES
/* skb->protocol up to skb->data: eight members read with one helper call where the kernel
 * keeps them next to each other (the kernels we test; checked when compiling), else one
 * by one. */
struct ipft_skb_span {
    u16 protocol, transport_header, network_header, mac_header;
    u32 tail, end;     /* offsets from head on 64-bit kernels */
    u64 head, data;
};

static __always_inline void ipft_read_span(void *skb, struct ipft_skb_span *h)
{
#if IPFT_OFF_sk_buff_transport_header == IPFT_OFF_sk_buff_protocol + 2 && \
    IPFT_OFF_sk_buff_network_header == IPFT_OFF_sk_buff_protocol + 4 && \
    IPFT_OFF_sk_buff_mac_header == IPFT_OFF_sk_buff_protocol + 6 && \
    IPFT_OFF_sk_buff_tail == IPFT_OFF_sk_buff_protocol + 8 && IPFT_SIZE_sk_buff_tail == 4 && \
    IPFT_OFF_sk_buff_end == IPFT_OFF_sk_buff_protocol + 12 && \
    IPFT_OFF_sk_buff_head == IPFT_OFF_sk_buff_protocol + 16 && \
    IPFT_OFF_sk_buff_data == IPFT_OFF_sk_buff_protocol + 24
    bpf_probe_read_kernel(h, sizeof(*h), (char *)skb + IPFT_OFF_sk_buff_protocol);
#else
    u64 tail = 0;
    bpf_probe_read_kernel(&h->mac_header, 2, (char *)skb + IPFT_OFF_sk_buff_mac_header);
    bpf_probe_read_kernel(&h->network_header, 2, (char *)skb + IPFT_OFF_sk_buff_network_header);
    bpf_probe_read_kernel(&tail, IPFT_SIZE_sk_buff_tail, (char *)skb + IPFT_OFF_sk_buff_tail);
    bpf_probe_read_kernel(&h->head, 8, (char *)skb + IPFT_OFF_sk_buff_head);
    bpf_probe_read_kernel(&h->data, 8, (char *)skb + IPFT_OFF_sk_buff_data);
    /* skb->tail is an offset from head on 64-bit kernels, a pointer on 32-bit ones */
    h->tail = IPFT_SIZE_sk_buff_tail == 8 ? tail - h->head : tail;
#endif
}

/* Copy the packet's first bytes: from the MAC header when one is set in front of the
 * network header (received frames, and sent ones once the device layer pushed it),
 * else from the network header; never past the linear data's tail. */
static __always_inline void ipft_capture(void *skb, struct ipft_capture *c)
{
    struct ipft_skb_span h = {.network_header = 0xffff, .mac_header = 0xffff};
    unsigned char *head, *data;
    u16 mac, nh;
    u64 tail, start, n;

    bpf_probe_read_kernel(&c->skb_len, 4, (char *)skb + IPFT_OFF_sk_buff_len);
    ipft_read_span(skb, &h);
    head = (unsigned char *)h.head;
    data = (unsigned char *)h.data;
    mac = h.mac_header;
    nh = h.network_header;
    tail = h.tail;
    if (!head)
        return;
    if (mac != 0xffff && mac < nh) {
        start = mac;
        c->from_mac = 1;
    } else if (nh != 0xffff) {
        start = nh;
    } else {
        return;
    }
    if (tail <= start)
        return;
    c->data_delta = (s16)((data - head) - (s64)start);
    n = tail - start;
    if (n > IPFT_CAPTURE_BYTES)
        n = IPFT_CAPTURE_BYTES;
    /* Keep clang from reading the unbounded value again: the verifier needs the bound. */
    asm volatile("" : "+r"(n));
    if (bpf_probe_read_kernel(c->bytes, n, head + start) == 0)
        c->captured = n;
}
#endif

/* Does this skb pass every filter given? Cheapest first. */
static __always_inline int ipft_mark_matches(struct ipft_config *cfg, void *skb)
{
    u32 mark = 0;

    if (!skb || bpf_probe_read_kernel(&mark, sizeof(mark), (char *)skb + IPFT_OFF_sk_buff_mark))
        return 0;
    if ((mark & cfg->mask) != (cfg->mark & cfg->mask))
        return 0;
    if ((cfg->filter & (IPFT_FILTER_NETNS | IPFT_FILTER_IFNAME)) && !ipft_where_matches(cfg, skb))
        return 0;
    return !(cfg->filter & IPFT_FILTER_EXPR) || ipft_expr_matches(skb);
}

static __always_inline void ipft_fill(struct ipft_event *ev, void *skb, u64 packet_id,
                                      u32 probe_id, u8 is_return, u32 reason, u32 flags)
{
    ev->packet_id = packet_id;
    ev->timestamp = bpf_ktime_get_ns();
    ev->probe_id = probe_id;
    ev->processor_id = bpf_get_smp_processor_id();
    ev->is_return = is_return;
    ev->drop_reason = reason;
#ifdef IPFT_TRACK_SKB
    ev->skb = (flags & IPFT_FOLLOWED) ? (u64)skb : 0;  /* 0: skb following is off */
    ev->journey_end = (flags & IPFT_JOURNEY_END) ? 1 : 0;
#endif
#ifdef IPFT_WITH_META
    ipft_read_meta(skb, &ev->meta);
#endif
#ifdef IPFT_CAPTURE_BYTES
    ipft_capture(skb, &ev->capture);
#endif
}

#if defined(IPFT_TRACK_SKB) || defined(IPFT_STACKS)
/* IPFT_PROBE_* bits per probe id */
BPF_ARRAY(probe_flags, u32, IPFT_MAX_PROBES);

static __always_inline u32 ipft_probe_flags(u32 probe_id)
{
    u32 *flags = probe_flags.lookup(&probe_id);
    return flags ? *flags : 0;
}
#else
static __always_inline u32 ipft_probe_flags(u32 probe_id) { return 0; }
#endif

#ifdef IPFT_STACKS
BPF_STACK_TRACE(stacks, IPFT_MAX_STACKS);

static __always_inline void ipft_stack(void *ctx, struct ipft_event *ev, u32 flags)
{
    if (!(flags & IPFT_PROBE_STACK))
        return;  /* stays 0: none asked for */
    int id = stacks.get_stackid(ctx, 0);
    ev->stack_id = id >= 0 ? id + 1 : id;  /* id + 1, or -errno */
}
#endif

#ifdef IPFT_TRACK_SKB
struct ipft_tracked {
    u64 packet_id;  /* the journey: the address of its first matched skb */
    u64 head;       /* the data buffer it had when last seen */
};
/* Followed skbs by address, and their data buffers: a clone shares its original's
 * buffer, so the first time a clone is seen its buffer names its journey. Entries
 * go when the kernel frees the skb (and the last reference to the buffer). */
BPF_TABLE("lru_hash", u64, struct ipft_tracked, tracked_skbs, IPFT_MAX_TRACKED);
BPF_TABLE("lru_hash", u64, u64, tracked_heads, IPFT_MAX_TRACKED);
/* Data buffers in use per journey: 1, plus one per copy (skb_copy_header). The
 * journey ends when the last is released. */
BPF_TABLE("lru_hash", u64, u32, journey_buffers, IPFT_MAX_TRACKED);

static __always_inline void ipft_buffer_added(u64 packet_id)
{
    u32 one = 1;
    u32 *count = journey_buffers.lookup(&packet_id);
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        journey_buffers.update(&packet_id, &one);
}

/* 1 when that was the journey's last buffer. */
static __always_inline int ipft_buffer_released(u64 packet_id)
{
    u32 *count = journey_buffers.lookup(&packet_id);
    if (count && *count > 1) {
        __sync_fetch_and_add(count, -1);
        return 0;
    }
    journey_buffers.delete(&packet_id);
    return 1;
}

/* Forget an skb being freed; 1 when its data buffer goes too, the journey's last. */
static __always_inline int ipft_untrack(void *skb, u64 addr, u64 head, u32 flags,
                                        u64 packet_id)
{
    u32 users = 0, dataref = 0;
    u64 end = 0;

    /* Free functions run before the last reference is dropped: another holder
     * keeps the skb alive. (At the free tracepoints users is already down to 1.) */
    bpf_probe_read_kernel(&users, 4, (char *)skb + IPFT_OFF_sk_buff_users);
    if (users > 1)
        return 0;
    tracked_skbs.delete(&addr);
    if (!(flags & IPFT_PROBE_FREES_DATA) || !head)
        return 0;
    bpf_probe_read_kernel(&end, IPFT_SIZE_sk_buff_end, (char *)skb + IPFT_OFF_sk_buff_end);
    /* skb->end is an offset from head on 64-bit kernels, a pointer on 32-bit ones */
    char *shinfo = IPFT_SIZE_sk_buff_end == 8 ? (char *)end : (char *)head + end;
    bpf_probe_read_kernel(&dataref, 4, shinfo + IPFT_OFF_skb_shared_info_dataref);
    if ((dataref & 0xffff) > 1)  /* the low half counts the skbs using the buffer */
        return 0;
    tracked_heads.delete(&head);
    return ipft_buffer_released(packet_id);
}

/* skb_clone() sets skb->cloned on the clone and its original: only then does an skb
 * share a followed data buffer. A fresh skb that got a buffer whose free was not
 * seen has it clear: it is another packet, and the buffer's old entry is stale (it
 * would join that packet once cloned, e.g. for a packet socket). */
static __always_inline int ipft_is_clone(void *skb)
{
#ifdef IPFT_BITOFF_sk_buff_cloned
    u8 byte = 0;
    bpf_probe_read_kernel(&byte, 1, (char *)skb + IPFT_BITOFF_sk_buff_cloned / 8);
    return (byte >> (IPFT_BITOFF_sk_buff_cloned % 8)) & 1;
#else
    return 1;  /* no bit offset in BTF: join by the buffer alone */
#endif
}

/* The journey of this skb, or 0 when it is not followed. A matched skb that is not
 * followed yet starts a journey (register: entry probes only; returns just look up).
 * Sets IPFT_JOURNEY_END in *flags when this free ends the journey. */
static __always_inline u64 ipft_track(struct ipft_config *cfg, void *skb, u32 *flags,
                                       int register_new)
{
    u64 addr = (u64)skb, head = 0;
    bpf_probe_read_kernel(&head, 8, (char *)skb + IPFT_OFF_sk_buff_head);
    struct ipft_tracked entry = {.packet_id = addr, .head = head};
    struct ipft_tracked *known = tracked_skbs.lookup(&addr);

    if (known) {
        entry.packet_id = known->packet_id;
        if (head && known->head != head) {  /* new buffer (pskb_expand_head): clones to come use it */
            known->head = head;
            tracked_heads.update(&head, &entry.packet_id);
        }
    } else {
        u64 *origin = (register_new && head) ? tracked_heads.lookup(&head) : NULL;
        if (origin && !ipft_is_clone(skb)) {  /* its own buffer: the one remembered is gone */
            tracked_heads.delete(&head);
            origin = NULL;
        }
        /* Only now (one call site: the verifier walks the filters once per site): the
         * filters cost more than the lookups. */
        if (!origin && !ipft_mark_matches(cfg, skb))
            return 0;
        if (!register_new)
            return addr;
        if (origin)
            entry.packet_id = *origin;
        tracked_skbs.update(&addr, &entry);
        if (!origin && head) {
            tracked_heads.update(&head, &addr);
            ipft_buffer_added(addr);
        }
    }
    if ((*flags & IPFT_PROBE_FREES_SKB) && ipft_untrack(skb, addr, head, *flags, entry.packet_id))
        *flags |= IPFT_JOURNEY_END;
    return entry.packet_id;
}

/* skb_copy_header(copy, original), called by skb_copy, pskb_copy and the like: a copy
 * (with data of its own) of a followed skb joins its journey. */
static __always_inline void ipft_copied(void *copy, void *original)
{
    u32 zero = 0;
    struct ipft_config *cfg = config.lookup(&zero);
    u64 addr = (u64)copy, orig = (u64)original, head = 0, packet_id;

    if (!cfg || !cfg->track || !addr || !orig)
        return;
    struct ipft_tracked *known = tracked_skbs.lookup(&orig);
    if (known) {
        packet_id = known->packet_id;
    } else {
        bpf_probe_read_kernel(&head, 8, (char *)original + IPFT_OFF_sk_buff_head);
        u64 *origin = head ? tracked_heads.lookup(&head) : NULL;
        if (!origin)
            return;
        packet_id = *origin;
    }
    head = 0;
    bpf_probe_read_kernel(&head, 8, (char *)copy + IPFT_OFF_sk_buff_head);
    struct ipft_tracked entry = {.packet_id = packet_id, .head = head};
    tracked_skbs.update(&addr, &entry);
    if (head) {
        tracked_heads.update(&head, &packet_id);
        ipft_buffer_added(packet_id);
    }
}

/* A silent probe: a free point the user did not select, attached while skbs are
 * followed. A followed skb freed here leaves the followed skbs, and nothing is
 * reported; else the next packet at its recycled address would continue its journey.
 * One lookup per free: the filters are not run (nothing is reported either way). */
static __always_inline void ipft_silent_free(struct ipft_config *cfg, void *skb, u32 flags)
{
    u64 addr = (u64)skb, head = 0;
    if (!cfg->track || !skb || !(flags & IPFT_PROBE_FREES_SKB))
        return;
    struct ipft_tracked *known = tracked_skbs.lookup(&addr);
    if (!known)
        return;
    u64 packet_id = known->packet_id;
    bpf_probe_read_kernel(&head, 8, (char *)skb + IPFT_OFF_sk_buff_head);
    ipft_untrack(skb, addr, head, flags, packet_id);
}
#else
static __always_inline void ipft_copied(void *copy, void *original) {}
static __always_inline void ipft_silent_free(struct ipft_config *cfg, void *skb, u32 flags) {}
#endif

/* The journey id to report this skb under, or 0 to report nothing. */
static __always_inline u64 ipft_journey(struct ipft_config *cfg, void *skb, u32 *flags,
                                        int register_new)
{
#ifdef IPFT_TRACK_SKB
    if (cfg->track && skb) {
        *flags |= IPFT_FOLLOWED;
        return ipft_track(cfg, skb, flags, register_new);
    }
#endif
    return ipft_mark_matches(cfg, skb) ? (u64)skb : 0;
}

#ifdef IPFT_COUNT_ONLY
BPF_PERCPU_ARRAY(matched, u64, 1);
#endif

static __always_inline void ipft_emit(void *ctx, void *skb, u64 packet_id, u32 probe_id,
                                      u8 is_return, u32 reason, u32 flags)
{
#ifdef IPFT_COUNT_ONLY
    u32 zero = 0;
    u64 *count = matched.lookup(&zero);
    if (count)
        (*count)++;
    return;
#endif
#ifdef IPFT_PERF_BUFFER
    u32 zero = 0;
    struct ipft_event *ev = scratch.lookup(&zero);
    if (!ev)
        return;
    __builtin_memset(ev, 0, sizeof(*ev));
    ipft_fill(ev, skb, packet_id, probe_id, is_return, reason, flags);
#ifdef IPFT_STACKS
    ipft_stack(ctx, ev, flags);
#endif
#ifdef IPFT_MODULE
    if (module(ctx, skb, ev->data))
        return;
#endif
    if (events.perf_submit(ctx, ev, sizeof(*ev)))
        ipft_count_lost();
#else
    struct ipft_event *ev = events.ringbuf_reserve(sizeof(struct ipft_event));
    if (!ev) {
        /* Reservations fail now and then with the buffer far from full (seen on
         * 6.18): the rescue buffer, with a lock of its own, takes the sample. */
        ev = rescue.ringbuf_reserve(sizeof(struct ipft_event));
        if (!ev) {
            ipft_count_lost();
            return;
        }
        ipft_count(IPFT_RESCUED_SLOT);  /* rescued: counted only once the rescue buffer took it */
    }
    __builtin_memset(ev, 0, sizeof(*ev));
    ipft_fill(ev, skb, packet_id, probe_id, is_return, reason, flags);
#ifdef IPFT_STACKS
    ipft_stack(ctx, ev, flags);
#endif
#ifdef IPFT_MODULE
    if (module(ctx, skb, ev->data)) {
        events.ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
        return;
    }
#endif
    /* No wakeup: the collector polls, which costs the traced traffic less. */
    events.ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
#endif
}

static __always_inline struct ipft_call_key ipft_call_key(u32 probe_id)
{
    struct ipft_call_key key = {};
    key.tid = (u32)bpf_get_current_pid_tgid();
    /* A task may sleep in a call and return on another CPU; but every CPU has an
     * idle task 0, whose softirqs must not mix. */
    key.cpu = key.tid ? 0 : bpf_get_smp_processor_id();
    key.probe_id = probe_id;
    return key;
}

static __always_inline void ipft_push_call(u32 probe_id, void *skb, u64 packet_id)
{
    struct ipft_call_key key = ipft_call_key(probe_id);
    struct ipft_call_stack fresh = {};
    struct ipft_call_stack *stack = calls.lookup_or_try_init(&key, &fresh);
    if (!stack)
        return;
    /* Constant indexes: the verifier cannot bound a computed one here. */
    switch (stack->depth) {
    case 0: stack->skb[0] = (u64)skb; stack->journey[0] = packet_id; break;
    case 1: stack->skb[1] = (u64)skb; stack->journey[1] = packet_id; break;
    case 2: stack->skb[2] = (u64)skb; stack->journey[2] = packet_id; break;
    case 3: stack->skb[3] = (u64)skb; stack->journey[3] = packet_id; break;
    default:
        /* Full: returns were missed (e.g. dropped kretprobe instances). Start over
         * rather than pairing later returns with stale skbs. */
        stack->skb[0] = (u64)skb;
        stack->journey[0] = packet_id;
        stack->depth = 1;
        return;
    }
    stack->depth += 1;
}

/* A probe saw an skb: report it when its mark matches (or its journey is followed). */
static __always_inline int ipft_sample(void *ctx, void *skb, u32 probe, u32 reason)
{
    u32 zero = 0;
    u32 probe_id = probe & ~IPFT_TRACK_CALL;
    struct ipft_config *cfg = config.lookup(&zero);

    if (!cfg)
        return 0;
    u32 flags = ipft_probe_flags(probe_id);
    if (flags & IPFT_PROBE_SILENT) {
        ipft_silent_free(cfg, skb, flags);
        if ((probe & IPFT_TRACK_CALL) && cfg->graph)
            ipft_push_call(probe_id, NULL, 0);  /* its return pairs with this entry */
        return 0;
    }
    u64 packet_id = ipft_journey(cfg, skb, &flags, 1);
    if (packet_id)
        ipft_emit(ctx, skb, packet_id, probe_id, 0, reason, flags);
    /* A return probe fires for every call, marked or not: every call is pushed
     * (NULL for unmarked skbs) so that nested calls pair with their own returns. */
    if ((probe & IPFT_TRACK_CALL) && cfg->graph)
        ipft_push_call(probe_id, packet_id ? skb : NULL, packet_id);
    return 0;
}

/* A call whose entry was reported returned: report the return with the same skb. */
static __always_inline int ipft_sample_return(void *ctx, u32 probe_id)
{
    struct ipft_call_key key = ipft_call_key(probe_id);
    struct ipft_call_stack *stack = calls.lookup(&key);
    if (!stack)
        return 0;
    u32 depth = stack->depth;
    if (depth == 0 || depth > IPFT_MAX_NESTING)
        return 0;
    depth -= 1;
    u64 skb, packet_id;
    switch (depth) {
    case 0: skb = stack->skb[0]; packet_id = stack->journey[0]; break;
    case 1: skb = stack->skb[1]; packet_id = stack->journey[1]; break;
    case 2: skb = stack->skb[2]; packet_id = stack->journey[2]; break;
    default: skb = stack->skb[3]; packet_id = stack->journey[3]; break;
    }
    stack->depth = depth;
    if (depth == 0)
        calls.delete(&key);
    if (!skb)  /* the call was for an unmarked skb */
        return 0;
    u32 zero = 0;
    struct ipft_config *cfg = config.lookup(&zero);
    ipft_emit(ctx, (void *)skb, packet_id, probe_id, 1, 0, cfg && cfg->track ? IPFT_FOLLOWED : 0);
    return 0;
}

/* fexit: paired with its entry through the call stack too, not by reading the skb
 * again: by the time a transmit function returns, its skb may be freed, reused or
 * re-marked, and a return whose entry was not reported must not be (a stray `}`). */
static __always_inline int ipft_sample_exit(void *ctx, void *skb, u32 probe_id)
{
    return ipft_sample_return(ctx, probe_id);
}
