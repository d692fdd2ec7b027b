"""Finding the cases of a raw data folder and describing them in `data/cases.tsv`."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from liverseg.atomic import atomic_path
from liverseg.data import nifti

LAYOUTS = {
    # layout: (image glob, pattern with the case number, label path from the image path)
    "lits": ("**/volume-*.nii*", re.compile(r"volume-(\d+)\.nii(\.gz)?$"), lambda p: p.with_name(p.name.replace("volume-", "segmentation-"))),
    "msd": ("**/imagesTr/liver_*.nii*", re.compile(r"liver_(\d+)\.nii(\.gz)?$"), lambda p: p.parent.parent / "labelsTr" / p.name),
}
VALID_LABELS = {0, 1, 2}


def case_id(number: int) -> str:
    return f"case_{number:03d}"


def find_cases(raw_dir: Path, layout: str) -> dict[str, tuple[Path, Path]]:
    """Map case id -> (volume, label) for every image in the layout; macOS `._*` resource forks are skipped."""
    pattern, number_re, label_of = LAYOUTS[layout]
    found = {}
    for image in sorted(Path(raw_dir).glob(pattern)):
        match = number_re.search(image.name)
        if image.name.startswith("._") or not match:
            continue
        label = label_of(image)
        if not label.exists():
            raise FileNotFoundError(f"{image}: no label file {label}")
        found[case_id(int(match.group(1)))] = (image, label)
    if not found:
        raise FileNotFoundError(f"{raw_dir}: no volumes in the {layout} layout ({pattern})")
    return dict(sorted(found.items()))


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_case(case: str, volume: Path, label: Path) -> dict:
    """One row of the case table, after checking that volume and label belong together."""
    image, seg = nifti.load(volume), nifti.load(label)
    if image.shape != seg.shape:
        raise nifti.VolumeError(f"{label}: shape {seg.shape} differs from its volume {volume} {image.shape}")
    if not np.allclose(image.affine, seg.affine, atol=1e-3):
        raise nifti.VolumeError(f"{label}: affine differs from its volume {volume}")
    values = set(np.unique(np.asanyarray(seg.dataobj)).astype(int).tolist())
    if not values <= VALID_LABELS:
        raise nifti.VolumeError(f"{label}: unexpected label values {sorted(values - VALID_LABELS)} (allowed 0, 1, 2)")
    return {
        "case": case,
        "patient": case,  # LiTS and MSD hold one scan per patient
        "volume": str(volume),
        "label": str(label),
        "shape": "x".join(map(str, image.shape)),
        "spacing": "x".join(f"{s:.4g}" for s in image.header.get_zooms()[:3]),
        "orientation": nifti.orientation_codes(image),
        "sha256": sha256(volume),
    }


def write_cases_table(raw_dir: Path, layout: str, out: Path) -> pd.DataFrame:
    rows = [describe_case(case, volume, label) for case, (volume, label) in find_cases(raw_dir, layout).items()]
    table = pd.DataFrame(rows)
    with atomic_path(out) as partial:
        table.to_csv(partial, sep="\t", index=False)
    return table


def read_cases_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str).set_index("case", drop=False)
