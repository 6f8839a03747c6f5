"""What each function backend reaches on the running kernel (6.18 here): -l lists it
and says why a matching function is left out; module BTF objects are found by name."""

import os
import subprocess
import sys

import pytest

from ipft_tui.kernel import bpfsys
from ipft_tui.kernel.targets import ftrace_max_args
from tests.conftest import REPO

pytestmark = pytest.mark.root

REGEX = r"^(ip_rcv|__udp4_lib_lookup)$"  # __udp4_lib_lookup: skb in argument 9 of 9


def listed(backend: str) -> tuple[dict[str, str], str]:
    proc = subprocess.run([sys.executable, "-m", "ipft_tui", "-l", "-b", backend, "-r", REGEX],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return {line.split("\t")[0].strip(): line.split("\t")[3] for line in proc.stdout.splitlines()}, proc.stderr


def test_kprobes_read_arguments_1_to_5_and_fentry_what_the_trampoline_saves(bpf_ready):
    rows, err = listed("kprobe")
    assert rows == {"ip_rcv": "0"}
    assert ("kprobe leaves out __udp4_lib_lookup: skb is argument 9; the entry points read "
            "arguments 1-5") in err
    assert ftrace_max_args(os.uname().release) == 12  # this machine's 6.18
    rows, err = listed("ftrace")
    assert rows == {"ip_rcv": "0", "__udp4_lib_lookup": "8"}, err
    assert "leaves out" not in err


def test_kernel_btf_objects_by_name(bpf_ready):
    fds = bpfsys.kernel_btf_fds({"vmlinux", "no_such_module"})
    try:
        assert set(fds) == {"vmlinux"}
    finally:
        for fd in fds.values():
            bpfsys.close(fd)
