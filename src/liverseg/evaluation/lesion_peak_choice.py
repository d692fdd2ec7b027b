"""A tumour stage's lowest lesion peak (`min_lesion_peak: validation`), chosen on its validation cases instead of
fixed: a stage trained on other data, longer, on a GPU or in another precision puts its faint specks' and its lesions'
peaks elsewhere, and a cut fixed for one training drops true lesions of another.

Each validation case is segmented by the tumour stage inside its reference liver (the box and pass of a cascade, so
that the peaks are those a cascade's cut sees, whatever stage-1 model feeds it), its lesions matched to the reference
as LiTS matches them, and the cut chosen from a ladder evenly spaced in log-odds up to 0.99999 (the probabilities
saturate): the one with the highest lesion F1 over the cases, and among several, the middle of the longest run of
them, so that the cut lies as far as the ladder allows from both the highest false peak and the lowest true one.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np

from liverseg.atomic import write_json
from liverseg.data import nifti
from liverseg.devices import select_device
from liverseg.evaluation.lesions import detection_scores, match_lesions
from liverseg.inference.predict import lesion_peaks, peaks_reaching, tumour_in_box
from liverseg.models.checkpoint import load_models
from liverseg.roi import paste_box

# 0.5 keeps every lesion (each holds voxels above 0.5); then 1 - 10^(-k/4), 0.68 to 0.99999
CANDIDATES = (0.5, *(round(1 - 10 ** (-k / 4), 8) for k in range(2, 21)))


def lesion_counts(tumour, probability, reference, spacing, box, candidates=CANDIDATES) -> list[dict]:
    """For each cut, `match_lesions` of the tumour's lesions whose peak reaches it against the reference tumour (a
    canonical mask); `tumour` and `probability` are of `box`'s shape, pasted into the reference's."""
    components, peaks = lesion_peaks(tumour, probability)
    return [
        match_lesions(paste_box(peaks_reaching(components, peaks, cut), box, reference.shape), reference, spacing)
        for cut in candidates
    ]


def lesion_f1(cases: list[dict]) -> float:
    """Lesion F1 over the cases; where they hold no lesion, 1 when nothing is marked either, else 0."""
    f1 = detection_scores(cases)["lesion_f1"]
    return 1.0 if math.isnan(f1) else f1


def chosen_index(scores: list[float]) -> int:
    """The middle (the lower of two) of the longest run of consecutive best scores (the first of equal runs)."""
    best, runs, start = max(scores), [], 0
    for is_best, run in itertools.groupby(scores, key=lambda score: score == best):
        length = len(list(run))
        if is_best:
            runs.append((start, length))
        start += length
    first, length = max(runs, key=lambda run: (run[1], -run[0]))
    return first + (length - 1) // 2


def choose_lesion_peak(
    checkpoints: list[Path], volumes: list[Path], labels: list[Path], window, out: Path, device="auto", flip_tta=False
) -> dict:
    """The cut for the validation cases `volumes` / `labels`, each segmented by the tumour stage `checkpoints` names
    for it (with folds, the fold that did not train on it); written to `out` as JSON with each cut's counts."""
    if not volumes or not len(checkpoints) == len(volumes) == len(labels):
        raise ValueError(
            f"min_lesion_peak: validation needs validation cases, each with its weights: got {len(volumes)} volumes, "
            f"{len(labels)} label maps and {len(checkpoints)} weights"
        )
    dev = select_device(device)
    loaded = {}
    per_cut = [[] for _ in CANDIDATES]
    for checkpoint, volume, label in zip(checkpoints, volumes, labels):
        if checkpoint not in loaded:
            loaded[checkpoint] = load_models([checkpoint], dev)[:2]
        models, recipe = loaded[checkpoint]
        scan, reference = nifti.load(volume), nifti.load(label)
        ref = nifti.to_canonical(reference, dtype=np.uint8)
        spacing = nifti.canonical_spacing(scan)
        found = tumour_in_box(models, recipe, scan, ref > 0, window, dev, flip_tta)
        if found is None:
            raise ValueError(f"{label}: no liver to choose the lowest lesion peak in")
        box, tumour, probability = found
        for cases, counts in zip(per_cut, lesion_counts(tumour, probability, ref == 2, spacing, box)):
            cases.append(counts)
    scores = [lesion_f1(cases) for cases in per_cut]
    chosen = CANDIDATES[chosen_index(scores)]
    choice = {
        "min_lesion_peak": chosen,
        "judged_on": [str(v) for v in volumes],
        "weights": [str(c) for c in checkpoints],
        "cuts": [
            {
                "min_lesion_peak": cut,
                "lesion_f1": score,
                "true_positives": sum(c["true_positives"] for c in cases),
                "false_positives": sum(c["false_positives"] for c in cases),
                "ref_lesions": sum(c["ref_lesions"] for c in cases),
            }
            for cut, score, cases in zip(CANDIDATES, scores, per_cut)
        ],
    }
    write_json(choice, out)
    return choice


def read_lesion_peak(path: Path) -> float:
    """The cut a choice file (`choose_lesion_peak`'s) holds."""
    return float(json.loads(Path(path).read_text())["min_lesion_peak"])
