/*
 * ipft-tui: the BPF side, compiled by bcc.
 *
 * Every probe calls ipft_sample() with the skb it saw. The skb's mark is read
 * at IPFT_SKB_MARK_OFFSET, which the loader takes from the running kernel's
 * BTF: the headers bcc compiles against may belong to another kernel.
 *
 * The loader appends the probe entry points (see ipft_tui/tracing/program.py)
 * and defines:
 *   IPFT_SKB_MARK_OFFSET  byte offset of sk_buff.mark
 *   IPFT_RINGBUF_PAGES    ring buffer size in pages (ring buffer mode)
 *   IPFT_PERF_BUFFER      use a perf buffer instead of the ring buffer
 */

struct ipft_config {
    u32 mark;
    u32 mask;
};

/* Keep in sync with EVENT_FORMAT in ipft_tui/tracing/program.py. */
struct ipft_event {
    u64 packet_id;     /* skb address */
    u64 timestamp;     /* bpf_ktime_get_ns() */
    u32 probe_id;      /* index into the loader's probe table */
    u32 processor_id;
    u8 is_return;
    u8 _pad[7];
};

BPF_ARRAY(config, struct ipft_config, 1);
/* Samples that matched but found no room in the buffer: never lost silently. */
BPF_PERCPU_ARRAY(lost, u64, 1);

#ifdef IPFT_PERF_BUFFER
BPF_PERF_OUTPUT(events);
#else
BPF_RINGBUF_OUTPUT(events, IPFT_RINGBUF_PAGES);
#endif

static __always_inline void ipft_count_lost(void)
{
    u32 zero = 0;
    u64 *count = lost.lookup(&zero);
    if (count)
        (*count)++;
}

static __always_inline int ipft_sample(void *ctx, void *skb, u32 probe_id, u8 is_return)
{
    u32 zero = 0, mark = 0;
    struct ipft_config *cfg = config.lookup(&zero);

    if (!cfg || !skb)
        return 0;
    if (bpf_probe_read_kernel(&mark, sizeof(mark), (char *)skb + IPFT_SKB_MARK_OFFSET))
        return 0;
    if ((mark & cfg->mask) != (cfg->mark & cfg->mask))
        return 0;

#ifdef IPFT_PERF_BUFFER
    struct ipft_event ev = {};
    ev.packet_id = (u64)skb;
    ev.timestamp = bpf_ktime_get_ns();
    ev.probe_id = probe_id;
    ev.processor_id = bpf_get_smp_processor_id();
    ev.is_return = is_return;
    if (events.perf_submit(ctx, &ev, sizeof(ev)))
        ipft_count_lost();
#else
    struct ipft_event *ev = events.ringbuf_reserve(sizeof(struct ipft_event));
    if (!ev) {
        ipft_count_lost();
        return 0;
    }
    ev->packet_id = (u64)skb;
    ev->timestamp = bpf_ktime_get_ns();
    ev->probe_id = probe_id;
    ev->processor_id = bpf_get_smp_processor_id();
    ev->is_return = is_return;
    /* No wakeup: the collector polls, which costs the traced traffic less. */
    events.ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
#endif
    return 0;
}
