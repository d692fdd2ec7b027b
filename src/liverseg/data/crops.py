"""The tumour stage's input: the liver's box cut from the scan at its native in-plane resolution, resized to a square.

With `liver_hu` set, each crop's HU are shifted so that the median of its liver lies there: the tumour stage then
sees lesions against their own liver, whether the scan was taken without contrast (liver 40 to 60 HU) or in the
portal-venous phase (90 to 150 HU), instead of learning one phase's absolute values. Training takes the median over
the reference liver, prediction over the stage-1 liver (both counting tumour as liver, as the stage-1 masks do).

Training crops come from the reference liver, cut with room for jitter around the box (margin + jitter on every side);
the box's place inside the crop is stored so that training can draw jittered boxes (see `liverseg.training.dataset`). At prediction
the box comes from the stage-1 liver, with the margin alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liverseg.data import nifti
from liverseg.data.geometry import check_same_grid
from liverseg.data.slices import normalise_hu, resize_images, resize_labels
from liverseg.labels import liver_mask
from liverseg.roi import Box, cut_box, liver_box

AIR_HU = -1024.0


def scaled_box(stored: np.ndarray, slope: float, inter: float, box: Box) -> np.ndarray:
    """The box's voxels of canonical stored voxels, in HU, with air beyond the scan's edges; only the box is scaled,
    so the scan is never held as float32 in full."""
    fill = (AIR_HU - inter) / slope
    return cut_box(stored, box, fill=fill, dtype=np.float32) * np.float32(slope) + np.float32(inter)


def box_hu(image, box: Box) -> np.ndarray:
    """`scaled_box` of a scan."""
    stored, slope, inter = nifti.stored_voxels(image)
    return scaled_box(nifti.canonical(stored, image), slope, inter, box)


def liver_offset(liver_values: np.ndarray, liver_hu: float | None) -> float:
    """HU to add to a crop so that the median of its liver's voxels (HU) lies at `liver_hu`; 0 when it is None."""
    if liver_hu is None:
        return 0.0
    return float(liver_hu - np.median(liver_values))


def crop_images(hu_box: np.ndarray, window: tuple[float, float], size: int) -> np.ndarray:
    """(z, size, size) normalised slices of a box's (X, Y, Z) HU voxels."""
    return resize_images(normalise_hu(hu_box, window).transpose(2, 0, 1), (size, size))


def crop_case(
    volume: Path, label: Path, window, size: int, margin_mm: float, jitter_mm: float, liver_hu: float | None = None
) -> dict[str, np.ndarray]:
    """Crops around the reference liver of one case, with the box's half side and jitter in crop units."""
    image, seg = nifti.load(volume), nifti.load(label)
    check_same_grid(seg, label, image, volume, "volume")
    spacing = nifti.canonical_spacing(image)
    labels = nifti.to_canonical(seg, dtype=np.uint8)
    box = liver_box(liver_mask(labels), spacing, margin_mm + jitter_mm)
    if box is None:
        raise nifti.VolumeError(f"{label}: no liver (label 1 or 2) to crop around")
    outer_mm = box.shape[0] * spacing[0]  # in-plane sides are equal in mm
    hu, box_labels = box_hu(image, box), cut_box(labels, box)
    hu += liver_offset(hu[liver_mask(box_labels)], liver_hu)
    return {
        "image": crop_images(hu, window, size).astype(np.float16),
        "label": resize_labels(box_labels.transpose(2, 0, 1), (size, size)),
        # normalised crop coordinates run from -1 to 1 across outer_mm
        "box_half": np.float32(max(outer_mm - 2 * jitter_mm, 1e-3) / outer_mm),
        "box_jitter": np.float32(2 * jitter_mm / outer_mm),
        "box_start": np.array(box.start),
        "box_stop": np.array(box.stop),
        "spacing": np.array(spacing),
    }
