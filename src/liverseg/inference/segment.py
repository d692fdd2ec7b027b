"""Apply a trained model or cascade to new scans: `liverseg segment MODEL INPUT... --out DIR`.

The segmenter (`liverseg.inference.segmenter`) comes from a model or cascade folder or from the Model Registry
(`liverseg.tracking.segmenters.load_segmenter`). Each scan gives a label map in its own geometry (`<name>.nii.gz`) and a
volume report (`<name>.json`); `volumes.csv` in the output folder holds one row per scan segmented there. A DICOM
series can also be answered in DICOM: a Segmentation (`<name>.seg.dcm`) and an RT Structure Set
(`<name>.rtstruct.dcm`), built before any of the scan's files is written.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from liverseg.atomic import atomic_path, write_json
from liverseg.data import nifti
from liverseg.data.cases import check_ct
from liverseg.dicom import dicomweb
from liverseg.dicom.export import SUFFIXES, dicom_objects, save_dataset
from liverseg.dicom.series import Series, choose_series, read_series
from liverseg.dicom.structures import Algorithm
from liverseg.inference.quality import QualityLimits, Uncertainty, quality_report
from liverseg.inference.segmenter import Segmenter
from liverseg.labels import liver_mask, tumour_mask
from liverseg.measurements import lesion_sizes

NIFTI_SUFFIXES = (".nii", ".nii.gz")
FORMATS = ("nifti", *SUFFIXES)


def scan_inputs(inputs: list[Path]) -> list[tuple[str, Path]]:
    """(name, path) of every scan: NIfTI files as given, the NIfTI files of a folder, or a DICOM folder."""
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


def read_scan(path: Path, series_uid: str | None = None) -> tuple[nib.Nifti1Image, Series | None]:
    """A NIfTI file or a DICOM folder's series (with that series), checked to be a 3D CT volume in HU, with its voxels
    read once."""
    series = None
    if path.is_dir():
        series, choice = choose_series(path, series_uid)
        if choice:
            print(f"{path}: {choice}", flush=True)
        scan = read_series(series)
    else:
        scan = nifti.load(path)
        nifti.log_geometry(scan)
        stored, slope, inter = nifti.stored_voxels(scan)
        if (slope, inter) == (1.0, 0.0):  # held in memory as stored (int16 stays int16), with the file's header
            scan = nifti.with_voxels(scan, stored)
    check_ct(scan, path)
    return scan, series


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


def write_volume_table(out_dir: Path) -> None:
    """`volumes.csv`: one row per report in the folder, so scans segmented by earlier calls keep their rows."""
    import pandas as pd  # here: half a second of every segment call's start otherwise

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


@dataclass(frozen=True)
class SegmentOptions:
    """How `liverseg segment` segments and answers, beyond the segmenter itself."""

    flip_tta: bool | None = None  # every stage mirrored (True) or none (False); None: as the segmenter describes
    limits: dict | None = None  # replace some of the segmenter's quality limits (as in its description)
    formats: tuple[str, ...] = ("nifti",)
    series_uid: str | None = None  # the series of a DICOM folder or study holding several


def check_formats(formats, scans: list[tuple[str, Path]]) -> None:
    """Refuse, before any scan is segmented, a DICOM output for an input that is not a DICOM series."""
    if unknown := [f for f in formats if f not in FORMATS]:
        raise ValueError(f"unknown output format {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    dicom = [f for f in formats if f in SUFFIXES]
    if dicom and (not_dicom := [str(path) for _, path in scans if not path.is_dir()]):
        raise ValueError(
            f"{', '.join(not_dicom)}: not a DICOM series; --format {','.join(dicom)} references the images of a "
            "DICOM input series (NIfTI inputs take --format nifti)"
        )


def segment_scans(
    segmenter: Segmenter, inputs: list[Path], out_dir: Path, device: torch.device, options=SegmentOptions()
) -> int:
    """Segment every scan into the output formats; a scan that fails is named with its problem and the others go
    on. Returns the failures."""
    scans = scan_inputs(inputs)
    formats = options.formats
    check_formats(formats, scans)
    quality = QualityLimits.from_dict(segmenter.quality.to_dict() | (options.limits or {}))
    for name, path in scans:
        if (out_dir / f"{name}.nii.gz").resolve() == path.resolve():
            raise ValueError(f"{path}: the output folder holds this input; write to another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name, path in scans:
        label_file = out_dir / f"{name}.nii.gz"
        try:
            scan, series = read_scan(path, options.series_uid)
            print(
                f"{name}: {path}, {'x'.join(map(str, scan.shape))} voxels, {nifti.orientation_codes(scan)}", flush=True
            )
            uncertainty = Uncertainty()
            labels = segmenter.labels(scan, device, options.flip_tta, observe=uncertainty)
            image = nifti.label_image_like(labels, scan, label_file)
            algorithm = Algorithm(segmenter.name)
            dicom = dicom_objects(image.dataobj, scan.affine, series, formats, algorithm) if series else {}
        except (ValueError, FileNotFoundError) as error:  # VolumeError included: name the scan, keep going
            named = str(error) if str(error).startswith(str(path)) else f"{path}: {error}"
            print(f"liverseg segment: error: {named}", file=sys.stderr, flush=True)
            failures += 1
            continue
        written = [label_file] if "nifti" in formats else []
        if written:
            nifti.save_image(image, label_file)
        for kind, dataset in dicom.items():
            written.append(out_dir / f"{name}{SUFFIXES[kind]}")
            save_dataset(dataset, written[-1])
        checks = quality_report(labels, scan, quality, segmenter.window, uncertainty.share)
        made_by = {"segmenter": segmenter.name, "flip_tta": segmenter.mirroring(options.flip_tta)}
        if segmenter.cascade:
            made_by["min_lesion_peak"] = segmenter.min_lesion_peak
        report = volume_report(name, path, labels, scan, checks) | made_by | ({"series": series.uid} if series else {})
        write_json(report, out_dir / f"{name}.json")
        for warning in checks["warnings"]:
            print(f"liverseg segment: warning: {path}: {warning}", file=sys.stderr, flush=True)
        print(
            f"{name}: liver {report['liver_ml']:.0f} ml, {report['tumour_count']} tumours "
            f"({report['tumour_ml']:.1f} ml) -> {', '.join(map(str, written))}",
            flush=True,
        )
    write_volume_table(out_dir)
    return failures


def segment_study(
    segmenter: Segmenter, url: str, study: str, out_dir: Path, device: torch.device, options=SegmentOptions()
) -> int:
    """Fetch the series of `study` to segment from a DICOMweb server, segment it into `out_dir` (its files named after
    the study, a DICOM Segmentation among them) and store that Segmentation into the study on the server, once it is
    whole. Returns the failures (0 or 1)."""
    import pydicom

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / study
        why = dicomweb.fetch_series(url, study, options.series_uid, folder)
        if why:
            print(f"{url}: {why}", flush=True)
        formats = tuple(dict.fromkeys([*options.formats, "dicom-seg"]))  # the Segmentation goes back to the server
        if segment_scans(segmenter, [folder], out_dir, device, dataclasses.replace(options, formats=formats)):
            return 1
    seg_file = out_dir / f"{study}{SUFFIXES['dicom-seg']}"
    seg = pydicom.dcmread(seg_file)
    try:
        dicomweb.store(url, study, seg)
    except dicomweb.ServerError as error:
        raise dicomweb.ServerError(f"{error}; the Segmentation is kept in {seg_file}") from error
    print(f"{study}: Segmentation {seg.SOPInstanceUID} stored into the study on {url}", flush=True)
    return 0
