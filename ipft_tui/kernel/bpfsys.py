"""The few bpf(2) and perf_event_open(2) calls bcc does not offer, via ctypes.

Used for the capability probes (tiny hand-written programs, no compiler needed)
and for attaching raw tracepoints with a BPF cookie.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, 321)

BPF_PROG_LOAD = 5
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_BTF_GET_FD_BY_ID = 19
BPF_BTF_GET_NEXT_ID = 23
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_LINK_CREATE = 28

PROG_TYPE_KPROBE = 2
PROG_TYPE_RAW_TRACEPOINT = 17
PROG_TYPE_TRACING = 26

ATTACH_TRACE_FENTRY = 24
ATTACH_TRACE_FEXIT = 25
ATTACH_TRACE_KPROBE_MULTI = 42

HELPER_GET_ATTACH_COOKIE = 174

# Instructions (struct bpf_insn: u8 code, u8 dst:4|src:4, s16 off, s32 imm)
def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


RETURN_ZERO = _insn(0xB7, 0, imm=0) + _insn(0x95)  # r0 = 0; exit
CALL_COOKIE_THEN_RETURN = _insn(0x85, imm=HELPER_GET_ATTACH_COOKIE) + RETURN_ZERO


class BPFSyscallError(OSError):
    pass


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, len(attr))
    ret = _libc.syscall(SYS_BPF, cmd, buf, len(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise BPFSyscallError(err, os.strerror(err))
    return ret


def prog_load(prog_type: int, insns: bytes, expected_attach_type: int = 0,
              attach_btf_id: int = 0, log: bool = False, name: bytes = b"ipft_probe",
              attach_btf_obj_fd: int = 0) -> int:
    """Load a program; returns its fd. Raises BPFSyscallError (with the verifier log).
    `attach_btf_obj_fd`: the module BTF object `attach_btf_id` is in (5.11+; 0: vmlinux)."""
    license_buf = ctypes.create_string_buffer(b"GPL")
    insn_buf = ctypes.create_string_buffer(insns, len(insns))
    log_buf = ctypes.create_string_buffer(65536) if log else None
    attr = struct.pack(
        "<IIQQIIQII16sIIIIQIIQ",
        prog_type, len(insns) // 8, ctypes.addressof(insn_buf), ctypes.addressof(license_buf),
        1 if log else 0, len(log_buf) if log else 0, ctypes.addressof(log_buf) if log else 0,
        0,  # kern_version
        0,  # prog_flags
        name[:15],  # prog_name
        0,  # prog_ifindex
        expected_attach_type,
        0, 0, 0,  # prog_btf_fd, func_info_rec_size, func_info
        0, 0,  # func_info_cnt, line_info_rec_size
        0,  # line_info
    )
    # line_info_cnt, attach_btf_id, attach_prog_fd (or attach_btf_obj_fd: a union), core_relo_cnt
    attr += struct.pack("<IIII", 0, attach_btf_id, attach_btf_obj_fd, 0)
    attr = attr.ljust(160, b"\0")
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except BPFSyscallError as exc:
        if log_buf is not None and log_buf.value:
            # The verifier's last words say why; the whole log can be thousands of lines.
            tail = log_buf.value.decode(errors="replace").strip().splitlines()[-4:]
            exc.strerror = f"{exc.strerror}: {' | '.join(tail)}"
        raise


def kernel_btf_fds(names: set[str]) -> dict[str, int]:
    """fds of the kernel's BTF objects with these names (a module's BTF object is named
    after the module, 5.11+; BTF a program loaded, whatever its name, is not the kernel's);
    the caller closes them. Names not loaded are missing."""
    found: dict[str, int] = {}
    btf_id = 0
    try:
        while len(found) < len(names):
            try:
                btf_id = _bpf_u32_out(BPF_BTF_GET_NEXT_ID, btf_id)
            except BPFSyscallError as exc:
                if exc.errno == 2:  # ENOENT: no more
                    break
                raise
            try:
                fd = _bpf(BPF_BTF_GET_FD_BY_ID, struct.pack("<III", btf_id, 0, 0))
            except BPFSyscallError:
                continue  # went away meanwhile
            try:
                name, kernel = _btf_name(fd)
            except BaseException:
                close(fd)
                raise
            if kernel and name in names and name not in found:
                found[name] = fd
            else:
                close(fd)
    except BaseException:
        for fd in found.values():
            close(fd)
        raise
    return found


def _bpf_u32_out(cmd: int, start_id: int) -> int:
    """BPF_*_GET_NEXT_ID: the id after start_id."""
    buf = ctypes.create_string_buffer(struct.pack("<III", start_id, 0, 0), 12)
    if _libc.syscall(SYS_BPF, cmd, buf, 12) < 0:
        err = ctypes.get_errno()
        raise BPFSyscallError(err, os.strerror(err))
    return struct.unpack_from("<I", buf.raw, 4)[0]


def _btf_name(fd: int) -> tuple[str, bool]:
    """A BTF object's name and whether it is the kernel's (struct bpf_btf_info: btf,
    btf_size, id, name, name_len, kernel_btf)."""
    name = ctypes.create_string_buffer(64)
    info = ctypes.create_string_buffer(struct.pack("<QIIQII", 0, 0, 0, ctypes.addressof(name), 64, 0), 32)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, 32, ctypes.addressof(info)))
    kernel_btf = struct.unpack_from("<I", info.raw, 28)[0]
    return name.value.decode(errors="replace"), kernel_btf != 0


def raw_tracepoint_open(prog_fd: int, name: str | None, cookie: int = 0) -> int:
    """Attach a raw tracepoint (or, with name None, a tracing program); returns the link fd.

    A non-zero cookie needs kernel 6.10+ (BPF cookies for raw tracepoints)."""
    name_buf = ctypes.create_string_buffer(name.encode()) if name else None
    attr = struct.pack("<QIIQ", ctypes.addressof(name_buf) if name_buf else 0, prog_fd, 0, cookie)
    return _bpf(BPF_RAW_TRACEPOINT_OPEN, attr.ljust(160, b"\0"))


def kprobe_multi_link(prog_fd: int, symbols: list[str], cookies: list[int] | None = None,
                      return_probe: bool = False) -> int:
    """Create one kprobe-multi link for many functions; returns the link fd."""
    names = [ctypes.create_string_buffer(s.encode()) for s in symbols]
    syms = (ctypes.c_char_p * len(names))(*[ctypes.addressof(n) for n in names])
    cookie_arr = (ctypes.c_uint64 * len(symbols))(*cookies) if cookies else None
    flags = 1 if return_probe else 0  # BPF_F_KPROBE_MULTI_RETURN
    attr = struct.pack(
        "<IIII" "IIQQQ",
        prog_fd, 0, ATTACH_TRACE_KPROBE_MULTI, 0,  # prog_fd, target_fd, attach_type, flags
        flags, len(symbols), ctypes.addressof(syms), 0,  # kprobe_multi: flags, cnt, syms, addrs
        ctypes.addressof(cookie_arr) if cookie_arr else 0,
    )
    return _bpf(BPF_LINK_CREATE, attr.ljust(160, b"\0"))


BPF_PERF_EVENT = 41  # attach type: a BPF link on a perf event (kernel 5.15+)


def perf_link(prog_fd: int, perf_fd: int, cookie: int = 0) -> int:
    """Attach a program to a perf event (e.g. a kprobe) as a BPF link with a cookie;
    returns the link fd, which holds the perf event: closing it detaches."""
    attr = struct.pack("<IIIIQ", prog_fd, perf_fd, BPF_PERF_EVENT, 0, cookie)
    return _bpf(BPF_LINK_CREATE, attr.ljust(160, b"\0"))


def obj_info(fd: int, size: int) -> bytes:
    """The kernel's struct bpf_prog_info / bpf_link_info / ... of an fd, `size` bytes
    of it (a kernel with a smaller struct leaves the rest zero)."""
    info = ctypes.create_string_buffer(size)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, size, ctypes.addressof(info)))
    return info.raw


def prog_fd_by_id(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<III", prog_id, 0, 0))


def close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


# -- perf_event_open for kprobes ------------------------------------------------

PERF_EVENT_IOC_SET_BPF = 0x40042408
PERF_FLAG_FD_CLOEXEC = 1 << 3
SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}.get(os.uname().machine, 298)
KPROBE_PMU_TYPE = "/sys/bus/event_source/devices/kprobe/type"


@functools.cache
def kprobe_pmu_type() -> int | None:
    """Read once: every kprobe attach needs it (a sysfs read costs under emulation)."""
    try:
        with open(KPROBE_PMU_TYPE) as f:
            return int(f.read())
    except OSError:
        return None


def perf_kprobe_open(function: str, retprobe: bool = False) -> int:
    """Create a kprobe perf event through the kprobe PMU; returns its fd."""
    pmu = kprobe_pmu_type()
    if pmu is None:
        raise BPFSyscallError(2, f"no kprobe PMU ({KPROBE_PMU_TYPE} is missing: kernel without CONFIG_KPROBES?)")
    name_buf = ctypes.create_string_buffer(function.encode())
    config = 1 if retprobe else 0  # bit 0 = retprobe (format: config:0)
    attr = struct.pack("<IIQQQQQIIQQ", pmu, 128, config, 1, 0, 0, 0, 1, 0,
                       ctypes.addressof(name_buf), 0).ljust(128, b"\0")
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _libc.syscall(SYS_PERF_EVENT_OPEN, buf, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise BPFSyscallError(err, os.strerror(err))
    return fd


def perf_set_bpf(perf_fd: int, prog_fd: int) -> None:
    try:
        fcntl.ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
    except OSError as exc:
        raise BPFSyscallError(exc.errno, exc.strerror) from None
