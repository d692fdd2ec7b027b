"""The study's comparison table, from per-case scores and training histories."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from liverseg.atomic import atomic_path, write_json

COLUMNS = {  # summary column -> (stage, target, metric)
    "liver_dice": ("post", "liver", "dice"),
    "liver_jaccard": ("post", "liver", "jaccard"),
    "tumour_dice": ("post", "tumour", "dice"),
    "tumour_jaccard": ("post", "tumour", "jaccard"),
    "accuracy": ("post", "labels", "accuracy"),
    "liver_dice_before_post": ("pred", "liver", "dice"),
    "tumour_dice_before_post": ("pred", "tumour", "dice"),
}


def read_case_scores(files) -> pd.DataFrame:
    """One row per model, case, stage and target, with each metric in a column."""
    rows = []
    for path in files:
        result = json.loads(Path(path).read_text())
        for stage in ("pred", "post"):
            for target, scores in result[stage].items():
                rows.append({"model": result["model"], "case": result["case"], "stage": stage, "target": target, **scores})
    return pd.DataFrame(rows)


def summarise(scores: pd.DataFrame, histories: dict[str, Path]) -> pd.DataFrame:
    """Per model: means over validation cases (undefined scores left out) and the mean training time per epoch."""
    rows = []
    for model, history_path in histories.items():
        mine = scores[scores["model"] == model]
        row = {"model": model, "val_cases": mine["case"].nunique()}
        for column, (stage, target, metric) in COLUMNS.items():
            row[column] = mine.loc[(mine["stage"] == stage) & (mine["target"] == target), metric].astype(float).mean()
        tumour = mine[(mine["stage"] == "post") & (mine["target"] == "tumour")]
        row["tumour_cases"] = int(tumour["dice"].notna().sum())
        history = pd.read_csv(history_path)
        row["seconds_per_epoch"] = history["epoch_seconds"].mean()
        row["epochs"] = len(history)
        row["best_epoch"] = int(history.loc[history["val_dice"].fillna(-1).idxmax(), "epoch"])
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(summary: pd.DataFrame) -> str:
    """The study's Table 1 layout: one column per model."""
    lines = [
        ("Liver Dice (per case)", "liver_dice", "{:.4f}"),
        ("Liver Jaccard", "liver_jaccard", "{:.4f}"),
        ("Tumour Dice", "tumour_dice", "{:.4f}"),
        ("Tumour Jaccard", "tumour_jaccard", "{:.4f}"),
        ("Validation accuracy (voxels, 3 labels)", "accuracy", "{:.2%}"),
        ("Liver Dice before closing", "liver_dice_before_post", "{:.4f}"),
        ("Tumour Dice before closing", "tumour_dice_before_post", "{:.4f}"),
        ("Training time per epoch", "seconds_per_epoch", "{:.1f} s"),
        ("Best epoch / epochs", None, None),
        ("Validation cases (with tumour scored)", None, None),
    ]
    models = list(summary["model"])
    out = ["| Metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for title, column, fmt in lines:
        if title.startswith("Best epoch"):
            cells = [f"{r.best_epoch} / {r.epochs}" for r in summary.itertuples()]
        elif title.startswith("Validation cases"):
            cells = [f"{r.val_cases} ({r.tumour_cases})" for r in summary.itertuples()]
        else:
            cells = ["-" if pd.isna(v) else fmt.format(v) for v in summary[column]]
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    note = (
        "Means over validation cases, scored in each scan's own geometry after morphological closing. Liver is "
        "label >= 1, tumour is label 2. A case with no tumour in reference or prediction has no tumour score and "
        "is left out of the tumour means (the count in brackets)."
    )
    return "\n".join(out) + f"\n\n{note}\n"


def write_summary(summary: pd.DataFrame, csv: Path, md: Path, metrics_json: Path) -> None:
    with atomic_path(csv) as partial:
        summary.to_csv(partial, index=False, float_format="%.6g")
    with atomic_path(md) as partial:
        partial.write_text(markdown_table(summary))
    records = summary.set_index("model").astype(object).where(summary.set_index("model").notna(), None)
    write_json(records.to_dict(orient="index"), metrics_json)


def log_to_runs(summary: pd.DataFrame, run_files: dict[str, Path]) -> None:
    """Add each model's final evaluation to its training run in MLflow."""
    from liverseg import tracking
    from mlflow.tracking import MlflowClient

    for row in summary.to_dict(orient="records"):
        run = json.loads(Path(run_files[row["model"]]).read_text())
        client = MlflowClient(tracking_uri=run["tracking_uri"])
        metrics = {f"eval_{k}": v for k, v in row.items() if k in COLUMNS or k in ("val_cases", "tumour_cases")}
        tracking.log_metrics(client, run["run_id"], metrics)
