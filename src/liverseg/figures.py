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
