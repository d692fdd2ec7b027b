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


def _number(column: str, fmt: str):
    return lambda row: "-" if pd.isna(row[column]) else fmt.format(row[column])


TABLE_ROWS = [  # (title, cell of one model's summary row)
    ("Liver Dice (per case)", _number("liver_dice", "{:.4f}")),
    ("Liver Jaccard", _number("liver_jaccard", "{:.4f}")),
    ("Tumour Dice", _number("tumour_dice", "{:.4f}")),
    ("Tumour Jaccard", _number("tumour_jaccard", "{:.4f}")),
    ("Validation accuracy (voxels, 3 labels)", _number("accuracy", "{:.2%}")),
    ("Liver Dice before closing", _number("liver_dice_before_post", "{:.4f}")),
    ("Tumour Dice before closing", _number("tumour_dice_before_post", "{:.4f}")),
    ("Training time per epoch", _number("seconds_per_epoch", "{:.1f} s")),
    ("Best epoch / epochs", lambda row: f"{row['best_epoch']} / {row['epochs']}"),
    ("Validation cases (with tumour scored)", lambda row: f"{row['val_cases']} ({row['tumour_cases']})"),
]


def markdown_table(summary: pd.DataFrame) -> str:
    """The study's Table 1 layout: one column per model."""
    rows = summary.to_dict(orient="records")
    out = ["| Metric | " + " | ".join(r["model"] for r in rows) + " |", "|---|" + "---|" * len(rows)]
    out += [f"| {title} | " + " | ".join(cell(r) for r in rows) + " |" for title, cell in TABLE_ROWS]
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
