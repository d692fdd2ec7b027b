"""NIfTI reading and writing in canonical orientation, and back into a scan's own geometry."""

from __future__ import annotations

import zlib
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.atomic import atomic_path

CANONICAL = nib.orientations.axcodes2ornt(("R", "A", "S"))


class VolumeError(ValueError):
    """A volume or label file that cannot be used, with the file named in the message."""


def load(path: Path) -> nib.Nifti1Image:
    """A 3D image whose header and affine hold together; a 4D file with a single time point is read as its 3D volume
    (one scan, as scanners and converters often write it)."""
    try:
        image = nib.load(str(path))
    except Exception as error:  # nibabel raises several types for unreadable files
        raise VolumeError(f"{path}: not a readable NIfTI file: empty, cut short or another format ({error})") from error
    if image.ndim > 3 and all(n == 1 for n in image.shape[3:]):
        image = _squeezed(image, path)
    if image.ndim != 3:
        raise VolumeError(f"{path}: expected a 3D volume, found shape {image.shape}")
    if (kind := image.get_data_dtype().kind) not in "iuf":
        what = {"c": "complex numbers", "V": "several values per voxel (RGB)"}.get(kind, "")
        raise VolumeError(
            f"{path}: voxels stored as {image.get_data_dtype()} ({what or 'not numbers'}); a scan or label map holds "
            "one real number per voxel"
        )
    _check_geometry(image, path)
    return image


def with_voxels(image: nib.Nifti1Image, voxels) -> nib.Nifti1Image:
    """The image holding other voxels (an array, or a proxy of the file's); its header keeps the file's qform and
    sform codes (nibabel would set codes of its own from the affine)."""
    replaced = nib.Nifti1Image(voxels, image.affine, image.header)
    replaced.header.set_qform(*image.header.get_qform(coded=True))
    replaced.header.set_sform(*image.header.get_sform(coded=True))
    return replaced


def _squeezed(image: nib.Nifti1Image, path: Path) -> nib.Nifti1Image:
    """The image without its trailing axes of length 1; its voxels stay on disk, with their slope and intercept."""
    squeezed = with_voxels(image, image.dataobj.reshape(image.shape[:3]))
    squeezed.set_filename(str(path))
    return squeezed


def _check_geometry(image: nib.Nifti1Image, path: Path) -> None:
    """An affine that places every voxel somewhere, and pixdim that the header's readers can trust. nibabel turns a
    zero or negative pixdim into a positive one when it loads; the file's own header bytes tell."""
    if not np.isfinite(image.affine).all():
        raise VolumeError(f"{path}: its affine holds NaN or infinite values, so its voxels have no place in space")
    if abs(np.linalg.det(image.affine[:3, :3])) < 1e-6:
        raise VolumeError(f"{path}: its affine is singular (voxel size {_mm(voxel_spacing(image))} mm): voxels overlap")
    with nib.openers.ImageOpener(path) as stream:
        pixdim = type(image.header).from_fileobj(stream, check=False)["pixdim"][1:4]
    if not (pixdim > 0).all():
        raise VolumeError(f"{path}: pixdim {_mm(pixdim)} mm is not positive: the header's voxel size is broken")


def _mm(sizes) -> str:
    return "x".join(f"{float(v):.4g}" for v in sizes)


def voxel_spacing(image: nib.Nifti1Image) -> tuple[float, float, float]:
    """Voxel size in mm along the image's own axes, from the affine that places the voxels (sform, else qform): pixdim
    may disagree with an sform, and viewers place the voxels, and our label maps, by the affine."""
    return tuple(float(v) for v in nib.affines.voxel_sizes(image.affine))


@contextmanager
def _reading(image: nib.Nifti1Image):
    """Where a compressed file cut short shows itself (only the header is read on `load`): name the file."""
    try:
        yield
    except (EOFError, OSError, ValueError, zlib.error) as error:
        raise VolumeError(
            f"{image.get_filename()}: cannot read its voxels, the file is cut short or corrupt ({error})"
        ) from error


def voxels(image: nib.Nifti1Image, dtype=np.float32) -> np.ndarray:
    """The stored voxels: floats scaled by `scl_slope`/`scl_inter`, or the stored integers for label maps."""
    with _reading(image):
        if np.issubdtype(dtype, np.floating):
            return image.get_fdata(dtype=np.float32, caching="unchanged")
        return np.asanyarray(image.dataobj)


def stored_voxels(image: nib.Nifti1Image) -> tuple[np.ndarray, float, float]:
    """The voxels as stored (int16 takes half the memory of float32) with the slope and intercept that make them HU."""
    if isinstance(image.dataobj, np.ndarray):  # an image made in memory (a DICOM series, a scan read once): its values
        return image.dataobj, 1.0, 0.0
    with _reading(image):
        return np.asanyarray(image.dataobj.get_unscaled()), float(image.dataobj.slope), float(image.dataobj.inter)


def canonical(data: np.ndarray, image: nib.Nifti1Image) -> np.ndarray:
    """`data` of this image seen with axes running R, A, S (flips and axis swaps only, no resampling, no copy).

    An oblique affine is read along its nearest axes, as every slice-based tool does.
    """
    return nib.orientations.apply_orientation(data, nib.orientations.io_orientation(image.affine))


def canonical_view(image: nib.Nifti1Image, dtype=np.float32) -> np.ndarray:
    """The voxels of `voxels`, in canonical order."""
    return canonical(voxels(image, dtype), image).astype(dtype, copy=False)


def to_canonical(image: nib.Nifti1Image, dtype=np.float32) -> np.ndarray:
    """`canonical_view` as a contiguous array."""
    return np.ascontiguousarray(canonical_view(image, dtype))


def obliquity_degrees(image: nib.Nifti1Image) -> float:
    """Largest angle between a voxel axis and its nearest world axis; 0 for a scan aligned with the axes."""
    return float(np.degrees(np.max(nib.affines.obliquity(image.affine))))


def log_geometry(image: nib.Nifti1Image) -> None:
    """Say in the log when a scan is oblique (it is read along its nearest axes) or when its pixdim disagrees with the
    affine that places its voxels (the affine's spacing is used)."""
    if (angle := obliquity_degrees(image)) > 0.01:
        print(
            f"{image.get_filename()}: oblique by {angle:.1f} degrees, read along its nearest axes "
            f"({orientation_codes(image)})"
        )
    pixdim, spacing = np.array(image.header.get_zooms()[:3]), np.array(voxel_spacing(image))
    if not np.allclose(pixdim, spacing, rtol=1e-3, atol=1e-4):
        print(
            f"{image.get_filename()}: pixdim {_mm(pixdim)} mm disagrees with the affine's voxel size {_mm(spacing)} mm; "
            "the affine places the voxels, so its spacing is used"
        )


def from_canonical(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of `to_canonical` for a scan with this affine."""
    back = nib.orientations.ornt_transform(CANONICAL, nib.orientations.io_orientation(affine))
    return np.ascontiguousarray(nib.orientations.apply_orientation(data, back))


def canonical_spacing(image: nib.Nifti1Image) -> tuple[float, float, float]:
    """Voxel size in mm along the canonical R, A, S axes."""
    ornt = nib.orientations.io_orientation(image.affine)
    spacing = [0.0, 0.0, 0.0]
    for size, (target, _) in zip(voxel_spacing(image), ornt):
        spacing[int(target)] = size
    return tuple(spacing)


def orientation_codes(image: nib.Nifti1Image) -> str:
    return "".join(nib.aff2axcodes(image.affine))


def label_image_like(labels: np.ndarray, reference: nib.Nifti1Image, path: Path) -> nib.Nifti1Image:
    """A canonical-order label map as an image with the reference scan's shape, affine and header geometry."""
    data = from_canonical(labels.astype(np.uint8), reference.affine)
    if data.shape != reference.shape:
        raise VolumeError(f"{path}: label map of shape {data.shape} does not fit reference shape {reference.shape}")
    # the reference's own header carries its qform and sform with their codes; only the data type changes
    header = reference.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1, 0)
    return nib.Nifti1Image(data, None, header)


def save_label_like(labels: np.ndarray, reference: nib.Nifti1Image, path: Path) -> None:
    """Write a canonical-order label map with the reference scan's shape, affine and header geometry.

    The file appears atomically, so an interrupted job never leaves a truncated prediction behind.
    """
    save_image(label_image_like(labels, reference, path), path)


def save_image(image: nib.Nifti1Image, path: Path) -> None:
    with atomic_path(path) as partial:
        nib.save(image, str(partial))
