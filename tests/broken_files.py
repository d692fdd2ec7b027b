"""Broken NIfTI files made from a good one, each with the phrase its error must hold; and one that only looks broken.

A gzip cut short, a zeroed or negative pixdim, a NaN or singular affine, a 4D file with several time points, RGB and
complex voxels, a label map given as a scan, an empty file and a text file. A 4D file with a single time point is one
scan as many converters write it: it is read as its 3D volume.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

PIXDIM_OFFSET = 76  # float32 pixdim[0..7] in a NIfTI-1 header


def write_scan(path: Path, hu: np.ndarray, affine: np.ndarray, **fields) -> Path:
    """A scan stored as int16 HU; `fields` set header fields (srow_x ...) as the file will hold them."""
    image = nib.Nifti1Image(hu.astype(np.int16), affine)
    for name, value in fields.items():
        image.header[name] = value
    nib.save(nib.Nifti1Image(image.dataobj, None, image.header), path)
    return path


def cut_short(good: Path, path: Path, keep: int) -> Path:
    path.write_bytes(good.read_bytes()[:keep])
    return path


def with_pixdim(good: Path, path: Path, axis: int, value: float) -> Path:
    """The good file with one voxel size changed in its header bytes (nibabel would 'fix' it on writing)."""
    raw = bytearray(gzip.decompress(good.read_bytes()))
    raw[PIXDIM_OFFSET + 4 * axis : PIXDIM_OFFSET + 4 * axis + 4] = np.float32(value).tobytes()
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def broken_files(folder: Path, good: Path, label: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, phrase of its error) for every kind of broken file, made from a good scan and its label map."""
    folder.mkdir(parents=True, exist_ok=True)
    image = nib.load(good)
    hu, affine = np.asanyarray(image.dataobj), image.affine
    size = good.stat().st_size
    uncompressed = folder / "uncompressed.nii"
    nib.save(image, uncompressed)
    rgb = np.zeros(hu.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    files = {
        "gzip_cut_in_header": (cut_short(good, folder / "cut-header.nii.gz", 60), "not a readable NIfTI file"),
        "gzip_cut_in_voxels": (cut_short(good, folder / "cut-voxels.nii.gz", size // 2), "cut short or corrupt"),
        "nii_cut_in_voxels": (
            cut_short(uncompressed, folder / "cut.nii", uncompressed.stat().st_size - 100),
            "cut short or corrupt",
        ),
        "zero_pixdim": (with_pixdim(good, folder / "zero-pixdim.nii.gz", 1, 0.0), "is not positive"),
        "negative_pixdim": (with_pixdim(good, folder / "negative-pixdim.nii.gz", 3, -2.5), "is not positive"),
        "nan_affine": (write_scan(folder / "nan.nii.gz", hu, affine, srow_x=[np.nan, 0, 0, 0]), "NaN or infinite"),
        "singular_affine": (write_scan(folder / "singular.nii.gz", hu, affine, srow_z=[0, 0, 0, 0]), "singular"),
        "two_time_points": (write_scan(folder / "4d.nii.gz", np.stack([hu, hu], -1), affine), "3D volume"),
        "rgb": (_saved(nib.Nifti1Image(rgb, affine), folder / "rgb.nii.gz"), "RGB"),
        "complex": (_saved(nib.Nifti1Image(hu.astype(np.complex64), affine), folder / "complex.nii.gz"), "complex"),
        "label_map_as_scan": (shutil.copyfile(label, folder / "label-as-scan.nii.gz"), "a label map, not a CT scan"),
        "empty": (_written(folder / "empty.nii.gz", b""), "not a readable NIfTI file"),
        "text": (_written(folder / "notes.nii", b"not an image\n" * 40), "not a readable NIfTI file"),
    }
    uncompressed.unlink()
    return files


def single_time_point(good: Path, path: Path) -> Path:
    """The good scan as a 4D file with one time point."""
    image = nib.load(good)
    return write_scan(path, np.asanyarray(image.dataobj)[..., None], image.affine)


def _saved(image: nib.Nifti1Image, path: Path) -> Path:
    nib.save(image, path)
    return path


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
