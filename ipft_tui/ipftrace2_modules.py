"""C modules written for ipftrace2, compiled unchanged by bcc with the running
kernel's offsets.

ipftrace2's modules are libbpf-style CO-RE C: `#include <bpf/bpf_helpers.h>`,
partial struct definitions (`struct sk_buff { uint32_t mark; };`) that libbpf
relocates against the kernel's BTF, `BPF_CORE_READ(skb, mark)`, `__hidden`. bcc
has no CO-RE loader, so the source is adapted before it is compiled:

- libbpf's headers are dropped (bpf/ipft.bpf.c defines what modules use of
  them: BPF_CORE_READ, BPF_CORE_READ_INTO, bpf_core_read, __hidden);
- a partial definition of a kernel struct (members all in the kernel's) is
  removed, and every kernel struct the code names is defined in full from BTF
  (kernel/btf_c.py), so `&skb->len` and BPF_CORE_READ read at the running
  kernel's offsets;
- line numbers stay as written, so compile errors point at the user's lines.
"""

from __future__ import annotations

import re

from .kernel import btf as btfmod
from .kernel import btf_c

# Headers whose content bcc's environment or bpf/ipft.bpf.c already provides.
PROVIDED_HEADERS = frozenset({
    "bpf/bpf_helpers.h", "bpf/bpf_core_read.h", "bpf/bpf_tracing.h", "bpf/bpf_endian.h",
    "stdint.h", "linux/types.h", "linux/ptrace.h", "linux/bpf.h", "vmlinux.h",
})

_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
_RECORD = re.compile(r"\b(struct|union)\s+([A-Za-z_]\w*)")
_DEFINITION_END = re.compile(r"\s*(?:__attribute__\s*\(\(.*?\)\)\s*)?;", re.S)
_MEMBER_NAME = re.compile(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*(?::\s*\w+\s*)?$")


def _code_only(source: str) -> tuple[str, list[bool]]:
    """The source with comments and literals blanked (same length, newlines kept),
    and per character whether it lies in a comment."""
    out, in_comment = list(source), [False] * len(source)
    i, n = 0, len(source)
    while i < n:
        two = source[i:i + 2]
        if two in ("/*", "//"):
            end = source.find("*/", i + 2) + 2 if two == "/*" else source.find("\n", i)
            if end < 2 or end == -1:
                end = n
            for j in range(i, end):
                in_comment[j] = True
                if out[j] != "\n":
                    out[j] = " "
            i = end
        elif source[i] in "\"'":
            quote, j = source[i], i + 1
            while j < n and source[j] not in (quote, "\n"):
                j += 2 if source[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                out[k] = " "
            i = j + 1
        else:
            i += 1
    return "".join(out), in_comment


def _blank(text: list[str], start: int, end: int) -> None:
    for i in range(start, end):
        if text[i] != "\n":
            text[i] = " "


def _partial_definitions(code: str, vmlinux: btfmod.BTF) -> list[tuple[int, int, str]]:
    """(start, end, name) of top-level definitions of kernel structs whose members
    all exist in the kernel's struct: CO-RE style, to be replaced."""
    found, depth, i = [], 0, 0
    while i < len(code):
        c = code[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0:
            m = _RECORD.match(code, i)
            if m and (i == 0 or not (code[i - 1].isalnum() or code[i - 1] == "_")):
                after = code[m.end():].lstrip()
                if after.startswith("{"):
                    open_at = code.index("{", m.end())
                    close_at = _matching_brace(code, open_at)
                    tail = _DEFINITION_END.match(code, close_at + 1) if close_at > 0 else None
                    type_id = btf_c.kernel_record(vmlinux, m.group(2))
                    if tail and type_id:
                        names = _member_names(code[open_at + 1:close_at])
                        if names <= set(vmlinux.members(type_id)):
                            found.append((i, tail.end(), m.group(2)))
                            i = tail.end()
                            continue
                i = m.end() if m else i + 1
                continue
        i += 1
    return found


def _matching_brace(code: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(code)):
        depth += (code[j] == "{") - (code[j] == "}")
        if depth == 0:
            return j
    return -1


def _member_names(body: str) -> set[str]:
    names = set()
    for declaration in re.sub(r"\{[^{}]*\}", " ", body).split(";"):
        m = _MEMBER_NAME.search(declaration.strip())
        if m:
            names.add(m.group(1))
    return names


def adapt(source: str, vmlinux: btfmod.BTF | None) -> str:
    """The module's source as bcc can compile it (see the module docstring)."""
    code, in_comment = _code_only(source)
    text = list(source)
    offset = 0
    for line in source.splitlines(keepends=True):  # libbpf's headers: dropped
        m = _INCLUDE.match(line)
        if m and not in_comment[offset] and m.group(1) in PROVIDED_HEADERS:
            _blank(text, offset, offset + len(line))
        offset += len(line)
    if vmlinux is None:
        return "".join(text)
    replaced = _partial_definitions(code, vmlinux)
    for start, end, _name in replaced:
        _blank(text, start, end)
        code = code[:start] + "".join(c if c == "\n" else " " for c in code[start:end]) + code[end:]
    # Every struct the code names that the kernel has, unless the user defines it
    # (a struct of their own that happens to share a kernel name).
    own = _own_definitions(code)
    uses = [m for m in _RECORD.finditer(code)
            if m.group(2) not in own and btf_c.kernel_record(vmlinux, m.group(2))]
    # and those whose partial definitions were replaced (pointers to them may be read)
    names = sorted({m.group(2) for m in uses} | {name for _s, _e, name in replaced})
    if not names:
        return "".join(text)
    for m in uses:  # in place, one character slot per character: offsets stay valid
        text[m.start(2)] = btf_c.tag(m.group(2))
        for k in range(m.start(2) + 1, m.end(2)):
            text[k] = ""
    definitions = " ".join(btf_c.definition(vmlinux, name) for name in names) + " "
    first = _first_code_line(source, code, in_comment)
    if first < len(text):
        text[first] = definitions + text[first]
    else:
        text.append(definitions)
    return "".join(text)


def _own_definitions(code: str) -> set[str]:
    return {m.group(2) for m in re.finditer(r"\b(struct|union)\s+([A-Za-z_]\w*)\s*\{", code)}


def _first_code_line(source: str, code: str, in_comment: list[bool]) -> int:
    """Offset of the first line that starts top-level code (not a directive, not in
    a comment): definitions put in front of it keep every line number."""
    offset, continued = 0, False
    for line in code.splitlines(keepends=True):
        stripped = line.strip()
        directive = continued or stripped.startswith("#")
        continued = directive and line.rstrip("\n").endswith("\\")
        if stripped and not directive and not in_comment[offset]:
            return offset
        offset += len(line)
    return len(source)
