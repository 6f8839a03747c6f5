"""Find a kernel headers tree that bcc can compile against.

bcc wants `/lib/modules/$(uname -r)/build`. Our BPF code reads sk_buff fields
at offsets taken from BTF, so headers of another kernel version work too. When
the running kernel has none, we join an installed Debian-style pair
(`linux-headers-<ver>-<flavour>` + `linux-headers-<ver>-common`) into one tree
made of symlinks in a cache directory and point BCC_KERNEL_SOURCE at it; no
system directory is changed.

ipft-tui runs as root and compiles these headers into kernel code, so the cache
is root's own (/var/cache/ipft-tui/headers), never $XDG_CACHE_HOME or ~/.cache
(which `sudo -E` hands over from the user). Every directory on the way must be
owned by root (or the effective user), writable by nobody else, and no symlink.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass

SRC_DIR = "/usr/src"
ENV = "BCC_KERNEL_SOURCE"


class HeadersError(Exception):
    pass


@dataclass(frozen=True)
class Headers:
    path: str
    how: str  # human-readable: how this tree was found

    def apply(self) -> None:
        """Make bcc compile against this tree (bcc reads the variable per compile)."""
        if self.how != "running kernel":
            os.environ[ENV] = self.path


ROOT_CACHE = "/var/cache/ipft-tui"


def cache_dir() -> str:
    """Root's cache: a system directory only root writes. Other users (who cannot
    load BPF anyway) get their own XDG cache."""
    if os.geteuid() == 0:
        return ROOT_CACHE
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ipft-tui")


def unsafe_reason(path: str, create: bool = False) -> str | None:
    """Why `path` is not a directory only we (or root) control, or None when it is.

    Every component from / down is checked without following symlinks; with
    create, missing ones are made (0700) on the way."""
    euid = os.geteuid()
    current = "/"
    for part in [p for p in os.path.abspath(path).split("/") if p]:
        current = os.path.join(current, part)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if not create:
                return f"{current} does not exist"
            try:
                os.mkdir(current, 0o700)
                info = os.lstat(current)
            except OSError as exc:
                return f"cannot create {current}: {exc.strerror}"
        if stat.S_ISLNK(info.st_mode):
            return f"{current} is a symbolic link"
        if not stat.S_ISDIR(info.st_mode):
            return f"{current} is not a directory"
        if info.st_uid not in (0, euid):
            return f"{current} belongs to uid {info.st_uid}"
        # Others may write only to a root-owned sticky directory such as /tmp, where
        # they cannot rename or remove what is ours.
        if info.st_mode & 0o022 and not (info.st_mode & stat.S_ISVTX and info.st_uid == 0):
            return f"{current} is writable by others"
    return None


def _private_temp_dir() -> str:
    path = tempfile.mkdtemp(prefix="ipft-tui-headers-")  # 0700, ours
    atexit.register(shutil.rmtree, path, True)
    return path


def _version_key(name: str) -> tuple:
    return tuple(int(n) if n.isdigit() else n for n in re.split(r"[.-]", name))


def _common_of(arch_tree: str) -> str | None:
    """The '-common' tree an arch tree's Makefile includes (Debian layout)."""
    try:
        with open(os.path.join(arch_tree, "Makefile")) as f:
            for line in f:
                m = re.match(r"\s*include\s+(\S+)/Makefile\s*$", line)
                if m and os.path.isdir(m.group(1)):
                    return m.group(1)
    except OSError:
        pass
    return None


def _is_complete(tree: str) -> bool:
    return (os.path.exists(os.path.join(tree, "include/generated/autoconf.h"))
            and os.path.isdir(os.path.join(tree, "include/linux")))


def merge_trees(sources: list[str], dest: str) -> None:
    """Make `dest` a union of `sources` out of symlinks; earlier sources win.

    Only directories present in several sources are created; everything else is
    one symlink, so a whole headers tree costs a few dozen entries.
    """
    os.makedirs(dest, exist_ok=True)
    names: dict[str, list[str]] = {}
    for src in sources:
        for entry in sorted(os.listdir(src)):
            names.setdefault(entry, []).append(os.path.join(src, entry))
    for entry, paths in names.items():
        target = os.path.join(dest, entry)
        dirs = [p for p in paths if os.path.isdir(p)]
        if len(dirs) > 1:
            merge_trees(dirs, target)
        elif not os.path.lexists(target):
            os.symlink(os.path.realpath(paths[0]), target)


def find_headers(release: str | None = None, src_dir: str = SRC_DIR,
                 modules_dir: str = "/lib/modules", work_dir: str | None = None) -> Headers:
    release = release or os.uname().release
    user_choice = os.environ.get(ENV)
    if user_choice:
        if not os.path.isdir(user_choice):
            raise HeadersError(f"{ENV}={user_choice} is not a directory")
        why = unsafe_reason(os.path.realpath(user_choice))
        if why:
            raise HeadersError(f"{ENV}={user_choice}: not compiling headers others can change "
                               f"({why})")
        return Headers(user_choice, f"{ENV} from the environment")
    own = os.path.join(modules_dir, release, "build")
    if os.path.isdir(own):
        return Headers(own, "running kernel")
    if not os.path.isdir(src_dir):
        raise HeadersError(_missing_message(release))
    candidates = []
    for entry in os.listdir(src_dir):
        tree = os.path.join(src_dir, entry)
        if not entry.startswith("linux-headers-") or entry.endswith("-common"):
            continue
        common = _common_of(tree)
        if common:
            candidates.append((entry, [tree, common]))
        elif _is_complete(tree):
            candidates.append((entry, [tree]))
    if not candidates:
        raise HeadersError(_missing_message(release))
    entry, parts = max(candidates, key=lambda c: _version_key(c[0]))
    if len(parts) == 1:
        return Headers(parts[0], f"installed headers {entry} (not the running kernel's)")
    cache = work_dir or os.path.join(cache_dir(), "headers")
    why = unsafe_reason(cache, create=True)
    note = ""
    if why:  # e.g. planted by another user: build a private copy for this run instead
        note = f"; {cache} not used: {why}"
        cache = _private_temp_dir()
    dest = os.path.join(cache, entry)
    marker = os.path.join(dest, ".ipft-tui-complete")
    if os.path.islink(dest) or not os.path.exists(marker):
        if os.path.islink(dest):
            os.unlink(dest)
        shutil.rmtree(dest, ignore_errors=True)
        merge_trees(parts, dest)
        open(marker, "w").close()
    return Headers(dest, f"{entry} joined with {os.path.basename(parts[1])} in {dest} "
                         f"(not the running kernel's; fine, skb offsets come from BTF){note}")


def _missing_message(release: str) -> str:
    return (f"no kernel headers found: /lib/modules/{release}/build does not exist and "
            f"{SRC_DIR} holds no linux-headers-* tree. Install some (Debian: "
            "apt-get install linux-headers-amd64), or set BCC_KERNEL_SOURCE.")
