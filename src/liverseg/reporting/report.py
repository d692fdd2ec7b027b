"""The study's comparison table, from per-case scores and training histories.

A row (column of the table) is a scored entry: a stage-1 model, or a cascade of a stage-1 model and a tumour stage,
whose training histories are listed in order.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd

from liverseg.atomic import atomic_path, write_json
from liverseg.evaluation.lesions import SIZE_BINS, detection_scores
from liverseg.evaluation.stats import BOOTSTRAP_SAMPLES, MIN_WILCOXON_CASES, describe, paired_comparison
from liverseg.evaluation.surface import NAMES as SURFACE

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


def summarise(scores: pd.DataFrame, lesions: dict[str, list[dict]], histories: dict[str, list[Path]]) -> pd.DataFrame:
    """Per entry: means over validation cases (undefined scores left out), lesion detection over all cases, and the
    training time per epoch of each trained stage."""
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
        stages = [pd.read_csv(path) for path in history_paths]  # none for a model whose histories are not at hand
        row["seconds_per_epoch"] = stages[0]["epoch_seconds"].mean() if stages else float("nan")
        row["tumour_stage_seconds_per_epoch"] = stages[1]["epoch_seconds"].mean() if len(stages) > 1 else float("nan")
        row["training_minutes"] = (
            sum((h["epoch_seconds"] + h["val_seconds"]).sum() for h in stages) / 60 if stages else float("nan")
        )
        row["epochs"] = (
            " + ".join(f"{int(h.loc[h['val_dice'].fillna(-1).idxmax(), 'epoch'])}/{len(h)}" for h in stages) or "-"
        )
        rows.append(row)
    return pd.DataFrame(rows)


SURFACE_ORDER = ("assd", "hd95", "mssd")


def _number(column: str, fmt: str):
    return lambda row: "-" if pd.isna(row[column]) else fmt.format(row[column])


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
    out = ["| Metric | " + " | ".join(r["model"] for r in rows) + " |", "|---|" + "---|" * len(rows)]
    out += [f"| {title} | " + " | ".join(cell(r) for r in rows) + " |" for title, cell in TABLE_ROWS]
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


TARGET_NAMES = ("liver", "tumour")
STAT_METRICS = ("dice", "jaccard", "voe", "rvd", "assd", "hd95", "mssd")
COMPARED = ("dice", "hd95")


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


def steps_markdown(effects: pd.DataFrame) -> str:
    lines = [
        "## Post-processing, step by step (each applied after the ones above it)",
        "",
        "| Entry | Target | Step | Dice before | Dice after | Dice change | HD95 change (mm) | Verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in effects.to_dict(orient="records"):
        cells = [
            _number(k, f)(row)
            for k, f in (
                ("dice_before", "{:.4f}"),
                ("dice_after", "{:.4f}"),
                ("dice_change", "{:+.4f}"),
                ("hd95_change", "{:+.1f}"),
            )
        ]
        lines.append(
            f"| {row['model']} | {row['target']} | {row['step']} | " + " | ".join(cells) + f" | {row['verdict']} |"
        )
    lines += [
        "",
        "A step helped when it raised the mean Dice over the validation cases, hurt when it lowered it "
        "(nnU-Net keeps a step only where it helps).",
    ]
    return "\n".join(lines) + "\n"


def _interval(row, fmt: str) -> str:
    if pd.isna(row["ci_low"]):
        return "-"
    return f"[{fmt.format(row['ci_low'])}, {fmt.format(row['ci_high'])}]"


def statistics_markdown(statistics: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """The spread of Dice and HD95 per entry and target, and the paired differences between entries."""
    lines = [
        "## Spread over cases",
        "",
        "| Entry | Target | Metric | n | mean ± sd | median | 95% CI of the mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in statistics[statistics["metric"].isin(COMPARED)].to_dict(orient="records"):
        fmt = "{:.4f}" if row["metric"] == "dice" else "{:.1f}"
        spread = (
            "-"
            if pd.isna(row["mean"])
            else f"{fmt.format(row['mean'])} ± " + ("-" if pd.isna(row["sd"]) else fmt.format(row["sd"]))
        )
        median = "-" if pd.isna(row["median"]) else fmt.format(row["median"])
        unit = " (mm)" if row["metric"] != "dice" else ""
        lines.append(
            f"| {row['model']} | {row['target']} | {row['metric']}{unit} | {row['n']} | {spread} | {median} | {_interval(row, fmt)} |"
        )
    lines += [
        "",
        "## Paired differences (second minus first, on the cases both scored)",
        "",
        "| Second - first | Target | Metric | n | difference | 95% CI | Wilcoxon p |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in comparisons.to_dict(orient="records"):
        fmt = "{:+.4f}" if row["metric"] == "dice" else "{:+.1f}"
        difference = "-" if pd.isna(row["difference"]) else fmt.format(row["difference"])
        p = "-" if pd.isna(row["wilcoxon_p"]) else f"{row['wilcoxon_p']:.3g}"
        lines.append(
            f"| {row['second']} - {row['first']} | {row['target']} | {row['metric']} | {row['n']} | {difference} | {_interval(row, fmt)} | {p} |"
        )
    lines += [
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


def log_to_runs(summary: pd.DataFrame, run_files: dict[str, Path]) -> None:
    """Add each entry's final evaluation to the MLflow run of its last trained stage (prefixed by the entry's name
    when that run belongs to another model, as for a cascade's tumour stage)."""
    from mlflow.tracking import MlflowClient

    from liverseg.tracking import runs

    for row in summary.to_dict(orient="records"):
        run = json.loads(Path(run_files[row["model"]]).read_text())
        client = MlflowClient(tracking_uri=run["tracking_uri"])
        prefix = "eval_" if run["model"] == row["model"] else f"eval_{row['model']}_"
        numbers = {k: v for k, v in row.items() if k not in ("model", "epochs")}
        runs.log_metrics(client, run["run_id"], {prefix + k: v for k, v in numbers.items()})


ABLATION_COLUMNS = {  # summary column -> title
    "tumour_dice_cases_with_tumour": "Tumour Dice (cases with tumour)",
    "lesion_recall_ge10mm": "Lesion recall >= 10 mm",
    "lesion_recall": "Lesion recall (all)",
    "lesion_precision": "Lesion precision",
    "liver_dice": "Liver Dice",
    "training_minutes": "Training (min)",
}


def ablation_markdown(summary: pd.DataFrame, command: str, machine: str, date: str) -> str:
    """One row per entry in the order run, each with its change in tumour Dice and lesion recall from the row before."""
    lines = [
        "# Ablation: the tumour levers, one at a time",
        "",
        f"Run on {date}, {machine}, with `{command}`. Each row adds one lever to the row before it, on the same cases, "
        "split, seed and augmentation; scores are per case on the validation cases in the scans' own geometry, after "
        "closing, as in `results/summary.md`.",
        "",
        "| Entry | " + " | ".join(ABLATION_COLUMNS.values()) + " | Change in tumour Dice | Change in recall >= 10 mm |",
        "|---|" + "---|" * (len(ABLATION_COLUMNS) + 2),
    ]
    previous = None
    for row in summary.to_dict(orient="records"):
        cells = [_number(c, "{:.1f}" if c == "training_minutes" else "{:.3f}")(row) for c in ABLATION_COLUMNS]
        changes = ["", ""]
        if previous is not None:
            changes = [
                _number("delta", "{:+.3f}")({"delta": row[c] - previous[c]})
                for c in ("tumour_dice_cases_with_tumour", "lesion_recall_ge10mm")
            ]
        lines.append(f"| {row['model']} | " + " | ".join(cells + changes) + " |")
        previous = row
    return "\n".join(lines) + "\n"


PAGE_STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1em 2em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
"""
CASE_COLUMNS = {  # per-case page column -> (target, metric), after post-processing
    "liver Dice": ("liver", "dice"),
    "liver ASSD (mm)": ("liver", "assd"),
    "liver HD95 (mm)": ("liver", "hd95"),
    "tumour Dice": ("tumour", "dice"),
    "tumour ASSD (mm)": ("tumour", "assd"),
    "tumour HD95 (mm)": ("tumour", "hd95"),
    "tumour burden error": ("labels", "tumour_burden_error"),
    "accuracy": ("labels", "accuracy"),
}


def html_page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title><style>{PAGE_STYLE}</style>"
        f"</head><body>\n{body}\n</body></html>\n"
    )


def case_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per entry and scored case: the main scores after post-processing (empty where undefined)."""
    post = scores[scores["stage"] == "post"].set_index(["model", "case", "target"])
    table = pd.DataFrame(
        {name: post.xs(target, level="target")[metric] for name, (target, metric) in CASE_COLUMNS.items()}
    )
    return table.reset_index().rename(columns={"model": "entry"})


def write_report_pages(
    summary_md: Path, cases_csv: Path, config: dict, summary_html: Path, cases_html: Path, config_html: Path
) -> None:
    """The summary (markdown), the per-case scores and the run's config (with the schema's defaults filled in) as
    self-contained HTML pages, for `snakemake --report`."""
    import html

    import markdown
    import yaml

    summary = markdown.markdown(Path(summary_md).read_text(), extensions=["tables"])
    with atomic_path(summary_html) as partial:
        partial.write_text(html_page("Summary", f"<h2>Summary of the scored entries</h2>\n{summary}"))
    table = case_table(pd.read_csv(cases_csv)).to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="")
    intro = (
        "<h2>Scores per case</h2><p>After post-processing, in each scan's own geometry; distances in mm. An empty "
        "cell is undefined: tumour scores of a case whose reference and prediction both hold no tumour, "
        "distances where a mask is empty.</p>"
    )
    with atomic_path(cases_html) as partial:
        partial.write_text(html_page("Scores per case", intro + table))
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)
    with atomic_path(config_html) as partial:
        partial.write_text(
            html_page("Configuration", f"<h2>Configuration of this run</h2><pre>{html.escape(text)}</pre>")
        )
