"""Peak resident memory and time of `liverseg preprocess` on a LiTS-sized case (512x512x400, int16, gzip).

Each measurement runs in a fresh process (its peak RSS is the child's ru_maxrss). The baseline, in the same run, is a
process that imports the same modules and reads nothing: the interpreter, numpy and nibabel alone (preprocessing
loads no PyTorch). Target: the peak stays under three times the volume's float32 size. Writes
bench/results/preprocess_memory.md.

    python bench/preprocess_memory.py [--slices 400]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from measure import peak_of, python, write_peak_table

BASELINE = "import liverseg.cli, liverseg.data.slices, nibabel"


def write_case(folder: Path, slices: int) -> tuple[Path, Path]:
    """A body-shaped HU volume with noise (so that gzip has work to do) and a liver label."""
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.arange(512), np.arange(512), indexing="ij")
    body = (((x - 256) / 220) ** 2 + ((y - 256) / 180) ** 2 < 1)[..., None]
    liver = (((x - 200) / 90) ** 2 + ((y - 230) / 70) ** 2 < 1)[..., None]
    hu = np.where(body, 40, -1000) + rng.normal(0, 20, (512, 512, slices))
    affine = np.diag([0.7, 0.7, 1.0, 1.0])
    volume, label = folder / "volume-0.nii.gz", folder / "segmentation-0.nii.gz"
    nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), str(volume))
    nib.save(nib.Nifti1Image(np.broadcast_to(liver, hu.shape).astype(np.uint8), affine), str(label))
    return volume, label


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=400)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        volume, label = write_case(Path(tmp), a.slices)
        float32_mib = 512 * 512 * a.slices * 4 / 2**20
        base_mib, base_s = peak_of(python(BASELINE))
        run = [
            sys.executable,
            "-m",
            "liverseg",
            "preprocess",
            "--volume",
            str(volume),
            "--label",
            str(label),
            "--window",
            "-150",
            "250",
            "--size",
            "128",
            "--out",
            str(Path(tmp) / "slices.npz"),
        ]
        peak_mib, peak_s = peak_of(run)
    ok = write_peak_table(
        "preprocess_memory",
        f"preprocess peak memory, 512x512x{a.slices} int16 .nii.gz",
        "preprocess",
        float32_mib,
        (base_mib, base_s),
        (peak_mib, peak_s),
        target=3,
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
