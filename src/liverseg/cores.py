"""The CPU cores this process may use, for its thread pools and torch's threads."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """Its affinity (a cluster job's or a `taskset`'s share of the machine), where the system tells it."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
