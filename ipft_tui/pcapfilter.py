"""pcap-filter expressions: compiled by libpcap to classic BPF, then translated to C
functions that bpf/ipft.bpf.c calls on the skb's bytes (ipft_expr_l2, ipft_expr_l3).

Two programs per expression, as retis does: one for packets whose Ethernet header is
set (DLT_EN10MB, bytes from skb->mac_header) and one for packets seen before or
without it (DLT_RAW, bytes from skb->network_header). `run()` is a reference
interpreter with the BPF side's semantics; tests compare it with libpcap's own
pcap_offline_filter().
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

from .errors import UsageError

MAX_INSNS = 512  # longer programs are refused (verifier cost grows with their paths)
DLT_EN10MB, DLT_RAW = 1, 12
SNAPLEN = 262144
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF

# Classic BPF opcode fields (linux/filter.h, pcap/bpf.h)
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
SRC_X = 0x08
RET_A = 0x10
TAX, TXA = 0x00, 0x80
SCRATCH_WORDS = 16


class FilterError(UsageError):
    """An expression libpcap refuses (its own message), or one we cannot run."""


@dataclass(frozen=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int


@dataclass(frozen=True)
class PacketFilter:
    expression: str
    l2: tuple[Insn, ...]  # Ethernet frames (DLT_EN10MB)
    l3: tuple[Insn, ...]  # IP packets without a link-layer header (DLT_RAW)
    l3_note: str = ""  # why nothing without an Ethernet header can match, if so


class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


_lock = threading.Lock()  # pcap_compile keeps parser state in globals in older releases
_lib = None


def _libpcap():
    global _lib
    if _lib is None:
        names = ["libpcap.so.0.8", "libpcap.so.1", ctypes.util.find_library("pcap")]
        for name in filter(None, names):
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise FilterError("pcap-filter expressions need libpcap (Debian: apt-get install "
                              "libpcap0.8)")
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram),
                                     ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_BpfProgram),
                                            ctypes.POINTER(_PktHdr), ctypes.c_char_p]
        _lib = lib
    return _lib


def libpcap_compile(expression: str, linktype: int) -> tuple[Insn, ...]:
    """libpcap's optimized program for the expression; FilterError with libpcap's message."""
    lib = _libpcap()
    with _lock:
        handle = lib.pcap_open_dead(linktype, SNAPLEN)
        if not handle:
            raise FilterError("libpcap: pcap_open_dead failed")
        try:
            prog = _BpfProgram()
            if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1,
                                PCAP_NETMASK_UNKNOWN) != 0:
                raise FilterError(lib.pcap_geterr(handle).decode(errors="replace"))
            try:
                return tuple(Insn(i.code, i.jt, i.jf, i.k)
                             for i in prog.bf_insns[:prog.bf_len])
            finally:
                lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(handle)


def libpcap_matches(expression: str, linktype: int, packet: bytes) -> bool:
    """libpcap's own verdict on a packet (pcap_offline_filter): the tests' reference."""
    lib = _libpcap()
    with _lock:
        handle = lib.pcap_open_dead(linktype, SNAPLEN)
        prog = _BpfProgram()
        try:
            if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1,
                                PCAP_NETMASK_UNKNOWN) != 0:
                raise FilterError(lib.pcap_geterr(handle).decode(errors="replace"))
            hdr = _PktHdr(_Timeval(0, 0), len(packet), len(packet))
            verdict = lib.pcap_offline_filter(ctypes.byref(prog), ctypes.byref(hdr), packet)
            lib.pcap_freecode(ctypes.byref(prog))
            return verdict != 0
        finally:
            lib.pcap_close(handle)


def unsupported(program: tuple[Insn, ...]) -> str | None:
    """Why our interpreter cannot run this program, or None."""
    if len(program) > MAX_INSNS:
        return (f"it compiles to {len(program)} classic BPF instructions; at most {MAX_INSNS} "
                "are translated for the kernel (simplify it)")
    for pc, insn in enumerate(program):
        cls, code = insn.code & 7, insn.code
        if cls in (LD, LDX):
            mode = code & 0xE0
            if cls == LD and mode in (ABS, IND) and insn.k >= 0x80000000:
                return (f"instruction {pc} uses a Linux socket-filter extension "
                        f"(ancillary data at offset {insn.k - 0x100000000})")
            if mode == MSH and cls != LDX:
                return f"instruction {pc}: unknown load 0x{code:02x}"
        elif cls == JMP:
            target = pc + 1 + (insn.k if code & 0xF0 == JA else max(insn.jt, insn.jf))
            if target >= len(program):
                return f"instruction {pc} jumps outside the program"
        elif cls == ALU and code & 0xF0 not in (ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG,
                                                  MOD, XOR):
            return f"instruction {pc}: unknown ALU operation 0x{code:02x}"
        elif cls in (ST, STX) and insn.k >= SCRATCH_WORDS:
            return f"instruction {pc} stores outside the scratch memory"
    return None


def compile_filter(expression: str) -> PacketFilter:
    """Both programs for an expression; FilterError (libpcap's message, or why the
    kernel side cannot run it) before anything is attached."""
    expression = expression.strip()
    if not expression:
        raise FilterError("empty expression")
    l2 = libpcap_compile(expression, DLT_EN10MB)
    problem = unsupported(l2)
    if problem:
        raise FilterError(f"expression {expression!r} cannot run in the kernel: {problem}")
    note = ""
    try:
        l3 = libpcap_compile(expression, DLT_RAW)
        problem = unsupported(l3)
        if problem:
            raise FilterError(f"expression {expression!r} cannot run in the kernel "
                              f"(program for packets without an Ethernet header): {problem}")
    except FilterError as exc:
        if "cannot run" in str(exc):
            raise
        # e.g. `ether host ...`: only packets with an Ethernet header can match.
        l3, note = (Insn(RET | 0, 0, 0, 0),), str(exc)
    return PacketFilter(expression, l2, l3, note)


def _load(packet: bytes, offset: int, size: int) -> int | None:
    if offset < 0 or offset + size > len(packet):
        return None
    return int.from_bytes(packet[offset:offset + size], "big")


def run(program: tuple[Insn, ...], packet: bytes, wirelen: int | None = None) -> int:
    """Run a classic BPF program over packet bytes with the kernel side's semantics
    (an out-of-bounds load or a division by zero rejects). Returns what it returns."""
    a = x = 0
    mem = [0] * SCRATCH_WORDS
    pc = 0
    wirelen = len(packet) if wirelen is None else wirelen
    sizes = {W: 4, H: 2, B: 1}
    for _step in range(MAX_INSNS):
        if pc >= len(program):
            return 0
        insn = program[pc]
        code, k = insn.code, insn.k
        pc += 1
        cls = code & 7
        if cls in (LD, LDX):
            mode = code & 0xE0
            if mode == IMM:
                value = k
            elif mode == LEN:
                value = wirelen
            elif mode == MEM:
                value = mem[k & (SCRATCH_WORDS - 1)]
            elif mode in (ABS, IND) and cls == LD:
                offset = k + (x if mode == IND else 0)
                value = _load(packet, offset, sizes.get(code & 0x18, 1))
                if value is None or offset > 0xFFFFFFFF:
                    return 0
            elif mode == MSH and cls == LDX:
                value = _load(packet, k, 1)
                if value is None:
                    return 0
                value = (value & 0xF) << 2
            else:
                return 0
            if cls == LD:
                a = value
            else:
                x = value
        elif cls == ST:
            mem[k & (SCRATCH_WORDS - 1)] = a
        elif cls == STX:
            mem[k & (SCRATCH_WORDS - 1)] = x
        elif cls == ALU:
            src = x if code & SRC_X else k
            op = code & 0xF0
            if op in (DIV, MOD) and src == 0:
                return 0
            if op in (LSH, RSH) and src >= 32:
                a = 0
            else:
                a = {ADD: lambda v, w: v + w, SUB: lambda v, w: v - w, MUL: lambda v, w: v * w,
                     DIV: lambda v, w: v // w, OR: lambda v, w: v | w, AND: lambda v, w: v & w,
                     LSH: lambda v, w: v << w, RSH: lambda v, w: v >> w, NEG: lambda v, w: -v,
                     MOD: lambda v, w: v % w, XOR: lambda v, w: v ^ w}.get(op, lambda v, w: None)(a, src)
                if a is None:
                    return 0
                a &= 0xFFFFFFFF
        elif cls == JMP:
            op = code & 0xF0
            if op == JA:
                pc += k
                continue
            src = x if code & SRC_X else k
            taken = {JEQ: a == src, JGT: a > src, JGE: a >= src,
                     JSET: (a & src) != 0}.get(op)
            if taken is None:
                return 0
            pc += insn.jt if taken else insn.jf
        elif cls == RET:
            return a if code & 0x18 == RET_A else k
        elif cls == MISC:
            if code & 0xF8 == TAX:
                x = a
            elif code & 0xF8 == TXA:
                a = x
            else:
                return 0
    return 0


def matches(f: PacketFilter, packet: bytes, l2: bool = True) -> bool:
    return run(f.l2 if l2 else f.l3, packet) != 0


def encode(program: tuple[Insn, ...]) -> list[tuple[int, int, int, int]]:
    """(code, jt, jf, k) rows for the BPF map's value."""
    return [(i.code, i.jt, i.jf, i.k) for i in program]


def to_c(program: tuple[Insn, ...], name: str) -> str:
    """The program as a C function for our BPF program: `static u32 name(pkt, avail,
    wirelen)`, one labelled statement per instruction. Classic BPF jumps only go forward,
    so the code is loop-free and the verifier walks it once per path join; loads go
    through ipft_cbpf_load() (bounds-checked bpf_probe_read_kernel)."""
    problem = unsupported(program)
    if problem:
        raise FilterError(f"cannot translate: {problem}")
    used_mem = sorted({i.k for i in program if i.code & 7 in (ST, STX)
                       or (i.code & 7 in (LD, LDX) and i.code & 0xE0 == MEM)})
    lines = [f"static __always_inline u32 {name}(const unsigned char *pkt, u32 avail, u32 wirelen)",
             "{", "    u32 A = 0, X = 0, v = 0;"]
    lines += [f"    u32 M{k} = 0;" for k in used_mem]
    sizes = {W: 4, H: 2, B: 1}
    for pc, insn in enumerate(program):
        code, k = insn.code, insn.k
        cls = code & 7
        reg = "A" if cls == LD else "X"
        if cls in (LD, LDX):
            mode = code & 0xE0
            if mode == IMM:
                stmt = f"{reg} = {k}u;"
            elif mode == LEN:
                stmt = f"{reg} = wirelen;"
            elif mode == MEM:
                stmt = f"{reg} = M{k};"
            elif mode == ABS:
                stmt = (f"if (ipft_cbpf_load(pkt, avail, {k}u, {sizes[code & 0x18]}, &v)) "
                        f"return 0; {reg} = v;")
            elif mode == IND:
                stmt = (f"if (X + {k}u < X || ipft_cbpf_load(pkt, avail, X + {k}u, "
                        f"{sizes[code & 0x18]}, &v)) return 0; {reg} = v;")
            elif mode == MSH:
                stmt = f"if (ipft_cbpf_load(pkt, avail, {k}u, 1, &v)) return 0; X = (v & 0xf) << 2;"
            else:
                raise FilterError(f"cannot translate instruction {pc} (0x{code:02x})")
        elif cls == ST:
            stmt = f"M{k} = A;"
        elif cls == STX:
            stmt = f"M{k} = X;"
        elif cls == ALU:
            src = "X" if code & SRC_X else f"{k}u"
            op = code & 0xF0
            if op in (DIV, MOD):
                sym = "/" if op == DIV else "%"
                stmt = f"if (!{src}) return 0; A {sym}= {src};"
            elif op in (LSH, RSH):
                sym = "<<" if op == LSH else ">>"
                stmt = f"A = {src} < 32 ? A {sym} {src} : 0;"
            elif op == NEG:
                stmt = "A = -A;"
            else:
                sym = {ADD: "+", SUB: "-", MUL: "*", OR: "|", AND: "&", XOR: "^"}[op]
                stmt = f"A {sym}= {src};"
        elif cls == JMP:
            op = code & 0xF0
            if op == JA:
                stmt = f"goto L{pc + 1 + k};"
            else:
                src = "X" if code & SRC_X else f"{k}u"
                cond = {JEQ: f"A == {src}", JGT: f"A > {src}", JGE: f"A >= {src}",
                        JSET: f"(A & {src}) != 0"}[op]
                stmt = f"if ({cond}) goto L{pc + 1 + insn.jt}; goto L{pc + 1 + insn.jf};"
        elif cls == RET:
            stmt = "return A;" if code & 0x18 == RET_A else f"return {k}u;"
        else:
            stmt = "X = A;" if code & 0xF8 == TAX else "A = X;"
        lines.append(f"L{pc}: {stmt}")
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


def c_source(f: PacketFilter | None) -> str:
    """The expression's two functions (ipft_expr_l2, ipft_expr_l3) for bpf/ipft.bpf.c;
    without an expression, ones that never match (never called: the filter bit is off)."""
    if f is None:
        return ("static __always_inline u32 ipft_expr_l2(const unsigned char *pkt, u32 avail, "
                "u32 wirelen) { return 0; }\n"
                "static __always_inline u32 ipft_expr_l3(const unsigned char *pkt, u32 avail, "
                "u32 wirelen) { return 0; }\n")
    return ("#pragma clang diagnostic push\n"
            "#pragma clang diagnostic ignored \"-Wunused-label\"\n"
            "#pragma clang diagnostic ignored \"-Wunused-variable\"\n"
            "#pragma clang diagnostic ignored \"-Wunused-parameter\"\n"
            "#pragma clang diagnostic ignored \"-Wunused-but-set-variable\"\n"
            + to_c(f.l2, "ipft_expr_l2") + to_c(f.l3, "ipft_expr_l3")
            + "#pragma clang diagnostic pop\n")
