"""Figures for looking at: augmentation preview and prediction overlays, in the radiological view."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from liverseg.atomic import atomic_path  # noqa: E402

LIVER_COLOUR, TUMOUR_COLOUR = "#39ff14", "#ff2d2d"


def radiological(plane: np.ndarray) -> np.ndarray:
    """A canonical (R, A) slice as radiologists view it: anterior up, patient's right on the viewer's left."""
    return np.rot90(plane)[:, ::-1]


def draw_slice(ax, image: np.ndarray, labels: np.ndarray | None, title: str, **style) -> None:
    ax.imshow(radiological(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if labels is not None:
        for mask, colour in ((labels >= 1, LIVER_COLOUR), (labels == 2, TUMOUR_COLOUR)):
            if mask.any():
                ax.contour(radiological(mask.astype(float)), [0.5], colors=colour, linewidths=1.0, **style)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def slice_interest(labels: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """Per slice, a score that ranks slices by tumour voxels, then by liver voxels."""
    return (labels == 2).sum(axes).astype(np.int64) * labels.size + (labels >= 1).sum(axes)


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def augmentation_preview(originals, augmented, path: Path, count: int = 4) -> None:
    """Pairs of (image, labels): the original slice above its augmented copy."""
    fig, axes = plt.subplots(2, count, figsize=(2.6 * count, 5.6))
    for col, ((oi, ol), (ai, al)) in enumerate(zip(originals[:count], augmented[:count])):
        draw_slice(axes[0, col], oi, ol, "original")
        draw_slice(axes[1, col], ai, al, "augmented")
    fig.suptitle("Augmentation preview (green: liver, red: tumour)", fontsize=10)
    save_figure(fig, path)


def overlay_case(
    case: str, volume: Path, label: Path, predictions: dict[str, Path], window: tuple[float, float], out: Path
) -> int:
    """Reference and each model's prediction over the CT, at the slice with the most tumour (else the most liver)."""
    from liverseg.data import nifti
    from liverseg.data.slices import normalise_hu

    ct = nifti.to_canonical(nifti.load(volume))
    reference = nifti.to_canonical(nifti.load(label), dtype=np.uint8)
    k = int(np.argmax(slice_interest(reference, (0, 1))))
    image = normalise_hu(ct[:, :, k], window)
    panels = {"reference": reference[:, :, k]}
    panels.update({name: nifti.to_canonical(nifti.load(path), dtype=np.uint8)[:, :, k] for name, path in predictions.items()})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.8))
    for ax, (name, labels) in zip(np.atleast_1d(axes), panels.items()):
        draw_slice(ax, image, labels, name)
    fig.suptitle(f"{case}, axial slice {k} (green: liver, red: tumour)", fontsize=10)
    save_figure(fig, out)
    return k
