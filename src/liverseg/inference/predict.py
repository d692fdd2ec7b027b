"""Label maps for whole cases, written back in each scan's own geometry and header.

Stage-1 models segment every slice; a cascade keeps the stage-1 liver and lets its tumour stage segment the liver's
box (slice by slice, or a 3D stage by sliding window), whose tumours are pasted back inside the predicted liver. Each
stage is a list of models: one, or the folds of a cross-validation, whose probabilities are averaged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm import tqdm

from liverseg.data import nifti
from liverseg.data.crops import crop_images, liver_offset, scaled_box
from liverseg.data.geometry import check_same_grid
from liverseg.data.slices import load_slices, normalised_slices
from liverseg.devices import autocast, memory_format, select_device
from liverseg.labels import label_map, liver_mask
from liverseg.measurements import CONNECTIVITY
from liverseg.models.checkpoint import load_models
from liverseg.models.heads import first_region, mean_probabilities, probabilities_to_classes
from liverseg.models.neighbours import neighbour_index, neighbour_step
from liverseg.models.recipe import Recipe
from liverseg.models.volumetric import window_logits
from liverseg.roi import cut_box, largest_component, liver_box, paste_box


def segment_slices(
    models: list,
    recipe: Recipe,
    images: np.ndarray,
    size: tuple[int, int],
    device,
    batch_size: int = 16,
    flip_tta: bool = False,
    observe=None,
    innermost: np.ndarray | None = None,
    slice_mm: float | None = None,
) -> np.ndarray:
    """(n, H, W) normalised slices of one case -> (n, *size) class maps. With `flip_tta`, the probabilities are the
    mean of the slices' and their left-right mirror's (the flip that training augments with). `observe`, if given, is
    called with each batch's outermost-region probabilities, at the model's resolution; `innermost`, if given, an
    (n, *size) float array, receives the innermost region's probability (the tumour's) at `size`. `slice_mm`, the
    slice spacing, places a 2.5D model's neighbours as its recipe's `neighbour_mm` asks."""
    step = neighbour_step(slice_mm, recipe.neighbour_mm) if slice_mm is not None else 1
    stacks = neighbour_index([len(images)], recipe.input_slices, [step])
    images = torch.from_numpy(images.astype(np.float32))
    out = np.zeros((len(images), *size), dtype=np.uint8)
    layout = memory_format(device)  # the model's (liverseg.models.checkpoint)
    with torch.no_grad(), autocast(device):
        for start in tqdm(range(0, len(images), batch_size), desc="slices", unit="batch", mininterval=10):
            x = images[stacks[start : start + batch_size]].to(device).contiguous(memory_format=layout)
            probabilities = mean_probabilities(models, x, recipe.head)
            if flip_tta:
                mirrored = mean_probabilities(models, x.flip(-2), recipe.head).flip(-2)
                probabilities = (probabilities + mirrored) / 2
            if observe is not None:
                observe(first_region(probabilities, recipe.head).cpu())
            scaled = resized(probabilities.cpu(), size)
            out[start : start + batch_size] = probabilities_to_classes(scaled, recipe.head).numpy()
            if innermost is not None:
                innermost[start : start + batch_size] = scaled[:, -1].numpy()
    return out


def segment_volume(
    models: list,
    recipe: Recipe,
    images: np.ndarray,
    size: tuple[int, int],
    device,
    flip_tta: bool = False,
    innermost: np.ndarray | None = None,
) -> np.ndarray:
    """(n, H, W) normalised slices of one box -> (n, *size) class maps by a 3D model, over sliding windows; with
    `flip_tta`, averaged with the left-right mirror's probabilities. `innermost` as `segment_slices`'."""
    x = torch.from_numpy(images.astype(np.float32))[None, None].to(device)

    def windows(model, volume):
        return window_logits(model, volume, recipe)

    with torch.no_grad(), autocast(device):
        probabilities = mean_probabilities(models, x, recipe.head, windows)
        if flip_tta:
            mirrored = mean_probabilities(models, x.flip(-2), recipe.head, windows).flip(-2)
            probabilities = (probabilities + mirrored) / 2
    scaled = resized(probabilities[0].transpose(0, 1).cpu(), size)
    if innermost is not None:
        innermost[:] = scaled[:, -1].numpy()
    return probabilities_to_classes(scaled, recipe.head).numpy()


def resized(probabilities: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(n, C, h, w) probabilities at (n, C, *size), resized as probabilities (the classes follow, with smoother
    outlines) by torch's kernel (the bilinear of `liverseg.data.slices.resize_images`, several times faster than its
    matrices)."""
    shrinking = size[0] < probabilities.shape[-2] or size[1] < probabilities.shape[-1]
    return F.interpolate(probabilities.float(), size=size, mode="bilinear", antialias=shrinking)


def lesion_peaks(tumour: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tumour's components (26-connected, as lesions are scored) and each one's highest probability."""
    components, n = ndimage.label(tumour, structure=CONNECTIVITY)
    return components, np.asarray(ndimage.maximum(probability, components, index=np.arange(1, n + 1)), dtype=float)


def peaks_reaching(components: np.ndarray, peaks: np.ndarray, min_peak: float) -> np.ndarray:
    """The mask of the components (`lesion_peaks`') whose peak reaches `min_peak`."""
    return np.concatenate([[False], peaks >= min_peak])[components]


def confident_lesions(tumour: np.ndarray, probability: np.ndarray, min_peak: float) -> np.ndarray:
    """The tumour's components whose highest probability reaches `min_peak`; the others, the faint specks that a loss
    weighing each lesion alike also marks, are dropped."""
    return peaks_reaching(*lesion_peaks(tumour, probability), min_peak)


def predict_case(
    checkpoints: list[Path], slices_file: Path, volume: Path, out: Path, device: str = "auto", flip_tta: bool = False
) -> None:
    """Segment every slice of a case (by one model, or by the mean of several folds'; with `flip_tta`, averaged with
    the mirror's) and write `out` with the volume's shape, affine and orientation."""
    dev = select_device(device)
    models, recipe, _ = load_models(checkpoints, dev)
    slices = load_slices(slices_file)
    reference = nifti.load(volume)
    in_plane = tuple(int(n) for n in slices["shape"])
    n = len(slices["image"])
    expected = nifti.from_canonical(np.zeros((*in_plane, n), dtype=np.uint8), reference.affine).shape
    if expected != reference.shape:
        raise nifti.VolumeError(
            f"{slices_file}: slices of shape {in_plane}x{n} do not belong to {volume} {reference.shape}"
        )
    slice_mm = float(slices["spacing"][2])
    labels = segment_slices(models, recipe, slices["image"], in_plane, dev, flip_tta=flip_tta, slice_mm=slice_mm)
    labels = labels.transpose(1, 2, 0)
    nifti.save_label_like(labels, reference, out)


def stage1_labels(
    models: list, recipe: Recipe, image_size: int, scan, window, device, flip_tta: bool = False, observe=None
) -> np.ndarray:
    """Canonical (X, Y, Z) class map of a whole scan by a stage-1 model, from the scan itself."""
    slices = normalised_slices(scan, window, image_size)
    in_plane = nifti.canonical(np.broadcast_to(np.False_, scan.shape), scan).shape[:2]  # a shape, no memory
    slice_mm = nifti.canonical_spacing(scan)[2]
    return segment_slices(
        models, recipe, slices, in_plane, device, flip_tta=flip_tta, observe=observe, slice_mm=slice_mm
    ).transpose(1, 2, 0)


def tumour_in_box(
    models: list,
    recipe: Recipe,
    scan,
    liver: np.ndarray,
    window,
    device,
    flip_tta: bool = False,
    with_probability: bool = True,
) -> tuple | None:
    """The tumour stage's pass over the box of the largest component of a canonical liver mask: the box, its tumour
    inside the liver and (`with_probability`; else None) the tumour's probability, both of the box's shape; None
    where the liver is empty."""
    component = largest_component(liver)
    spacing = nifti.canonical_spacing(scan)
    box = liver_box(component, spacing, recipe.crop["margin_mm"])
    if box is None:
        return None
    stored, slope, inter = nifti.stored_voxels(scan)
    stored = nifti.canonical(stored, scan)
    offset = liver_offset(stored[component] * np.float32(slope) + np.float32(inter), recipe.crop.get("liver_hu"))
    # a few slices of the box at a time: a box as large as the scan never becomes float32 in full
    crops = np.concatenate(
        [
            crop_images(scaled_box(stored, slope, inter, slab) + np.float32(offset), window, recipe.crop["size"])
            for slab in box.slabs(32)
        ]
    )
    probability = np.zeros((len(crops), *box.shape[:2]), dtype=np.float32) if with_probability else None
    if recipe.volumetric:
        classes = segment_volume(models, recipe, crops, box.shape[:2], device, flip_tta=flip_tta, innermost=probability)
    else:
        classes = segment_slices(
            models, recipe, crops, box.shape[:2], device, flip_tta=flip_tta, innermost=probability, slice_mm=spacing[2]
        )
    tumour = (classes.transpose(1, 2, 0) == 1) & cut_box(liver, box)
    return box, tumour, None if probability is None else probability.transpose(1, 2, 0)


def tumour_stage(
    models: list,
    recipe: Recipe,
    scan,
    liver: np.ndarray,
    window,
    device,
    flip_tta: bool = False,
    min_lesion_peak: float | None = None,
) -> np.ndarray:
    """The tumour stage's tumours in the box of the largest component of a canonical liver mask, inside the liver;
    with `min_lesion_peak`, only the lesions whose highest probability reaches it (`confident_lesions`)."""
    found = tumour_in_box(models, recipe, scan, liver, window, device, flip_tta, min_lesion_peak is not None)
    if found is None:
        return np.zeros_like(liver)
    box, tumour, probability = found
    if min_lesion_peak is not None:
        tumour = confident_lesions(tumour, probability, min_lesion_peak)
    return paste_box(tumour, box, liver.shape)


def predict_cascade(
    checkpoints: list[Path],
    liver_labels: Path,
    volume: Path,
    window,
    out: Path,
    device: str = "auto",
    flip_tta: bool = False,
    min_lesion_peak: float | None = None,
) -> int:
    """The stage-1 liver of `liver_labels` with the tumour stage's tumours (one model's, or the mean of several
    folds'; with `flip_tta`, averaged with the mirror's; with `min_lesion_peak`, the confident ones); returns the
    number of tumour voxels."""
    dev = select_device(device)
    models, recipe, _ = load_models(checkpoints, dev)
    reference, stage1 = nifti.load(volume), nifti.load(liver_labels)
    check_same_grid(stage1, liver_labels, reference, volume, "volume")
    liver = liver_mask(nifti.to_canonical(stage1, dtype=np.uint8))
    tumour = tumour_stage(models, recipe, reference, liver, window, dev, flip_tta, min_lesion_peak)
    nifti.save_label_like(label_map(liver, tumour), reference, out)
    return int(tumour.sum())
