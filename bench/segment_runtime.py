"""`liverseg segment` with a cascade on a 512x512x300 scan, its networks run by PyTorch and by onnxruntime (a folder
`liverseg export` wrote), against a bare forward of the same networks over the same slices and crops.

By default the cascade is segment_memory.py's (the default config's shapes, stage 1 marking the whole scan as liver,
so the tumour stage runs on every slice of the scan's box): the worst case. With `--segmenter` a trained cascade
folder (for example the default run's `experiments/synthetic/models/unet_cascade`) segments a phantom resampled to
512x512 (bench/scale.py's), whose liver spans part of the scan: the tumour stage then runs on the slices of the
stage-1 liver's box only, which the bare forward counts from the command's own label map (the box of its liver with
the stage's margin). Each measurement is a fresh process on the CPU with the same thread count. Targets: the
onnxruntime command at 1.5x the PyTorch command's speed or more, and each command at 0.85 or more of its bare
forward's throughput (slices per second). The floor (a process that does everything the command must do besides its
networks: imports, loading the segmenter, reading and checking the scan, writing a label map) bounds what any command
can reach: bare / (bare + floor). Writes bench/results/segment_runtime.md (segment_runtime_trained.md with
`--segmenter`).

    python bench/segment_runtime.py [--slices 300] [--threads N] [--repeats 3] [--segmenter DIR]
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
import torch
from measure import peak_of, python, write_result
from scale import full_size_case
from segment_memory import write_cascade, write_scan

from liverseg.inference.segmenter import Segmenter
from liverseg.roi import liver_box

# a bare forward: the cascade's networks loaded as `liverseg segment` loads them, applied to as many zero inputs as
# the command applies them to (each slice, then each slice's crop, twice for a stage mirrored by its flip_tta), in
# batches of 16, nothing else
BARE = """
import sys, time, torch
from pathlib import Path
from liverseg.inference.segmenter import Segmenter
folder, runtime, threads = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
counts = {"liver": int(sys.argv[4]), "tumour": int(sys.argv[5])}
torch.set_num_threads(threads)
segmenter = Segmenter.load(folder, torch.device("cpu"), runtime)
started = time.perf_counter()
with torch.no_grad():
    for role, (models, recipe, size) in segmenter.stages.items():
        side, slices = recipe.crop["size"] if recipe.crop else size, counts[role]
        for start in range(0, slices, 16):
            x = torch.zeros(min(16, slices - start), recipe.input_slices, side, side)
            for model in models * (1 + segmenter.flip_tta[role]):
                model(x)
print(f"forward {time.perf_counter() - started:.3f}")
"""

# the floor: what any `liverseg segment` of this scan does besides its networks, in a fresh process timed whole as the
# command is: its imports, loading the segmenter, reading and checking the scan (`read_scan`), and writing a label map
# of the scan's geometry (all background here), nothing else
FLOOR = """
import sys
from pathlib import Path
import numpy as np, torch
from liverseg.data import nifti
from liverseg.inference.segment import read_scan
from liverseg.inference.segmenter import Segmenter
folder, runtime, scan, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
Segmenter.load(folder, torch.device("cpu"), runtime)
image, _ = read_scan(scan)
labels = nifti.canonical(np.zeros(image.shape, dtype=np.uint8), image)
nifti.save_image(nifti.label_image_like(labels, image, out), out)
"""


class Row(NamedTuple):
    runtime: str
    seconds: float  # the command's
    mib: float  # the command's peak RSS
    bare: float  # the bare forward's seconds
    floor: float  # the floor's seconds


def write_phantom(path: Path, slices: int) -> None:
    """Phantom 0 of bench/scale.py at 512x512 and `slices` slices."""
    case = full_size_case(0, slices)
    image = nib.Nifti1Image(case.image, np.diag([*case.spacing, 1.0]))
    nib.save(image, str(path))


def tumour_stage_slices(labels: Path, cascade: Path) -> int:
    """The slices of the box the tumour stage sees: the segmented liver's, with the stage's margin."""
    margin_mm = Segmenter.load(cascade, torch.device("cpu")).stages["tumour"][1].crop["margin_mm"]
    image = nib.load(labels)
    box = liver_box(np.asarray(image.dataobj) > 0, image.header.get_zooms()[:3], margin_mm)
    return 0 if box is None else min(box.stop[2], image.shape[2]) - max(box.start[2], 0)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=300)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeats", type=int, default=3, help="runs of each; the fastest counts (the host's load varies)")
    p.add_argument("--segmenter", type=Path, help="a trained cascade folder, on a phantom (default: the worst case)")
    a = p.parse_args()
    threads = ["--threads", str(a.threads), "--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scan, cascade, exported = tmp / "scan.nii.gz", tmp / "cascade", tmp / "exported"
        if a.segmenter:
            write_phantom(scan, a.slices)
            cascade = a.segmenter
        else:
            write_scan(scan, a.slices)
            write_cascade(cascade)
        liverseg = [sys.executable, "-m", "liverseg"]
        peak_of([*liverseg, "export", str(cascade), "--out", str(exported)])
        rows = []
        for runtime in ("torch", "onnx"):
            command = [*liverseg, "segment", str(exported), str(scan), "--out", str(tmp / runtime), *threads]
            runs = [peak_of([*command, "--runtime", runtime]) for _ in range(a.repeats)]
            boxed = tumour_stage_slices(tmp / runtime / "scan.nii.gz", cascade) if a.segmenter else a.slices
            bare = [*python(BARE), str(exported), runtime, str(a.threads), str(a.slices), str(boxed)]
            answers = [
                subprocess.run(bare, check=True, capture_output=True, text=True).stdout for _ in range(a.repeats)
            ]
            forward = min(float(answer.split("forward")[-1]) for answer in answers)
            floor = [*python(FLOOR), str(exported), runtime, str(scan), str(tmp / f"{runtime}_floor.nii.gz")]
            floors = [peak_of(floor)[1] for _ in range(a.repeats)]
            rows.append(Row(runtime, min(s for _, s in runs), max(m for m, _ in runs), forward, min(floors)))
    cascade_said = f"trained cascade {a.segmenter} on a phantom" if a.segmenter else "stage 1 marking the whole scan"
    lines = [
        f"# segment with a cascade, 512x512x{a.slices} int16 .nii.gz, CPU, {a.threads} threads",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {cascade_said}; "
        f"the tumour stage's box holds {boxed} of {a.slices} slices; the fastest of {a.repeats} runs of each.",
        "",
        "| runtime | command (s) | command peak RSS (MiB) | bare forward (s) | command / bare forward throughput "
        "| floor (s) | at most: bare / (bare + floor) |",
        "|---|---|---|---|---|---|---|",
    ]
    for runtime, seconds, mib, bare, floor in rows:
        lines.append(
            f"| {runtime} | {seconds:.1f} | {mib:,.0f} | {bare:.1f} | {bare / seconds:.2f} | {floor:.1f} "
            f"| {bare / (bare + floor):.2f} |"
        )
    torch_row, onnx_row = rows
    speedup = torch_row.seconds / onnx_row.seconds
    lines += [
        "",
        "The command is a whole fresh process (start-up, reading the scan, post-processing, writing); the bare "
        "forward is the time the same networks take, loaded in another process, over as many inputs as the command "
        "gives them. The floor is what the command does besides its networks, in a process timed the same way: its "
        "imports, loading the segmenter, reading and checking the scan, and writing an empty label map of its "
        "geometry. No command that reads and writes the scan can beat bare / (bare + floor); nor can the "
        "onnxruntime command be faster than PyTorch's by more than the bare forwards' ratio "
        f"({torch_row.bare / onnx_row.bare:.2f} here), while its probabilities must equal PyTorch's within 1e-4.",
        f"onnxruntime / PyTorch speed of the command: {speedup:.2f} (target 1.5); command / bare forward throughput "
        f"{torch_row.bare / torch_row.seconds:.2f} with PyTorch, {onnx_row.bare / onnx_row.seconds:.2f} with onnxruntime "
        "(target 0.85).",
        "",
    ]
    write_result("segment_runtime_trained" if a.segmenter else "segment_runtime", "\n".join(lines))


if __name__ == "__main__":
    main()
