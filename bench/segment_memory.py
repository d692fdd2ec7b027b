"""Peak resident memory and time of `liverseg segment` with a cascade on a large scan (512x512x1000, int16, gzip).

The cascade has the default config's shapes (U-Net of width 16 and depth 4 on 128 px slices, tumour stage on 96 px
crops) with untrained weights whose output biases make stage 1 mark the whole scan as liver and the tumour stage mark
no tumour: the worst case for memory, since the tumour stage's box, the post-processing and the liver's components
then span the whole scan. Each measurement runs in a fresh process; the baseline, in the same run, imports the same
modules and reads nothing. Target: the peak stays under six times the volume's float32 size (measured 5.2 on a
2-core CPU: the scan as stored, the label map, and in this worst case the liver's 3D components labelled as int32
over the whole scan, 4 bytes a voxel; for a real liver they span only its box). Writes
bench/results/segment_memory.md.

    python bench/segment_memory.py [--slices 1000]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from measure import peak_of, python, write_peak_table

from liverseg.models.checkpoint import make_checkpoint, save_checkpoint
from liverseg.models.networks import build_model

BASELINE = "import liverseg.cli, liverseg.inference.segment, torch, nibabel, SimpleITK"
STAGES = {  # role: (spec, image size, output biases: liver everywhere, tumour nowhere)
    "liver": ({"kind": "unet", "base_channels": 16, "depth": 4}, 128, [8.0, -8.0]),
    "tumour": (
        {
            "kind": "unet",
            "base_channels": 16,
            "depth": 4,
            "input_slices": 3,
            "crop": {"size": 96, "margin_mm": 10.0, "jitter_mm": 10.0},
        },
        96,
        [-8.0],
    ),
}


def write_scan(path: Path, slices: int) -> None:
    """A body-shaped HU volume with a brighter liver and noise (so that gzip has work to do)."""
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.arange(512), np.arange(512), indexing="ij")
    body = (((x - 256) / 220) ** 2 + ((y - 256) / 180) ** 2 < 1)[..., None]
    liver = (((x - 200) / 90) ** 2 + ((y - 230) / 70) ** 2 < 1)[..., None]
    hu = np.where(body, 40, -1000) + np.where(liver, 60, 0) + rng.normal(0, 20, (512, 512, slices))
    nib.save(nib.Nifti1Image(hu.astype(np.int16), np.diag([0.7, 0.7, 1.0, 1.0])), str(path))


def write_cascade(folder: Path) -> None:
    """A cascade folder as the workflow writes one: each stage's checkpoint, and segmenter.json naming them."""
    folder.mkdir()
    torch.manual_seed(0)
    for role, (spec, size, biases) in STAGES.items():
        model = build_model(spec, pretrained=False)
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.copy_(torch.tensor(biases))
        save_checkpoint(make_checkpoint(spec, model.state_dict(), size), folder / f"{role}.pt")
    description = {
        "name": "bench",
        "stages": {role: f"{role}.pt" for role in STAGES},
        "window": [-150, 250],
        "postprocess": {"closing_radius_mm": 5.0},
    }
    (folder / "segmenter.json").write_text(json.dumps(description))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=1000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scan, model = Path(tmp) / "scan.nii.gz", Path(tmp) / "cascade"
        write_scan(scan, a.slices)
        write_cascade(model)
        float32_mib = 512 * 512 * a.slices * 4 / 2**20
        base_mib, base_s = peak_of(python(BASELINE))
        run = [
            sys.executable,
            "-m",
            "liverseg",
            "segment",
            str(model),
            str(scan),
            "--out",
            str(Path(tmp) / "out"),
            "--device",
            "cpu",
        ]
        peak_mib, peak_s = peak_of(run)
        report = json.loads((Path(tmp) / "out" / "scan.json").read_text())
    note = f"Stage 1 marked {report['liver_ml']:,.0f} ml as liver: the whole scan, the tumour stage's box with it."
    ok = write_peak_table(
        "segment_memory",
        f"segment peak memory, 512x512x{a.slices} int16 .nii.gz, cascade, CPU",
        "segment with a cascade",
        float32_mib,
        (base_mib, base_s),
        (peak_mib, peak_s),
        target=6,
        notes=(note,),
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
