"""The aggregate rule's step: every scored entry's per-case scores into the summary table (CSV, Markdown, JSON), the
per-case table, the spread over cases and the paired comparisons, the cross-validated means where the models were
trained by folds, each entry's evaluation added to its MLflow runs."""

from __future__ import annotations

import json
from pathlib import Path

from liverseg.atomic import atomic_path
from liverseg.evaluation.postprocess_choice import kept_steps
from liverseg.models.checkpoint import training_folders
from liverseg.reporting.summary import (
    case_statistics,
    cross_validated_means,
    cross_validation,
    inference_costs,
    paired_comparisons,
    read_case_scores,
    stage_histories,
    step_effects,
    summarise,
)
from liverseg.reporting.tables import cross_validation_markdown, statistics_markdown, steps_markdown, write_summary
from liverseg.tracking.runs import log_evaluation


def aggregate(
    entries: dict[str, list[Path]],
    score_files: list[Path],
    step_score_files: list[Path] | None,
    scored_on: str,
    benchmarks: list[Path],
    csv: Path,
    md: Path,
    metrics_json: Path,
    cases_csv: Path,
    statistics_csv: Path,
    comparisons_csv: Path,
    split: Path | None = None,
    choices: dict[str, Path] | None = None,
) -> None:
    """`entries`: each entry's trained stages' folders, in order. Post-processing is judged on `step_score_files`
    (the validation cases: with folds, every fold's own) when the scored cases are test cases, else on the scored
    cases; `benchmarks`, the prediction jobs' benchmark files, give each entry's inference time and memory; `split`,
    the split file, its folds, if any; `choices`, each entry's post-processing choice file, which steps it kept."""
    scores, lesions = read_case_scores(score_files)
    validation = read_case_scores(step_score_files)[0] if step_score_files else scores
    summary = summarise(scores, lesions, {n: stage_histories(dirs) for n, dirs in entries.items()})
    summary = summary.merge(inference_costs(entries, benchmarks), on="model", how="left")
    folds = json.loads(split.read_text()).get("folds") if split else None
    appendix = ""
    if folds:
        per_fold = cross_validation(validation, folds)
        summary = summary.merge(cross_validated_means(per_fold), on="model", how="left")
        appendix = cross_validation_markdown(per_fold) + "\n"
    statistics, comparisons = case_statistics(scores), paired_comparisons(scores)
    for table, path in ((scores, cases_csv), (statistics, statistics_csv), (comparisons, comparisons_csv)):
        with atomic_path(path) as partial:
            table.to_csv(partial, index=False, float_format="%.6g")
    effects = step_effects(validation)
    kept = {(entry, step): keep for entry, path in (choices or {}).items() for step, keep in kept_steps(path).items()}
    if kept:
        effects["kept"] = [kept.get(key) for key in zip(effects["model"], effects["step"])]
    appendix += steps_markdown(effects) + "\n" + statistics_markdown(statistics, comparisons)
    write_summary(summary, csv, md, metrics_json, appendix, scored_on)
    log_evaluation(summary, {name: (_runs(dirs[-1]), len(dirs) == 1) for name, dirs in entries.items()})


def _runs(model_dir: Path) -> list[Path]:
    return [folder / "run.json" for folder in training_folders(model_dir)]
