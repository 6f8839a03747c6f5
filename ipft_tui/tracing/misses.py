"""Samples the kernel never produced: runs of our probes it skipped.

The kernel counts two kinds, and tells them through bpf(BPF_OBJ_GET_INFO_BY_FD):
- a program's `recursion_misses` (struct bpf_prog_info, kernels 5.12+): the program
  was not run because it was already running on that CPU (an interrupt nested in
  it hit another of its probes): fentry/fexit trampolines, raw tracepoints, and
  kprobes (trace_call_bpf and kprobe-multi count there from 6.7);
- a kprobe's `missed` in its link's info (struct bpf_link_info, 6.7+:
  perf_event.kprobe.missed for a kprobe link, kprobe_multi.missed for a kprobe-multi
  link): the kprobe itself fired while another kprobe was being handled on that CPU.

Offsets come from the running kernel's BTF: a kernel without a field does not
tell that count (None). A program or link serving one probe gives that probe's
count; one shared by many (BPF cookies) only adds to the total. Programs and links
that go away (a live regex change detaches probes) keep their last count.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..kernel import bpfsys
from ..kernel.btf import BTFError, ENUM, STRUCT

# enum bpf_perf_event_type: the kprobe kinds of a perf_event link
_PERF_KPROBE_TYPES = ("BPF_PERF_EVENT_KPROBE", "BPF_PERF_EVENT_KRETPROBE")


@dataclass(frozen=True)
class InfoLayout:
    """Where the counts are in this kernel's info structs (None: not told)."""

    prog_info_size: int
    recursion_misses: int | None
    link_info_size: int
    link_type: int
    link_id: int
    link_prog_id: int
    kprobe_multi_type: int | None = None  # enum bpf_link_type values
    perf_event_type: int | None = None
    kprobe_multi_missed: int | None = None
    perf_event_kind: int | None = None  # perf_event.type (enum bpf_perf_event_type)
    perf_kprobe_kinds: tuple[int, ...] = ()
    perf_kprobe_missed: int | None = None

    @classmethod
    def from_btf(cls, btf) -> InfoLayout | None:
        """None when this kernel's BTF lacks the structs (nothing can be told)."""
        def offset(struct_name: str, path: str) -> int | None:
            try:
                return btf.member_path(struct_name, path).offset
            except BTFError:
                return None

        def enum(name: str) -> dict[str, int]:
            enum_id = btf.find(ENUM, name)
            return {text: value for value, text in btf.enum_values(enum_id).items()} if enum_id else {}

        prog_id, link_id = btf.find(STRUCT, "bpf_prog_info"), btf.find(STRUCT, "bpf_link_info")
        if not prog_id or not link_id:
            return None
        link_types, perf_kinds = enum("bpf_link_type"), enum("bpf_perf_event_type")
        return cls(prog_info_size=btf.size_of(prog_id),
                   recursion_misses=offset("bpf_prog_info", "recursion_misses"),
                   link_info_size=btf.size_of(link_id),
                   link_type=offset("bpf_link_info", "type"),
                   link_id=offset("bpf_link_info", "id"),
                   link_prog_id=offset("bpf_link_info", "prog_id"),
                   kprobe_multi_type=link_types.get("BPF_LINK_TYPE_KPROBE_MULTI"),
                   perf_event_type=link_types.get("BPF_LINK_TYPE_PERF_EVENT"),
                   kprobe_multi_missed=offset("bpf_link_info", "kprobe_multi.missed"),
                   perf_event_kind=offset("bpf_link_info", "perf_event.type"),
                   perf_kprobe_kinds=tuple(perf_kinds[k] for k in _PERF_KPROBE_TYPES
                                           if k in perf_kinds),
                   perf_kprobe_missed=offset("bpf_link_info", "perf_event.kprobe.missed"))

    @property
    def tells_anything(self) -> bool:
        return (self.recursion_misses is not None or self.kprobe_multi_missed is not None
                or self.perf_kprobe_missed is not None)


def _u32(info: bytes, at: int) -> int:
    return struct.unpack_from("<I", info, at)[0]


def _u64(info: bytes, at: int) -> int:
    return struct.unpack_from("<Q", info, at)[0]


def program_misses(info: bytes, layout: InfoLayout) -> int | None:
    """recursion_misses of a struct bpf_prog_info."""
    return None if layout.recursion_misses is None else _u64(info, layout.recursion_misses)


def link_facts(info: bytes, layout: InfoLayout) -> tuple[int, int, int | None]:
    """A struct bpf_link_info's link id, program id, and its kprobe's missed count
    (None: not a kprobe link, or the kernel does not tell)."""
    link_type = _u32(info, layout.link_type)
    missed = None
    if link_type == layout.kprobe_multi_type and layout.kprobe_multi_missed is not None:
        missed = _u64(info, layout.kprobe_multi_missed)
    elif (link_type == layout.perf_event_type and layout.perf_kprobe_missed is not None
          and _u32(info, layout.perf_event_kind) in layout.perf_kprobe_kinds):
        missed = _u64(info, layout.perf_kprobe_missed)
    return _u32(info, layout.link_id), _u32(info, layout.link_prog_id), missed


@dataclass(frozen=True)
class Misses:
    total: int
    by_probe: tuple[tuple[int, int], ...]  # (probe id, count), where the kernel tells it
    programs: int = 0  # programs whose count was read this time


class MissCounter:
    """Reads the counts of what a backend attached (its `link_fds()`)."""

    def __init__(self, layout: InfoLayout | None):
        self.layout = layout if layout is not None and layout.tells_anything else None
        self._programs: dict[int, int] = {}  # program id -> our fd of it
        self._last: dict[tuple[str, int], int] = {}  # ("prog"|"link", id) -> last count
        self._probe_of: dict[tuple[str, int], int] = {}  # ... -> its only probe

    @property
    def available(self) -> bool:
        return self.layout is not None

    def read(self, links: list[tuple[tuple[int, ...], int]]) -> Misses | None:
        """links: (the probe ids it serves, fd) per attached link. None: not told here."""
        layout = self.layout
        if layout is None:
            return None
        probes_of_program: dict[int, set[int]] = {}
        for probes, fd in links:
            try:
                info = bpfsys.obj_info(fd, layout.link_info_size)
            except OSError:
                continue  # not a link (a kprobe attached by ioctl): the kernel tells nothing
            link_id, prog_id, missed = link_facts(info, layout)
            probes_of_program.setdefault(prog_id, set()).update(probes)
            if missed is not None:
                self._note(("link", link_id), missed, probes)
        programs = 0
        if layout.recursion_misses is not None:
            for prog_id, probes in probes_of_program.items():
                count = self._program_misses(prog_id)
                if count is not None:
                    programs += 1
                    self._note(("prog", prog_id), count, tuple(probes))
        for prog_id in self._programs.keys() - probes_of_program.keys():
            bpfsys.close(self._programs.pop(prog_id))
        by_probe: dict[int, int] = {}
        for key, probe_id in self._probe_of.items():
            if self._last[key]:
                by_probe[probe_id] = by_probe.get(probe_id, 0) + self._last[key]
        return Misses(sum(self._last.values()), tuple(sorted(by_probe.items())), programs)

    def _note(self, key: tuple[str, int], count: int, probes) -> None:
        self._last[key] = max(count, self._last.get(key, 0))
        if len(probes) == 1:
            self._probe_of[key] = next(iter(probes))

    def _program_misses(self, prog_id: int) -> int | None:
        fd = self._programs.get(prog_id)
        try:
            if fd is None:
                fd = self._programs[prog_id] = bpfsys.prog_fd_by_id(prog_id)
            return program_misses(bpfsys.obj_info(fd, self.layout.prog_info_size), self.layout)
        except OSError:
            return None

    def close(self) -> None:
        for fd in self._programs.values():
            bpfsys.close(fd)
        self._programs.clear()
