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
    u32 graph;  /* function_graph: remember calls so their returns can be reported */
    u32 _pad;
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

/* A probe id with this bit set: the probe is a call entry whose return is traced too. */
#define IPFT_TRACK_CALL (1u << 31)
#define IPFT_MAX_NESTING 4

/* Open calls of marked skbs, per CPU, thread and probe: the return probe cannot see
 * the skb, so it takes it from here. LRU: calls that never return do not pile up. */
struct ipft_call_key {
    u32 cpu;
    u32 tid;
    u32 probe_id;
};

struct ipft_call_stack {
    u64 skb[IPFT_MAX_NESTING];
    u32 depth;
    u32 _pad;
};

BPF_ARRAY(config, struct ipft_config, 1);
/* Samples that matched but found no room in the buffer: never lost silently. */
BPF_PERCPU_ARRAY(lost, u64, 1);
BPF_TABLE("lru_hash", struct ipft_call_key, struct ipft_call_stack, calls, 8192);

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

static __always_inline void ipft_emit(void *ctx, void *skb, u32 probe_id, u8 is_return)
{
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
        return;
    }
    ev->packet_id = (u64)skb;
    ev->timestamp = bpf_ktime_get_ns();
    ev->probe_id = probe_id;
    ev->processor_id = bpf_get_smp_processor_id();
    ev->is_return = is_return;
    /* No wakeup: the collector polls, which costs the traced traffic less. */
    events.ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
#endif
}

static __always_inline struct ipft_call_key ipft_call_key(u32 probe_id)
{
    struct ipft_call_key key = {};
    key.cpu = bpf_get_smp_processor_id();
    key.tid = (u32)bpf_get_current_pid_tgid();
    key.probe_id = probe_id;
    return key;
}

static __always_inline void ipft_push_call(u32 probe_id, void *skb)
{
    struct ipft_call_key key = ipft_call_key(probe_id);
    struct ipft_call_stack fresh = {};
    struct ipft_call_stack *stack = calls.lookup_or_try_init(&key, &fresh);
    if (!stack)
        return;
    switch (stack->depth) {
    case 0: stack->skb[0] = (u64)skb; break;
    case 1: stack->skb[1] = (u64)skb; break;
    case 2: stack->skb[2] = (u64)skb; break;
    case 3: stack->skb[3] = (u64)skb; break;
    default: return;  /* deeper nesting: that return will show as unmatched */
    }
    stack->depth += 1;
}

/* A probe saw an skb: report it when its mark matches. */
static __always_inline int ipft_sample(void *ctx, void *skb, u32 probe)
{
    u32 zero = 0, mark = 0;
    u32 probe_id = probe & ~IPFT_TRACK_CALL;
    struct ipft_config *cfg = config.lookup(&zero);

    if (!cfg || !skb)
        return 0;
    if (bpf_probe_read_kernel(&mark, sizeof(mark), (char *)skb + IPFT_SKB_MARK_OFFSET))
        return 0;
    if ((mark & cfg->mask) != (cfg->mark & cfg->mask))
        return 0;
    ipft_emit(ctx, skb, probe_id, 0);
    if ((probe & IPFT_TRACK_CALL) && cfg->graph)
        ipft_push_call(probe_id, skb);
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
    u64 skb;
    /* Constant indexes: the verifier cannot bound a computed one here. */
    switch (depth) {
    case 0: skb = stack->skb[0]; break;
    case 1: skb = stack->skb[1]; break;
    case 2: skb = stack->skb[2]; break;
    default: skb = stack->skb[3]; break;
    }
    stack->depth = depth;
    if (depth == 0)
        calls.delete(&key);
    ipft_emit(ctx, (void *)skb, probe_id, 1);
    return 0;
}
