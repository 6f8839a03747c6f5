#!/usr/bin/env python3
"""Run a command as root inside QEMU-emulated Debian kernels (the kernel matrix).

    .venv/bin/python tests/vm/run_matrix.py [--kernel 5.10|6.1|6.12|sid|all] -- <command>
    .venv/bin/python tests/vm/run_matrix.py --smoke        # built-in bcc check

For each kernel: `scripts/vm_kernels.sh` makes sure the tools and the unpacked
kernel (image, modules, headers, kbuild) are in the cache; virtme-ng boots it
with software emulation against a read-only view of this machine's filesystem
(writes to /etc /usr /var /tmp /home and to the repository go to throw-away
overlays), the unpacked kernel's /lib/modules/<release> with `build`/`source`
links to its merged headers tree, so bcc compiles as on a real install.

Inside, the command runs by `sh -c` in the repository with:
  IPFT_VM_KERNEL   the series (5.10 .. sid)     IPFT_VM_RELEASE  uname -r
  IPFT_VM_HEADERS  the merged headers tree      IPFT_VM_PYTHON   this repo's venv python
  IPFT_VM_OUT      a host-shared read-write directory (kept when --out is given).
With --bcc-kernel-source, BCC_KERNEL_SOURCE is also set to the headers tree.

Each kernel gets a hard timeout (--timeout, default 900 s): the command is run
under `timeout` in the guest and the whole VM is killed from the host 60 s
later. Prints per-kernel exit code, boot time (host: launch -> command start)
and command time; exits 1 if any kernel failed, 2 on usage/setup errors.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KERNELS = ("5.10", "6.1", "6.12", "sid")  # what `--kernel all` (and make test) runs
EXTRA_KERNELS: tuple[str, ...] = ()  # fetched and booted by name only
# What tests/test_kernel_matrix.py runs in each guest: every guest_*.py (sh expands it).
GUEST_TESTS = "tests/vm/guest_*.py"
DEFAULT_CACHE = "/var/cache/ipft-tui/vm-kernels"
MARK_START = "@@ipft-vm-start@@"
MARK_END = "@@ipft-vm-end@@"
# Faster kprobe detach (synchronize_rcu) under emulation.
KERNEL_CMDLINE = ("rcupdate.rcu_expedited=1",)
# Directories virtme-ng already gives the guest as throw-away writable overlays.
GUEST_OVERLAID = ("/etc", "/lib", "/usr", "/home", "/opt", "/srv", "/var", "/tmp")

SMOKE = r"""
set -e
echo "== kernel $(uname -r), series $IPFT_VM_KERNEL"
"$IPFT_VM_PYTHON" -c 'import bcc; print("import bcc: ok", bcc.__file__)'
"$IPFT_VM_PYTHON" - <<'EOF'
import time
from bcc import BPF
t = time.monotonic()
b = BPF(text="int kprobe__ip_rcv(void *ctx) { return 0; }")
t_attach = time.monotonic() - t
n = b.num_open_kprobes()
b.cleanup()
print(f"bcc compile+attach kprobe ip_rcv: {t_attach:.1f} s, open kprobes {n}, "
      f"detach {time.monotonic() - t - t_attach:.1f} s")
assert n == 1, n
EOF
"$IPFT_VM_PYTHON" -m ipft_tui --check
"""


@dataclass
class Kernel:
    series: str
    release: str
    vmlinuz: str

    @property
    def headers(self) -> str:
        # scripts/vm_kernels.sh layout: <cache>/<release>/{root,headers}
        return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(self.vmlinuz))),
                            "headers")


@dataclass
class Result:
    kernel: Kernel
    rc: int | None = None
    boot_s: float | None = None
    uptime_s: float | None = None  # guest kernel's uptime when the command started
    cmd_s: float | None = None
    total_s: float = 0.0
    note: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rc == 0


def prepare_kernels(series: list[str]) -> list[Kernel]:
    """Run scripts/vm_kernels.sh (idempotent) and parse its '<series> <release> <vmlinuz>'."""
    script = os.path.join(REPO, "scripts", "vm_kernels.sh")
    proc = subprocess.run(["bash", script, *series], stdout=subprocess.PIPE, text=True,
                          cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"run_matrix: {script} failed (exit {proc.returncode})")
    kernels = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in series:
            kernels.append(Kernel(*parts))
    missing = set(series) - {k.series for k in kernels}
    if missing:
        raise SystemExit(f"run_matrix: vm_kernels.sh gave no kernel for {sorted(missing)}")
    return sorted(kernels, key=lambda k: series.index(k.series))


def guest_script(kernel: Kernel, command: str, out_dir: str, timeout: int,
                 bcc_kernel_source: bool, cwd: str) -> str:
    env = {
        "IPFT_VM_KERNEL": kernel.series,
        "IPFT_VM_RELEASE": kernel.release,
        "IPFT_VM_HEADERS": kernel.headers,
        "IPFT_VM_OUT": out_dir,
        "IPFT_VM_PYTHON": os.path.join(REPO, ".venv", "bin", "python"),
        "HOME": "/root",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if bcc_kernel_source:
        env["BCC_KERNEL_SOURCE"] = kernel.headers
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())
    return f"""#!/bin/sh
{exports}
cd {shlex.quote(cwd)} || exit 125
echo "{MARK_START} $(cut -d' ' -f1 /proc/uptime)"
timeout -k 10 {timeout} sh -c {shlex.quote(command)}
rc=$?
echo "$rc" > {shlex.quote(os.path.join(out_dir, ".rc"))}
echo "{MARK_END} $rc"
exit $rc
"""


def run_one(kernel: Kernel, command: str, args: argparse.Namespace, out_dir: str) -> Result:
    res = Result(kernel)
    cache = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(kernel.vmlinuz))))
    os.makedirs(out_dir, exist_ok=True)
    script = os.path.join(out_dir, ".run.sh")
    with open(script, "w") as f:
        f.write(guest_script(kernel, command, out_dir, args.timeout, args.bcc_kernel_source,
                             args.cwd))
    os.chmod(script, 0o755)
    rc_file = os.path.join(out_dir, ".rc")
    if os.path.exists(rc_file):
        os.unlink(rc_file)

    vng = os.path.join(REPO, ".venv", "bin", "vng")
    cmd = [vng, "--run", kernel.vmlinuz, "--disable-kvm",
           "--cpus", str(args.cpus), "--memory", args.memory,
           "--cwd", args.cwd]
    if not any(args.cwd == d or args.cwd.startswith(d + "/") for d in GUEST_OVERLAID):
        # throw-away writable view of the working directory (caches, test files)
        cmd += ["--overlay-rwdir", args.cwd]
    cmd += [
           # /var/cache is a tmpfs in the guest: share the kernel cache back in
           "--rodir", cache,
           "--rwdir", out_dir]
    for opt in KERNEL_CMDLINE + tuple(args.append):
        cmd += ["--append", opt]
    cmd += ["--exec", f"sh {shlex.quote(script)}"]
    env = dict(os.environ)
    env["PATH"] = os.path.join(REPO, ".venv", "bin") + os.pathsep + env.get("PATH", "")
    if args.verbose:
        print(f"[{kernel.series}] $ {shlex.join(cmd)}", flush=True)

    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=REPO, env=env,
                            start_new_session=True)
    killed = threading.Event()

    def kill_vm() -> None:
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # vng/virtme-run/qemu: our own group
        except ProcessLookupError:
            pass

    timer = threading.Timer(args.timeout + 60, kill_vm)
    timer.start()
    t_start = None
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n").replace("\r", "")
            if line.startswith(MARK_START):
                t_start = time.monotonic()
                res.boot_s = t_start - t0
                try:
                    res.uptime_s = float(line.split()[1])
                except (IndexError, ValueError):
                    pass
                continue
            if line.startswith(MARK_END):
                if t_start is not None:
                    res.cmd_s = time.monotonic() - t_start
                continue
            res.log.append(line)
            if not args.quiet:
                print(f"[{kernel.series}] {line}", flush=True)
        vng_rc = proc.wait()
    except BaseException:
        kill_vm()
        proc.wait()
        raise
    finally:
        timer.cancel()
        # Anything vng left behind in its session (it should leave nothing).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    res.total_s = time.monotonic() - t0
    guest_rc = None
    try:
        with open(rc_file) as f:
            guest_rc = int(f.read().strip())
    except (OSError, ValueError):
        pass
    if killed.is_set():
        res.rc, res.note = 124, f"killed after {args.timeout + 60} s (host timeout)"
    elif guest_rc is None:
        res.rc = vng_rc if vng_rc != 0 else 125
        res.note = "the command never finished in the guest (boot failure?)"
    else:
        res.rc = guest_rc
        if guest_rc == 124:
            res.note = f"timed out after {args.timeout} s in the guest"
        elif vng_rc != guest_rc:
            res.note = f"vng exited {vng_rc}"
    return res


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def main(argv: list[str]) -> int:
    if "--" in argv:
        i = argv.index("--")
        opts, command_argv = argv[:i], argv[i + 1:]
    else:
        opts, command_argv = argv, []
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                usage="%(prog)s [options] -- <command inside the VM>")
    p.add_argument("--kernel", default="all", choices=[*KERNELS, *EXTRA_KERNELS, "all"],
                   help="kernel series to run on (default: all)")
    p.add_argument("--smoke", action="store_true",
                   help="run the built-in check (import bcc, kprobe on ip_rcv, ipft_tui --check)")
    p.add_argument("--timeout", type=int, default=900,
                   help="seconds the command may run in each VM (default 900)")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--memory", default="2G")
    p.add_argument("--append", action="append", default=[],
                   help="extra kernel command line option (repeatable)")
    p.add_argument("--bcc-kernel-source", action="store_true",
                   help="also set BCC_KERNEL_SOURCE to the kernel's merged headers tree")
    p.add_argument("--cwd", default=REPO,
                   help="directory the command runs in (default: this repository; "
                        "it is writable in the guest through a throw-away overlay)")
    p.add_argument("--out", help="keep each kernel's IPFT_VM_OUT directory under OUT/<series>")
    p.add_argument("-q", "--quiet", action="store_true", help="do not echo guest output")
    p.add_argument("-v", "--verbose", action="store_true", help="print the vng command line")
    args = p.parse_args(opts)
    if args.smoke:
        if command_argv:
            p.error("--smoke takes no command")
        command = SMOKE
    elif not command_argv:
        p.error("give a command after --, or --smoke")
    else:
        command = command_argv[0] if len(command_argv) == 1 else shlex.join(command_argv)
    args.cwd = os.path.abspath(args.cwd)
    if os.geteuid() != 0:
        print("run_matrix: must run as root (virtme-ng runs the command as the caller)",
              file=sys.stderr)
        return 2
    series = list(KERNELS) if args.kernel == "all" else [args.kernel]
    try:
        kernels = prepare_kernels(series)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2

    # SIGINT/SIGTERM/SIGHUP raise, so the VM's process group is killed on the way out
    # (a background job may have inherited SIGINT as ignored).
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    base = args.out or tempfile.mkdtemp(prefix="ipft-vm-")
    results = []
    interrupted_by = ""
    try:
        for k in kernels:
            print(f"[{k.series}] booting {k.release} ({k.vmlinuz})", flush=True)
            r = run_one(k, command, args, os.path.join(os.path.abspath(base), k.series))
            print(f"[{k.series}] exit {r.rc}; boot {fmt(r.boot_s)} s (guest uptime "
                  f"{fmt(r.uptime_s)} s), command {fmt(r.cmd_s)} s, "
                  f"total {fmt(r.total_s)} s{'; ' + r.note if r.note else ''}", flush=True)
            results.append(r)
    except KeyboardInterrupt as e:
        interrupted_by = str(e) or "SIGINT"
    finally:
        if not args.out:
            shutil.rmtree(base, ignore_errors=True)

    print("\nkernel  release                   exit  boot_s  uptime_s  cmd_s  total_s  note")
    for r in results:
        print(f"{r.kernel.series:<7} {r.kernel.release:<25} {r.rc!s:>4}  {fmt(r.boot_s):>6} "
              f"{fmt(r.uptime_s):>8} "
              f"{fmt(r.cmd_s):>6}  {fmt(r.total_s):>7}  {r.note}")
    failed = [r.kernel.series for r in results if not r.ok]
    if interrupted_by:
        print(f"run_matrix: interrupted ({interrupted_by}) before all kernels ran",
              file=sys.stderr)
        failed.append("interrupted")
    print(f"{len(results) - len([r for r in results if not r.ok])} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
