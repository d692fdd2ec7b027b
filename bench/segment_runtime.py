"""`liverseg segment` with a cascade on a 512x512x300 scan, its networks run by PyTorch and by onnxruntime (a folder
`liverseg export` wrote), against a bare forward of the same networks over the same slices and crops.

The cascade is segment_memory.py's (the default config's shapes, stage 1 marking the whole scan as liver, so the
tumour stage runs on every slice of the scan's box). Each measurement is a fresh process on the CPU with the same
thread count. Targets: the onnxruntime command at 1.5x the PyTorch command's speed or more, and each command at 0.85
or more of its bare forward's throughput (slices per second). Writes bench/results/segment_runtime.md.

    python bench/segment_runtime.py [--slices 300] [--threads N]
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import peak_of, python, write_result
from segment_memory import STAGES, write_cascade, write_scan

# a bare forward: the cascade's networks loaded as `liverseg segment` loads them, applied to as many zero inputs as
# the command applies them to (each slice, then each slice's crop), in batches of 16, nothing else
BARE = """
import sys, time, torch
from pathlib import Path
from liverseg.inference.segmenter import Segmenter
folder, runtime, slices, threads = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
segmenter = Segmenter.load(folder, torch.device("cpu"), runtime)
started = time.perf_counter()
with torch.no_grad():
    for role, (models, recipe, size) in segmenter.stages.items():
        side = recipe.crop["size"] if recipe.crop else size
        for start in range(0, slices, 16):
            x = torch.zeros(min(16, slices - start), recipe.input_slices, side, side)
            for model in models:
                model(x)
print(f"forward {time.perf_counter() - started:.3f}")
"""


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=300)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = p.parse_args()
    threads = ["--threads", str(a.threads), "--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scan, cascade, exported = tmp / "scan.nii.gz", tmp / "cascade", tmp / "exported"
        write_scan(scan, a.slices)
        write_cascade(cascade)
        liverseg = [sys.executable, "-m", "liverseg"]
        peak_of([*liverseg, "export", str(cascade), "--out", str(exported)])
        rows = []
        for runtime in ("torch", "onnx"):
            command = [*liverseg, "segment", str(exported), str(scan), "--out", str(tmp / runtime), *threads]
            mib, seconds = peak_of([*command, "--runtime", runtime])
            bare = [*python(BARE), str(exported), runtime, str(a.slices), str(a.threads)]
            answer = subprocess.run(bare, check=True, capture_output=True, text=True).stdout
            rows.append((runtime, seconds, mib, float(answer.split("forward")[-1])))
    lines = [
        f"# segment with a cascade, 512x512x{a.slices} int16 .nii.gz, CPU, {a.threads} threads",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; stages: "
        + ", ".join(f"{role} {spec['kind']} at {size} px" for role, (spec, size, _) in STAGES.items()),
        "",
        "| runtime | command (s) | command peak RSS (MiB) | bare forward (s) | command / bare forward throughput |",
        "|---|---|---|---|---|",
    ]
    for runtime, seconds, mib, bare in rows:
        lines.append(f"| {runtime} | {seconds:.1f} | {mib:,.0f} | {bare:.1f} | {bare / seconds:.2f} |")
    speedup = rows[0][1] / rows[1][1]
    lines += [
        "",
        "The command is a whole fresh process (start-up, reading the scan, post-processing, writing); the bare "
        "forward is the time the same networks take, loaded in another process, over as many inputs as the command "
        "gives them.",
        f"onnxruntime / PyTorch speed of the command: {speedup:.2f} (target 1.5); command / bare forward throughput "
        f"{rows[0][3] / rows[0][1]:.2f} with PyTorch, {rows[1][3] / rows[1][1]:.2f} with onnxruntime (target 0.85).",
        "",
    ]
    write_result("segment_runtime", "\n".join(lines))


if __name__ == "__main__":
    main()
