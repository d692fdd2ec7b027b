"""The DICOM objects of a label map read from a DICOM series: a Segmentation and an RT Structure Set, both of the
series' patient and study and referencing its images, each written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liverseg.atomic import atomic_path
from liverseg.dicom.rtstruct import structure_set
from liverseg.dicom.seg import segmentation
from liverseg.dicom.series import Series, headers
from liverseg.dicom.structures import Algorithm, source_frames

WRITERS = {"dicom-seg": segmentation, "rtstruct": structure_set}
SUFFIXES = {"dicom-seg": ".seg.dcm", "rtstruct": ".rtstruct.dcm"}


def dicom_objects(labels: np.ndarray, affine: np.ndarray, series: Series, formats, algorithm: Algorithm) -> dict:
    """format -> dataset, for the formats of WRITERS among `formats`; `labels` (with `affine`) lies on the series'
    grid."""
    wanted = [f for f in formats if f in WRITERS]
    if not wanted:
        return {}
    sources = headers(series)
    frames = source_frames(labels, affine, sources, series.folder)
    return {f: WRITERS[f](frames, sources, algorithm) for f in wanted}


def save_dataset(dataset, path: Path) -> None:
    with atomic_path(path) as partial:
        dataset.save_as(partial, enforce_file_format=True)
