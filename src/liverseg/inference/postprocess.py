"""Post-processing of predicted label maps, step by step, each step on or off in the config.

Steps, in this order:
1. closing: morphological closing of liver and tumour apart, per axial slice or in 3D, with a radius in millimetres;
2. largest_component: only the liver's largest 3D connected component is kept (tumour inside it included);
3. tumour_in_liver: a tumour component that touches no liver voxel (label 1) is dropped: lying in the background, it
   cannot be a liver tumour. The largest component of liver and tumour (label >= 1) is the liver itself and is never
   dropped, even when a prediction marks all of it as tumour.
Every step is scored on its own (`liverseg.evaluation.evaluate`), so the summary can say which one helped and which hurt.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from liverseg.cores import usable_cpus
from liverseg.data import nifti
from liverseg.labels import label_map, liver_mask, parenchyma_mask, tumour_mask
from liverseg.roi import bounding_slices, largest_component

NEIGHBOURS_3D = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class PostSettings:
    closing_radius_mm: float = 5.0  # 0: no closing
    closing_3d: bool = False
    largest_liver_component: bool = True
    tumour_in_liver: bool = True

    @classmethod
    def from_config(cls, section: dict) -> PostSettings:
        """The config's postprocess section's steps (its `choose` says where they are judged, not what they do)."""
        return cls(**{key: value for key, value in section.items() if key != "choose"})

    def steps(self) -> list[str]:
        """The enabled steps' names, in the order they are applied."""
        return [step for step, (field, _, _) in STEPS.items() if getattr(self, field)]

    def without(self, step: str) -> PostSettings:
        """These settings with one step switched off."""
        field, off, _ = STEPS[step]
        return replace(self, **{field: off})


def footprint(radius_mm: float, spacing, three_d: bool = False) -> np.ndarray:
    """An ellipse (per slice, shape (X, Y, 1)) or ellipsoid (3D) covering radius_mm along each axis."""
    axes = spacing if three_d else spacing[:2]
    grid = np.ogrid[tuple(slice(-int(radius_mm // s), int(radius_mm // s) + 1) for s in axes)]
    inside = sum((g * s) ** 2 for g, s in zip(grid, axes)) <= radius_mm**2
    return inside if three_d else inside[:, :, None]


def footprint_boxes(structure: np.ndarray) -> list[tuple[int, ...]]:
    """A centred footprint as a union of centred boxes, each given by its half-extent along every axis.

    An ellipse or ellipsoid holds every offset that is no farther out along any axis than one of its own, so the
    boxes reaching its outermost offsets (none other is as far out along every axis) cover it exactly. A box is
    cheap: its dilation is one running maximum per axis, whatever its size."""
    centre = np.array(structure.shape) // 2
    points = np.argwhere(structure[tuple(slice(c, None) for c in centre)])
    outermost = [p for p in points if not any((q >= p).all() and (q > p).any() for q in points)]
    boxes = [tuple(int(v) for v in p) for p in outermost]
    covered = np.zeros_like(structure, dtype=bool)
    for half in boxes:
        covered[tuple(slice(c - h, c + h + 1) for c, h in zip(centre, half))] = True
    if not np.array_equal(covered, structure.astype(bool)):
        raise ValueError("the footprint is not a union of centred boxes (not an ellipse or ellipsoid)")
    return boxes


def running_extreme(mask: np.ndarray, boxes, dilate: bool) -> np.ndarray:
    """Binary dilation (the union over the boxes of their running maxima) or erosion (the intersection of their
    running minima) with voxels outside the array taken as 0, as scipy's binary morphology does by default. The boxes
    are filtered side by side on the cores this process may use (scipy's filters release the GIL)."""
    flat = mask.view(np.uint8)
    filter1d = ndimage.maximum_filter1d if dilate else ndimage.minimum_filter1d

    def filtered(half):
        done = flat
        for axis, h in enumerate(half):
            if h:
                done = filter1d(done, 2 * h + 1, axis=axis, mode="constant", cval=0)
        return done.view(bool)

    out = np.full(mask.shape, not dilate)
    with ThreadPoolExecutor(min(len(boxes), usable_cpus())) as pool:
        for done in pool.map(filtered, boxes):
            if dilate:
                out |= done
            else:
                out &= done
    return out


def close_mask(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Binary closing that is not eroded at the volume's edges (padding keeps the border neutral), computed in the
    mask's box widened by the footprint's reach, beyond which the dilation, and so the closing, is empty: the same
    voxels as scipy's closing of the whole volume, at the cost of the liver's box rather than the scan's, with the
    footprint taken as boxes (`footprint_boxes`): the 161 offsets of a 5 mm disk at 0.7 mm become 5 boxes."""
    reach = tuple(s // 2 for s in structure.shape)
    closed = np.zeros(mask.shape, dtype=bool)
    box = bounding_slices(mask, pad=reach)
    if box is None:
        return closed
    crop = mask[box]
    boxes = footprint_boxes(structure)
    padded = np.pad(crop, [(r, r) for r in reach], mode="edge")
    inner = running_extreme(running_extreme(padded, boxes, dilate=True), boxes, dilate=False)
    closed[box] = inner[tuple(slice(r, r + n) for r, n in zip(reach, crop.shape))]
    return closed


def close_labels(labels: np.ndarray, spacing, radius_mm: float, three_d: bool = False) -> np.ndarray:
    """Close liver (label >= 1) and tumour (label 2) apart; a closed tumour voxel counts as liver too."""
    structure = footprint(radius_mm, spacing, three_d)
    if structure.size == 1:
        return labels.copy()
    liver = close_mask(liver_mask(labels), structure)
    tumour = close_mask(tumour_mask(labels), structure)
    return label_map(liver, tumour)


def keep_largest_liver(labels: np.ndarray) -> np.ndarray:
    return np.where(largest_component(liver_mask(labels)), labels, 0).astype(np.uint8)


def drop_tumour_outside_liver(labels: np.ndarray) -> np.ndarray:
    """Tumour components (26-connected) without a liver voxel (label 1) beside them become background, unless they lie
    in the largest component of label >= 1 (the liver, all of it tumour in this prediction)."""
    out = labels.astype(np.uint8, copy=True)
    box = bounding_slices(liver_mask(labels), pad=1)  # tumour is label >= 1 too; one voxel more for the dilation
    if box is None:
        return out
    crop = labels[box]
    components, n = ndimage.label(tumour_mask(crop), structure=NEIGHBOURS_3D)
    if n == 0:
        return out
    near_liver = ndimage.binary_dilation(parenchyma_mask(crop), structure=NEIGHBOURS_3D) | largest_component(
        liver_mask(crop)
    )
    touching = np.unique(components[near_liver & (components > 0)])
    out[box] = np.where((components > 0) & ~np.isin(components, touching), 0, crop)
    return out


# each step's name -> the setting that switches it, its value when off, and the step on canonical labels with their
# spacing in mm; in the order the steps are applied
STEPS = {
    "closing": (
        "closing_radius_mm",
        0.0,
        lambda labels, spacing, settings: close_labels(
            labels, spacing, settings.closing_radius_mm, settings.closing_3d
        ),
    ),
    "largest_component": (
        "largest_liver_component",
        False,
        lambda labels, spacing, settings: keep_largest_liver(labels),
    ),
    "tumour_in_liver": ("tumour_in_liver", False, lambda labels, spacing, settings: drop_tumour_outside_liver(labels)),
}


def apply_step(step: str, labels: np.ndarray, spacing, settings: PostSettings) -> np.ndarray:
    """One step (a name of `STEPS`) on canonical (R, A, S) labels with their spacing in mm."""
    return STEPS[step][2](labels, spacing, settings)


def apply_steps(labels: np.ndarray, spacing, settings: PostSettings) -> list[tuple[str, np.ndarray]]:
    """The labels after each enabled step, in order; canonical (R, A, S) arrays with their spacing in mm."""
    done = []
    for step in settings.steps():
        done.append((step, apply_step(step, done[-1][1] if done else labels, spacing, settings)))
    return done


def postprocessed(labels: np.ndarray, spacing, settings: PostSettings) -> np.ndarray:
    """The labels after every enabled step."""
    steps = apply_steps(labels, spacing, settings)
    return steps[-1][1] if steps else labels


def postprocess_case(prediction: Path, out: Path, settings: PostSettings) -> None:
    image = nifti.load(prediction)
    labels = nifti.to_canonical(image, dtype=np.uint8)
    nifti.save_label_like(postprocessed(labels, nifti.canonical_spacing(image), settings), image, out)
