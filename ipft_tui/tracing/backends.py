"""Tracing backends: which targets they trace, their BPF entry points, and
attaching/detaching them.

A probe id is a target's index in the backend's candidate list. It is fixed when
the program is built, so attaching or detaching targets later (a new regex, a
new tracer) never needs a recompile. Every backend offers the same operations:
`entry_points()` (C source), `prepare(bpf)` once compiled, `sync(bpf, wanted,
graph)` to make the attached set exactly `wanted` (with return probes when
`graph`), and `close()` to detach everything.

Entry points are C macros (bpf/entry_points.h); a backend writes one macro line
per probe shape. Without BPF cookies a program is loaded once per probe with its
probe word patched in (`patched()`).
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import Callable, Iterable, Iterator

from ..errors import IpftError
from ..kernel import bpfsys
from ..kernel.targets import Target
from .event import IPFT_PATCH_ME, IPFT_TRACK_CALL

IMPLEMENTED = ("kprobe", "ftrace", "kprobe-multi", "tracepoint")

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


def _shape(target: Target) -> tuple[int, int, int]:
    """Where the skb, a drop reason and a copy's original are among the target's
    arguments, counted from 1 (0: none): the arguments of the bpf/entry_points.h macros."""
    first = 1 if target.kind == "tracepoint" else 0  # tracepoint args are indexes from 0
    return (target.skb_pos + first, target.reason_pos + first if target.reason_pos >= 0 else 0,
            COPY_FUNCTIONS.get(target.name, 0))


def _program_name(prefix: str, shape: tuple[int, int, int]) -> str:
    """The name the macro gives the entry point of this shape."""
    skb, reason, original = shape
    return f"{prefix}_s{skb}_r{reason}" + (f"_c{original}" if prefix != "ipft_tp" else "")


def patched(insns: bytes, word: int) -> bytes:
    """The program with the probe word in place of IPFT_PATCH_ME: a ld_imm64 (two
    instruction slots holding the constant's low and high halves in their imm)."""
    insn = struct.Struct("<BBhI")
    low, high = IPFT_PATCH_ME & 0xFFFFFFFF, IPFT_PATCH_ME >> 32
    out, found = bytearray(insns), 0
    for at in range(0, len(out) - 2 * insn.size + 1, insn.size):
        code, regs, off, imm = insn.unpack_from(out, at)
        if code == 0x18 and regs >> 4 == 0 and imm == low and insn.unpack_from(out, at + 8)[3] == high:
            insn.pack_into(out, at, code, regs, off, word)
            insn.pack_into(out, at + 8, 0, 0, 0, 0)
            found += 1
    if not found:
        raise IpftError("BPF entry point without its probe word constant (IPFT_PATCH_ME)")
    return bytes(out)


def _load_patched(bpf, program: str, prog_type: int, word: int, **attach) -> int:
    """Load an entry point's bytecode (as bcc compiled it, maps resolved) for one probe."""
    insns = patched(bpf.dump_func(program.encode()), word)
    name = program[:15].encode()
    try:
        return bpfsys.prog_load(prog_type, insns, name=name, **attach)
    except bpfsys.BPFSyscallError:  # again with the verifier's log, to say why
        return bpfsys.prog_load(prog_type, insns, name=name, log=True, **attach)


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

    def defines(self) -> dict[str, int]:
        """-D flags the entry points need."""
        return {}

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

    def link_fds(self) -> list[tuple[tuple[int, ...], int]]:
        """(the probe ids it serves, fd) of everything attached (tracing/misses.py)."""
        return [((p,), fd) for attached in (self._attached, self._returning)
                for p, fd in attached.items()]

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

    One program per skb/drop reason position serves every tracepoint: with BPF
    cookies (kernel 6.10+) the cookie names the probe, on older kernels the
    program is loaded once per tracepoint with the probe word patched in.
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
        return probe_id | (IPFT_TRACK_CALL if probe_id in self.exits else 0)

    def defines(self) -> dict[str, int]:
        return {} if self.use_cookie else {"IPFT_NO_COOKIE": 1}

    def entry_points(self) -> str:
        shapes = sorted({_shape(t)[:2] for t in self.candidates})
        lines = [f"IPFT_TRACEPOINT({skb}, {reason})" for skb, reason in shapes]
        if self.exits:
            lines.append("IPFT_TRACEPOINT_RETURN()")
        return "\n".join(lines) + "\n"

    def _open(self, bpf, program: str, tracepoint: str, word: int) -> int:
        if self.use_cookie:
            return bpfsys.raw_tracepoint_open(_load(bpf, program, "RAW_TRACEPOINT"), tracepoint, word)
        fd = _load_patched(bpf, program, bpfsys.PROG_TYPE_RAW_TRACEPOINT, word)
        try:
            return bpfsys.raw_tracepoint_open(fd, tracepoint)
        finally:
            bpfsys.close(fd)  # the link keeps the program

    def _attach(self, bpf, probe_id: int) -> int:
        target = self.candidates[probe_id]
        return self._open(bpf, _program_name("ipft_tp", _shape(target)), target.name,
                          self._probe_word(probe_id))

    def _attach_return(self, bpf, probe_id: int) -> int:
        return self._open(bpf, "ipft_tp_return", self.exits[probe_id], probe_id)


class FunctionBackend(PerProbeBackend):
    """Kernel functions with a `struct sk_buff *` argument: shared by kprobe,
    kprobe-multi and ftrace."""

    prefix = ""  # of the entry points' names
    macro = "IPFT_KPROBE"

    def __init__(self, candidates: list[Target], addresses: dict[str, int]):
        super().__init__()
        self.candidates = candidates
        self.addresses = addresses
        self.returns = set(range(len(candidates)))

    def entry_points(self) -> str:
        shapes = sorted({_shape(t) for t in self.candidates})
        return "".join(f"{self.macro}({skb}, {reason}, {original})\n"
                       for skb, reason, original in shapes)

    def _entry_name(self, probe_id: int) -> str:
        return _program_name(self.prefix, _shape(self.candidates[probe_id]))


class KprobeBackend(FunctionBackend):
    """One kprobe (perf event) per function. With BPF cookies (5.15+) one program per
    shape serves them all, linked with the probe id as cookie; before, the program is
    loaded once per function with its probe word patched in. kretprobes for
    function_graph."""

    name = "kprobe"
    prefix = "ipft_kp"

    def __init__(self, candidates: list[Target], addresses: dict[str, int], use_cookie: bool = True):
        super().__init__(candidates, addresses)
        self.use_cookie = use_cookie

    def defines(self) -> dict[str, int]:
        return {} if self.use_cookie else {"IPFT_NO_COOKIE": 1}

    def entry_points(self) -> str:
        return super().entry_points() + "IPFT_KPROBE_RETURN()\n"

    def _perf(self, bpf, program: str, probe_id: int, retprobe: bool) -> int:
        word = probe_id | IPFT_TRACK_CALL
        if not self.use_cookie:
            fd = _load_patched(bpf, program, bpfsys.PROG_TYPE_KPROBE, word)
            try:
                perf_fd = bpfsys.perf_kprobe_open(self.candidates[probe_id].name, retprobe=retprobe)
                try:
                    bpfsys.perf_set_bpf(perf_fd, fd)
                except OSError:
                    bpfsys.close(perf_fd)
                    raise
                return perf_fd  # holds the program; closing it detaches
            finally:
                bpfsys.close(fd)
        fd = _load(bpf, program, "KPROBE")
        perf_fd = bpfsys.perf_kprobe_open(self.candidates[probe_id].name, retprobe=retprobe)
        try:
            return bpfsys.perf_link(fd, perf_fd, word)
        finally:
            bpfsys.close(perf_fd)  # the link keeps the perf event

    def _attach(self, bpf, probe_id: int) -> int:
        return self._perf(bpf, self._entry_name(probe_id), probe_id, False)

    def _attach_return(self, bpf, probe_id: int) -> int:
        return self._perf(bpf, "ipft_kp_return", probe_id, True)


class FentryBackend(FunctionBackend):
    """fentry/fexit: each function needs a program loaded for it, so the bytecode
    bcc compiled once per shape is loaded again per target BTF id, with the probe
    word patched in (no bpf_get_func_ip or cookie needed: works from 5.5). A module's
    function is named by its id in the module's split BTF plus an fd of the module's
    BTF object (5.11+, when modules got BTF): bcc 0.26's attach_kfunc looks in
    vmlinux only, so the loads are our own (bpfsys)."""

    name = "ftrace"
    prefix = "ipft_fe"
    macro = "IPFT_FENTRY"

    def __init__(self, candidates: list[Target], addresses: dict[str, int]):
        super().__init__(candidates, addresses)
        self._module_btf: dict[str, int] | None = None  # module name -> BTF object fd, opened once
        self._module_lock = threading.Lock()

    def _btf_object_fd(self, module: str) -> int:
        if module == "vmlinux":
            return 0
        with self._module_lock:
            if self._module_btf is None:
                wanted = {t.module for t in self.candidates} - {"vmlinux"}
                self._module_btf = bpfsys.kernel_btf_fds(wanted)
            fd = self._module_btf.get(module)
        if fd is None:
            raise bpfsys.BPFSyscallError(2, f"no BTF object of module {module} (unloaded?)")
        return fd

    def _tracing(self, bpf, program: str, probe_id: int, attach_type: int) -> int:
        target = self.candidates[probe_id]
        fd = _load_patched(bpf, program, bpfsys.PROG_TYPE_TRACING, probe_id | IPFT_TRACK_CALL,
                           expected_attach_type=attach_type, attach_btf_id=target.btf_id,
                           attach_btf_obj_fd=self._btf_object_fd(target.module))
        try:
            return bpfsys.raw_tracepoint_open(fd, None)
        finally:
            bpfsys.close(fd)  # the link keeps the program alive

    def close(self) -> None:
        super().close()
        with self._module_lock:  # the programs hold their module's BTF themselves
            for fd in (self._module_btf or {}).values():
                bpfsys.close(fd)
            self._module_btf = None

    def _attach(self, bpf, probe_id: int) -> int:
        return self._tracing(bpf, self._entry_name(probe_id), probe_id, bpfsys.ATTACH_TRACE_FENTRY)

    def _attach_return(self, bpf, probe_id: int) -> int:
        name = _program_name("ipft_fx", _shape(self.candidates[probe_id]))
        return self._tracing(bpf, name, probe_id, bpfsys.ATTACH_TRACE_FEXIT)


class KprobeMultiBackend(FunctionBackend):
    """kprobe-multi: one link per entry point for all its functions, the probe id in
    each function's BPF cookie. Changing the set re-creates the links (fast)."""

    name = "kprobe-multi"
    prefix = "ipft_kp"

    def __init__(self, candidates: list[Target], addresses: dict[str, int]):
        super().__init__(candidates, addresses)
        self._links: list[int] = []
        self._link_probes: list[tuple[int, ...]] = []  # the probe ids of each link
        self._selected: set[int] = set()
        self._graph = False

    def entry_points(self) -> str:
        return super().entry_points() + "IPFT_KPROBE_RETURN()\n"

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
                                            cookies=[i | IPFT_TRACK_CALL for i in ids],
                                            return_probe=return_probe)
        finally:
            bpfsys.close(fd)
        self._links.append(link)
        self._link_probes.append(tuple(ids))

    def close(self) -> None:
        close_all(self._links)
        self._links.clear()
        self._link_probes.clear()
        self._selected.clear()

    def link_fds(self) -> list[tuple[tuple[int, ...], int]]:
        return list(zip(self._link_probes, self._links))


def make_backend(name: str, kernel, capabilities):
    targets, found = kernel.backend_targets(name)  # the same list -l prints
    if name == "tracepoint":
        return TracepointBackend(targets, capabilities.raw_tp_cookie, kernel.tracepoint_returns)
    if not targets:
        raise IpftError("no skb function of this kernel's BTF is both in /proc/kallsyms and "
                        "hookable (available_filter_functions)")
    if name == "kprobe":
        return KprobeBackend(targets, found, capabilities.kprobe_cookie)
    if name == "kprobe-multi":
        return KprobeMultiBackend(targets, found)
    if name == "ftrace":
        return FentryBackend(targets, found)
    raise IpftError(f"unknown backend {name}")
