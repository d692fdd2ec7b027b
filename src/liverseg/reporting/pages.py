"""The summary, the per-case scores and the run's config as self-contained HTML pages, for `snakemake --report`."""

from __future__ import annotations

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
