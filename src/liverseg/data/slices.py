"""From a NIfTI case to normalised, resized axial slices stored for fast training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from liverseg.atomic import atomic_path
from liverseg.data import nifti
from liverseg.data.geometry import check_same_grid


def normalise_hu(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip to the HU window and scale it to [0, 1]."""
    lo, hi = window
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def resize_images(stack: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (n, H, W) or (n, C, H, W) images; antialiased when shrinking."""
    x = torch.as_tensor(stack, dtype=torch.float32)
    squeeze = x.ndim == 3
    x = x[:, None] if squeeze else x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    return x[:, 0] if squeeze else x


def resize_labels(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of (n, H, W) label maps: no new label values appear."""
    x = torch.as_tensor(stack.astype(np.uint8))[:, None].float()
    return F.interpolate(x, size=size, mode="nearest-exact")[:, 0].to(torch.uint8).numpy()


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
        return resize_images(normalise_hu(block.astype(np.float32) * slope + inter, window), (size, size)).numpy()

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
