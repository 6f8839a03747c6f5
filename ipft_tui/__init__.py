"""ipft-tui: trace marked packets through the Linux kernel, live."""

__version__ = "0.1.0"
