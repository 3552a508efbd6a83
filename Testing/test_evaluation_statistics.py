"""The statistics behind the report's headline columns, against independent computations on known data:
the Wilcoxon signed-rank test against scipy and against an enumeration of sign flips, Holm against its
step-down definition (the smallest alpha at which the procedure rejects), pooled nAUBC, case-level
intervals, the small-n sentence, and the report's time-axis p-values being Holm-adjusted."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest
from scipy import stats

from IWUOSegmentationLib.simulation.statistics import (
    MIN_BOOTSTRAP_CASES,
    case_interval,
    holm,
    paired_wilcoxon,
    pooled_naubc,
    smallest_wilcoxon_p,
    top_group,
)


def _holm_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure at level alpha: reject the smallest p while p_(i) <= alpha / (m - i)."""
    order = np.argsort(p, kind="stable")
    rejected = np.zeros(len(p), bool)
    for i, idx in enumerate(order):
        if p[idx] > alpha / (len(p) - i):
            break
        rejected[idx] = True
    return rejected


def _holm_by_definition(p) -> list[float]:
    """Adjusted p = the smallest alpha at which the step-down procedure rejects the hypothesis, found by scanning the
    alphas where the procedure can change (each p_(i) (m - i)) and 1."""
    p = np.asarray(p, float)
    alphas = sorted({min(1.0, v) for i, q in enumerate(np.sort(p)) for v in (q * (len(p) - i),)} | {1.0})
    out = []
    for j in range(len(p)):
        out.append(next((a for a in alphas if _holm_rejects(p, a * (1 + 1e-12))[j]), 1.0))
    return out


def _exact_signed_rank_p(diff: np.ndarray) -> float:
    """Two-sided exact p of the signed-rank statistic by enumerating every sign flip (no ties, no zeros)."""
    ranks = stats.rankdata(np.abs(diff))
    observed = ranks[diff > 0].sum()
    total = ranks.sum()
    flips = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=len(diff))]
    extreme = min(observed, total - observed)
    return min(1.0, 2 * np.mean([w <= extreme for w in flips]))


KNOWN = {"a": np.array([0.71, 0.64, 0.80, 0.55, 0.92, 0.61, 0.77, 0.69]),
         "b": np.array([0.70, 0.60, 0.74, 0.56, 0.81, 0.52, 0.70, 0.58])}


def test_wilcoxon_matches_scipy_and_the_enumeration_of_sign_flips():
    a, b = KNOWN["a"], KNOWN["b"]
    p = paired_wilcoxon(a, b)
    assert p == pytest.approx(stats.wilcoxon(a - b).pvalue, rel=1e-12)
    assert p == pytest.approx(_exact_signed_rank_p(a - b), rel=1e-12)
    assert 0.01 < p < 0.05  # known data: 7 of 8 differences positive, the negative one the smallest
    assert np.isnan(paired_wilcoxon(a, a))


def test_holm_matches_the_step_down_definition():
    rng = np.random.default_rng(0)
    for p in ([0.01, 0.04, 0.03], [0.002, 0.2, 0.011, 0.04, 0.5], rng.uniform(0, 0.1, 12).tolist(), [0.3, 0.3, 0.01]):
        assert holm(p) == pytest.approx(_holm_by_definition(p), abs=1e-12), p
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([float("nan"), 0.2])[0])


def test_smallest_wilcoxon_p_is_that_of_every_case_one_way():
    for n in (2, 3, 4, 8, 12, 20):
        assert smallest_wilcoxon_p(n) == pytest.approx(stats.wilcoxon(np.arange(1.0, n + 1)).pvalue, rel=1e-9)
    assert smallest_wilcoxon_p(4) == 0.125


def test_pooled_naubc_and_case_intervals():
    values, random, oracle = np.array([0.6, 0.9]), np.array([0.5, 0.5]), np.array([0.7, 1.5])
    assert pooled_naubc(values, random, oracle) == pytest.approx((0.1 + 0.4) / (0.2 + 1.0))
    # a case with almost nothing to gain weighs almost nothing (the mean of ratios would give it full weight)
    assert pooled_naubc([0.5001, 0.9], [0.5, 0.5], [0.50011, 1.5]) == pytest.approx(0.4001 / 1.00011)
    per_case = (values - random) / (oracle - random)
    lo, hi, kind = case_interval(per_case, pooled_naubc, (values, random, oracle))
    assert (lo, hi, kind) == (pytest.approx(per_case.min()), pytest.approx(per_case.max()), "min-max")
    rng = np.random.default_rng(1)
    n = MIN_BOOTSTRAP_CASES
    v, r, o = rng.uniform(0.6, 0.7, n), rng.uniform(0.5, 0.55, n), rng.uniform(0.75, 0.8, n)
    lo, hi, kind = case_interval((v - r) / (o - r), pooled_naubc, (v, r, o))
    assert kind == "95% bootstrap" and lo < pooled_naubc(v, r, o) < hi


def test_the_top_group_is_the_best_and_those_not_significantly_worse():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.5, 0.6, 12)
    per_case = {"best": base + 0.02, "close": base + 0.02 + rng.normal(0, 0.002, 12), "worse": base}
    pooled = {k: float(np.mean(v)) for k, v in per_case.items()}
    best, group = top_group(pooled, per_case, list(per_case))
    assert best == max(pooled, key=pooled.get) and set(group) == {"best", "close"}


def _record(case: str, values: dict[str, float]) -> dict:
    rows = [{"case": case, "region": "mean", "expert": "noisy", "strategy": s, "aubc_seconds": v, "naubc_seconds": 0.0}
            for s, v in values.items()]
    curves = {f"mean|noisy|{s}": [0.5, v, v] for s, v in values.items()}
    return {"case": case, "n_slices": 2, "rows": rows, "curves": curves}


def test_the_reports_time_axis_p_values_are_holm_adjusted_over_the_ground_truth_free_family(tmp_path):
    """The headline column: per-case AUBC over the time budget, the default against each GT-free ranking."""
    from IWUOSegmentationLib.ranking.strategies import DEFAULT_RANKING
    from IWUOSegmentationLib.simulation.report import write_report

    rng = np.random.default_rng(3)
    others = ["random", "tumour_first_random", "impact", "uncertainty"]
    others = [s for s in others if s != DEFAULT_RANKING]
    per_case = {s: rng.uniform(0.80, 0.81, 9) for s in others}
    per_case[DEFAULT_RANKING] = per_case[others[0]] + np.linspace(0.001, 0.004, 9)  # better on every case
    per_case[others[1]] = per_case[DEFAULT_RANKING] - rng.normal(0.0005, 0.002, 9)
    per_case["oracle"] = per_case["oracle_time"] = np.full(9, 0.9)
    for i in range(9):
        case_dir = tmp_path / "cases" / f"c{i}"
        case_dir.mkdir(parents=True)
        (case_dir / "evaluation.json").write_text(json.dumps(_record(f"c{i}", {s: float(v[i]) for s, v in per_case.items()})))
    write_report(tmp_path)
    with open(tmp_path / "statistics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["axis"] == "seconds"]
    family = [s for s in others]
    raw = [stats.wilcoxon(per_case[DEFAULT_RANKING], per_case[s]).pvalue for s in family]
    expected = dict(zip(family, _holm_by_definition(raw)))
    assert {r["comparison"] for r in rows} == {f"{DEFAULT_RANKING} vs {s}" for s in family}
    for r in rows:
        other = r["comparison"].split(" vs ")[1]
        assert float(r["p_wilcoxon"]) == pytest.approx(raw[family.index(other)], rel=1e-4)
        assert float(r["p_holm"]) == pytest.approx(expected[other], rel=1e-4)
    assert any(float(r["p_holm"]) > float(r["p_wilcoxon"]) * 1.5 for r in rows)  # the correction changed them
    assert "oracle" not in " ".join(r["comparison"] for r in rows)  # the oracles are not in the Holm family
    report = (tmp_path / "report.md").read_text()
    assert f"With 9 case(s) the smallest two-sided Wilcoxon p possible is {smallest_wilcoxon_p(9):.3g}" in report
    assert "4 cases: smallest p = 0.125" not in report


def test_the_headline_names_the_default_and_the_best_and_says_why_they_differ(tmp_path):
    """The demo's first screen: 3 cases where another ranking is ahead of the default; then 3 where the default leads."""
    from IWUOSegmentationLib.ranking.strategies import DEFAULT_RANKING
    from IWUOSegmentationLib.simulation.report import write_report

    for out, best in ((tmp_path / "differ", "impact"), (tmp_path / "same", DEFAULT_RANKING)):
        for i in range(3):
            values = {"random": 0.80, "oracle": 0.90, "oracle_time": 0.90, "impact": 0.84, DEFAULT_RANKING: 0.84}
            values[best] = 0.86 + 0.001 * i
            case_dir = out / "cases" / f"c{i}"
            case_dir.mkdir(parents=True)
            (case_dir / "evaluation.json").write_text(json.dumps(_record(f"c{i}", values)))
        text = write_report(out).read_text()
        headline = text.split("\n\n")[2]
        assert "Default ranking (the product's" in headline and f"`{DEFAULT_RANKING}` (pooled nAUBC" in headline
        assert f"Best ground-truth-free ranking on these 3 case(s): `{best}`" in headline
        if best != DEFAULT_RANKING:
            why = text.split("\n\n")[3]
            assert why.startswith("They differ.") and "not re-chosen on these cases" in why
            assert f"smallest two-sided Wilcoxon p possible is {smallest_wilcoxon_p(3):.3g}" in why
            assert "A few cases are not evidence" in why
        else:
            assert "They differ." not in text
