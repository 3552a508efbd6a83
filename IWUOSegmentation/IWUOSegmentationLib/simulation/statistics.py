"""Across-case statistics: pooled nAUBC, paired Wilcoxon with Holm, case-level intervals, the top group.

* Pooled nAUBC = sum over cases of (AUBC - random) / sum over cases of (oracle - random): every case
  weighs by what there is to gain in it, so a case whose oracle barely beats random cannot swing
  the mean of ratios.
* Intervals are case-level: a 95 % percentile bootstrap over cases when there are at least
  `MIN_BOOTSTRAP_CASES` (with fewer the resamples are too few to mean anything: 4 cases give 35
  distinct ones), else the range (min-max) of the per-case values, and the table says which.
* Paired two-sided Wilcoxon signed-rank tests (scipy) across cases, Holm-corrected within one family.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

#: Fewer cases than this get min-max ranges instead of bootstrap intervals.
MIN_BOOTSTRAP_CASES = 10
#: Significance level of the top group (protocol.md).
ALPHA = 0.05


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(p_values, float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full_like(p, np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
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


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact signed-rank test can give with n cases (all differences one way): 2 / 2^n."""
    return float(min(1.0, 2.0 / 2.0 ** n)) if n >= 1 else float("nan")


def pooled_naubc(values, random, oracle) -> float:
    """Sum over cases of (value - random) / sum over cases of (oracle - random); NaN when the oracle gains nothing."""
    values, random, oracle = (np.asarray(x, float) for x in (values, random, oracle))
    ok = ~(np.isnan(values) | np.isnan(random) | np.isnan(oracle))
    span = float((oracle[ok] - random[ok]).sum())
    return float((values[ok] - random[ok]).sum() / span) if ok.any() and abs(span) > 1e-12 else float("nan")


def case_interval(per_case: np.ndarray, statistic: Callable[[np.ndarray], float], data: tuple[np.ndarray, ...],
                  n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, str]:
    """(low, high, kind): with at least MIN_BOOTSTRAP_CASES cases the percentile bootstrap of `statistic` over cases
    (`data`: per-case arrays resampled together), else the min-max of the per-case values."""
    per_case = np.asarray(per_case, float)
    n = len(per_case)
    if n == 0 or np.all(np.isnan(per_case)):
        return float("nan"), float("nan"), "none"
    if n < MIN_BOOTSTRAP_CASES:
        return float(np.nanmin(per_case)), float(np.nanmax(per_case)), "min-max"
    rng = np.random.default_rng(seed)
    draws = [statistic(*(np.asarray(a, float)[idx] for a in data)) for idx in rng.integers(0, n, (n_boot, n))]
    lo, hi = np.nanpercentile(draws, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi), "95% bootstrap"


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


def compare_with(compared: str, per_case: dict[str, np.ndarray], family: list[str]) -> list[dict]:
    """`compared` against every other member of `family` on paired per-case values: mean difference, cases where it
    is better, two-sided Wilcoxon p and Holm-adjusted p (the family is the Holm family)."""
    others = [s for s in family if s != compared and s in per_case]
    ref = np.asarray(per_case[compared], float)
    raw = [paired_wilcoxon(ref, per_case[s]) for s in others]
    out = []
    for s, p, p_adj in zip(others, raw, holm(raw)):
        diff = ref - np.asarray(per_case[s], float)
        out.append({"other": s, "mean_difference": float(np.mean(diff)), "better_cases": int((diff > 0).sum()),
                    "cases": int(len(diff)), "p": p, "p_holm": p_adj})
    return out


def top_group(pooled: dict[str, float], per_case: dict[str, np.ndarray], family: list[str]) -> tuple[str, list[str]]:
    """The best of `family` by pooled value, and the top group: it and every member not significantly worse
    (Holm-adjusted paired Wilcoxon p >= ALPHA over the family, or not worse on the mean)."""
    candidates = [s for s in family if s in pooled and pooled[s] == pooled[s]]
    best = max(candidates, key=lambda s: round(pooled[s], 4))  # ties at 4 decimals: the first listed (protocol.md)
    group = [best] + [row["other"] for row in compare_with(best, per_case, candidates)
                      if row["mean_difference"] <= 0 or not row["p_holm"] < ALPHA]
    return best, sorted(group, key=lambda s: -pooled[s])
