"""Whether an image lies on another's voxel grid: the one check, with one tolerance, wherever a label map is paired with
its scan (case checks, the cascade's stage-1 labels, scoring a prediction against its reference).

The tolerance is 0.01 mm on every entry of the voxel-to-world affine, absolute. Headers written in float32 by other
tools (ITK-SNAP, 3D Slicer, nnU-Net's exports) differ from their scan's by less than 1e-4 mm; a label map of another
scan or shifted by a voxel differs by tenths of a millimetre or more.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from liverseg.data.nifti import VolumeError

AFFINE_TOLERANCE_MM = 1e-2


def check_same_grid(image: nib.Nifti1Image, path, reference: nib.Nifti1Image, reference_path, role: str) -> None:
    """Raise VolumeError naming `path` unless it has the shape and affine of `reference`, its `role` (for example
    "volume" or "reference")."""
    if image.shape != reference.shape:
        raise VolumeError(f"{path}: shape {image.shape} differs from its {role} {reference_path} {reference.shape}")
    off = float(np.abs(image.affine - reference.affine).max())
    if not off <= AFFINE_TOLERANCE_MM:
        raise VolumeError(
            f"{path}: affine differs from its {role} {reference_path} by up to {off:.3g} mm "
            f"(tolerance {AFFINE_TOLERANCE_MM} mm)"
        )
