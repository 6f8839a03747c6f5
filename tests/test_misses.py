"""Kernel-side misses (tracing/misses.py): the info structs' layout from BTF, their
parsing, and the per-probe/total bookkeeping, against a fake bpf(2)."""

import struct

import pytest

from ipft_tui.kernel import btf as btfmod
from ipft_tui.tracing import misses
from ipft_tui.tracing.misses import InfoLayout, MissCounter, link_facts, program_misses
from tests.btf_builder import BTFBuilder

# Offsets as on 6.18 (x86_64), where both counts are told.
LAYOUT = InfoLayout(prog_info_size=232, recursion_misses=208, link_info_size=64, link_type=0,
                    link_id=4, link_prog_id=8, kprobe_multi_type=8, perf_event_type=7,
                    kprobe_multi_missed=32, perf_event_kind=16, perf_kprobe_kinds=(3, 4),
                    perf_kprobe_missed=48)
RAW_TP, PERF_EVENT, KPROBE_MULTI = 1, 7, 8


def prog_info(recursion_misses: int) -> bytes:
    info = bytearray(232)
    struct.pack_into("<Q", info, 208, recursion_misses)
    return bytes(info)


def link_info(link_type: int, link_id: int, prog_id: int, missed: int = 0, kind: int = 3) -> bytes:
    info = bytearray(64)
    struct.pack_into("<III", info, 0, link_type, link_id, prog_id)
    if link_type == KPROBE_MULTI:
        struct.pack_into("<Q", info, 32, missed)
    elif link_type == PERF_EVENT:
        struct.pack_into("<I", info, 16, kind)
        struct.pack_into("<Q", info, 48, missed)
    return bytes(info)


def test_parsing_the_info_structs():
    assert program_misses(prog_info(7), LAYOUT) == 7
    assert link_facts(link_info(RAW_TP, 3, 40), LAYOUT) == (3, 40, None)
    assert link_facts(link_info(KPROBE_MULTI, 4, 41, missed=9), LAYOUT) == (4, 41, 9)
    assert link_facts(link_info(PERF_EVENT, 5, 42, missed=2), LAYOUT) == (5, 42, 2)
    # a perf_event link on a tracepoint (kind 5) has no kprobe count
    assert link_facts(link_info(PERF_EVENT, 6, 43, missed=2, kind=5), LAYOUT) == (6, 43, None)


def _kernel_btf(with_misses: bool) -> btfmod.BTF:
    b = BTFBuilder()
    u32, u64 = b.int_("unsigned int", 4), b.int_("long long unsigned int", 8)
    prog = [("type", u32, 0), ("id", u32, 32)] + ([("recursion_misses", u64, 208 * 8)]
                                                  if with_misses else [])
    b.struct("bpf_prog_info", 232 if with_misses else 200, prog)
    kmulti = b.struct("", 32, [("addrs", u64, 0), ("count", u32, 64), ("flags", u32, 96)]
                      + ([("missed", u64, 128)] if with_misses else []))
    union = b.struct("", 48, [("kprobe_multi", kmulti, 0)], union=True)
    b.struct("bpf_link_info", 64, [("type", u32, 0), ("id", u32, 32), ("prog_id", u32, 64),
                                   ("", union, 128)])
    b.enum("bpf_link_type", [("BPF_LINK_TYPE_RAW_TRACEPOINT", 1),
                             ("BPF_LINK_TYPE_KPROBE_MULTI", 8)])
    return btfmod.BTF(b.build())


def test_layout_from_the_kernels_btf():
    layout = InfoLayout.from_btf(_kernel_btf(with_misses=True))
    assert (layout.recursion_misses, layout.kprobe_multi_missed) == (208, 32)
    assert layout.kprobe_multi_type == 8 and layout.perf_kprobe_missed is None
    assert layout.tells_anything


def test_a_kernel_without_the_fields_tells_nothing():
    layout = InfoLayout.from_btf(_kernel_btf(with_misses=False))
    assert layout.recursion_misses is None and not layout.tells_anything
    assert not MissCounter(layout).available
    assert MissCounter(layout).read([((0,), 3)]) is None


class FakeKernel:
    """bpf(2) as the counter uses it: link fds, programs by id."""

    def __init__(self):
        self.links: dict[int, bytes] = {}
        self.programs: dict[int, int] = {}  # prog id -> recursion_misses
        self.open: dict[int, int] = {}  # our fd -> prog id
        self.closed: list[int] = []

    def obj_info(self, fd, size):
        if fd in self.links:
            return self.links[fd]
        if fd in self.open:
            return prog_info(self.programs[self.open[fd]])
        raise OSError(22, "Invalid argument")  # e.g. a perf event fd

    def prog_fd_by_id(self, prog_id):
        if prog_id not in self.programs:
            raise OSError(2, "No such file or directory")
        fd = 1000 + len(self.open)
        self.open[fd] = prog_id
        return fd

    def close(self, fd):
        self.closed.append(fd)


@pytest.fixture
def kernel(monkeypatch):
    fake = FakeKernel()
    for name in ("obj_info", "prog_fd_by_id", "close"):
        monkeypatch.setattr(misses.bpfsys, name, getattr(fake, name))
    return fake


def test_shared_programs_count_in_the_total_single_ones_per_probe(kernel):
    # Probes 0-2 share program 50 (BPF cookies); probe 3 has program 51 of its own.
    kernel.programs = {50: 4, 51: 2}
    kernel.links = {10: link_info(RAW_TP, 1, 50), 11: link_info(RAW_TP, 2, 50),
                    12: link_info(RAW_TP, 3, 50), 13: link_info(RAW_TP, 4, 51)}
    counter = MissCounter(LAYOUT)
    got = counter.read([((0,), 10), ((1,), 11), ((2,), 12), ((3,), 13), ((4,), 99)])
    assert got.total == 6 and got.by_probe == ((3, 2),) and got.programs == 2
    # Program 51 goes away (its probe detached): its count stays in the total.
    kernel.programs[50] = 5
    got = counter.read([((0,), 10), ((1,), 11), ((2,), 12)])
    assert got.total == 7 and got.by_probe == ((3, 2),)
    assert len(kernel.closed) == 1  # our fd of program 51
    counter.close()
    assert len(kernel.closed) == 2


def test_kprobe_link_misses_per_probe_and_per_multi_link(kernel):
    kernel.programs = {60: 0, 61: 1}
    kernel.links = {20: link_info(PERF_EVENT, 7, 60, missed=3),
                    21: link_info(KPROBE_MULTI, 8, 61, missed=5)}
    got = MissCounter(LAYOUT).read([((0,), 20), ((1, 2, 3), 21)])
    # probe 0: its kprobe's 3; the multi link's 5 and its program's 1: total only
    assert got.total == 9 and got.by_probe == ((0, 3),)


def test_status_bar_shows_misses_next_to_lost_when_there_are_some():
    from ipft_tui.collector import Status
    from ipft_tui.tui.widgets import status_items

    def labels(status):
        return [label for label, _value, _style in status_items(
            status, rate=0, packets=0, evicted=0, drops=0, follow=True, paused=False,
            pending=0, live=True)]
    assert "missed" not in labels(Status(missed=0))
    shown = labels(Status(lost=1, missed=5))
    assert shown.index("missed") == shown.index("lost") + 1
