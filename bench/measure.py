"""Peak resident memory and wall time of a command, each in a fresh child process."""

import subprocess
import sys
import time
from pathlib import Path

# RUSAGE_CHILDREN is the largest peak among the children waited for, so each command gets a fresh probe process
PROBE = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def peak_of(command: list[str]) -> tuple[float, float]:
    """Peak RSS in MiB and wall time in seconds of `command`."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, *command], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024, time.perf_counter() - started


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def write_result(name: str, table: str) -> None:
    """A benchmark's table, written to bench/results/<name>.md and printed."""
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.md").write_text(table)
    print(table)


def write_peak_table(
    name: str,
    title: str,
    what: str,
    volume_mib: float,
    baseline: tuple,
    peak: tuple,
    target: float,
    notes: tuple[str, ...] = (),
) -> bool:
    """The peak memory table against the volume's float32 size and the imports-only baseline, written to
    bench/results/<name>.md and printed; True when the peak stays under `target` times the volume."""

    (base_mib, base_s), (peak_mib, peak_s) = baseline, peak
    rows = [
        ("volume as float32", f"{volume_mib:,.0f}", ""),
        ("baseline: imports only", f"{base_mib:,.0f}", f"{base_s:.1f}"),
        (f"{what} (peak, whole process)", f"{peak_mib:,.0f}", f"{peak_s:.1f}"),
        (f"{what} minus baseline", f"{peak_mib - base_mib:,.0f}", f"{peak_s - base_s:.1f}"),
    ]
    ratio = peak_mib / volume_mib
    table = "\n".join(
        [
            f"# {title}",
            "",
            "| what | peak RSS (MiB) | wall time (s) |",
            "|---|---|---|",
            *[f"| {w} | {mib} | {s} |" for w, mib, s in rows],
            "",
            *notes,
            f"Peak / float32 volume: {ratio:.2f} ({'under' if ratio < target else 'OVER'} the target of {target:g}).",
            "",
        ]
    )
    write_result(name, table)
    return ratio < target
