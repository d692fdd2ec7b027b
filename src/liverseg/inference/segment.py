"""Apply a trained model or cascade to new scans: `liverseg segment MODEL INPUT... --out DIR`.

The segmenter (`liverseg.inference.segmenter`) comes from a model or cascade folder or from the Model Registry
(`liverseg.tracking.registry.load_segmenter`). Each scan gives a label map in its own geometry (`<name>.nii.gz`) and a volume report
(`<name>.json`); `volumes.csv` in the output folder holds one row per scan segmented there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from liverseg.atomic import atomic_path, write_json
from liverseg.data import nifti
from liverseg.data.cases import check_ct
from liverseg.data.dicom import read_series
from liverseg.inference.quality import QualityLimits, Uncertainty, quality_report
from liverseg.inference.segmenter import Segmenter
from liverseg.labels import liver_mask, tumour_mask
from liverseg.measurements import lesion_sizes

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def scan_inputs(inputs: list[Path]) -> list[tuple[str, Path]]:
    """(name, path) of every scan: NIfTI files as given, the NIfTI files of a folder, or a folder of one DICOM series."""
    scans = []
    for path in inputs:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.name.endswith(NIFTI_SUFFIXES) and not p.name.startswith("."))
            if files:
                scans.extend((scan_name(p), p) for p in files)
            else:  # a DICOM series, named after its folder
                scans.append((path.name, path))
        elif path.is_file():
            scans.append((scan_name(path), path))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    names = [name for name, _ in scans]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(
            f"several inputs would be written as {', '.join(repeated)}; segment them into separate folders"
        )
    return scans


def scan_name(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".nii")


def read_scan(path: Path) -> nib.Nifti1Image:
    """A NIfTI file or a DICOM series folder, checked to be a 3D CT volume in HU, with its voxels read once."""
    if path.is_dir():
        scan = read_series(path)
    else:
        scan = nifti.load(path)
        nifti.log_geometry(scan)
        stored, slope, inter = nifti.stored_voxels(scan)
        if (slope, inter) == (1.0, 0.0):  # held in memory as stored (int16 stays int16), with the file's header
            scan = nifti.with_voxels(scan, stored)
    check_ct(scan, path)
    return scan


def volume_report(name: str, source: Path, labels: np.ndarray, scan: nib.Nifti1Image, quality: dict) -> dict:
    """Liver volume, and each tumour's volume and largest diameter, of canonical labels; with the quality checks."""
    spacing = nifti.canonical_spacing(scan)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    tumours = lesion_sizes(tumour_mask(labels), spacing)
    return {
        "scan": name,
        "input": str(source),
        "shape": list(scan.shape),
        "spacing_mm": list(nifti.voxel_spacing(scan)),
        "liver_ml": float(np.count_nonzero(liver_mask(labels))) * voxel_ml,  # liver with its tumours, as LiTS counts it
        "tumour_count": len(tumours),
        "tumour_ml": float(sum(t["volume_ml"] for t in tumours)),
        "tumours": tumours,
        "quality": quality,
    }


def write_volume_table(out_dir: Path) -> pd.DataFrame:
    """`volumes.csv`: one row per report in the folder, so scans segmented by earlier calls keep their rows."""
    rows = []
    for report_file in sorted(out_dir.glob("*.json")):
        report = json.loads(report_file.read_text())
        if not isinstance(report, dict) or "liver_ml" not in report:
            continue  # not a volume report
        largest = max((t["largest_diameter_mm"] for t in report["tumours"]), default=0.0)
        rows.append(
            {k: report[k] for k in ("scan", "liver_ml", "tumour_count", "tumour_ml")}
            | {"largest_tumour_diameter_mm": largest, "input": report["input"]}
            | {"warnings": "; ".join(report.get("quality", {}).get("warnings", []))}
        )
    columns = ["scan", "liver_ml", "tumour_count", "tumour_ml", "largest_tumour_diameter_mm", "input", "warnings"]
    table = pd.DataFrame(rows, columns=columns)
    with atomic_path(out_dir / "volumes.csv") as partial:
        table.to_csv(partial, index=False, float_format="%.2f")
    return table


def segment_scans(
    segmenter: Segmenter,
    inputs: list[Path],
    out_dir: Path,
    device: torch.device,
    flip_tta: bool = False,
    limits: dict | None = None,
) -> int:
    """Segment every scan; a scan that fails is named with its problem and the others go on. Returns the failures.
    `limits` replace some of the segmenter's quality limits (as in its description)."""
    scans = scan_inputs(inputs)
    quality = QualityLimits.from_dict(segmenter.quality.to_dict() | (limits or {}))
    for name, path in scans:
        if (out_dir / f"{name}.nii.gz").resolve() == path.resolve():
            raise ValueError(f"{path}: the output folder holds this input; write to another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name, path in scans:
        label_file = out_dir / f"{name}.nii.gz"
        try:
            scan = read_scan(path)
            print(
                f"{name}: {path}, {'x'.join(map(str, scan.shape))} voxels, {nifti.orientation_codes(scan)}", flush=True
            )
            uncertainty = Uncertainty()
            labels = segmenter.labels(scan, device, flip_tta, observe=uncertainty)
        except (ValueError, FileNotFoundError) as error:  # VolumeError included: name the scan, keep going
            named = str(error) if str(error).startswith(str(path)) else f"{path}: {error}"
            print(f"liverseg segment: error: {named}", file=sys.stderr, flush=True)
            failures += 1
            continue
        nifti.save_label_like(labels, scan, label_file)
        checks = quality_report(labels, scan, quality, segmenter.window, uncertainty.share)
        report = volume_report(name, path, labels, scan, checks)
        write_json(report, out_dir / f"{name}.json")
        for warning in checks["warnings"]:
            print(f"liverseg segment: warning: {path}: {warning}", file=sys.stderr, flush=True)
        print(
            f"{name}: liver {report['liver_ml']:.0f} ml, {report['tumour_count']} tumours "
            f"({report['tumour_ml']:.1f} ml) -> {label_file}",
            flush=True,
        )
    write_volume_table(out_dir)
    return failures
