"""NIfTI reading and writing in canonical orientation, and back into a scan's own geometry."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.atomic import atomic_path

CANONICAL = nib.orientations.axcodes2ornt(("R", "A", "S"))


class VolumeError(ValueError):
    """A volume or label file that cannot be used, with the file named in the message."""


def load(path: Path) -> nib.Nifti1Image:
    try:
        image = nib.load(str(path))
    except Exception as error:  # nibabel raises several types for unreadable files
        raise VolumeError(f"{path}: not a readable NIfTI file ({error})") from error
    if image.ndim != 3:
        raise VolumeError(f"{path}: expected a 3D volume, found shape {image.shape}")
    return image


def to_canonical(image: nib.Nifti1Image, dtype=np.float32) -> np.ndarray:
    """The voxel array reordered (flips and axis swaps only, no resampling) so that axes run R, A, S."""
    ornt = nib.orientations.io_orientation(image.affine)
    data = image.get_fdata(dtype=np.float32) if np.issubdtype(dtype, np.floating) else np.asanyarray(image.dataobj)
    return np.ascontiguousarray(nib.orientations.apply_orientation(data, ornt).astype(dtype, copy=False))


def from_canonical(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of `to_canonical` for a scan with this affine."""
    back = nib.orientations.ornt_transform(CANONICAL, nib.orientations.io_orientation(affine))
    return np.ascontiguousarray(nib.orientations.apply_orientation(data, back))


def canonical_spacing(image: nib.Nifti1Image) -> tuple[float, float, float]:
    """Voxel size in mm along the canonical R, A, S axes."""
    ornt = nib.orientations.io_orientation(image.affine)
    zooms = image.header.get_zooms()[:3]
    spacing = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(ornt):
        spacing[int(target)] = float(zooms[axis])
    return tuple(spacing)


def orientation_codes(image: nib.Nifti1Image) -> str:
    return "".join(nib.aff2axcodes(image.affine))


def save_label_like(labels: np.ndarray, reference: nib.Nifti1Image, path: Path) -> None:
    """Write a canonical-order label map with the reference scan's shape, affine and header geometry.

    The file appears atomically, so an interrupted job never leaves a truncated prediction behind.
    """
    data = from_canonical(labels.astype(np.uint8), reference.affine)
    if data.shape != reference.shape:
        raise VolumeError(f"{path}: label map of shape {data.shape} does not fit reference shape {reference.shape}")
    header = reference.header.copy()
    header.set_data_dtype(np.uint8)
    image = nib.Nifti1Image(data, reference.affine, header)
    image.header.set_slope_inter(1, 0)
    image.set_qform(reference.get_qform(), code=int(reference.header["qform_code"]) or 1)
    image.set_sform(reference.get_sform(), code=int(reference.header["sform_code"]) or 1)
    with atomic_path(path) as partial:
        nib.save(image, str(partial))
