"""A folder holding one DICOM CT series, read as a NIfTI image in world (RAS) coordinates.

SimpleITK (GDCM) orders the slices by their position along the slice normal (ImagePositionPatient and
ImageOrientationPatient), not by file name, and applies each slice's rescale slope and intercept, so the voxels are HU.
"""

from __future__ import annotations

import locale
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.data.nifti import VolumeError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])  # DICOM's patient axes run left and posterior; NIfTI's run right and anterior


@contextmanager
def keeping_locale():
    """GDCM switches the process to the C locale for its number formatting and leaves it so, which turns Python's
    default text encoding into ASCII; put the locale back."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def series_ids(folder: Path) -> list[str]:
    import SimpleITK as sitk

    with keeping_locale():
        return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def read_series(folder: Path) -> nib.Nifti1Image:
    """The one DICOM series in `folder` as an image whose affine maps voxels to RAS millimetres."""
    import SimpleITK as sitk

    ids = series_ids(folder)
    if not ids:
        raise VolumeError(f"{folder}: holds no NIfTI file and no DICOM series")
    if len(ids) > 1:
        raise VolumeError(f"{folder}: holds {len(ids)} DICOM series ({', '.join(ids)}); give the folder of one series")
    with keeping_locale():
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0])
    if len(files) < 2:
        raise VolumeError(f"{folder}: its DICOM series has {len(files)} slice; a CT volume needs several")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        with keeping_locale():
            image = reader.Execute()
    except RuntimeError as error:
        raise VolumeError(f"{folder}: cannot read its DICOM series ({str(error).strip().splitlines()[-1]})") from error
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin())
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # SimpleITK's arrays run (z, y, x)
    scan = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    scan.set_qform(affine, code="scanner")  # DICOM positions are the scanner's patient coordinates
    scan.set_sform(affine, code="scanner")
    scan.header.set_xyzt_units("mm")
    return scan
