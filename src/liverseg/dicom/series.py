"""The DICOM series of a folder, the one to segment, and its voxels as a NIfTI image in world (RAS) coordinates.

SimpleITK (GDCM) groups the files by Series Instance UID, orders a series' slices by their position along the slice
normal (ImagePositionPatient and ImageOrientationPatient), not by file name, and applies each slice's rescale slope
and intercept, so the voxels are HU. A study exported as one folder often holds a localizer and several phases: the
axial CT series with most slices is segmented unless a Series Instance UID is given.
"""

from __future__ import annotations

import locale
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.data.nifti import VolumeError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])  # DICOM's patient axes run left and posterior; NIfTI's run right and anterior
AXIAL_COSINE = np.cos(np.radians(45))  # a slice normal within 45 degrees of the body's long axis: axial or tilted


@contextmanager
def keeping_locale():
    """GDCM switches the process to the C locale for its number formatting and leaves it so, which turns Python's
    default text encoding into ASCII; put the locale back."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


@dataclass(frozen=True)
class Series:
    """One series of a folder: its files in slice order, and what its first file says it is."""

    folder: Path
    uid: str
    files: tuple[str, ...]
    modality: str
    description: str
    localizer: bool
    normal: tuple[float, float, float]  # the slice normal, in DICOM's patient (LPS) axes

    @property
    def axial_ct(self) -> bool:
        return self.modality == "CT" and not self.localizer and len(self.files) > 1 and self.axial

    @property
    def axial(self) -> bool:
        return abs(self.normal[2]) >= AXIAL_COSINE

    def __str__(self) -> str:
        described = f", '{self.description}'" if self.description else ""
        images = f"{len(self.files)} image{'s' if len(self.files) > 1 else ''}"
        return f"{self.uid} ({self.modality or 'no modality'}{described}, {images})"


def described(header, folder, uid: str, files: tuple) -> Series:
    """A series described by one of its images' headers (a pydicom dataset)."""
    orientation = np.array(header.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), float)
    return Series(
        folder=folder,
        uid=uid,
        files=files,
        modality=str(header.get("Modality", "")),
        description=str(header.get("SeriesDescription", "")),
        localizer="LOCALIZER" in [str(v).upper() for v in header.get("ImageType", [])],
        normal=tuple(float(v) for v in np.cross(orientation[:3], orientation[3:])),
    )


def folder_series(folder: Path) -> list[Series]:
    """Every DICOM series in `folder` (not its subfolders), described from its first file's header."""
    import pydicom
    import SimpleITK as sitk

    with keeping_locale():
        uids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    found = []
    for uid in uids:
        with keeping_locale():
            files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
        found.append(described(pydicom.dcmread(files[0], stop_before_pixels=True), folder, uid, files))
    return found


def choose_series(folder: Path, uid: str | None = None) -> tuple[Series, str | None]:
    """The series of `folder` to segment, and why it was chosen where the folder holds several (see `pick`)."""
    return pick(folder_series(folder), folder, uid)


def pick(found: list[Series], where, uid: str | None = None) -> tuple[Series, str | None]:
    """The series to segment among those `found` in `where` (a folder, a study), and why it was chosen where there
    are several: the one of Series Instance UID `uid`, or the axial CT series with most images."""
    if not found:
        raise VolumeError(f"{where}: holds no NIfTI file and no DICOM series")
    listed = "; ".join(map(str, found))
    if uid is not None:
        chosen = [s for s in found if s.uid == uid]
        if not chosen:
            raise VolumeError(f"{where}: holds no DICOM series {uid} (it holds {listed})")
        return chosen[0], None
    if len(found) == 1:
        return found[0], None
    candidates = [s for s in found if s.axial_ct]
    if not candidates:
        raise VolumeError(f"{where}: none of its {len(found)} DICOM series is an axial CT series ({listed})")
    chosen = max(candidates, key=lambda s: len(s.files))
    others = "; ".join(str(s) for s in found if s is not chosen)
    why = f"the axial CT series with most images (--series UID picks another of {others})"
    return chosen, f"{len(found)} DICOM series; segmenting {chosen}, {why}"


def read_series(series: Series) -> nib.Nifti1Image:
    """A series as an image whose affine maps voxels to RAS millimetres."""
    import SimpleITK as sitk

    if len(series.files) < 2:
        raise VolumeError(f"{series.folder}: its DICOM series {series.uid} has one image; a CT volume needs several")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    try:
        with keeping_locale():
            image = reader.Execute()
    except RuntimeError as error:
        raise VolumeError(
            f"{series.folder}: cannot read its DICOM series {series.uid} ({str(error).strip().splitlines()[-1]})"
        ) from error
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


def headers(series: Series) -> list:
    """The series' files' headers (pydicom datasets without their pixels), in slice order."""
    import pydicom

    return [pydicom.dcmread(f, stop_before_pixels=True) for f in series.files]
