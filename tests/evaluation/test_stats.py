"""Bootstrap intervals and paired comparisons on distributions whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest

from liverseg.evaluation.stats import bootstrap_ci, describe, paired_comparison
from liverseg.reporting.summary import case_statistics, paired_comparisons
from liverseg.reporting.tables import statistics_markdown


def test_the_bootstrap_interval_of_a_normal_mean_has_the_textbook_width():
    rng = np.random.default_rng(1)
    values = rng.normal(0.8, 0.1, 400)
    low, high = bootstrap_ci(values)
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)


def test_the_interval_covers_the_true_mean_about_95_times_in_100():
    rng = np.random.default_rng(2)
    covered = sum(low <= 0.5 <= high for low, high in (bootstrap_ci(rng.uniform(0, 1, 30), seed=k) for k in range(200)))
    assert 0.88 <= covered / 200 <= 0.99


def test_undefined_cases_are_left_out_and_counted():
    d = describe([0.9, float("nan"), 0.7, None])
    assert d["n"] == 2 and d["mean"] == pytest.approx(0.8) and d["median"] == pytest.approx(0.8)
    assert d["sd"] == pytest.approx(np.std([0.9, 0.7], ddof=1))
    assert math.isnan(describe([0.5])["ci_low"]) and math.isnan(describe([])["mean"])


def test_a_paired_improvement_is_found_and_no_difference_is_not():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.6, 0.9, 12)
    better = paired_comparison(a, a + rng.normal(0.05, 0.01, 12))
    assert better["n"] == 12 and better["difference"] == pytest.approx(0.05, abs=0.01)
    assert 0 < better["ci_low"] < better["ci_high"] and better["wilcoxon_p"] < 0.01
    same = paired_comparison(a, a)
    assert same["difference"] == 0 and math.isnan(same["wilcoxon_p"])
    few = paired_comparison(a[:4], a[:4] + 0.1)
    assert few["n"] == 4 and math.isnan(few["wilcoxon_p"]) and few["ci_low"] == pytest.approx(0.1)
    partial = paired_comparison([0.5, float("nan"), 0.7], [0.6, 0.9, float("nan")])
    assert partial["n"] == 1 and partial["difference"] == pytest.approx(0.1)


def test_statistics_and_comparisons_of_case_scores():
    rows = []
    for model, shift in (("m1", 0.0), ("m2", 0.1)):
        for k in range(8):
            for target, dice in (
                ("liver", 0.8 + 0.01 * k + shift),
                ("tumour", float("nan") if k == 0 else 0.5 + shift),
            ):
                rows.append(
                    {
                        "model": model,
                        "case": f"case_{k:03d}",
                        "stage": "post",
                        "target": target,
                        "dice": dice,
                        "jaccard": dice,
                        "voe": 0.1,
                        "rvd": 0.0,
                        "assd": 1.0 + k,
                        "hd95": 2.0 + k,
                        "mssd": 3.0,
                    }
                )
                rows.append({**rows[-1], "stage": "pred", "dice": 0.0})
    scores = pd.DataFrame(rows)
    statistics = case_statistics(scores).set_index(["model", "target", "metric"])
    assert statistics.loc[("m1", "liver", "dice"), "mean"] == pytest.approx(0.835)
    assert statistics.loc[("m1", "tumour", "dice"), "n"] == 7
    comparisons = paired_comparisons(scores).set_index(["first", "second", "target", "metric"])
    liver = comparisons.loc[("m1", "m2", "liver", "dice")]
    assert liver["difference"] == pytest.approx(0.1) and liver["n"] == 8
    assert comparisons.loc[("m1", "m2", "tumour", "dice"), "n"] == 7
    assert comparisons.loc[("m1", "m2", "liver", "hd95"), "difference"] == 0
    text = statistics_markdown(case_statistics(scores), paired_comparisons(scores))
    assert "| m2 - m1 | liver | dice | 8 | +0.1000 | [+0.1000, +0.1000] |" in text
    assert "| m1 | liver | dice | 8 | 0.8350 ± 0.0245 | 0.8350 |" in text
