"""Resource limits that tracing many functions runs into."""

from __future__ import annotations

import resource


def raise_limits() -> list[str]:
    """Raise RLIMIT_MEMLOCK (old kernels charge BPF maps to it) and RLIMIT_NOFILE (one
    fd per attached probe: thousands with function backends). Where a container
    forbids the full raise, go as high as allowed; since 5.11 BPF memory is charged
    to the cgroup instead. Returns what was done, for -v."""
    notes = []
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        notes.append("RLIMIT_MEMLOCK to infinity")
    except (OSError, ValueError) as exc:
        notes.append(f"RLIMIT_MEMLOCK unchanged ({exc})")
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
    except (OSError, ValueError):
        nr_open = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (nr_open, hard):
        if wanted != resource.RLIM_INFINITY and wanted <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            notes.append(f"RLIMIT_NOFILE to {wanted}")
            break
        except (OSError, ValueError):
            continue
    return notes
