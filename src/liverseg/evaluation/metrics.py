"""Overlap and surface metrics of binary masks, and the LiTS targets taken from label maps.

Rule for empty masks (as nnU-Net and MONAI's ignore_empty): when both the reference and the prediction are empty,
Dice, Jaccard and VOE are undefined (NaN) and the case is left out of means; an empty prediction of a non-empty
reference scores Dice 0. RVD is undefined for an empty reference, surface distances when either mask is empty.
"""

from __future__ import annotations

import numpy as np

from liverseg.evaluation.surface import surface_distances
from liverseg.labels import REGIONS, liver_mask, tumour_mask


def target_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    return {name: select(labels) for name, select in REGIONS.items()}


def overlap_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    pred, ref = pred.astype(bool), ref.astype(bool)
    intersection = int(np.count_nonzero(pred & ref))
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    union = n_pred + n_ref - intersection
    return {
        "dice": 2 * intersection / (n_pred + n_ref) if union else float("nan"),
        "jaccard": intersection / union if union else float("nan"),
        "voe": 1 - intersection / union if union else float("nan"),
        "rvd": (n_pred - n_ref) / n_ref if n_ref else float("nan"),
        "accuracy": 1.0 - (union - intersection) / pred.size,
        "pred_voxels": n_pred,
        "ref_voxels": n_ref,
        "intersection": intersection,
    }


def tumour_burden(labels: np.ndarray) -> float:
    """Tumour volume over liver volume (tumour included), as LiTS defines the burden; NaN without liver."""
    liver = int(np.count_nonzero(liver_mask(labels)))
    return np.count_nonzero(tumour_mask(labels)) / liver if liver else float("nan")


def label_metrics(pred_labels: np.ndarray, ref_labels: np.ndarray, spacing=None) -> dict[str, dict[str, float]]:
    """Metrics per LiTS target (liver is label >= 1, tumour included; tumour is label 2); with the voxel spacing of
    the arrays' axes, surface distances in mm too."""
    if pred_labels.shape != ref_labels.shape:
        raise ValueError(f"prediction shape {pred_labels.shape} differs from reference {ref_labels.shape}")
    pred, ref = target_masks(pred_labels), target_masks(ref_labels)
    scores = {name: overlap_metrics(pred[name], ref[name]) for name in REGIONS}
    if spacing is not None:
        for name in REGIONS:
            scores[name].update(surface_distances(pred[name], ref[name], spacing))
    return scores
