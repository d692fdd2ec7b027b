"""The summary as Markdown: the study's Table 1 layout (one column per entry), post-processing step by step, the
spread over cases and paired differences, the ablation table; every table through `table_lines`."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from liverseg.atomic import atomic_path, write_json
from liverseg.devices import machine_description
from liverseg.evaluation.lesions import SIZE_BINS
from liverseg.evaluation.stats import BOOTSTRAP_SAMPLES, MIN_WILCOXON_CASES
from liverseg.reporting.summary import COMPARED


def table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: its header, the separator and a line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


SURFACE_ORDER = ("assd", "hd95", "mssd")


def _number(column: str, fmt: str):
    """A column's number, or "-" where it is undefined or was not measured (a summary without the column)."""
    return lambda row: "-" if pd.isna(row.get(column, float("nan"))) else fmt.format(row[column])


def _cells(columns: list[str], *fmts: str):
    """Several numbers in one cell, 'a / b / c'; the last format serves the columns without their own."""
    return lambda row: " / ".join(_number(c, fmts[min(i, len(fmts) - 1)])(row) for i, c in enumerate(columns))


TABLE_ROWS = [  # (title, cell of one model's summary row)
    ("Liver Dice (per case)", _number("liver_dice", "{:.4f}")),
    ("Liver Jaccard", _number("liver_jaccard", "{:.4f}")),
    ("Tumour Dice", _number("tumour_dice", "{:.4f}")),
    ("Tumour Dice, cases holding tumour", _number("tumour_dice_cases_with_tumour", "{:.4f}")),
    ("Tumour Jaccard", _number("tumour_jaccard", "{:.4f}")),
    ("Liver / tumour Dice global", _cells(["liver_dice_global", "tumour_dice_global"], "{:.4f}")),
    ("Liver VOE / RVD", _cells(["liver_voe", "liver_rvd"], "{:.4f}", "{:+.4f}")),
    ("Tumour VOE / RVD", _cells(["tumour_voe", "tumour_rvd"], "{:.4f}", "{:+.4f}")),
    ("Liver ASSD / HD95 / MSSD (mm)", _cells([f"liver_{m}" for m in SURFACE_ORDER], "{:.1f}")),
    ("Tumour ASSD / HD95 / MSSD (mm)", _cells([f"tumour_{m}" for m in SURFACE_ORDER], "{:.1f}")),
    (
        "Cases with surface distances (liver / tumour)",
        lambda row: f"{row['liver_distance_cases']} / {row['tumour_distance_cases']}",
    ),
    ("Tumour burden error (tumour / liver volume, absolute)", _number("tumour_burden_error", "{:.4f}")),
    ("Accuracy (voxels, 3 labels)", _number("accuracy", "{:.2%}")),
    ("Liver Dice before post-processing", _number("liver_dice_before_post", "{:.4f}")),
    ("Tumour Dice before post-processing", _number("tumour_dice_before_post", "{:.4f}")),
    ("Lesion recall, 10 mm and more", _number("lesion_recall_ge10mm", "{:.2f}")),
    ("Lesion recall (all sizes)", _number("lesion_recall", "{:.2f}")),
    ("Lesion precision", _number("lesion_precision", "{:.2f}")),
    ("Lesion F1", _number("lesion_f1", "{:.2f}")),
    ("Lesion recall < 10 / 10-20 / > 20 mm", _cells([f"lesion_recall_{b}" for b in SIZE_BINS], "{:.2f}")),
    ("Training time per epoch", _number("seconds_per_epoch", "{:.1f} s")),
    ("Tumour stage time per epoch", _number("tumour_stage_seconds_per_epoch", "{:.1f} s")),
    ("Training time in all", _number("training_minutes", "{:.1f} min")),
    ("Best epoch / epochs (each stage)", lambda row: row["epochs"]),
    ("Inference per case (whole jobs)", _number("inference_seconds_per_case", "{:.1f} s")),
    ("Peak memory of inference", _number("inference_peak_rss_mb", "{:.0f} MB")),
    (
        "Scored cases (with tumour scored; holding tumour)",
        lambda row: f"{row['scored_cases']} ({row['tumour_cases']}; {row['cases_with_tumour']})",
    ),
    (
        "Reference lesions < 10 / 10-20 / > 20 mm",
        lambda row: " / ".join(str(row[f"ref_lesions_{b}"]) for b in SIZE_BINS),
    ),
]


SCORED_ON = {
    "test": "untouched test cases (never trained on, never used to pick an epoch)",
    "val": "validation cases, which also picked each model's best epoch and drove its learning rate (optimistic, "
    "as in the study)",
    "new": "new phantoms drawn for this check (never trained on, never used to pick an epoch)",
    "folder": "the labelled cases of a folder given to `liverseg evaluate`",
}


def markdown_table(summary: pd.DataFrame, scored_on: str = "val") -> str:
    """The study's Table 1 layout: one column per model."""
    rows = summary.to_dict(orient="records")
    out = table_lines(
        ["Metric", *(r["model"] for r in rows)], [[title, *map(cell, rows)] for title, cell in TABLE_ROWS]
    )
    note = (
        f"Means over {SCORED_ON[scored_on]}, scored in each scan's own geometry after post-processing (its steps below). Liver is "
        "label >= 1, tumour is label 2. A case with no tumour in reference or prediction has no tumour score and "
        "is left out of the tumour means (the count in brackets); the row 'cases holding tumour' averages over cases "
        "whose reference has tumour. Dice global pools the voxels of all cases. VOE is 1 - Jaccard, RVD is "
        "(|prediction| - |reference|) / |reference|. Surface distances are in mm between the surface voxels of "
        "prediction and reference (ASSD: mean over both surfaces; HD95: larger directed 95th percentile; MSSD: "
        "largest distance), over the cases where both masks are non-empty (the count given). Lesions are 3D connected components of label 2; a reference lesion is found when "
        "a predicted lesion overlaps it with IoU > 0.5; precision, recall and F1 count lesions over all cases; sizes "
        "are the diameter of the sphere of the lesion's volume. A cascade is a stage-1 model whose liver feeds a "
        "tumour stage; its times are those of both."
    )
    return "\n".join(out) + f"\n\n{note}\n"


def steps_markdown(effects: pd.DataFrame) -> str:
    numbers = (
        ("dice_before", "{:.4f}"),
        ("dice_after", "{:.4f}"),
        ("dice_change", "{:+.4f}"),
        ("hd95_change", "{:+.1f}"),
    )
    kept = {True: "yes", False: "no", None: "-"}
    rows = [
        [row["model"], row["target"], row["step"], *(_number(k, f)(row) for k, f in numbers), row["verdict"]]
        + ([kept[row["kept"]]] if "kept" in effects else [])
        for row in effects.to_dict(orient="records")
    ]
    header = ["Entry", "Target", "Step", "Dice before", "Dice after", "Dice change", "HD95 change (mm)", "Verdict"]
    header += ["Kept"] if "kept" in effects else []
    lines = ["## Post-processing, step by step (each applied after the ones above it)", "", *table_lines(header, rows)]
    lines += [
        "",
        "A step helped when it raised the mean Dice over the validation cases, hurt when it lowered it. Kept: whether "
        "the entry applies it; with `postprocess.choose`, only where it did not lower the mean of liver and tumour "
        "Dice on those cases, tried in order on what the kept steps left (as nnU-Net chooses on its cross-validation; "
        "`results/<entry>/postprocess.json`), else wherever the config enables it.",
    ]
    return "\n".join(lines) + "\n"


def cross_validation_markdown(folds: pd.DataFrame) -> str:
    """Each fold's Dice on its own validation patients and their mean, per entry and target."""
    count = int(folds["fold"].max()) + 1
    rows = []
    for (model, target), group in folds.groupby(["model", "target"], sort=False):
        by_fold = group.set_index("fold")
        cells = [
            f"{by_fold.loc[k, 'dice']:.4f} ({by_fold.loc[k, 'cases']})" if k in by_fold.index else "-"
            for k in range(count)
        ]
        rows.append([model, target, *cells, f"{group['dice'].mean():.4f} ± {group['dice'].std(ddof=0):.4f}"])
    header = ["Entry", "Target", *(f"Fold {k} (cases)" for k in range(count)), "Mean over folds ± sd"]
    lines = [f"## Cross-validation: {count} folds by patient", "", *table_lines(header, rows)]
    lines += [
        "",
        "Each fold's models segment the fold's own validation patients, which they never trained on (out-of-fold "
        "predictions; the fold picked its epoch on them), after post-processing; tumour Dice over the cases holding "
        "tumour. The table above scores the ensemble of all folds on the test cases.",
    ]
    return "\n".join(lines) + "\n"


def _interval(row, fmt: str) -> str:
    if pd.isna(row["ci_low"]):
        return "-"
    return f"[{fmt.format(row['ci_low'])}, {fmt.format(row['ci_high'])}]"


def _spread_row(row: dict) -> list[str]:
    fmt = "{:.4f}" if row["metric"] == "dice" else "{:.1f}"
    sd = "-" if pd.isna(row["sd"]) else fmt.format(row["sd"])
    spread = "-" if pd.isna(row["mean"]) else f"{fmt.format(row['mean'])} ± {sd}"
    median = "-" if pd.isna(row["median"]) else fmt.format(row["median"])
    metric = row["metric"] + (" (mm)" if row["metric"] != "dice" else "")
    return [row["model"], row["target"], metric, str(row["n"]), spread, median, _interval(row, fmt)]


def _comparison_row(row: dict) -> list[str]:
    fmt = "{:+.4f}" if row["metric"] == "dice" else "{:+.1f}"
    difference = "-" if pd.isna(row["difference"]) else fmt.format(row["difference"])
    p = "-" if pd.isna(row["wilcoxon_p"]) else f"{row['wilcoxon_p']:.3g}"
    pair = f"{row['second']} - {row['first']}"
    return [pair, row["target"], row["metric"], str(row["n"]), difference, _interval(row, fmt), p]


def statistics_markdown(statistics: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """The spread of Dice and HD95 per entry and target, and the paired differences between entries."""
    spread = statistics[statistics["metric"].isin(COMPARED)].to_dict(orient="records")
    lines = [
        "## Spread over cases",
        "",
        *table_lines(
            ["Entry", "Target", "Metric", "n", "mean ± sd", "median", "95% CI of the mean"],
            list(map(_spread_row, spread)),
        ),
        "",
        "## Paired differences (second minus first, on the cases both scored)",
        "",
        *table_lines(
            ["Second - first", "Target", "Metric", "n", "difference", "95% CI", "Wilcoxon p"],
            list(map(_comparison_row, comparisons.to_dict(orient="records"))),
        ),
        "",
        f"Intervals: percentile bootstrap of the mean over cases ({BOOTSTRAP_SAMPLES} resamples, seeded). "
        f"Wilcoxon signed-rank p-values need at least {MIN_WILCOXON_CASES} paired cases.",
    ]
    return "\n".join(lines) + "\n"


def write_summary(
    summary: pd.DataFrame, csv: Path, md: Path, metrics_json: Path, appendix: str = "", scored_on: str = "val"
) -> None:
    with atomic_path(csv) as partial:
        summary.to_csv(partial, index=False, float_format="%.6g")
    with atomic_path(md) as partial:
        partial.write_text(markdown_table(summary, scored_on) + (f"\n{appendix}" if appendix else ""))
    records = summary.set_index("model").astype(object).where(summary.set_index("model").notna(), None)
    write_json(records.to_dict(orient="index"), metrics_json)


ABLATION_COLUMNS = [  # (title, cell of one entry's summary row)
    ("Tumour Dice (cases with tumour)", _number("tumour_dice_cases_with_tumour", "{:.3f}")),
    ("Lesion recall >= 10 mm", _number("lesion_recall_ge10mm", "{:.3f}")),
    (
        "Lesion recall < 10 / 10-20 / > 20 mm",
        _cells(["lesion_recall_lt10mm", "lesion_recall_10to20mm", "lesion_recall_gt20mm"], "{:.2f}"),
    ),
    ("Lesion recall (all)", _number("lesion_recall", "{:.3f}")),
    ("Lesion precision", _number("lesion_precision", "{:.3f}")),
    ("Liver Dice", _number("liver_dice", "{:.3f}")),
    ("Training (min)", _number("training_minutes", "{:.1f}")),
]
ABLATION_CHANGES = ("tumour_dice_cases_with_tumour", "lesion_recall_ge10mm")


def ablation_baselines(models: dict, cascades: dict) -> dict[str, str | None]:
    """What each scored entry of an ablation config is compared with: a stage-1 model with the stage-1 model listed
    before it (each adds one lever); a cascade with the first cascade listed before it on the same liver (another
    tumour stage in its place), or else with that liver alone (the tumour stage added)."""
    stage1 = [name for name, spec in models.items() if "crop" not in spec]
    baselines = dict(zip(stage1, [None, *stage1[:-1]]))
    order = list(cascades)
    for name, cascade in cascades.items():
        same_liver = [other for other in order[: order.index(name)] if cascades[other]["liver"] == cascade["liver"]]
        baselines[name] = same_liver[0] if same_liver else cascade["liver"]
    return baselines


def ablation_markdown(summary: pd.DataFrame, baselines: dict, command: str, machine: str, date: str) -> str:
    """One row per entry in the order run, each with its change in tumour Dice and lesion recall from the entry it is
    compared with (`ablation_baselines`)."""
    lines = [
        "# Ablation: the tumour levers, one at a time",
        "",
        f"Run on {date}, {machine}, with `{command}`. Each stage-1 model adds one lever to the one before it, and each "
        "cascade puts a tumour stage on a stage-1 liver (against that liver alone) or another tumour stage in an "
        "earlier cascade's place (against that cascade): the column 'Against' names the row each change is taken "
        "from. All on the same cases, split, seed and augmentation; scores are per case on the validation cases in "
        "the scans' own geometry, after post-processing, as in `results/summary.md`.",
        "",
    ]
    rows_by_entry = {row["model"]: row for row in summary.to_dict(orient="records")}
    rows = []
    for entry, row in rows_by_entry.items():
        base = rows_by_entry.get(baselines.get(entry))
        changes = [
            "" if base is None else _number("delta", "{:+.3f}")({"delta": row[c] - base[c]}) for c in ABLATION_CHANGES
        ]
        cells = [cell(row) for _, cell in ABLATION_COLUMNS]
        rows.append([entry, *cells, baselines.get(entry) or "", *changes])
    header = ["Entry", *(title for title, _ in ABLATION_COLUMNS), "Against", "Change in tumour Dice"]
    header += ["Change in recall >= 10 mm"]
    return "\n".join(lines + table_lines(header, rows)) + "\n"


def write_ablation(summary_csv: Path, config: dict, command: str, out: Path) -> str:
    """`docs/ablation.md` from an ablation run's summary and its config, naming this machine and today's date."""
    baselines = ablation_baselines(config["models"], config.get("cascades", {}))
    summary = pd.read_csv(summary_csv)
    text = ablation_markdown(summary, baselines, command, machine_description(), time.strftime("%Y-%m-%d"))
    with atomic_path(out) as partial:
        partial.write_text(text)
    return text
