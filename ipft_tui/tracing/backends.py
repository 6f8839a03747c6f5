"""Tracing backends: which targets they trace, their BPF entry points, and
attaching/detaching them.

A probe id is a target's index in the backend's candidate list. It is fixed when
the program is built, so attaching or detaching targets later (a new regex, a
new tracer) never needs a recompile. Every backend offers the same operations:
`entry_points()` (C source), `prepare(bpf)` once compiled, `sync(bpf, wanted,
graph)` to make the attached set exactly `wanted` (with return probes when
`graph`), and `close()` to detach everything.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

from ..errors import IpftError
from ..kernel import bpfsys
from ..kernel.targets import Target

IMPLEMENTED = ("kprobe", "ftrace", "kprobe-multi", "tracepoint")
TRACK_CALL = 1 << 31  # IPFT_TRACK_CALL in bpf/ipft.bpf.c

Progress = Callable[[int, int], None]  # (done, todo)
# Attaching and detaching one probe waits in the kernel (kprobe registration, RCU grace
# periods on release); from several threads those waits overlap. ctypes and os.close
# release the GIL.
ATTACH_THREADS = 16


def _in_parallel(function: Callable[[int], int], items: Iterable[int]) -> Iterator[tuple[int, int | OSError]]:
    """(item, function(item) or the OSError it raised), in completion order. Plain
    daemon threads: unlike concurrent.futures, not stopped by interpreter shutdown."""
    items = list(items)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    done: queue.SimpleQueue = queue.SimpleQueue()
    for item in items:
        todo.put(item)

    def work() -> None:
        while True:
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((item, function(item)))
            except OSError as exc:
                done.put((item, exc))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                done.put((item, exc))

    workers = [threading.Thread(target=work, name="ipft-attach", daemon=True)
               for _ in range(min(ATTACH_THREADS, len(items)))]
    for worker in workers:
        worker.start()
    for _ in items:
        item, result = done.get()
        if isinstance(result, BaseException) and not isinstance(result, OSError):
            raise result
        yield item, result
    for worker in workers:
        worker.join()


def close_all(fds: Iterable[int]) -> None:
    """Close links/fds together: each release may wait for a grace period."""
    for _fd, _result in _in_parallel(_close, fds):
        pass


def _close(fd: int) -> int:
    bpfsys.close(fd)
    return 0


# Functions given a new skb (their skb argument) and the one it copies: the original's
# argument position. Their entry points also hand the copy to a followed journey.
COPY_FUNCTIONS = {"skb_copy_header": 2}


def _shape(target: Target) -> str:
    """Entry points differ by where the skb (and a drop reason) sit in the arguments."""
    original = COPY_FUNCTIONS.get(target.name)
    return (f"arg{target.skb_pos}" + (f"_reason{target.reason_pos}" if target.reason_pos >= 0 else "")
            + (f"_copyof{original}" if original else ""))


class PerProbeBackend:
    """Backends that attach each target on its own (one fd per probe)."""

    name = ""
    candidates: list[Target]
    returns: set[int]  # probe ids that have a return probe

    def __init__(self):
        self._attached: dict[int, int] = {}
        self._returning: dict[int, int] = {}

    def prepare(self, bpf) -> None:
        pass

    @property
    def attached(self) -> set[int]:
        return set(self._attached)

    def sync(self, bpf, wanted: set[int], graph: bool, progress: Progress,
             notice: Callable[[str], None]) -> int:
        """Attach/detach so that exactly `wanted` is attached; returns how many failed."""
        close_all([self._returning.pop(p) for p in list(self._returning) if p not in wanted or not graph])
        close_all([self._attached.pop(p) for p in list(self._attached) if p not in wanted])
        todo = sorted(wanted - self._attached.keys())
        failed = 0
        for n, (probe_id, result) in enumerate(_in_parallel(lambda p: self._attach(bpf, p), todo), 1):
            if isinstance(result, OSError):
                failed += 1
                notice(f"attach {self.candidates[probe_id].name} failed: {result}")
            else:
                self._attached[probe_id] = result
            if n % 16 == 0 or n == len(todo):
                progress(n, len(todo))
        if graph:
            returning = sorted((self._attached.keys() & self.returns) - self._returning.keys())
            for probe_id, result in _in_parallel(lambda p: self._attach_return(bpf, p), returning):
                if isinstance(result, OSError):
                    notice(f"attach return of {self.candidates[probe_id].name} failed: {result}")
                else:
                    self._returning[probe_id] = result
        return failed

    def close(self) -> None:
        close_all([*self._returning.values(), *self._attached.values()])
        self._returning.clear()
        self._attached.clear()

    def _attach(self, bpf, probe_id: int) -> int:
        raise NotImplementedError

    def _attach_return(self, bpf, probe_id: int) -> int:
        raise NotImplementedError


_LOAD_LOCK = threading.Lock()  # bcc's load_func caches per name: one load per program


def _load(bpf, name: str, prog_type: str) -> int:
    from bcc import BPF  # noqa: PLC0415 - bcc only exists where tracing runs

    with _LOAD_LOCK:
        return bpf.load_func(name.encode(), getattr(BPF, prog_type)).fd


class TracepointBackend(PerProbeBackend):
    """Raw tracepoints that carry an skb.

    With BPF cookies (kernel 6.10+) one program per skb argument index serves
    every tracepoint, the cookie naming the probe; on older kernels each
    tracepoint gets a tiny entry point of its own that passes a constant.
    For function_graph, `<x>_entry` tracepoints are paired with their `<x>_exit`
    partners (which carry no skb): BPF remembers the skb at entry.
    """

    name = "tracepoint"

    def __init__(self, candidates: list[Target], use_cookie: bool, returns: dict[str, str]):
        super().__init__()
        self.candidates = candidates
        self.use_cookie = use_cookie
        # probe id -> exit tracepoint, for entries that have one
        self.exits = {i: returns[t.name] for i, t in enumerate(candidates) if t.name in returns}
        self.returns = set(self.exits)

    def _probe_word(self, probe_id: int) -> int:
        return probe_id | (TRACK_CALL if probe_id in self.exits else 0)

    @staticmethod
    def _reason(target: Target) -> str:
        return f"(u32)ctx->args[{target.reason_pos}]" if target.reason_pos >= 0 else "0"

    def _entry_name(self, probe_id: int) -> str:
        target = self.candidates[probe_id]
        return f"ipft_tp_{_shape(target)}" if self.use_cookie else f"ipft_tp_{probe_id}"

    def entry_points(self) -> str:
        ctx = "struct bpf_raw_tracepoint_args *ctx"
        lines = []
        if self.use_cookie:
            shapes = {_shape(t): t for t in self.candidates}
            for shape, t in sorted(shapes.items()):
                lines.append(f"int ipft_tp_{shape}({ctx})\n{{ return ipft_sample(ctx, "
                             f"(void *)ctx->args[{t.skb_pos}], (u32)bpf_get_attach_cookie(ctx), "
                             f"{self._reason(t)}); }}\n")
            lines.append(f"int ipft_tp_return({ctx})\n"
                         f"{{ return ipft_sample_return(ctx, (u32)bpf_get_attach_cookie(ctx)); }}\n")
        else:
            for probe_id, target in enumerate(self.candidates):
                lines.append(f"int ipft_tp_{probe_id}({ctx})\n{{ return ipft_sample(ctx, "
                             f"(void *)ctx->args[{target.skb_pos}], {self._probe_word(probe_id)}u, "
                             f"{self._reason(target)}); }}\n")
            for probe_id in self.exits:
                lines.append(f"int ipft_tp_return_{probe_id}({ctx})\n"
                             f"{{ return ipft_sample_return(ctx, {probe_id}); }}\n")
        return "".join(lines)

    def _open(self, bpf, function: str, tracepoint: str, cookie: int) -> int:
        fd = _load(bpf, function, "RAW_TRACEPOINT")
        return bpfsys.raw_tracepoint_open(fd, tracepoint, cookie if self.use_cookie else 0)

    def _attach(self, bpf, probe_id: int) -> int:
        return self._open(bpf, self._entry_name(probe_id), self.candidates[probe_id].name,
                          self._probe_word(probe_id))

    def _attach_return(self, bpf, probe_id: int) -> int:
        name = "ipft_tp_return" if self.use_cookie else f"ipft_tp_return_{probe_id}"
        return self._open(bpf, name, self.exits[probe_id], probe_id)


class FunctionBackend(PerProbeBackend):
    """Kernel functions with a `struct sk_buff *` argument: shared by kprobe,
    kprobe-multi and ftrace."""

    prefix = ""

    def __init__(self, candidates: list[Target], addresses: dict[str, int]):
        super().__init__()
        self.candidates = candidates
        self.addresses = addresses
        self.returns = set(range(len(candidates)))

    def _shapes(self) -> dict[str, Target]:
        return {_shape(t): t for t in self.candidates}

    def _entry_name(self, probe_id: int) -> str:
        return f"ipft_{self.prefix}_{_shape(self.candidates[probe_id])}"


def kprobe_entry_points(shapes: dict[str, Target]) -> str:
    """kprobe programs that take the probe id from their BPF cookie (kprobe and
    kprobe-multi links both carry one), one per skb/drop-reason position."""
    lines = []
    for shape, t in sorted(shapes.items()):
        reason = f"(u32)PT_REGS_PARM{t.reason_pos}(ctx)" if t.reason_pos > 0 else "0"
        original = COPY_FUNCTIONS.get(t.name)
        copied = (f"ipft_copied((void *)PT_REGS_PARM{t.skb_pos}(ctx), "
                  f"(void *)PT_REGS_PARM{original}(ctx));\n  " if original else "")
        lines.append(f"int ipft_kp_{shape}(struct pt_regs *ctx)\n{{ {copied}return ipft_sample(ctx, "
                     f"(void *)PT_REGS_PARM{t.skb_pos}(ctx), (u32)bpf_get_attach_cookie(ctx), "
                     f"{reason}); }}\n")
    lines.append("int ipft_kp_return(struct pt_regs *ctx)\n{ return ipft_sample_return(ctx, "
                 "(u32)bpf_get_attach_cookie(ctx) & ~IPFT_TRACK_CALL); }\n")
    return "".join(lines)


class KprobeBackend(FunctionBackend):
    """One kprobe (perf event) per function, linked to its program with the probe id
    as BPF cookie; kretprobes for function_graph."""

    name = "kprobe"
    prefix = "kp"

    def entry_points(self) -> str:
        return kprobe_entry_points(self._shapes())

    def _perf(self, bpf, program: str, probe_id: int, retprobe: bool) -> int:
        fd = _load(bpf, program, "KPROBE")
        perf_fd = bpfsys.perf_kprobe_open(self.candidates[probe_id].name, retprobe=retprobe)
        try:
            return bpfsys.perf_link(fd, perf_fd, probe_id | TRACK_CALL)
        finally:
            bpfsys.close(perf_fd)  # the link keeps the perf event

    def _attach(self, bpf, probe_id: int) -> int:
        return self._perf(bpf, self._entry_name(probe_id), probe_id, False)

    def _attach_return(self, bpf, probe_id: int) -> int:
        return self._perf(bpf, "ipft_kp_return", probe_id, True)


class FentryBackend(FunctionBackend):
    """fentry/fexit: each function needs a program loaded for it, so the bytecode
    bcc compiled once per skb position is loaded again per target BTF id. The
    probe id comes from the function's address (bpf_get_func_ip -> func_ids):
    fentry programs get BPF cookies only on recent kernels."""

    name = "ftrace"
    prefix = "fe"

    def __init__(self, candidates: list[Target], addresses: dict[str, int], btf_ids: dict[str, int]):
        super().__init__(candidates, addresses)
        self.btf_ids = btf_ids

    def entry_points(self) -> str:
        lines = []
        for shape, t in sorted(self._shapes().items()):
            reason = f"(u32)ctx[{t.reason_pos - 1}]" if t.reason_pos > 0 else "0"
            # The skb is taken with bpf_get_func_arg(): read from ctx directly it would be
            # a typed pointer to the verifier, which refuses the bit operations the
            # compiler may turn `x ? skb : 0` into.
            skb = f"u64 skb = 0; bpf_get_func_arg(ctx, {t.skb_pos - 1}, &skb);\n"
            original = COPY_FUNCTIONS.get(t.name)
            copied = (f"  u64 original = 0; bpf_get_func_arg(ctx, {original - 1}, &original);\n"
                      f"  ipft_copied((void *)skb, (void *)original);\n" if original else "")
            lines.append(f"int ipft_fe_{shape}(u64 *ctx)\n{{ u32 probe = ipft_func_probe(ctx);\n"
                         f"  {skb}{copied}  return probe == IPFT_NO_PROBE ? 0 : ipft_sample(ctx, "
                         f"(void *)skb, probe, {reason}); }}\n")
            # At exit the arguments are still readable: no need to remember the skb.
            lines.append(f"int ipft_fx_{shape}(u64 *ctx)\n{{ u32 probe = ipft_func_probe(ctx);\n"
                         f"  {skb}  return probe == IPFT_NO_PROBE ? 0 : ipft_sample_exit(ctx, "
                         f"(void *)skb, probe & ~IPFT_TRACK_CALL); }}\n")
        return "".join(lines)

    def prepare(self, bpf) -> None:
        """Function address -> probe id, for bpf_get_func_ip() (with and without an
        IBT endbr64 in front: kernels report either)."""
        table = bpf[b"func_ids"]
        for probe_id, target in enumerate(self.candidates):
            address = self.addresses.get(target.name)
            if address:
                for ip in (address, address + 4):
                    table[ctypes.c_uint64(ip)] = ctypes.c_uint32(probe_id | TRACK_CALL)

    def _tracing(self, bpf, program: str, probe_id: int, attach_type: int) -> int:
        insns = bpf.dump_func(program.encode())
        btf_id = self.btf_ids[self.candidates[probe_id].name]
        try:
            fd = bpfsys.prog_load(bpfsys.PROG_TYPE_TRACING, insns, expected_attach_type=attach_type,
                                  attach_btf_id=btf_id)
        except bpfsys.BPFSyscallError:  # again with the verifier's log, to say why
            fd = bpfsys.prog_load(bpfsys.PROG_TYPE_TRACING, insns, expected_attach_type=attach_type,
                                  attach_btf_id=btf_id, log=True)
        try:
            link = bpfsys.raw_tracepoint_open(fd, None)
        finally:
            bpfsys.close(fd)  # the link keeps the program alive
        return link

    def _attach(self, bpf, probe_id: int) -> int:
        return self._tracing(bpf, self._entry_name(probe_id), probe_id, bpfsys.ATTACH_TRACE_FENTRY)

    def _attach_return(self, bpf, probe_id: int) -> int:
        name = f"ipft_fx_{_shape(self.candidates[probe_id])}"
        return self._tracing(bpf, name, probe_id, bpfsys.ATTACH_TRACE_FEXIT)


class KprobeMultiBackend(FunctionBackend):
    """kprobe-multi: one link per entry point for all its functions, the probe id in
    each function's BPF cookie. Changing the set re-creates the links (fast)."""

    name = "kprobe-multi"
    prefix = "kp"

    def __init__(self, candidates: list[Target], addresses: dict[str, int]):
        super().__init__(candidates, addresses)
        self._links: list[int] = []
        self._selected: set[int] = set()
        self._graph = False

    def entry_points(self) -> str:
        return kprobe_entry_points(self._shapes())

    @property
    def attached(self) -> set[int]:
        return set(self._selected)

    def _program(self, bpf, name: str) -> int:
        """bcc loads kprobes without the kprobe-multi attach type: load its bytecode again."""
        return bpfsys.prog_load(bpfsys.PROG_TYPE_KPROBE, bpf.dump_func(name.encode()),
                                expected_attach_type=bpfsys.ATTACH_TRACE_KPROBE_MULTI)

    def sync(self, bpf, wanted: set[int], graph: bool, progress: Progress,
             notice: Callable[[str], None]) -> int:
        if wanted == self._selected and graph == self._graph and self._links:
            return 0
        self.close()
        groups: dict[str, list[int]] = {}
        for probe_id in sorted(wanted):
            groups.setdefault(self._entry_name(probe_id), []).append(probe_id)
        failed = 0
        done = 0
        for program, ids in groups.items():
            linked = self._link_all(bpf, program, ids, False, notice)
            if graph:
                linked = self._link_all(bpf, "ipft_kp_return", linked, True, notice)
            self._selected.update(linked)
            failed += len(ids) - len(linked)
            done += len(ids)
            progress(done, len(wanted))
        self._graph = graph
        return failed

    def _link_all(self, bpf, program: str, ids: list[int], return_probe: bool,
                  notice: Callable[[str], None]) -> list[int]:
        """Link as many of `ids` as the kernel accepts: one function it refuses
        (notrace, blacklisted) fails a whole link: halve to find it. (Functions ftrace
        cannot hook were left out of the candidates up front, see kernel/targets.py.)"""
        try:
            self._link(bpf, program, ids, return_probe)
            return ids
        except OSError as exc:
            if len(ids) == 1:
                notice(f"kprobe-multi on {self.candidates[ids[0]].name} failed: {exc}")
                return []
        half = len(ids) // 2
        return (self._link_all(bpf, program, ids[:half], return_probe, notice)
                + self._link_all(bpf, program, ids[half:], return_probe, notice))

    def _link(self, bpf, program: str, ids: list[int], return_probe: bool) -> None:
        fd = self._program(bpf, program)
        try:
            link = bpfsys.kprobe_multi_link(fd, [self.candidates[i].name for i in ids],
                                            cookies=[i | TRACK_CALL for i in ids],
                                            return_probe=return_probe)
        finally:
            bpfsys.close(fd)
        self._links.append(link)

    def close(self) -> None:
        close_all(self._links)
        self._links.clear()
        self._selected.clear()


def make_backend(name: str, kernel, capabilities):
    targets, found = kernel.backend_targets(name)  # the same list -l prints
    if name == "tracepoint":
        return TracepointBackend(targets, capabilities.raw_tp_cookie, kernel.tracepoint_returns)
    if not targets:
        raise IpftError("no skb function of this kernel's BTF is both in /proc/kallsyms and "
                        "hookable (available_filter_functions)")
    if name == "kprobe":
        return KprobeBackend(targets, found)
    if name == "kprobe-multi":
        return KprobeMultiBackend(targets, found)
    if name == "ftrace":
        # module functions would need the module's BTF fd: vmlinux only (backend_targets)
        return FentryBackend(targets, found, kernel.vmlinux_function_ids)
    raise IpftError(f"unknown backend {name}")
