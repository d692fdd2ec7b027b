"""What liverseg writes into DICOM objects: its structures with their coded concepts, the algorithm that drew them, and
a label map cut into the images of the series it was read from.

The liver is the whole organ with its tumours, as LiTS and the volume report count it, so the two structures overlap
where there is tumour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from liverseg.data.geometry import AFFINE_TOLERANCE_MM
from liverseg.data.nifti import VolumeError
from liverseg.dicom.series import LPS_TO_RAS
from liverseg.labels import liver_mask, tumour_mask


@dataclass(frozen=True)
class Structure:
    number: int
    label: str
    mask: Callable
    category: Code
    type: Code
    colour: tuple[int, int, int]  # sRGB, as viewers draw it


STRUCTURES = (
    Structure(1, "Liver", liver_mask, codes.SCT.AnatomicalStructure, codes.SCT.Liver, (221, 130, 101)),
    Structure(
        2, "Liver tumour", tumour_mask, codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm, (255, 255, 0)
    ),
)


@dataclass(frozen=True)
class Algorithm:
    """The segmenter that drew the structures: its name (the model or cascade entry) and liverseg's version."""

    name: str
    version: str = version("liverseg")


def source_frames(labels: np.ndarray, affine: np.ndarray, sources: list, name) -> np.ndarray:
    """The label map as one (rows, columns) frame per source image, in the sources' order; `labels` (with `affine`)
    lies on the grid of the series the sources make (as `liverseg.dicom.series.read_series` reads it), which is
    checked image by image within the geometry tolerance."""
    frames = np.empty((len(sources), labels.shape[1], labels.shape[0]), np.uint8)
    for n, source in enumerate(sources):
        k = _slice_index(affine, source, labels.shape, name)
        frames[n] = labels[:, :, k].T  # the first voxel axis runs along an image's rows (its columns' index)
    return frames


def pixel_to_patient(source) -> np.ndarray:
    """The 4x4 map from a source image's (column, row, 0, 1) to DICOM's patient (LPS) millimetres."""
    orientation = np.array(source.ImageOrientationPatient, float)
    row_spacing, column_spacing = (float(v) for v in source.PixelSpacing)
    matrix = np.eye(4)
    matrix[:3, 0] = orientation[:3] * column_spacing
    matrix[:3, 1] = orientation[3:] * row_spacing
    matrix[:3, 2] = np.cross(orientation[:3], orientation[3:])
    matrix[:3, 3] = np.array(source.ImagePositionPatient, float)
    return matrix


def _slice_index(affine: np.ndarray, source, shape, name) -> int:
    to_ras = np.diag([*np.diag(LPS_TO_RAS), 1.0])
    image = to_ras @ pixel_to_patient(source)
    k = int(round(float((np.linalg.inv(affine) @ image[:, 3])[2])))
    # the label map's steps along its first two axes and its slice k's corner, against the image's
    expected = affine @ np.array([[1, 0, 0], [0, 1, 0], [0, 0, k], [0, 0, 1]], float)
    off = float(np.abs(image[:3, [0, 1, 3]] - expected[:3]).max())
    if not (0 <= k < shape[2] and (source.Columns, source.Rows) == shape[:2] and off <= AFFINE_TOLERANCE_MM):
        raise VolumeError(
            f"{name}: image {source.SOPInstanceUID} of the source series does not lie on the label map's grid "
            f"(slice {k} of {shape[2]}, {source.Columns}x{source.Rows} pixels against {shape[0]}x{shape[1]}, "
            f"{off:.3g} mm off)"
        )
    return k
