"""The summary, the per-case scores and the run's config as self-contained HTML pages, for `snakemake --report`."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from liverseg.atomic import atomic_path

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


def viewer_links(table: pd.DataFrame, pages, page: Path) -> pd.Series:
    """Per row of the case table, a link from `page` to its viewer page (results/<entry>/viewer/<case>.html)."""
    href = {(p.parent.parent.name, p.stem): os.path.relpath(p, Path(page).parent) for p in map(Path, pages)}
    return pd.Series(
        [
            f'<a href="{html.escape(href[key])}">view</a>' if key in href else ""
            for key in zip(table["entry"], table["case"])
        ],
        index=table.index,
    )


def write_report_pages(
    summary_md: Path,
    cases_csv: Path,
    config: dict,
    summary_html: Path,
    cases_html: Path,
    config_html: Path,
    viewer_pages=(),
) -> None:
    """The summary (markdown), the per-case scores (each linked to its viewer page, where given) and the run's config
    (with the schema's defaults filled in) as HTML pages, for `snakemake --report` and the results folder."""
    import markdown
    import yaml

    summary = markdown.markdown(Path(summary_md).read_text(), extensions=["tables"])
    with atomic_path(summary_html) as partial:
        partial.write_text(html_page("Summary", f"<h2>Summary of the scored entries</h2>\n{summary}"))
    cases = case_table(pd.read_csv(cases_csv))
    if viewer_pages:
        cases["viewer"] = viewer_links(cases, viewer_pages, cases_html)
    # escape=False for the links; the other cells are numbers and the config's entry and case names
    table = cases.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", escape=False)
    intro = (
        "<h2>Scores per case</h2><p>After post-processing, in each scan's own geometry; distances in mm. An empty "
        "cell is undefined: tumour scores of a case whose reference and prediction both hold no tumour, "
        "distances where a mask is empty."
        + (
            " <i>view</i> opens the case's scan and labels in a viewer page (from the results folder)."
            if viewer_pages
            else ""
        )
        + "</p>"
    )
    with atomic_path(cases_html) as partial:
        partial.write_text(html_page("Scores per case", intro + table))
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)
    with atomic_path(config_html) as partial:
        partial.write_text(
            html_page("Configuration", f"<h2>Configuration of this run</h2><pre>{html.escape(text)}</pre>")
        )
