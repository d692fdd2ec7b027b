"""Uncertainty of per-case means: percentile bootstrap intervals, and paired comparisons of two entries.

With a handful of scored cases a mean alone says little; the interval says how far it could move with other cases
drawn from the same population. Undefined per-case values (NaN, see `liverseg.evaluation.metrics`) are left out first.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

BOOTSTRAP_SAMPLES = 2000
MIN_WILCOXON_CASES = 6  # below this the signed-rank test cannot reach p < 0.05 (two-sided)


def _defined(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[~np.isnan(values)]


def bootstrap_ci(values, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, cases resampled with replacement; NaN with fewer than two cases."""
    values = _defined(values)
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def describe(values) -> dict[str, float]:
    """n, mean, sd, median and the 95% bootstrap interval of the defined values."""
    defined = _defined(values)
    low, high = bootstrap_ci(defined)
    return {
        "n": len(defined),
        "mean": float(defined.mean()) if len(defined) else float("nan"),
        "sd": float(defined.std(ddof=1)) if len(defined) > 1 else float("nan"),
        "median": float(np.median(defined)) if len(defined) else float("nan"),
        "ci_low": low,
        "ci_high": high,
    }


def paired_comparison(a, b) -> dict[str, float]:
    """b minus a over the cases where both are defined: mean difference, its bootstrap interval, and the Wilcoxon
    signed-rank p-value (NaN with fewer than MIN_WILCOXON_CASES cases, or when every difference is zero)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    differences = (b - a)[~(np.isnan(a) | np.isnan(b))]
    low, high = bootstrap_ci(differences)
    p = float("nan")
    if len(differences) >= MIN_WILCOXON_CASES and np.any(differences != 0):
        p = float(stats.wilcoxon(differences).pvalue)
    return {
        "n": len(differences),
        "difference": float(differences.mean()) if len(differences) else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "wilcoxon_p": p,
    }
