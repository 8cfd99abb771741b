"""Facts about the machine a process runs on."""

from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on (fewer than the machine's under an affinity mask)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
