"""Scans as users bring them, made from one phantom: livers cut by the scan's edges, thin, thick and few slices, other
in-plane sizes, an oblique affine, pixdim that disagrees with the sform, every storage type with and without a slope.

Each row says what `liverseg segment` must give: a label map in the scan's own geometry, or one line naming the file
and the problem. Every volume stays under 20 million voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from liverseg.data.synthetic import Case, canonical_affine, make_case, write_case

LABEL_MAP = "label map"


@dataclass(frozen=True)
class Scan:
    """One zoo scan: its name, how it is made from the phantom, and the outcome expected before running it."""

    name: str
    expected: str  # LABEL_MAP, or a phrase of the error line
    same_labels_as: str | None = None  # a scan holding the same HU voxels on the same grid: the same label map
    make: callable = field(default=None, repr=False)
    says: str | None = None  # what the log must say of this scan


def _crop(case: Case, x=slice(None), z=slice(None)) -> Case:
    return Case(case.image[x, :, z], case.label[x, :, z], case.spacing, case.orientation)


def _extent(case: Case, axis: int) -> tuple[int, int]:
    hits = np.flatnonzero((case.label >= 1).any(axis=tuple(a for a in range(3) if a != axis)))
    return int(hits[0]), int(hits[-1]) + 1


def _resampled(case: Case, spacing: tuple[float, float, float]) -> Case:
    """The phantom on another grid of the same field of view (linear for HU, nearest for labels)."""
    factors = np.array(case.spacing) / np.array(spacing)
    image = ndimage.zoom(case.image.astype(np.float32), factors, order=1)
    label = ndimage.zoom(case.label, factors, order=0)
    actual = tuple(float(s) * n / m for s, n, m in zip(case.spacing, case.image.shape, image.shape))
    return Case(np.rint(image).astype(np.int16), label, actual, case.orientation)


def _in_plane(case: Case, shape: tuple[int, int]) -> Case:
    return _resampled(
        case, tuple(s * n / m for s, n, m in zip(case.spacing[:2], case.image.shape, shape)) + (case.spacing[2],)
    )


def _middle_slices(case: Case, n: int) -> Case:
    lo, hi = _extent(case, 2)
    centre = (lo + hi) // 2
    return _crop(case, z=slice(centre - n // 2, centre - n // 2 + n))


def _write(case: Case, path: Path) -> Path:
    write_case(case, path, path.with_name(f".{path.name}.reference.nii.gz"))  # the reference is not an input
    return path


def _stored_as(case: Case, path: Path, dtype, slope=None, inter=None) -> Path:
    """The phantom's HU stored as `dtype`, through `scl_slope`/`scl_inter` when given (RAS, the phantom's grid)."""
    hu = case.image.astype(np.float64)
    stored = hu if slope is None else np.rint((hu - inter) / slope)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        stored = np.clip(stored, info.min, info.max)
    image = nib.Nifti1Image(stored.astype(dtype), canonical_affine(case.spacing, case.image.shape))
    image.header.set_data_dtype(dtype)
    if slope is not None:
        image.header.set_slope_inter(slope, inter)
    nib.save(image, path)
    return path


def _oblique(case: Case, path: Path, degrees: float = 12.0) -> Path:
    turn = np.radians(degrees)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]
    image = nib.Nifti1Image(case.image, rotation @ canonical_affine(case.spacing, case.image.shape))
    nib.save(image, path)
    return path


def _pixdim_disagrees(case: Case, path: Path) -> Path:
    """The sform places the voxels at the phantom's spacing; pixdim (and the qform, off) says 1 mm cubes."""
    image = nib.Nifti1Image(case.image, canonical_affine(case.spacing, case.image.shape))
    image.set_qform(None, code=0)
    image.set_sform(canonical_affine(case.spacing, case.image.shape), code=1)
    image.header["pixdim"][1:4] = 1.0
    nib.save(image, path)
    return path


def _write_as(transform):
    return lambda case, path: _write(transform(case), path)


def _edge(where: str):
    def transform(case: Case) -> Case:
        z0, z1 = _extent(case, 2)
        x0, x1 = _extent(case, 0)
        if where == "first slice":
            return _crop(case, z=slice(z0 + 3, None))
        if where == "last slice":
            return _crop(case, z=slice(None, z1 - 3))
        if where == "both ends":
            return _crop(case, z=slice(z0 + 3, z1 - 3))
        return _crop(case, x=slice(x0 + 8, None) if x0 > case.image.shape[0] - x1 else slice(None, x1 - 8))

    return transform


ZOO = [
    Scan("liver_at_first_slice", LABEL_MAP, make=_write_as(_edge("first slice"))),
    Scan("liver_at_last_slice", LABEL_MAP, make=_write_as(_edge("last slice"))),
    Scan("liver_at_both_ends", LABEL_MAP, make=_write_as(_edge("both ends"))),
    Scan("liver_at_in_plane_edge", LABEL_MAP, make=_write_as(_edge("in-plane"))),
    Scan("two_slices", LABEL_MAP, make=_write_as(lambda c: _middle_slices(c, 2))),
    Scan("three_slices", LABEL_MAP, make=_write_as(lambda c: _middle_slices(c, 3))),
    Scan(
        "slices_0.5mm_liver_at_top",
        LABEL_MAP,
        make=_write_as(lambda c: _edge("last slice")(_resampled(c, (*c.spacing[:2], 0.5)))),
    ),
    Scan("slices_8mm", LABEL_MAP, make=_write_as(lambda c: _resampled(c, (*c.spacing[:2], 8.0)))),
    Scan("in_plane_512x384", LABEL_MAP, make=_write_as(lambda c: _in_plane(c, (512, 384)))),
    Scan(
        "in_plane_1024x1024_12_slices",
        LABEL_MAP,
        make=_write_as(lambda c: _middle_slices(_in_plane(c, (1024, 1024)), 12)),
    ),
    Scan("oblique_12_degrees", LABEL_MAP, make=_oblique, says="oblique by 12.0 degrees, read along its nearest axes"),
    Scan(
        "pixdim_disagrees_with_sform",
        LABEL_MAP,
        same_labels_as="int16",
        make=_pixdim_disagrees,
        says="pixdim 1x1x1 mm disagrees with the affine's voxel size",
    ),
    Scan("int16", LABEL_MAP, make=lambda c, p: _stored_as(c, p, np.int16)),
    Scan("int16_slope_intercept", LABEL_MAP, "int16", lambda c, p: _stored_as(c, p, np.int16, 1.0, -1024.0)),
    Scan("uint16_intercept", LABEL_MAP, "int16", lambda c, p: _stored_as(c, p, np.uint16, 1.0, -1024.0)),
    Scan("float32", LABEL_MAP, "int16", lambda c, p: _stored_as(c, p, np.float32)),
    Scan("float64", LABEL_MAP, "int16", lambda c, p: _stored_as(c, p, np.float64)),
    Scan("uint8_slope_intercept", LABEL_MAP, make=lambda c, p: _stored_as(c, p, np.uint8, 16.0, -1024.0)),
    Scan("int8_slope_intercept", LABEL_MAP, make=lambda c, p: _stored_as(c, p, np.int8, 16.0, 0.0)),
    Scan("int8", "int8 without scl_slope", make=lambda c, p: _stored_as(c, p, np.int8)),
    Scan("uint8", "uint8 without scl_slope", make=lambda c, p: _stored_as(c, p, np.uint8)),
]


def write_zoo(folder: Path, scans=ZOO, seed: int = 777_002) -> dict[str, Path]:
    """Every zoo scan, made from one patient: name -> file."""
    folder.mkdir(parents=True, exist_ok=True)
    case = make_case(seed)
    return {scan.name: scan.make(case, folder / f"{scan.name}.nii.gz") for scan in scans}


EDGES = ("first slice", "last slice", "both ends", "in-plane")


def write_edge_cases(folder: Path, cases: int, seed: int) -> list[int]:
    """`generate_dataset`'s phantoms in the LiTS layout, cases 1 to 4 cut so that the scan's edges cut their liver."""
    folder.mkdir(parents=True)
    for n in range(cases):
        case = make_case(int(np.random.SeedSequence([seed, n]).generate_state(1)[0]))
        if 1 <= n <= len(EDGES):
            case = _edge(EDGES[n - 1])(case)
        write_case(case, folder / f"volume-{n}.nii.gz", folder / f"segmentation-{n}.nii.gz")
    return list(range(1, min(cases, len(EDGES) + 1)))
