"""From a NIfTI case to normalised, resized axial slices stored for fast training."""

from __future__ import annotations

import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from liverseg.atomic import atomic_path
from liverseg.data import nifti
from liverseg.data.geometry import check_same_grid

PIECE = 1 << 16  # bytes read at a time by read_into; pieces of 1 MiB left 3% of a set behind as freed memory
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def normalise_hu(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip to the HU window and scale it to [0, 1]."""
    lo, hi = window
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def bilinear_matrix(n_in: int, n_out: int, antialias: bool) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling along one axis, as torch's `interpolate` takes them
    (align_corners=False) and in its float32 arithmetic: two taps, the source clamped at the edges; antialiased, a
    triangle filter widened by the shrinking factor and normalised over the taps inside the axis."""
    scale = np.float32(n_in) / np.float32(n_out)
    rows = np.arange(n_out)
    if antialias:
        centre = (scale * (rows + 0.5)).astype(np.float32)
        support = max(scale, np.float32(1))
        first = np.maximum((centre - support + np.float32(0.5)).astype(np.int64), 0)
        end = np.minimum((centre + support + np.float32(0.5)).astype(np.int64), n_in)
        index = first[:, None] + np.arange((end - first).max())
        offset = (index.astype(np.float32) - centre[:, None] + np.float32(0.5)) * (np.float32(1) / support)
        weight = np.clip(np.float32(1) - np.abs(offset), 0, None) * (index < end[:, None])
        weight /= weight.sum(1, keepdims=True)
        index = np.minimum(index, n_in - 1)
    else:
        # rounded once, as the fused multiply-add of torch's build does
        source = np.maximum((scale * (rows + 0.5) - 0.5).astype(np.float32), np.float32(0))
        first = source.astype(np.int64)
        after = source - first
        index = np.stack([first, np.minimum(first + 1, n_in - 1)], 1)
        weight = np.stack([1 - after, after], 1)
    matrix = np.zeros((n_out, n_in), np.float32)
    np.add.at(matrix, (rows[:, None], index), weight)
    return matrix


def resize_images(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (..., H, W) float32 images, antialiased when shrinking either axis: torch's `interpolate`
    to within float32 rounding, without importing torch (a second and a half of every preprocessing job). Two
    matrix products: 4 to 9x slower than torch's kernel on a batch, but a small part of a job that no longer loads
    torch (prediction, which has torch loaded, resizes with its kernel)."""
    x = np.asarray(stack, np.float32)
    antialias = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    rows = bilinear_matrix(x.shape[-2], size[0], antialias)
    columns = bilinear_matrix(x.shape[-1], size[1], antialias)
    return rows @ x @ columns.T


def nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """torch's `nearest-exact` sources along one axis, in its float32 arithmetic so that every index is the same."""
    scale = np.float32(n_in) / np.float32(n_out)
    return np.minimum(
        np.floor((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale).astype(np.int64), n_in - 1
    )


def resize_labels(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of (n, H, W) label maps: no new label values appear."""
    rows, columns = nearest_index(stack.shape[-2], size[0]), nearest_index(stack.shape[-1], size[1])
    return np.asarray(stack, np.uint8)[..., rows[:, None], columns]


def axial_slices(volume: np.ndarray, size: int, transform, dtype, chunk: int = 32) -> np.ndarray:
    """(z, size, size) slices of a canonical (X, Y, Z) volume, `transform` applied to a few slices at a time.

    Working in chunks keeps the peak memory at the volume plus a few slices, however many slices the scan has.
    """
    out = np.empty((volume.shape[2], size, size), dtype=dtype)
    for start in range(0, volume.shape[2], chunk):
        out[start : start + chunk] = transform(
            np.ascontiguousarray(volume[:, :, start : start + chunk].transpose(2, 0, 1))
        )
    return out


def normalised_slices(image, window: tuple[float, float], size: int) -> np.ndarray:
    """(z, size, size) float16 axial slices of a scan in canonical order, HU-windowed to [0, 1]; the stored voxels are
    scaled to HU a few slices at a time, so an int16 scan is never held as float32 in full."""
    stored, slope, inter = nifti.stored_voxels(image)

    def to_slices(block):
        return resize_images(normalise_hu(block.astype(np.float32) * slope + inter, window), (size, size))

    return axial_slices(nifti.canonical(stored, image), size, to_slices, np.float16)


def slice_case(volume: Path, label: Path, window: tuple[float, float], size: int) -> dict[str, np.ndarray]:
    """Axial slices (z, size, size) of the canonical volume, normalised, with their labels; one volume in memory."""
    image, seg = nifti.load(volume), nifti.load(label)
    check_same_grid(seg, label, image, volume, "volume")
    nifti.log_geometry(image)
    labels = nifti.canonical_view(seg, dtype=np.uint8)
    return {
        "image": normalised_slices(image, window, size),
        "label": axial_slices(labels, size, lambda b: resize_labels(b, (size, size)), np.uint8),
        "shape": np.array(labels.shape[:2]),  # canonical in-plane size, to resize predictions back
        "spacing": np.array(nifti.canonical_spacing(image)),
    }


def save_slices(slices: dict[str, np.ndarray], path: Path) -> None:
    with atomic_path(path) as partial:
        np.savez(partial, **slices)


def load_slices(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@contextmanager
def _stored(path: Path, key: str):
    """Array `key` of a slices file as an open member of its archive, after its header: (member, shape, Fortran
    order, dtype)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version not in HEADER_READERS:
                raise ValueError(f"{path}: array {key} is in .npy format {version}, which this version does not read")
            yield member, *HEADER_READERS[version](member)
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"{path}: not a slices file holding array {key} ({error})") from error


def stored_shape(path: Path, key: str) -> tuple[int, ...]:
    """The shape of array `key` of a slices file, from its header alone."""
    with _stored(path, key) as (_, shape, _, _):
        return shape


def read_into(path: Path, key: str, out: np.ndarray) -> None:
    """Array `key` of a slices file written straight into `out`, a piece at a time. np.load would first make the whole
    array, a case's slices, which the process keeps as freed memory after the copy: a training set filled case by case
    then held 3 to 21% more than its own size (bench/scale.py)."""
    with _stored(path, key) as (member, shape, fortran_order, dtype):
        if shape != out.shape:
            raise ValueError(f"{path}: array {key} has shape {shape}, not {out.shape}")
        if not fortran_order and dtype == out.dtype:
            bytes_out = memoryview(out.reshape(-1)).cast("B")
            filled = 0
            while filled < len(bytes_out):
                got = member.readinto(bytes_out[filled : filled + PIECE])
                if not got:
                    raise ValueError(f"{path}: array {key} ends after {filled} of its {len(bytes_out)} bytes")
                filled += got
            return
    with np.load(path) as case:  # written otherwise than save_slices writes: converted on the copy
        out[...] = case[key]
