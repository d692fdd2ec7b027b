"""Peak resident memory and wall time of a command, each in a fresh child process."""

import subprocess
import sys
import time

# RUSAGE_CHILDREN is the largest peak among the children waited for, so each command gets a fresh probe process
PROBE = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def peak_of(command: list[str]) -> tuple[float, float]:
    """Peak RSS in MiB and wall time in seconds of `command`."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, *command], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024, time.perf_counter() - started


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]
