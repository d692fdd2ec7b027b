"""Segmentation losses built from the config: Tversky, soft Dice, BCE, focal, blob, and weighted sums of them.

The region losses see each nested region's probability, as the head gives it (`liverseg.models.heads`); the pixel
losses see the logits. Tversky keeps the study's convention: alpha weighs false positives, beta false negatives.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from liverseg.models.heads import HEADS, class_index, region_probabilities


def tversky_loss(p: torch.Tensor, t: torch.Tensor, alpha: float = 0.7, beta: float = 0.3, smooth: float = 1.0):
    """Mean over regions of 1 - (TP + s) / (TP + alpha FP + beta FN + s), counts summed over batch and pixels (or
    voxels: any number of spatial axes after the region axis).

    The smoothing term keeps the loss defined on batches without a given target, where it still penalises false
    positives.
    """
    dims = (0, *range(2, p.ndim))
    tp = (p * t).sum(dims)
    fp = (p * (1 - t)).sum(dims)
    fn = ((1 - p) * t).sum(dims)
    return (1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)).mean()


def dice_loss(p: torch.Tensor, t: torch.Tensor, smooth: float = 1.0):
    """Soft Dice: the Tversky loss with alpha = beta = 0.5."""
    return tversky_loss(p, t, 0.5, 0.5, smooth)


def blob_loss(p: torch.Tensor, t: torch.Tensor, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0):
    """The Tversky loss of each lesion on its own, averaged over the lesions (blob loss, Kofler et al., IPMI 2023): a
    lesion of 5 voxels weighs as much as one of 5,000, where a loss summed over voxels hardly sees it.

    Lesions are the connected components of the innermost region (the tumour) in each sample of the batch. A lesion's
    true positives and false negatives are counted on its own voxels, its false positives on its sample's background:
    the other lesions are masked out, as the paper does. A batch without lesions adds nothing.
    """
    p, t = p[:, -1], t[:, -1]
    lesions, samples = lesion_components(t)
    if not len(samples):
        return p.sum() * 0.0
    index = torch.from_numpy(lesions).to(p.device).flatten()
    tp = torch.zeros(len(samples) + 1, device=p.device).index_add(0, index, p.flatten().float())[1:]
    size = torch.bincount(index, minlength=len(samples) + 1)[1:].float()
    fp = (p.float() * (1 - t)).flatten(1).sum(1)[torch.from_numpy(samples).to(p.device)]
    return (1 - (tp + smooth) / (tp + alpha * fp + beta * (size - tp) + smooth)).mean()


def lesion_components(t: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(B, *spatial) target -> its lesions numbered 1..n over the batch (0 elsewhere; none joins two samples), and the
    sample each lesion lies in."""
    within_sample = ndimage.generate_binary_structure(t.ndim - 1, 1)[None]
    structure = np.concatenate([np.zeros_like(within_sample), within_sample, np.zeros_like(within_sample)])
    lesions, _ = ndimage.label(t.detach().cpu().numpy() > 0.5, structure=structure)
    return lesions, np.array([box[0].start for box in ndimage.find_objects(lesions)], dtype=np.int64)


def _pixel_loss(logits: torch.Tensor, t: torch.Tensor, head: str, gamma: float) -> torch.Tensor:
    """Cross-entropy per pixel (binary per region for sigmoid, over classes for softmax), focal when gamma > 0."""
    logits = logits.float()
    if head == "sigmoid":
        ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        p_true = torch.where(t > 0.5, torch.sigmoid(logits), 1 - torch.sigmoid(logits))
    else:
        index = class_index(t)
        ce = F.cross_entropy(logits, index, reduction="none")
        p_true = torch.softmax(logits, 1).gather(1, index[:, None])[:, 0]
    return ((1 - p_true) ** gamma * ce).mean() if gamma else ce.mean()


def bce_loss(logits, t, head):
    return _pixel_loss(logits, t, head, 0.0)


def focal_loss(logits, t, head, gamma: float = 2.0):
    return _pixel_loss(logits, t, head, gamma)


REGION_LOSSES = {"tversky": tversky_loss, "dice": dice_loss, "blob": blob_loss}
PIXEL_LOSSES = {"bce": bce_loss, "focal": focal_loss}


class CombinedLoss:
    """A weighted sum of named loss terms, e.g. {"dice": {"weight": 1}, "bce": {"weight": 1}}."""

    def __init__(self, terms: dict[str, dict], head: str = "sigmoid"):
        unknown = set(terms) - set(REGION_LOSSES) - set(PIXEL_LOSSES)
        if unknown or not terms:
            raise ValueError(
                f"unknown loss terms {sorted(unknown)}; choose from {sorted(REGION_LOSSES | PIXEL_LOSSES)}"
            )
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose from {HEADS}")
        self.terms, self.head = terms, head

    def __call__(self, logits: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        p = region_probabilities(logits, self.head)
        total = 0.0
        for name, options in self.terms.items():
            options = dict(options)
            weight = options.pop("weight", 1.0)
            if name in REGION_LOSSES:
                total = total + weight * REGION_LOSSES[name](p, regions, **options)
            else:
                total = total + weight * PIXEL_LOSSES[name](logits, regions, self.head, **options)
        return total
