"""Build the BPF program from bpf/ipft.bpf.c plus generated entry points, and compile it with bcc."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import IpftError
from ..pcapfilter import c_source
from .event import EventLayout, c_header, capture_room

def bpf_dir() -> Path:
    """bpf/ next to the package in a checkout, or inside it when installed."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "bpf", package.parent / "bpf"):
        if (candidate / "ipft.bpf.c").exists():
            return candidate
    raise IpftError(f"BPF sources (ipft.bpf.c) not found near {package}")


@dataclass
class ProgramSpec:
    layout_header: str  # IPFT_OFF_* definitions from the running kernel's BTF
    entry_points: str
    perf_buffer: bool = False
    ringbuf_pages: int = 1024
    meta: bool = False
    track_skb: bool = False  # compile in skb following (switched on in the config map)
    stacks: bool = False  # compile in stack traces (asked for per probe in probe_flags)
    capture_bytes: int = 0  # copy the packet's first bytes into each event (0: off)
    module_source: str | None = None  # an extension's C code defining module()
    module_label: str = "extension"  # where module_source came from, for error messages
    defines: dict[str, int] = field(default_factory=dict)
    # The pcap-filter expression as C (ipft_tui/pcapfilter.py); by default, none.
    filter_source: str = field(default_factory=lambda: c_source(None))

    def _parts(self) -> list[tuple[str, str]]:
        parts = [("layout", self.layout_header), ("event", c_header(self.event_layout())),
                 ("bpf/ipft.bpf.c", (bpf_dir() / "ipft.bpf.c").read_text())]
        parts.append(("pcap-filter expression", self.filter_source))
        if self.module_source is not None:
            parts.append((self.module_label, self.module_source))
        parts.append(("bpf/entry_points.h", (bpf_dir() / "entry_points.h").read_text()))
        parts.append(("entry points", self.entry_points))
        return parts

    def source(self) -> str:
        return "\n".join(text for _label, text in self._parts())

    def dump(self, title: str) -> str:
        """The whole program as bcc gets it, its cflags in a comment on top (--dump-bpf)."""
        return f"/* {title}\n * cflags: {' '.join(self.cflags())}\n */\n{self.source()}"

    def locate(self, line: int) -> tuple[str, int]:
        """Which part (and line in it) a line of source() comes from."""
        start = 1
        for label, text in self._parts():
            count = text.count("\n") + 1
            if line < start + count:
                return label, line - start + 1
            start += count
        return "main.c", line

    def event_layout(self) -> EventLayout:
        return EventLayout(track_skb=self.track_skb, stacks=self.stacks, meta=self.meta,
                           module=self.module_source is not None,
                           capture_room=capture_room(self.capture_bytes) if self.capture_bytes else 0)

    def cflags(self) -> list[str]:
        flags = [f"-DIPFT_RINGBUF_PAGES={self.ringbuf_pages}",
                 # clang's messages only, never the source lines they point at: an
                 # extension could #include any file root can read.
                 "-fno-caret-diagnostics"]
        if self.perf_buffer:
            flags.append("-DIPFT_PERF_BUFFER=1")
        if self.meta:
            flags.append("-DIPFT_WITH_META=1")
        if self.module_source is not None:
            flags.append("-DIPFT_MODULE=1")
        if self.track_skb:
            flags.append("-DIPFT_TRACK_SKB=1")
        if self.stacks:
            flags.append("-DIPFT_STACKS=1")
        if self.capture_bytes:
            flags.append(f"-DIPFT_CAPTURE_BYTES={self.capture_bytes}")
        flags += [f"-D{k}={v}" for k, v in self.defines.items()]
        # Headers of another kernel version can redefine a few macros bcc also sets; 6.12's
        # x86 headers use attributes bcc's clang ignores or repeats (79 lines of warnings).
        flags += ["-Wno-macro-redefined", "-Wno-ignored-attributes", "-Wno-duplicate-decl-specifier"]
        return flags


def import_bcc():
    try:
        import bcc  # noqa: PLC0415 - optional system package, only needed to trace
    except ImportError as exc:
        raise IpftError(
            "bcc's Python module is missing: install Debian's python3-bpfcc and run "
            "ipft-tui with /usr/bin/python3 (or a venv made with --system-site-packages); "
            f"({exc})") from None
    return bcc


def compile_program(spec: ProgramSpec):
    bcc = import_bcc()
    try:
        return bcc.BPF(text=spec.source().encode(), cflags=spec.cflags())
    except Exception as exc:  # bcc raises bare Exception on compile/load errors
        details = compile_diagnostics(spec)
        raise IpftError(f"compiling the BPF program failed: {exc}"
                        + (f"\n{details}" if details else "")) from None


_DIAGNOSTIC = re.compile(r"^/virtual/main\.c:(\d+):(\d+): (error|warning|note): (.*)$")


def compile_diagnostics(spec: ProgramSpec) -> str:
    """clang's errors, with lines pointing into the extension's own source.

    bcc prints them on the process's stderr (which the TUI draws on), so the
    failed compile is repeated in a child process that captures them."""
    with tempfile.NamedTemporaryFile("w", suffix=".c", delete=False) as f:
        f.write(spec.source())
    try:
        proc = subprocess.run([sys.executable, "-m", "ipft_tui.tracing.compile_check", f.name,
                               *spec.cflags()], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        return ""
    finally:
        os.unlink(f.name)
    lines = []
    for line in proc.stderr.splitlines():
        m = _DIAGNOSTIC.match(line)
        if m and m.group(3) == "error":
            label, where = spec.locate(int(m.group(1)))
            lines.append(f"{label}:{where}:{m.group(2)}: error: {m.group(4)}")
    return "\n".join(lines[:10])

