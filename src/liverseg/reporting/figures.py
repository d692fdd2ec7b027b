"""Figures for looking at: augmentation preview and prediction overlays, in the radiological view."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from liverseg.atomic import atomic_path  # noqa: E402
from liverseg.labels import liver_mask, tumour_mask

LIVER_COLOUR, TUMOUR_COLOUR = "#39ff14", "#ff2d2d"


def radiological(plane: np.ndarray) -> np.ndarray:
    """A canonical (R, A) slice as radiologists view it: anterior up, patient's right on the viewer's left."""
    return np.rot90(plane)[:, ::-1]


def draw_slice(ax, image: np.ndarray, labels: np.ndarray | None, title: str, **style) -> None:
    ax.imshow(radiological(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if labels is not None:
        for mask, colour in ((liver_mask(labels), LIVER_COLOUR), (tumour_mask(labels), TUMOUR_COLOUR)):
            if mask.any():
                ax.contour(radiological(mask.astype(float)), [0.5], colors=colour, linewidths=1.0, **style)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def slice_interest(labels: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """Per slice, a score that ranks slices by tumour voxels, then by liver voxels."""
    return tumour_mask(labels).sum(axes).astype(np.int64) * labels.size + liver_mask(labels).sum(axes)


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def augmentation_preview(originals, augmented, path: Path, count: int = 4) -> None:
    """Pairs of (image, labels): the original slice above its augmented copy."""
    count = min(count, len(originals))
    fig, axes = plt.subplots(2, count, figsize=(2.6 * count, 5.6), squeeze=False)
    for col, ((oi, ol), (ai, al)) in enumerate(zip(originals[:count], augmented[:count])):
        draw_slice(axes[0, col], oi, ol, "original")
        draw_slice(axes[1, col], ai, al, "augmented")
    fig.suptitle("Augmentation preview (green: liver, red: tumour)", fontsize=10)
    save_figure(fig, path)


REFERENCE_STYLE = {"liver": ("#00d5ff", "-"), "tumour": ("#ffd400", "-")}  # colour, line style
PREDICTED_STYLE = {"liver": ("#ff3df2", "--"), "tumour": ("#ff2d2d", "--")}


def contours(ax, labels: np.ndarray, styles: dict) -> None:
    for (colour, line), mask in zip(styles.values(), (liver_mask(labels), tumour_mask(labels))):
        if mask.any():
            ax.contour(radiological(mask.astype(float)), [0.5], colors=colour, linestyles=line, linewidths=1.1)


def contour_legend(fig) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=colour, linestyle=line, label=f"{source} {name}")
        for source, styles in (("reference", REFERENCE_STYLE), ("predicted", PREDICTED_STYLE))
        for name, (colour, line) in styles.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)


def chosen_slices(reference: np.ndarray, predictions: dict[str, np.ndarray]) -> dict[str, int]:
    """Slices worth looking at, chosen with the reference: its largest tumour (its largest liver if it has no
    tumour) and the slice where the predictions together mark the most false tumour, if they mark any."""
    tumour = tumour_mask(reference).sum((0, 1))
    rows = (
        {"largest reference tumour": int(np.argmax(tumour))}
        if tumour.any()
        else {"largest reference liver (no tumour)": int(np.argmax(liver_mask(reference).sum((0, 1))))}
    )
    false_tumour = sum((tumour_mask(labels) & ~tumour_mask(reference)).sum((0, 1)) for labels in predictions.values())
    if np.any(false_tumour):
        k = int(np.argmax(false_tumour))
        if k in rows.values():  # one row says both
            rows = {f"{why},\nmost false tumour": k for why in rows}
        else:
            rows["most false tumour"] = k
    return rows


def in_plane_view(masks: list[np.ndarray], shape: tuple[int, int], margin: float = 0.15) -> tuple[slice, slice]:
    """The in-plane box holding every mask, with a margin: contours stay large enough to read."""
    union = np.any([m.any(2) for m in masks], axis=0)
    if not union.any():
        return slice(0, shape[0]), slice(0, shape[1])
    box = []
    for axis, n in enumerate(shape):
        hits = np.flatnonzero(union.any(1 - axis))
        pad = int(margin * (hits[-1] - hits[0] + 1)) + 4
        box.append(slice(max(hits[0] - pad, 0), min(hits[-1] + pad + 1, n)))
    return tuple(box)


def overlay_case(
    case: str, volume: Path, label: Path, predictions: dict[str, Path], window: tuple[float, float], out: Path
) -> dict[str, int]:
    """The CT in its window with reference and predicted contours, one column per prediction, on the slices that
    `chosen_slices` picks; returns them."""
    from liverseg.data import nifti
    from liverseg.data.slices import normalise_hu

    ct = nifti.canonical_view(nifti.load(volume))
    reference = nifti.to_canonical(nifti.load(label), dtype=np.uint8)
    predicted = {name: nifti.to_canonical(nifti.load(path), dtype=np.uint8) for name, path in predictions.items()}
    rows = chosen_slices(reference, predicted)
    view = in_plane_view(
        [liver_mask(reference), *(liver_mask(labels) for labels in predicted.values())], reference.shape[:2]
    )
    columns = ["CT", *predicted]
    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(2.7 * len(columns), 2.9 * len(rows) + 0.5), squeeze=False
    )
    for r, (why, k) in enumerate(rows.items()):
        image = normalise_hu(ct[view + (k,)], window)
        for ax, name in zip(axes[r], columns):
            ax.imshow(radiological(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if name != "CT":
                contours(ax, reference[view + (k,)], REFERENCE_STYLE)
                contours(ax, predicted[name][view + (k,)], PREDICTED_STYLE)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
        axes[r, 0].set_ylabel(f"slice {k}\n{why}", fontsize=8)
    fig.suptitle(f"{case}: reference and predicted contours after post-processing (liver window)", fontsize=10)
    contour_legend(fig)
    fig.tight_layout(rect=(0, 0.05, 1, 0.98))
    save_figure(fig, out)
    return rows


def learning_curves(histories: dict[str, Path], out: Path) -> None:
    """Per model: training and validation loss, and validation Dice per region, with the kept (best) epoch marked."""
    import pandas as pd

    fig, axes = plt.subplots(1, len(histories), figsize=(4.2 * len(histories), 4.0), squeeze=False)
    for ax, (name, path) in zip(axes[0], histories.items()):
        history = pd.read_csv(path)
        ax.plot(history["epoch"], history["train_loss"], color="#444444", label="training loss")
        ax.plot(history["epoch"], history["val_loss"], color="#1f77b4", label="validation loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        dice = ax.twinx()
        for column, colour in (("val_dice_liver", "#2ca02c"), ("val_dice_tumour", "#d62728")):
            if column in history:
                dice.plot(
                    history["epoch"],
                    history[column],
                    color=colour,
                    linestyle="--",
                    label=column.replace("val_", "validation ").replace("_", " "),
                )
        dice.set_ylim(0, 1)
        dice.set_ylabel("Dice")
        if history["val_dice"].notna().any():
            best = history.loc[history["val_dice"].idxmax(), "epoch"]
            ax.axvline(best, color="#999999", linestyle=":", label=f"kept: epoch {best}")
        handles = ax.get_legend_handles_labels()[0] + dice.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
        ax.set_title(name, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)


def case_dice_plot(cases_csv: Path, out: Path) -> None:
    """Every scored case's Dice after post-processing, per entry and target, with the median; tumour Dice is
    undefined (left out) for a case without reference tumour."""
    import pandas as pd

    scores = pd.read_csv(cases_csv)
    post = scores[(scores["stage"] == "post") & scores["target"].isin(["liver", "tumour"])]
    entries = list(dict.fromkeys(post["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 2.4 * len(entries) + 1), 3.6))
    jitter = np.random.default_rng(0)
    for ax, target in zip(axes, ("liver", "tumour")):
        counts = []
        for x, entry in enumerate(entries):
            dice = post[(post["model"] == entry) & (post["target"] == target)]["dice"].dropna()
            ax.scatter(x + jitter.uniform(-0.12, 0.12, len(dice)), dice, s=16, alpha=0.8, color="#1f77b4")
            if len(dice):
                ax.hlines(dice.median(), x - 0.25, x + 0.25, color="#d62728", linewidth=2)
            counts.append(f"{entry}\nn={len(dice)}")
        ax.set_xticks(range(len(entries)), counts, fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{target} Dice per case (red: median)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)
