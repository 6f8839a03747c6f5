/*
 * ipft-tui: the programs the kernel runs, stamped by the macros below. The loader
 * (ipft_tui/tracing/backends.py) writes one macro line per probe shape after this
 * file, e.g. IPFT_KPROBE(1, 0, 0). A shape says where the skb, a drop reason and
 * the original of a copied skb are among the arguments: argument numbers count
 * from 1, 0 means none. Every entry point hands over to ipft_sample(),
 * ipft_sample_exit() or ipft_sample_return() in ipft.bpf.c.
 *
 * Which probe fired (its probe word: probe id | IPFT_TRACK_CALL) comes from the
 * BPF cookie of the link (kprobe 5.15+, raw tracepoint 6.10+, kprobe-multi). Where
 * there is none (IPFT_NO_COOKIE, and always for fentry/fexit, which are loaded
 * once per function anyway), the loader loads the program once per probe with
 * the probe word written into the instruction ipft_patched_word() leaves.
 */

/* ld_imm64 of IPFT_PATCH_ME: the loader replaces the constant with the probe word. */
#define IPFT_STR(x) #x
#define IPFT_XSTR(x) IPFT_STR(x)

static __always_inline u32 ipft_patched_word(void)
{
    u64 word;
    asm volatile("%0 = " IPFT_XSTR(IPFT_PATCH_ME) " ll" : "=r"(word));
    return (u32)word;
}

#ifdef IPFT_NO_COOKIE
#define IPFT_PROBE_WORD(ctx) ipft_patched_word()
#else
#define IPFT_PROBE_WORD(ctx) ((u32)bpf_get_attach_cookie(ctx))
#endif

/* -- raw tracepoints ---------------------------------------------------------- */
#define IPFT_TP_ARG(ctx, N) ((N) ? (ctx)->args[(N) ? (N) - 1 : 0] : 0)

#define IPFT_TRACEPOINT(SKB, REASON)                                                  \
int ipft_tp_s##SKB##_r##REASON(struct bpf_raw_tracepoint_args *ctx)                  \
{                                                                                    \
    return ipft_sample(ctx, (void *)IPFT_TP_ARG(ctx, SKB), IPFT_PROBE_WORD(ctx),     \
                       (u32)IPFT_TP_ARG(ctx, REASON));                               \
}

/* An <x>_exit tracepoint paired with its <x>_entry (function_graph). */
#define IPFT_TRACEPOINT_RETURN()                                                      \
int ipft_tp_return(struct bpf_raw_tracepoint_args *ctx)                              \
{                                                                                    \
    return ipft_sample_return(ctx, IPFT_PROBE_WORD(ctx) & ~IPFT_TRACK_CALL);         \
}

/* -- kprobes (one each, or kprobe-multi) -------------------------------------- */
/* Argument N of a kprobe: x86-64 passes the first five in registers. */
#define IPFT_KP_ARG0(ctx) 0
#define IPFT_KP_ARG1(ctx) PT_REGS_PARM1(ctx)
#define IPFT_KP_ARG2(ctx) PT_REGS_PARM2(ctx)
#define IPFT_KP_ARG3(ctx) PT_REGS_PARM3(ctx)
#define IPFT_KP_ARG4(ctx) PT_REGS_PARM4(ctx)
#define IPFT_KP_ARG5(ctx) PT_REGS_PARM5(ctx)
#define IPFT_KP_ARG(ctx, N) IPFT_KP_ARG##N(ctx)

/* ORIGINAL: the function makes its skb a copy of that one (skb_copy_header): a
 * copy of a followed skb joins its journey. */
#define IPFT_KPROBE(SKB, REASON, ORIGINAL)                                            \
int ipft_kp_s##SKB##_r##REASON##_c##ORIGINAL(struct pt_regs *ctx)                    \
{                                                                                    \
    if (ORIGINAL)                                                                    \
        ipft_copied((void *)IPFT_KP_ARG(ctx, SKB), (void *)IPFT_KP_ARG(ctx, ORIGINAL)); \
    return ipft_sample(ctx, (void *)IPFT_KP_ARG(ctx, SKB), IPFT_PROBE_WORD(ctx),     \
                       (u32)IPFT_KP_ARG(ctx, REASON));                               \
}

#define IPFT_KPROBE_RETURN()                                                          \
int ipft_kp_return(struct pt_regs *ctx)                                              \
{                                                                                    \
    return ipft_sample_return(ctx, IPFT_PROBE_WORD(ctx) & ~IPFT_TRACK_CALL);         \
}

/* -- fentry/fexit -------------------------------------------------------------- */
/* Argument N of a traced function. Read with bpf_probe_read_kernel(): read from ctx
 * directly a pointer is typed to the verifier, which refuses the bit operations
 * the compiler may turn `x ? skb : 0` into; and bpf_get_func_arg() needs 5.17. */
static __always_inline u64 ipft_fe_arg(u64 *ctx, u32 n)
{
    u64 value = 0;
    if (n)
        bpf_probe_read_kernel(&value, sizeof(value), &ctx[n - 1]);
    return value;
}

/* An fentry program and its fexit partner: at exit the arguments are still
 * readable, so the return needs no remembered skb. */
#define IPFT_FENTRY(SKB, REASON, ORIGINAL)                                            \
int ipft_fe_s##SKB##_r##REASON##_c##ORIGINAL(u64 *ctx)                               \
{                                                                                    \
    void *skb = (void *)ipft_fe_arg(ctx, SKB);                                       \
    if (ORIGINAL)                                                                    \
        ipft_copied(skb, (void *)ipft_fe_arg(ctx, ORIGINAL));                        \
    return ipft_sample(ctx, skb, ipft_patched_word(), (u32)ipft_fe_arg(ctx, REASON)); \
}                                                                                    \
int ipft_fx_s##SKB##_r##REASON##_c##ORIGINAL(u64 *ctx)                               \
{                                                                                    \
    return ipft_sample_exit(ctx, (void *)ipft_fe_arg(ctx, SKB),                      \
                            ipft_patched_word() & ~IPFT_TRACK_CALL);                 \
}
