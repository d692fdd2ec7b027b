"""The aggregate rule's step: every scored entry's per-case scores into the summary table (CSV, Markdown, JSON), the
per-case table, the spread over cases and the paired comparisons, each entry's evaluation added to its MLflow run."""

from __future__ import annotations

from pathlib import Path

from liverseg.atomic import atomic_path
from liverseg.reporting.summary import (
    case_statistics,
    inference_costs,
    paired_comparisons,
    read_case_scores,
    step_effects,
    summarise,
)
from liverseg.reporting.tables import statistics_markdown, steps_markdown, write_summary
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
) -> None:
    """`entries`: each entry's trained stages' folders, in order. Post-processing is judged on `step_score_files`
    (the validation cases) when the scored cases are test cases, else on the scored cases; `benchmarks`, the
    prediction jobs' benchmark files, give each entry's inference time and memory."""
    scores, lesions = read_case_scores(score_files)
    validation = read_case_scores(step_score_files)[0] if step_score_files else scores
    summary = summarise(scores, lesions, {n: [d / "history.csv" for d in dirs] for n, dirs in entries.items()})
    summary = summary.merge(inference_costs(entries, benchmarks), on="model", how="left")
    statistics, comparisons = case_statistics(scores), paired_comparisons(scores)
    for table, path in ((scores, cases_csv), (statistics, statistics_csv), (comparisons, comparisons_csv)):
        with atomic_path(path) as partial:
            table.to_csv(partial, index=False, float_format="%.6g")
    appendix = steps_markdown(step_effects(validation)) + "\n" + statistics_markdown(statistics, comparisons)
    write_summary(summary, csv, md, metrics_json, appendix, scored_on)
    log_evaluation(summary, {name: dirs[-1] / "run.json" for name, dirs in entries.items()})
