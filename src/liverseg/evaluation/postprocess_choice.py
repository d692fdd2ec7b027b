"""Post-processing chosen on validation predictions, as nnU-Net chooses its own on its cross-validation: the enabled
steps are tried in their order, each on the labels the kept ones left, and a step is kept unless it lowers the cases'
mean Dice (the mean of the liver's and the tumour's, each over the cases where it is defined). A step that changes
nothing is kept: the config asked for it, and it may guard scans the validation cases do not show (a stray blob of
liver, a tumour outside the liver).

Each case is read once and scored after every subset of the steps (at most 8), so that the cases are never held in
memory together: a LiTS fold's validation scans would not fit."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from liverseg.atomic import write_json
from liverseg.data import nifti
from liverseg.evaluation.evaluate import read_canonical
from liverseg.evaluation.metrics import label_metrics
from liverseg.inference.postprocess import PostSettings, apply_step
from liverseg.labels import REGIONS


def subset_dice(prediction: np.ndarray, reference: np.ndarray, spacing, settings: PostSettings) -> dict:
    """Each target's Dice after every subset of the enabled steps (a frozenset of their names; applied in their
    order), for one case's canonical label maps."""
    scores = {}

    def walk(labels: np.ndarray, kept: tuple[str, ...], remaining: list[str]) -> None:
        if not remaining:
            metrics = label_metrics(labels, reference)
            scores[frozenset(kept)] = {target: metrics[target]["dice"] for target in REGIONS}
            return
        step, rest = remaining[0], remaining[1:]
        walk(labels, kept, rest)
        walk(apply_step(step, labels, spacing, settings), (*kept, step), rest)

    walk(prediction, (), settings.steps())
    return scores


def mean_dice(cases: list[dict[str, float]]) -> float:
    """The mean over the targets (liver, tumour) of each one's mean Dice over the cases where it is defined (NaN
    where neither is)."""
    means = []
    for target in REGIONS:
        defined = [dice[target] for dice in cases if not math.isnan(dice[target])]
        if defined:
            means.append(sum(defined) / len(defined))
    return sum(means) / len(means) if means else math.nan


def choose_steps(case_scores: list[dict], settings: PostSettings) -> tuple[PostSettings, list[dict]]:
    """From the cases' `subset_dice`: the settings with the steps that lowered the mean Dice switched off, and each
    step's mean Dice before and after it."""
    kept, chosen, effects = frozenset(), settings, []
    for step in settings.steps():
        before = mean_dice([scores[kept] for scores in case_scores])
        after = mean_dice([scores[kept | {step}] for scores in case_scores])
        keep = not after < before
        effects.append({"step": step, "dice_before": before, "dice_after": after, "kept": keep})
        if keep:
            kept |= {step}
        else:
            chosen = chosen.without(step)
    return chosen, effects


def choose_postprocess(labels: list[Path], predictions: list[Path], settings: PostSettings, out: Path) -> dict:
    """`choose_steps` on the cases' label maps (reference and prediction pairs, in the scans' geometry), written to
    `out` as JSON: the chosen settings, the predictions judged, and each step's mean Dice before and after it.
    Without cases, every enabled step is kept unjudged."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} reference label maps for {len(predictions)} predictions")
    case_scores = []
    for label, prediction in zip(labels, predictions):
        reference = nifti.load(label)
        ref = nifti.to_canonical(reference, dtype=np.uint8)
        case_scores.append(
            subset_dice(read_canonical(prediction, reference), ref, nifti.canonical_spacing(reference), settings)
        )
    if case_scores:
        chosen, effects = choose_steps(case_scores, settings)
    else:
        chosen, effects = settings, [{"step": step, "kept": True} for step in settings.steps()]
    choice = {"settings": dataclasses.asdict(chosen), "judged_on": [str(p) for p in predictions], "steps": effects}
    write_json(choice, out)
    return choice


def read_choice(path: Path) -> PostSettings:
    """The settings a choice file (`choose_postprocess`'s) holds."""
    return PostSettings(**json.loads(Path(path).read_text())["settings"])


def kept_steps(path: Path) -> dict[str, bool]:
    """Whether a choice file kept each step it tried."""
    return {effect["step"]: effect["kept"] for effect in json.loads(Path(path).read_text())["steps"]}
