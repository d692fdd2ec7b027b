"""Trained models checked on new phantoms: of another design than the training set's (`synthetic.DESIGNS`: SHIFTED,
other liver and lesion contrasts, lumpier outlines, coarser texture and more noise; a scan without contrast; a
liver-centred reconstruction of thin slices that cuts the body wall; ascites and bowel full of oral contrast), or of
the same design, drawn from another seed, for a larger sample than a run's test split; or of randomised designs, one
per case, drawn from the config's ranges (`data.synthetic.randomised.ranges`) with another seed than training's: a
stress test over every contrast, field of view and resolution those ranges allow. Every case is new to every model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from liverseg.data.randomised import RandomisedRanges, randomised_styles
from liverseg.data.slices import save_slices, slice_case
from liverseg.data.synthetic import DESIGNS, generate_dataset
from liverseg.evaluation.evaluate import evaluate_case
from liverseg.inference.postprocess import PostSettings, postprocess_case
from liverseg.inference.predict import predict_cascade, predict_case
from liverseg.inference.segmenter import described_postprocess
from liverseg.models.checkpoint import training_folders
from liverseg.reporting.summary import read_case_scores, stage_histories, summarise
from liverseg.reporting.tables import write_summary


def check_shifted(
    config: dict,
    models_dir: Path,
    cases: int,
    seed: int,
    out_dir: Path,
    design: str = "shifted",
) -> pd.DataFrame:
    """Predict, close and score `cases` new phantoms of a design of `synthetic.DESIGNS`, or of `randomised` designs
    (one a case, from the config's ranges), with every stage-1 model and cascade of `config`; the summary, also
    written into `out_dir` (summary.csv, .md, metrics.json)."""
    window, size = tuple(config["preprocess"]["window"]), config["preprocess"]["image_size"]
    post_settings = PostSettings.from_config(config["postprocess"])
    stage1 = [name for name, spec in config["models"].items() if "crop" not in spec]
    cascades = config.get("cascades", {})
    raw = out_dir / "raw"
    if design == "randomised":
        ranges = RandomisedRanges.from_dict(config["data"]["synthetic"]["randomised"]["ranges"])
        numbers = generate_dataset(raw, 0, seed, randomised=randomised_styles(cases, seed, ranges))
    else:
        numbers = generate_dataset(raw, cases, seed, DESIGNS[design])
    score_files = []

    def weights(model: str) -> list[Path]:  # one model's, or its folds'
        return [folder / "best.pt" for folder in training_folders(models_dir / model)]

    def mirrored(model: str) -> bool:  # as the workflow's prediction rules
        return config["models"][model].get("flip_tta", False)

    # the steps each entry's run kept (its segmenter's), else the config's
    chosen = {entry: described_postprocess(models_dir / entry) or post_settings for entry in [*stage1, *cascades]}

    def close_and_score(entry: str, case: str, label: Path, pred: Path) -> None:
        post = out_dir / entry / "post" / f"{case}.nii.gz"
        postprocess_case(pred, post, chosen[entry])
        score_files.append(out_dir / entry / "metrics" / f"{case}.json")
        evaluate_case(entry, case, label, pred, post, post_settings, score_files[-1])

    for n in numbers:
        case = f"case_{n:03d}"
        volume, label = raw / f"volume-{n}.nii.gz", raw / f"segmentation-{n}.nii.gz"
        slices = out_dir / "slices" / f"{case}.npz"
        save_slices(slice_case(volume, label, window, size), slices)

        for model in stage1:
            pred = out_dir / model / "pred" / f"{case}.nii.gz"
            predict_case(weights(model), slices, volume, pred, flip_tta=mirrored(model))
            close_and_score(model, case, label, pred)
        for name, cascade in cascades.items():  # after stage 1: the cascades take its closed livers
            pred = out_dir / name / "pred" / f"{case}.nii.gz"
            liver = out_dir / cascade["liver"] / "post" / f"{case}.nii.gz"
            tumour = config["models"][cascade["tumour"]]
            predict_cascade(
                weights(cascade["tumour"]),
                liver,
                volume,
                window,
                pred,
                flip_tta=mirrored(cascade["tumour"]),
                min_lesion_peak=tumour.get("min_lesion_peak"),  # as the cascade rule
            )
            close_and_score(name, case, label, pred)
    histories = {model: stage_histories([models_dir / model]) for model in stage1}
    histories |= {
        name: stage_histories([models_dir / c["liver"], models_dir / c["tumour"]]) for name, c in cascades.items()
    }
    summary = summarise(*read_case_scores(score_files), histories)
    write_summary(summary, out_dir / "summary.csv", out_dir / "summary.md", out_dir / "metrics.json", scored_on="new")
    return summary
