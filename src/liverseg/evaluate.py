"""Per-case scores in the scan's own geometry, before and after post-processing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from liverseg.atomic import write_json
from liverseg.data import nifti
from liverseg.lesions import match_lesions
from liverseg.metrics import label_metrics


def _read_matching(path: Path, reference) -> np.ndarray:
    image = nifti.load(path)
    if image.shape != reference.shape or not np.allclose(image.affine, reference.affine, atol=1e-3):
        raise nifti.VolumeError(
            f"{path}: geometry {image.shape} / {nifti.orientation_codes(image)} does not match the reference "
            f"{reference.get_filename()} {reference.shape} / {nifti.orientation_codes(reference)}"
        )
    return np.asarray(image.dataobj, dtype=np.uint8)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def evaluate_case(model: str, case: str, label: Path, stages: dict[str, Path], out: Path) -> dict:
    """Scores of each stage's prediction (e.g. pred, post) against the reference labels, as JSON (NaN -> null)."""
    reference = nifti.load(label)
    ref_labels = np.asarray(reference.dataobj, dtype=np.uint8)
    spacing = [float(s) for s in reference.header.get_zooms()[:3]]
    result = {"model": model, "case": case, "shape": list(reference.shape), "spacing": spacing}
    for stage, path in stages.items():
        pred = _read_matching(path, reference)
        result[stage] = label_metrics(pred, ref_labels, spacing)
        result[stage]["labels"] = {"accuracy": float(np.mean(pred == ref_labels))}
        result[stage]["lesions"] = match_lesions(pred == 2, ref_labels == 2, spacing)
    write_json(_json_safe(result), out)
    return result
