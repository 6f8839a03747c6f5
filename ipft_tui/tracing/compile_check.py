"""Compile a BPF C file with bcc and exit non-zero on failure (clang's errors on stderr).

Run by program.compile_diagnostics() in a child process to capture those errors.
"""

import sys

from ..kernel.headers import find_headers


def main() -> int:
    path, cflags = sys.argv[1], sys.argv[2:]
    find_headers().apply()
    import bcc  # noqa: PLC0415

    try:
        bcc.BPF(src_file=path.encode(), cflags=cflags).cleanup()
    except Exception:  # noqa: BLE001 - the diagnostics are already on stderr
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
