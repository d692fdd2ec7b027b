"""The seeded augmented training set: the study's rotations, flips and intensity scaling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentSettings:
    copies: int = 1  # augmented copies per training slice, kept beside the original
    rotation_degrees: float = 15.0  # uniform in [-d, d]
    flip_lr: float = 0.5  # probability of a left-right flip
    flip_ap: float = 0.0  # probability of an anterior-posterior flip
    intensity_scale: tuple[float, float] = (0.9, 1.1)


def augment_slice(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, settings: AugmentSettings):
    """One random variant of a (H, W) slice and its labels; labels are moved, never interpolated."""
    angle = rng.uniform(-settings.rotation_degrees, settings.rotation_degrees)
    image = ndimage.rotate(image, angle, reshape=False, order=1, mode="constant", cval=0.0)
    label = ndimage.rotate(label, angle, reshape=False, order=0, mode="constant", cval=0)
    for axis, probability in ((0, settings.flip_lr), (1, settings.flip_ap)):
        if rng.random() < probability:
            image, label = np.flip(image, axis), np.flip(label, axis)
    image = image * rng.uniform(*settings.intensity_scale)
    return image, label


def augment_set(images: np.ndarray, labels: np.ndarray, settings: AugmentSettings, seed: int):
    """Originals followed by `copies` augmented variants of each slice, in a reproducible order."""
    rng = np.random.default_rng(seed)
    out_images, out_labels = [images.astype(np.float16)], [labels]
    for _ in range(settings.copies):
        pairs = [augment_slice(i.astype(np.float32), l, rng, settings) for i, l in zip(images, labels)]
        out_images.append(np.stack([p[0] for p in pairs]).astype(np.float16))
        out_labels.append(np.stack([p[1] for p in pairs]))
    return np.concatenate(out_images), np.concatenate(out_labels)


def build_training_set(slice_files, out, preview, settings: AugmentSettings, seed: int) -> int:
    """Augment the slices of the training cases into one file, and draw a preview of what augmentation did."""
    from liverseg.data.slices import load_slices, save_slices
    from liverseg.figures import augmentation_preview, slice_interest

    cases = [load_slices(path) for path in slice_files]
    images = np.concatenate([c["image"] for c in cases])
    labels = np.concatenate([c["label"] for c in cases])
    out_images, out_labels = augment_set(images, labels, settings, seed)
    save_slices({"image": out_images, "label": out_labels}, out)
    # preview one slice per case, those with the most tumour (then liver) first
    case_of = np.concatenate([np.full(len(c["label"]), i) for i, c in enumerate(cases)])
    score = slice_interest(labels, (1, 2))
    best_per_case = [np.flatnonzero(case_of == i)[np.argmax(score[case_of == i])] for i in range(len(cases))]
    shown = sorted(best_per_case, key=lambda i: -score[i])[:4]
    augmentation_preview(
        [(images[i].astype(np.float32), labels[i]) for i in shown],
        [(out_images[len(images) + i].astype(np.float32), out_labels[len(images) + i]) for i in shown],
        preview,
    )
    return len(out_images)
