"""Creating the files a root tool writes for the user (recordings, captures) safely.

They hold kernel addresses, so they are private (0600); the tool runs as root, so
the last path component is never followed if it is a symbolic link, and an
existing file is replaced only when asked to (and only if it is a regular file).
"""

from __future__ import annotations

import errno
import io
import os
import stat

from .errors import IpftError


def create_private(path: str, option: str, overwrite: bool = False, binary: bool = False):
    """An open file (text, or binary) for writing `path`, mode 0600.

    `option` names the command-line option in error messages (e.g. "--record")."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    if not overwrite:
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags | os.O_NONBLOCK, 0o600)  # O_NONBLOCK: a FIFO must not hang us
    except FileExistsError:
        if os.path.islink(path):
            raise IpftError(f"{option} {path}: is a symbolic link; not following it "
                            "(give the real path)") from None
        raise IpftError(f"{option} {path}: the file exists; remove it or add --overwrite") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise IpftError(f"{option} {path}: not a regular file") from None
        if exc.errno == errno.ELOOP:
            raise IpftError(f"{option} {path}: is a symbolic link; not following it "
                            "(give the real path)") from None
        raise IpftError(f"{option} {path}: cannot create: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IpftError(f"{option} {path}: not a regular file")
        if info.st_nlink > 1:
            raise IpftError(f"{option} {path}: has other hard links; not replacing it")
        os.set_blocking(fd, True)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        os.ftruncate(fd, 0)
    except OSError as exc:
        os.close(fd)
        raise IpftError(f"{option} {path}: {exc.strerror}") from None
    except IpftError:
        os.close(fd)
        raise
    raw = io.FileIO(fd, "w", closefd=True)
    if binary:
        return io.BufferedWriter(raw)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", newline="\n")
