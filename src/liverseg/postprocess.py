"""Morphological closing of predicted masks, per axial slice, with a radius in millimetres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from liverseg.data import nifti


def disk_footprint(radius_mm: float, spacing: tuple[float, float]) -> np.ndarray:
    """An in-plane ellipse covering radius_mm along both axes, as a (X, Y, 1) structuring element."""
    rx, ry = (int(radius_mm // s) for s in spacing)
    x, y = np.ogrid[-rx : rx + 1, -ry : ry + 1]
    return ((x * spacing[0]) ** 2 + (y * spacing[1]) ** 2 <= radius_mm**2)[:, :, None]


def close_mask(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Binary closing that is not eroded at the volume's edges (padding keeps the border neutral)."""
    pad = [(s // 2, s // 2) for s in footprint.shape]
    padded = np.pad(mask, pad, mode="edge")
    closed = ndimage.binary_closing(padded, structure=footprint)
    return closed[tuple(slice(p, p + n) for (p, _), n in zip(pad, mask.shape))]


def close_labels(labels: np.ndarray, spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Close liver (label >= 1) and tumour (label 2) separately; tumour stays inside the liver."""
    footprint = disk_footprint(radius_mm, spacing[:2])
    if footprint.size == 1:
        return labels.copy()
    liver = close_mask(labels >= 1, footprint)
    tumour = close_mask(labels == 2, footprint) & liver
    return liver.astype(np.uint8) + tumour.astype(np.uint8)


def postprocess_case(prediction: Path, out: Path, radius_mm: float) -> None:
    image = nifti.load(prediction)
    labels = nifti.to_canonical(image, dtype=np.uint8)
    closed = close_labels(labels, nifti.canonical_spacing(image), radius_mm)
    nifti.save_label_like(closed, image, out)
