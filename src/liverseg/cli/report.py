"""The report rules' steps (`workflow/rules/report.smk`): aggregate, overlay, curves, case-dice, fetch-viewer,
report-pages (the viewer rule runs the users' `liverseg view`)."""

from __future__ import annotations

from pathlib import Path

from liverseg.cli.arguments import command, config_section, out, window


def _aggregate(a):
    from liverseg.reporting.aggregate import aggregate

    entries = {name: [Path(d) for d in dirs] for name, *dirs in a.entry}
    aggregate(
        entries,
        a.scores,
        a.step_scores,
        a.scored_on,
        a.benchmarks,
        a.csv,
        a.md,
        a.metrics_json,
        a.cases_csv,
        a.statistics_csv,
        a.comparisons_csv,
        a.split,
        {name: Path(path) for name, path in (choice.split("=", 1) for choice in a.choices)},
    )
    print(a.md.read_text())


def _overlay(a):
    from liverseg.reporting.figures import overlay_case

    predictions = {model: Path(path) for model, path in (item.split("=", 1) for item in a.predictions)}
    overlay_case(a.case, a.volume, a.label, predictions, tuple(a.window), a.out)


def _curves(a):
    from liverseg.reporting.figures import learning_curves

    def name(history: Path) -> str:  # models/<model>/history.csv, or models/<model>/fold_<k>/history.csv
        folder = history.parent
        return f"{folder.parent.name} {folder.name}" if folder.name.startswith("fold_") else folder.name

    learning_curves({name(Path(path)): Path(path) for path in a.histories}, a.out)


def _case_dice(a):
    from liverseg.reporting.figures import case_dice_plot

    case_dice_plot(a.cases, a.out)


def _fetch_viewer(a):
    from liverseg.reporting.viewer import NPM_REGISTRY, VENDORED, fetch_viewer

    print(f"NiiVue vendored at {fetch_viewer(a.out or VENDORED, a.registry or NPM_REGISTRY)}")


def _report_pages(a):
    from liverseg.reporting.pages import write_report_pages

    write_report_pages(a.summary_md, a.cases, a.config, a.summary_html, a.cases_html, a.config_html, a.viewer_pages)


def add_commands(steps) -> None:
    s = command(steps, "overlay", _overlay, "figure: reference and predictions over the CT of one case")
    s.add_argument("--case", required=True)
    s.add_argument("--volume", type=Path, required=True)
    s.add_argument("--label", type=Path, required=True)
    s.add_argument("--predictions", nargs="+", required=True, metavar="MODEL=PATH")
    window(s)
    out(s)

    s = command(steps, "curves", _curves, "figure: learning curves of the trained models")
    s.add_argument(
        "--histories", type=Path, nargs="+", required=True, help="models/<model>/[fold_<k>/]history.csv files"
    )
    out(s)

    s = command(steps, "case-dice", _case_dice, "figure: every scored case's Dice per entry and target")
    s.add_argument("--cases", type=Path, required=True, help="results/cases.csv")
    out(s)

    s = command(steps, "fetch-viewer", _fetch_viewer, "vendor NiiVue's browser build for `liverseg view`, once")
    s.add_argument("--registry", help="the npm registry or a mirror of it (default: registry.npmjs.org)")
    s.add_argument("--out", type=Path, help="another place than this package's vendor/, where `liverseg view` reads it")

    s = command(
        steps, "report-pages", _report_pages, "the summary, per-case tables and config as HTML pages for the report"
    )
    s.add_argument("--summary-md", type=Path, required=True)
    s.add_argument("--cases", type=Path, required=True, help="results/cases.csv")
    s.add_argument("--summary-html", type=Path, required=True)
    s.add_argument("--cases-html", type=Path, required=True)
    config_section(s, "--config", "whole content, as the run used it")
    s.add_argument("--config-html", type=Path, required=True)
    s.add_argument(
        "--viewer-pages", type=Path, nargs="*", default=[], help="results/<entry>/viewer/<case>.html pages to link"
    )

    s = command(steps, "aggregate", _aggregate, "the comparison table of all scored entries")
    s.add_argument(
        "--entry",
        nargs="+",
        action="append",
        required=True,
        metavar="NAME MODEL_DIR",
        help="a scored entry and the folders of its trained stages, in order (repeat per entry)",
    )
    s.add_argument("--scores", type=Path, nargs="+", required=True, help="the scored cases' score files")
    s.add_argument("--scored-on", choices=["val", "test"], default="val", help="which side of the split is scored")
    s.add_argument(
        "--step-scores",
        type=Path,
        nargs="*",
        help="validation score files that judge post-processing when the scored cases are test cases",
    )
    s.add_argument(
        "--benchmarks",
        type=Path,
        nargs="*",
        default=[],
        help="Snakemake's benchmark files of the prediction jobs (benchmarks/<rule>/<name>/<case>.tsv)",
    )
    s.add_argument("--csv", type=Path, required=True)
    s.add_argument("--md", type=Path, required=True)
    s.add_argument("--metrics-json", type=Path, required=True)
    s.add_argument("--cases-csv", type=Path, required=True, help="every case's scores, one row per stage and target")
    s.add_argument("--statistics-csv", type=Path, required=True, help="per entry and target: spread and 95%% interval")
    s.add_argument("--comparisons-csv", type=Path, required=True, help="paired differences of every pair of entries")
    s.add_argument("--split", type=Path, help="the split file: with folds, the cross-validated means are added")
    s.add_argument(
        "--choices",
        nargs="*",
        default=[],
        metavar="NAME=PATH",
        help="each entry's post-processing choice (results/<entry>/postprocess.json): which steps it kept",
    )
