"""Lesion detection as LiTS scores it: lesions are 3D connected components of label 2; a reference lesion is detected
when one predicted lesion overlaps it with IoU > 0.5 (such a match is one-to-one, since a component cannot overlap
two disjoint ones by more than half its union each).

Sizes are the diameter of the sphere of the lesion's volume in mm, binned as LiTS reports them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from liverseg.measurements import CONNECTIVITY, equivalent_diameter_mm
from liverseg.roi import bounding_slices

SIZE_BINS = {"lt10mm": (0.0, 10.0), "10to20mm": (10.0, 20.0), "gt20mm": (20.0, np.inf)}


def size_bin(diameter_mm: float) -> str:
    return next(name for name, (lo, hi) in SIZE_BINS.items() if lo <= diameter_mm < hi)


def match_lesions(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    """Per-case lesion detection: each reference lesion's diameter and whether it was found, and the counts."""
    if (box := bounding_slices(pred | ref)) is not None:  # components are labelled in the lesions' box only
        pred, ref = pred[box], ref[box]
    ref_cc, n_ref = ndimage.label(ref, structure=CONNECTIVITY)
    pred_cc, n_pred = ndimage.label(pred, structure=CONNECTIVITY)
    ref_sizes = np.bincount(ref_cc.ravel(), minlength=n_ref + 1)[1:]
    pred_sizes = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)[1:]
    both = (ref_cc > 0) & (pred_cc > 0)
    # overlap counts of every (reference, predicted) pair that touches
    pairs, overlap = np.unique(np.stack([ref_cc[both], pred_cc[both]]), axis=1, return_counts=True)
    iou = overlap / (ref_sizes[pairs[0] - 1] + pred_sizes[pairs[1] - 1] - overlap)
    matched = pairs[:, iou > 0.5]
    detected = np.isin(np.arange(1, n_ref + 1), matched[0])
    diameters = equivalent_diameter_mm(ref_sizes, spacing)
    case = {
        "reference": [
            {"diameter_mm": float(d), "size": size_bin(d), "detected": bool(hit)} for d, hit in zip(diameters, detected)
        ],
        "ref_lesions": int(n_ref),
        "pred_lesions": int(n_pred),
        "true_positives": int(detected.sum()),
        "false_positives": int(n_pred - matched.shape[1]),
    }
    return {**case, **{k: v for k, v in detection_scores([case]).items() if k.startswith("lesion_")}}


def detection_scores(cases: list[dict]) -> dict[str, float]:
    """Precision, recall and F1 from global counts over cases, and recall per size bin (NaN where undefined)."""
    tp = sum(c["true_positives"] for c in cases)
    n_ref = sum(c["ref_lesions"] for c in cases)
    n_pred = sum(c["pred_lesions"] for c in cases)
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    precision, recall = ratio(tp, n_pred), ratio(tp, n_ref)
    scores = {
        "lesion_precision": precision,
        "lesion_recall": recall,
        "lesion_f1": ratio(2 * tp, n_pred + n_ref),  # = 2PR / (P + R), and defined when nothing is found
        "ref_lesions": n_ref,
    }
    lesions = [lesion for c in cases for lesion in c["reference"]]
    for name in SIZE_BINS:
        hits = [lesion["detected"] for lesion in lesions if lesion["size"] == name]
        scores[f"lesion_recall_{name}"] = ratio(sum(hits), len(hits))
        scores[f"ref_lesions_{name}"] = len(hits)
    large = [lesion["detected"] for lesion in lesions if lesion["diameter_mm"] >= 10.0]
    scores["lesion_recall_ge10mm"] = ratio(sum(large), len(large))
    return scores
