"""What can be traced on the running kernel: skb-taking functions and raw tracepoints.

Found in BTF, so it matches the running kernel exactly; narrowed to what a backend can
attach with kallsyms and ftrace's available_filter_functions (function_targets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from .. import drops
from . import btf as btfmod

BTF_DIR = "/sys/kernel/btf"
TRACEPOINT_PREFIX = "btf_trace_"
# 1-based skb (and drop reason) positions the kprobe entry points read
# (x86-64: the first argument registers), like ipftrace2's kprobe limit. fentry reads
# every argument its trampoline saved (ftrace_max_args).
FUNCTION_MAX_POSITION = 5
# Tracepoint machinery that takes an skb: probing it only repeats the tracepoints.
TRACEPOINT_STUB_PREFIXES = ("__traceiter_", "__probestub_", "__bpf_trace_", "perf_trace_",
                            "trace_event_raw_event_")
# Functions ftrace can hook: kprobe-multi and fentry attach only there, and ipftrace2
# traces nothing else with any backend.
AVAILABLE_FILTER_FUNCTIONS = ("/sys/kernel/tracing/available_filter_functions",
                              "/sys/kernel/debug/tracing/available_filter_functions")
# Functions the kernel refuses kprobes on (NOKPROBE_SYMBOL, ...), when debugfs is mounted.
KPROBE_BLACKLIST = "/sys/kernel/debug/kprobes/blacklist"


@dataclass(frozen=True, order=True)
class Target:
    """A place a probe can attach to.

    `skb_pos` is the 1-based position of the `struct sk_buff *` among the
    function's parameters; for a raw tracepoint it is the index into the raw
    tracepoint's args (the BTF prototype's hidden first `void *` is dropped).
    """

    name: str
    skb_pos: int
    module: str = "vmlinux"
    kind: str = "function"  # "function" or "tracepoint"
    reason_pos: int = -1  # same numbering as skb_pos, of an `enum skb_drop_reason` argument
    btf_order: int = field(default=0, compare=False)  # found in this order (vmlinux first)
    nargs: int = field(default=0, compare=False)  # the function's parameters
    # Its FUNC type id in its module's BTF (split BTF continues vmlinux's numbering):
    # fentry programs attach by it.
    btf_id: int = field(default=0, compare=False)

    @property
    def skb_index(self) -> int:
        """0-based position of the skb among the arguments, as ipftrace2's -l prints it."""
        return self.skb_pos - 1 if self.kind == "function" else self.skb_pos


def list_order(target: Target) -> tuple[int, int]:
    """ipftrace2's -l order: by skb position, then as found in BTF."""
    return target.skb_index, target.btf_order


def load_kernel_btf(btf_dir: str = BTF_DIR) -> list[btfmod.BTF]:
    """vmlinux BTF followed by every module's split BTF."""
    vmlinux_path = os.path.join(btf_dir, "vmlinux")
    if not os.path.exists(vmlinux_path):
        raise btfmod.BTFError(
            f"{vmlinux_path} does not exist: this kernel was built without "
            "CONFIG_DEBUG_INFO_BTF, which ipft-tui needs")
    vmlinux = btfmod.load(vmlinux_path)
    blobs = [vmlinux]
    for entry in sorted(os.listdir(btf_dir)):
        if entry != "vmlinux":
            try:
                blobs.append(btfmod.load(os.path.join(btf_dir, entry), base=vmlinux, name=entry))
            except (OSError, btfmod.BTFError):
                continue  # a module that went away or odd BTF: skip, it only adds targets
    return blobs


class _SkbTypeCache:
    """Remembers, per type id, whether it is a `struct sk_buff *` (many repeat)."""

    def __init__(self, btf: btfmod.BTF):
        self.btf = btf
        self.known: dict[int, bool] = {}

    def is_skb(self, type_id: int) -> bool:
        hit = self.known.get(type_id)
        if hit is None:
            hit = self.known[type_id] = self.btf.is_struct_pointer(type_id, "sk_buff")
        return hit

    def by_value_aggregate(self, type_id: int) -> bool:
        return self.btf.kind(self.btf.strip(type_id)) in (btfmod.STRUCT, btfmod.UNION)


# Arguments an x86-64 BPF trampoline (fentry/fexit) handles: 6 before Linux 6.6, then 12
# (commit "bpf, x86: allow function arguments up to 12 for TRACING", bpf-next pull of
# 2023-07-13, after the 6.5 merge window).
FTRACE_ARGS_BEFORE, FTRACE_ARGS_FROM, FTRACE_MORE_ARGS_SINCE = 6, 12, (6, 6)
FTRACE_ARGS_FACT = (f"x86-64: {FTRACE_ARGS_FROM} from Linux "
                    f"{'.'.join(map(str, FTRACE_MORE_ARGS_SINCE))}")


def ftrace_max_args(release: str) -> int:
    """Arguments this kernel's fentry/fexit trampoline handles (FTRACE_ARGS_FACT)."""
    try:
        major, minor = (int(x) for x in release.split(".")[:2])
    except ValueError:
        return FTRACE_ARGS_BEFORE
    return FTRACE_ARGS_FROM if (major, minor) >= FTRACE_MORE_ARGS_SINCE else FTRACE_ARGS_BEFORE


def _skb_position(cache: _SkbTypeCache, proto_id: int) -> tuple[int, int]:
    """1-based positions of the first skb parameter (0 if none or not traceable) and
    of an `enum skb_drop_reason` parameter (-1 if none)."""
    position, reason = 0, -1
    for pos, (_name, type_id) in enumerate(cache.btf.params(proto_id), 1):
        if type_id == 0:  # varargs
            return 0, -1
        if cache.by_value_aggregate(type_id):
            return 0, -1
        if not position and cache.is_skb(type_id):
            position = pos
        elif reason < 0 and _is_drop_reason(cache.btf, type_id):
            reason = pos
    return position, reason


def skb_functions(blobs: list[btfmod.BTF]) -> list[Target]:
    """Every BTF function with a `struct sk_buff *` parameter."""
    found: dict[str, Target] = {}
    for blob in blobs:
        cache = _SkbTypeCache(blob)
        for type_id in blob.own_ids():
            if blob.kind(type_id) != btfmod.FUNC:
                continue
            pos, reason = _skb_position(cache, blob.ref(type_id))
            if pos:
                name = blob.name(type_id)
                reason = drops.drop_reason_position(name, reason)  # only drops carry one
                nargs = len(blob.params(blob.ref(type_id)))
                found.setdefault(name, Target(name, pos, blob.label, "function", reason,
                                              len(found), nargs, type_id))
    return sorted(found.values())


def _is_drop_reason(blob: btfmod.BTF, type_id: int) -> bool:
    target = blob.strip(type_id)
    return blob.kind(target) in (btfmod.ENUM, btfmod.ENUM64) and blob.name(target) == "skb_drop_reason"


def skb_tracepoints(blobs: list[btfmod.BTF]) -> list[Target]:
    """Every raw tracepoint whose arguments include a `struct sk_buff *`."""
    found: dict[str, Target] = {}
    for blob in blobs:
        cache = _SkbTypeCache(blob)
        for type_id in blob.own_ids():
            if blob.kind(type_id) != btfmod.TYPEDEF:
                continue
            name = blob.name(type_id)
            if not name.startswith(TRACEPOINT_PREFIX):
                continue
            pointer = blob.strip(type_id)
            if blob.kind(pointer) != btfmod.PTR:
                continue
            proto = blob.strip(blob.ref(pointer))
            if blob.kind(proto) != btfmod.FUNC_PROTO:
                continue
            # Parameter 1 is the hidden `void *__data`; raw tracepoint args start after it.
            params = blob.params(proto)[1:]
            skb_pos = next((i for i, (_n, t) in enumerate(params) if cache.is_skb(t)), None)
            if skb_pos is None:
                continue
            reason_pos = next((i for i, (_n, t) in enumerate(params) if _is_drop_reason(blob, t)), -1)
            tp = name[len(TRACEPOINT_PREFIX):]
            reason_pos = drops.drop_reason_position(tp, reason_pos)
            found.setdefault(tp, Target(tp, skb_pos, blob.label, "tracepoint", reason_pos,
                                        len(found)))
    return sorted(found.values())


def tracepoint_returns(blobs: list[btfmod.BTF], tracepoints: list[Target]) -> dict[str, str]:
    """`<base>_entry` skb tracepoints that have a `<base>_exit` partner (which has no
    skb argument: the return is matched to its entry in BPF)."""
    exits = {blob.name(i)[len(TRACEPOINT_PREFIX):] for blob in blobs for i in blob.own_ids()
             if blob.kind(i) == btfmod.TYPEDEF and blob.name(i).startswith(TRACEPOINT_PREFIX)
             and blob.name(i).endswith("_exit")}
    pairs = {}
    for tp in tracepoints:
        if tp.name.endswith("_entry"):
            partner = tp.name[: -len("_entry")] + "_exit"
            if partner in exits:
                pairs[tp.name] = partner
    return pairs


def check_skb_mark(vmlinux: btfmod.BTF) -> None:
    """ipft-tui filters on sk_buff.mark: it must be a plain 32-bit member."""
    skb = vmlinux.find(btfmod.STRUCT, "sk_buff")
    if not skb:
        raise btfmod.BTFError("struct sk_buff is not in the kernel's BTF")
    mark = vmlinux.members(skb).get("mark")
    if mark is None or mark.bit_size or mark.byte_size != 4:
        raise btfmod.BTFError("struct sk_buff has no 32-bit 'mark' member in this kernel's BTF")


def reason_carriers(blobs: list[btfmod.BTF]) -> set[str]:
    """skb functions with an `enum skb_drop_reason` parameter, drop points or not
    (for checking that drops.py knows every one of this kernel's)."""
    names = set()
    for blob in blobs:
        cache = _SkbTypeCache(blob)
        for type_id in blob.own_ids():
            if blob.kind(type_id) == btfmod.FUNC:
                pos, reason = _skb_position(cache, blob.ref(type_id))
                if pos and reason >= 0:
                    names.add(blob.name(type_id))
    return names


def available_filter_functions(paths: tuple[str, ...] = AVAILABLE_FILTER_FUNCTIONS) -> set[str] | None:
    """Names ftrace can hook (`name` or `name [module]` lines); None when no file is readable."""
    for path in paths:
        try:
            with open(path) as f:
                return {line.split(maxsplit=1)[0] for line in f if line.strip()}
        except OSError:
            continue
    return None


def kprobe_blacklist(path: str = KPROBE_BLACKLIST) -> set[str]:
    """Names in the kernel's kprobe blacklist (`0xstart-0xend\tname` lines); empty when unreadable."""
    try:
        with open(path) as f:
            return {parts[1] for line in f if len(parts := line.split()) >= 2}
    except OSError:
        return set()


def left_out_reason(t: Target, addresses: dict[str, int], available: set[str] | None,
                    max_pos: int = FUNCTION_MAX_POSITION, max_args: int | None = None) -> str:
    """Why a function backend does not try this skb function ("" when it does): skb out
    of its entry points' reach, not in kallsyms, not hookable (when the kernel says what
    is), tracepoint machinery, or (fentry, `max_args`) more parameters than the
    trampoline takes."""
    if t.name.startswith(TRACEPOINT_STUB_PREFIXES):
        return "tracepoint machinery (its tracepoint is traced instead)"
    if not addresses.get(t.name):
        return "not in /proc/kallsyms"
    if available is not None and t.name not in available:
        return "not hookable (not in available_filter_functions, or kprobe-blacklisted)"
    if max_args is not None and t.nargs > max_args:
        return (f"takes {t.nargs} arguments; this kernel's fentry trampoline takes at most "
                f"{max_args} ({FTRACE_ARGS_FACT})")
    if t.skb_pos > max_pos:
        return f"skb is argument {t.skb_pos}; the entry points read arguments 1-{max_pos}"
    return ""


def function_targets(functions: list[Target], addresses: dict[str, int],
                     available: set[str] | None, max_pos: int = FUNCTION_MAX_POSITION,
                     max_args: int | None = None) -> list[Target]:
    """The skb functions a function backend tries (see left_out_reason). Module
    functions included: fentry attaches them through their module's BTF object.
    A drop reason out of reach is not read; the function is still traced."""
    chosen = []
    for t in functions:
        if not left_out_reason(t, addresses, available, max_pos, max_args):
            chosen.append(replace(t, reason_pos=-1) if t.reason_pos > max_pos else t)
    return chosen
