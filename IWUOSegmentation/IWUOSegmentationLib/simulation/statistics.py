"""Across-case statistics: paired Wilcoxon signed-rank with Holm correction, case-bootstrap CIs."""

from __future__ import annotations

import numpy as np
from scipy import stats


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(p_values, float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full_like(p, np.nan)
    order = valid[np.argsort(p[valid])]
    m = len(order)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def paired_wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on paired values; NaN if undefined."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = a - b
    if len(diff) < 2 or np.allclose(diff, 0):
        return float("nan")
    return float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean, resampling cases with replacement."""
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(1)
    lo, hi = np.percentile(means, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def bootstrap_curve_band(curves: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """95% case-bootstrap band of the mean curve; `curves` is (cases, steps)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, curves.shape[0], (n_boot, curves.shape[0]))
    means = curves[idx].mean(1)
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)
