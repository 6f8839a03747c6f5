"""stdout for a long trace: a closed or full stdout ends the output without a
traceback, and once the trace is stopping a slow reader holds us up for at most
a grace period (what could not be written is counted, in lines)."""

from __future__ import annotations

import os
import select
import stat
import time
from collections.abc import Callable

PIPE_BUF = 4096  # a write of at most this much to a pipe select() calls writable does not block
POLL = 0.1  # s between looks at `stopping` while the reader does not read


class GuardedStdout:
    """A text stream (write/flush) over a file descriptor, for the output classes."""

    def __init__(self, fd: int, stopping: Callable[[], bool], grace: float = 2.0):
        self.fd = fd
        self.stopping = stopping
        self.grace = grace
        self.error: OSError | None = None  # the write error that ended the output
        self.unwritten_lines = 0
        self._deadline: float | None = None
        mode = os.fstat(fd).st_mode
        # Pipes, sockets and terminals can block; regular files and /dev/null cannot.
        dev_null = stat.S_ISCHR(mode) and os.fstat(fd).st_rdev == os.makedev(1, 3)
        self._may_block = (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
                           or (stat.S_ISCHR(mode) and not dev_null))

    def write(self, text: str) -> None:
        data = memoryview(text.encode())
        while data:
            if self.error is not None or not self._writable():
                self.unwritten_lines += bytes(data).count(b"\n")
                return
            try:
                written = os.write(self.fd, data[:PIPE_BUF] if self._may_block else data)
            except OSError as exc:  # EPIPE (reader gone), ENOSPC, EIO ...
                self.error = exc
                continue
            data = data[written:]

    def _writable(self) -> bool:
        """Wait until a write will not block; False once the grace after a stop is over."""
        if not self._may_block:
            return True
        while True:
            if self._deadline is None and self.stopping():
                self._deadline = time.monotonic() + self.grace
            wait = POLL if self._deadline is None else self._deadline - time.monotonic()
            if wait <= 0:
                return False
            if select.select([], [self.fd], [], min(wait, POLL))[1]:
                return True

    def flush(self) -> None:
        pass  # nothing is buffered

    def describe_error(self) -> str:
        """Why the output ended, in a few words."""
        if isinstance(self.error, BrokenPipeError):
            return "stdout was closed"
        return f"cannot write to stdout: {self.error.strerror if self.error else 'unknown error'}"
