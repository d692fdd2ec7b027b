"""The numbers of the study's comparison table, from per-case scores and training histories: one row per scored
entry (a stage-1 model, or a cascade of a stage-1 model and a tumour stage, whose training histories are listed in
order), the spread over cases, paired differences between entries and the effect of each post-processing step.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd

from liverseg.evaluation.lesions import detection_scores
from liverseg.evaluation.stats import describe, paired_comparison
from liverseg.evaluation.surface import NAMES as SURFACE
from liverseg.models.checkpoint import training_folders

COLUMNS = {  # summary column -> (stage, target, metric)
    **{
        f"{target}_{metric}": ("post", target, metric)
        for target in ("liver", "tumour")
        for metric in ("dice", "jaccard", "voe", "rvd", *SURFACE)
    },
    "accuracy": ("post", "labels", "accuracy"),
    "tumour_burden_error": ("post", "labels", "tumour_burden_error"),
    "liver_dice_before_post": ("pred", "liver", "dice"),
    "tumour_dice_before_post": ("pred", "tumour", "dice"),
}


def read_case_scores(files) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """One row per entry, case, stage and target, with each metric in a column; and per entry, the post-processed
    lesion matches of each case."""
    rows, lesions = [], {}
    for path in files:
        result = json.loads(Path(path).read_text())
        for order, stage in enumerate(result["steps"]):
            for target, scores in result[stage].items():
                if target != "lesions":
                    rows.append(
                        {
                            "model": result["model"],
                            "case": result["case"],
                            "stage": stage,
                            "order": order,
                            "target": target,
                            **scores,
                        }
                    )
        lesions.setdefault(result["model"], []).append(result["post"]["lesions"])
    return pd.DataFrame(rows), lesions


def stage_histories(stage_dirs: list[Path]) -> list[list[Path]]:
    """Per trained stage of an entry (its model folders, in order), the training histories of its folds (one without
    cross-validation); none where they are not at hand."""
    return [[path for path in (f / "history.csv" for f in training_folders(d)) if path.is_file()] for d in stage_dirs]


def summarise(
    scores: pd.DataFrame, lesions: dict[str, list[dict]], histories: dict[str, list[list[Path]]]
) -> pd.DataFrame:
    """Per entry: means over validation cases (undefined scores left out), lesion detection over all cases, and the
    training time per epoch of each trained stage (the mean over its folds; the training minutes are their sum)."""
    rows = []
    for model, history_paths in histories.items():
        mine = scores[scores["model"] == model]
        row = {"model": model, "scored_cases": mine["case"].nunique()}
        for column, (stage, target, metric) in COLUMNS.items():
            row[column] = mine.loc[(mine["stage"] == stage) & (mine["target"] == target), metric].astype(float).mean()
        for target in ("liver", "tumour"):
            post = mine[(mine["stage"] == "post") & (mine["target"] == target)]
            # Dice global: all cases' voxels pooled, as LiTS ranks it
            pooled = post["pred_voxels"].sum() + post["ref_voxels"].sum()
            row[f"{target}_dice_global"] = 2 * post["intersection"].sum() / pooled if pooled else float("nan")
            row[f"{target}_distance_cases"] = int(post["assd"].notna().sum())
        tumour = mine[(mine["stage"] == "post") & (mine["target"] == "tumour")]
        row["tumour_cases"] = int(tumour["dice"].notna().sum())
        holding = tumour[tumour["ref_voxels"] > 0]
        row["tumour_dice_cases_with_tumour"] = holding["dice"].astype(float).mean()
        row["cases_with_tumour"] = len(holding)
        row.update(detection_scores(lesions[model]))
        stages = [[pd.read_csv(path) for path in folds] for folds in history_paths]  # none where not at hand
        seconds = [pd.concat(f)["epoch_seconds"].mean() if f else float("nan") for f in stages] + [float("nan")] * 2
        row["seconds_per_epoch"], row["tumour_stage_seconds_per_epoch"] = seconds[:2]
        trained = [h for folds in stages for h in folds]
        row["training_minutes"] = (
            sum((h["epoch_seconds"] + h["val_seconds"]).sum() for h in trained) / 60 if trained else float("nan")
        )
        row["epochs"] = (
            " + ".join(
                ", ".join(f"{int(h.loc[h['val_dice'].fillna(-1).idxmax(), 'epoch'])}/{len(h)}" for h in folds)
                for folds in stages
                if folds
            )
            or "-"
        )
        rows.append(row)
    return pd.DataFrame(rows)


def inference_costs(entries: dict[str, list[Path]], benchmarks) -> pd.DataFrame:
    """Per entry, from Snakemake's benchmark files `benchmarks/<rule>/<name>/<case>.tsv` of its prediction jobs (its
    stage-1 model's `predict`, and a cascade's own `cascade` job): the mean seconds per case of those whole jobs
    (start-up and model loading included) and the largest peak resident memory of any of them, in MB."""
    records = [
        {"rule": p.parts[-3], "name": p.parts[-2], "case": p.stem, **pd.read_csv(p, sep="\t").iloc[0]}
        for p in map(Path, benchmarks)
    ]
    jobs = pd.DataFrame(records, columns=["rule", "name", "case", "s", "max_rss"])
    rows = []
    for entry, dirs in entries.items():
        stage1 = (jobs["rule"] == "predict") & (jobs["name"] == Path(dirs[0]).name)
        mine = jobs[stage1 | ((jobs["rule"] == "cascade") & (jobs["name"] == entry))]
        rows.append(
            {
                "model": entry,
                "inference_seconds_per_case": mine.groupby("case")["s"].sum().mean(),
                "inference_peak_rss_mb": mine["max_rss"].max(),
            }
        )
    return pd.DataFrame(rows, columns=["model", "inference_seconds_per_case", "inference_peak_rss_mb"])


TARGET_NAMES = ("liver", "tumour")


COMPARED = ("dice", "hd95")  # the metrics compared between entries
STAT_METRICS = ("dice", "jaccard", "voe", "rvd", "assd", "hd95", "mssd")


def _post(scores: pd.DataFrame) -> pd.DataFrame:
    return scores[(scores["stage"] == "post") & scores["target"].isin(TARGET_NAMES)]


def case_statistics(scores: pd.DataFrame) -> pd.DataFrame:
    """Per entry, target and metric after post-processing: n, mean, sd, median and 95% bootstrap interval."""
    rows = [
        {"model": model, "target": target, "metric": metric, **describe(group[metric])}
        for (model, target), group in _post(scores).groupby(["model", "target"], sort=False)
        for metric in STAT_METRICS
    ]
    return pd.DataFrame(rows)


def paired_comparisons(scores: pd.DataFrame) -> pd.DataFrame:
    """Every pair of entries, on the cases both scored: per target, Dice and HD95 of the second minus the first."""
    post = _post(scores)
    rows = []
    for first, second in itertools.combinations(list(dict.fromkeys(post["model"])), 2):
        for target in TARGET_NAMES:
            mine = post[post["target"] == target]
            a = mine[mine["model"] == first].set_index("case")
            b = mine[mine["model"] == second].set_index("case")
            a, b = a.align(b, join="inner", axis=0)
            for metric in COMPARED:
                rows.append(
                    {
                        "first": first,
                        "second": second,
                        "target": target,
                        "metric": metric,
                        **paired_comparison(a[metric], b[metric]),
                    }
                )
    return pd.DataFrame(rows)


def step_effects(scores: pd.DataFrame) -> pd.DataFrame:
    """Per entry, target and post-processing step: mean Dice and HD95 before and after it, and whether it helped."""
    rows = []
    for (model, target), group in scores[scores["target"].isin(TARGET_NAMES)].groupby(["model", "target"], sort=False):
        means = group.groupby(["order", "stage"])[["dice", "hd95"]].agg(lambda v: v.astype(float).mean()).reset_index()
        steps = means[means["stage"] != "post"].sort_values("order").to_dict(orient="records")
        for before, after in zip(steps, steps[1:]):
            change = after["dice"] - before["dice"]
            verdict = (
                "-" if pd.isna(change) else "no change" if abs(change) < 1e-4 else "helped" if change > 0 else "hurt"
            )
            rows.append(
                {
                    "model": model,
                    "target": target,
                    "step": after["stage"],
                    "dice_before": before["dice"],
                    "dice_after": after["dice"],
                    "dice_change": change,
                    "hd95_change": after["hd95"] - before["hd95"],
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(
        rows, columns=["model", "target", "step", "dice_before", "dice_after", "dice_change", "hd95_change", "verdict"]
    )


def cross_validation(scores: pd.DataFrame, folds: list[list[str]]) -> pd.DataFrame:
    """Per entry and target, each fold's mean post-processed Dice over its own validation cases (the fold's models'
    out-of-fold predictions; tumour over the cases holding tumour), one row per fold."""
    fold_of = {case: k for k, cases in enumerate(folds) for case in cases}
    post = _post(scores)
    post = post[post["case"].isin(fold_of) & ((post["target"] == "liver") | (post["ref_voxels"] > 0))]
    rows = [
        {
            "model": model,
            "target": target,
            "fold": fold,
            "cases": len(group),
            "dice": group["dice"].astype(float).mean(),
        }
        for (model, target, fold), group in post.groupby(["model", "target", post["case"].map(fold_of)], sort=False)
    ]
    return pd.DataFrame(rows, columns=["model", "target", "fold", "cases", "dice"]).sort_values(
        ["model", "target", "fold"], kind="stable"
    )


def cross_validated_means(folds: pd.DataFrame) -> pd.DataFrame:
    """Per entry, the mean over folds of each fold's liver Dice and tumour Dice (cases holding tumour)."""
    means = folds.groupby(["model", "target"])["dice"].mean().unstack("target")
    names = {"liver": "cv_liver_dice", "tumour": "cv_tumour_dice_cases_with_tumour"}
    return means.rename(columns=names).reindex(columns=list(names.values())).reset_index()
