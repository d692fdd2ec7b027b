"""Per-case scores in the scan's own geometry: the prediction, after each post-processing step, and the final file."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.atomic import write_json
from liverseg.data import nifti
from liverseg.data.geometry import check_same_grid
from liverseg.evaluation.lesions import match_lesions
from liverseg.evaluation.metrics import label_metrics, tumour_burden
from liverseg.inference.postprocess import PostSettings, apply_steps
from liverseg.labels import tumour_mask


def read_canonical(path: Path, reference: nib.Nifti1Image) -> np.ndarray:
    """A label map on the reference's grid (checked), as canonical uint8 labels."""
    image = nifti.load(path)
    check_same_grid(image, path, reference, reference.get_filename(), "reference")
    return nifti.to_canonical(image, dtype=np.uint8)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def _scores(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    scores = label_metrics(pred, ref, spacing)
    burden = tumour_burden(pred)
    burden = 0.0 if math.isnan(burden) else burden  # an empty predicted liver holds no tumour: burden 0
    scores["labels"] = {
        "accuracy": float(np.mean(pred == ref)),
        "tumour_burden_error": abs(burden - tumour_burden(ref)),
    }
    scores["lesions"] = match_lesions(tumour_mask(pred), tumour_mask(ref), spacing)
    return scores


def evaluate_case(
    model: str, case: str, label: Path, prediction: Path, postprocessed: Path, settings: PostSettings, out: Path
) -> dict:
    """Scores against the reference labels of the prediction ("pred"), of each enabled post-processing step applied
    to it in turn (named by the step), and of the post-processed file ("post"), as JSON (NaN -> null)."""
    reference = nifti.load(label)
    ref = nifti.to_canonical(reference, dtype=np.uint8)
    pred, post = read_canonical(prediction, reference), read_canonical(postprocessed, reference)
    return score_labels(model, case, reference, ref, pred, post, settings, out)


def score_labels(
    model: str,
    case: str,
    reference: nib.Nifti1Image,
    ref: np.ndarray,
    pred: np.ndarray,
    post: np.ndarray,
    settings: PostSettings,
    out: Path,
) -> dict:
    """`evaluate_case` on canonical label maps already in memory: `ref` is the reference image's labels."""
    spacing = nifti.canonical_spacing(reference)
    result = {"model": model, "case": case, "shape": list(reference.shape), "spacing": list(spacing)}
    steps = apply_steps(pred, spacing, settings)
    result["steps"] = ["pred", *(name for name, _ in steps), "post"]
    scored = [("pred", pred), *steps]
    for name, labels in scored:
        result[name] = _scores(labels, ref, spacing)
    # the file is normally the last step's labels: score it again only if it differs
    last_name, last_labels = scored[-1]
    result["post"] = result[last_name] if np.array_equal(post, last_labels) else _scores(post, ref, spacing)
    write_json(_json_safe(result), out)
    return result
