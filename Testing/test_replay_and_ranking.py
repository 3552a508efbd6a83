"""Replay is exact, experts and strategies behave as specified, statistics are right."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from IWUOSegmentationLib.errors import BadInputError
from IWUOSegmentationLib.ranking.slice_counts import dice, slice_counts
from IWUOSegmentationLib.ranking.slice_scores import ScoreOptions, impact_per_slice, score_slices, slice_axis
from IWUOSegmentationLib.ranking.strategies import STRATEGIES, RankingContext, make_strategy
from IWUOSegmentationLib.simulation.budget_curves import aubc, dice_curve, normalised_aubc
from IWUOSegmentationLib.simulation.experts import ExpertCase, PerfectExpert, RedrawingExpert, corrected_regions
from IWUOSegmentationLib.simulation.statistics import bootstrap_ci, holm, paired_wilcoxon


def _blob_case(seed: int, shape=(24, 40, 40)):
    """A smooth random 'tumour' (truth), a degraded prediction, and a plausible probability map."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 3)
    zz = np.linspace(-1, 1, shape[0])[:, None, None]
    truth = (field + 0.6 - 2.0 * zz**2) > 0.55
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2)
    prob = 1 / (1 + np.exp(-(4 * (field + 0.6 - 2.0 * zz**2 - 0.55) + 1.5 * noise)))
    pred = prob > 0.5
    return truth, pred, prob


def _brute_force_dice(pred, truth, corrected, order, axis):
    out = [dice((pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum())]
    current = pred.copy()
    for s in order:
        idx = [slice(None)] * 3
        idx[axis] = s
        current[tuple(idx)] = corrected[tuple(idx)]
        out.append(dice((current & truth).sum(), (current & ~truth).sum(), (~current & truth).sum()))
    return np.array(out, float)


def _corrected(expert, pred, truth, axis, seed=0):
    """The expert's corrected mask of a one-region case (label 1 = the region)."""
    case = ExpertCase({"A": pred}, truth.astype(np.int64), {"A": (1,)}, axis, (1.0, 1.0, 1.0))
    return corrected_regions(expert, case, seed)["A"]


@pytest.mark.parametrize("axis", [0, 2])
def test_replay_equals_brute_force_on_random_orderings(axis):
    truth, pred, _ = _blob_case(1)
    corrected = _corrected(RedrawingExpert(), pred, truth, axis, seed=3)
    assert (corrected != pred).sum() > 100 and (corrected != truth).sum() > 100  # neither the prediction nor the truth
    counts = slice_counts(pred, truth, corrected, axis)
    rng = np.random.default_rng(0)
    for _ in range(5):
        order = rng.permutation(truth.shape[axis])[: rng.integers(1, truth.shape[axis] + 1)]
        assert np.allclose(dice_curve(counts, order), _brute_force_dice(pred, truth, corrected, order, axis))


def test_perfect_expert_curve_is_monotone_and_reaches_one():
    truth, pred, prob = _blob_case(2)
    counts = slice_counts(pred, truth, _corrected(PerfectExpert(), pred, truth, 0), 0)
    scores = score_slices(prob, pred, prob * (1 - prob), 0)
    for name in STRATEGIES:
        for seed in range(3):
            curve = dice_curve(counts, make_strategy(name).order(RankingContext(scores, counts, seed=seed)))
            assert np.all(np.diff(curve) >= -1e-12), name
            assert curve[-1] == pytest.approx(1.0)


def test_oracle_is_on_top_of_ground_truth_free_strategies_at_every_step():
    for seed in range(4):
        truth, pred, prob = _blob_case(10 + seed)
        counts = slice_counts(pred, truth, truth, 0)
        scores = score_slices(prob, pred, prob * (1 - prob), 0)
        oracle = dice_curve(counts, make_strategy("oracle").order(RankingContext(scores, counts)))
        for name in STRATEGIES:
            if name == "oracle":
                continue
            curve = dice_curve(counts, make_strategy(name).order(RankingContext(scores, counts, seed=seed)))
            assert np.all(oracle >= curve - 1e-12), (seed, name)


def test_impact_matches_the_dice_gain_formula_when_probabilities_are_certain():
    truth, pred, _ = _blob_case(6)
    prob = truth.astype(float)  # a perfectly calibrated, certain model: E[FN], E[FP] are the true counts
    impact, d = impact_per_slice(prob, pred, 0)
    counts = slice_counts(pred, truth, truth, 0)
    base = dice(counts.tp.sum(), counts.fp.sum(), counts.fn.sum())
    true_gain = np.array([dice_curve(counts, np.array([s]))[1] - base for s in range(truth.shape[0])])
    assert (true_gain > 0.005).sum() >= 5  # enough slices with something to gain
    assert impact == pytest.approx(true_gain, rel=0.02, abs=1e-5)  # first-order formula: < 2% off here
    assert d == pytest.approx(base)


def test_empty_reference_and_prediction_score_one_and_empty_reference_region_is_handled():
    assert dice(0, 0, 0) == 1.0
    truth = np.zeros((5, 8, 8), bool)
    pred = np.zeros_like(truth)
    pred[2, 3:5, 3:5] = True
    counts = slice_counts(pred, truth, truth, 0)
    curve = dice_curve(counts, np.arange(5))
    assert curve[0] == 0.0 and curve[-1] == 1.0


def test_bad_orderings_and_grids_are_refused():
    truth, pred, _ = _blob_case(7)
    counts = slice_counts(pred, truth, truth, 0)
    with pytest.raises(BadInputError):
        dice_curve(counts, np.array([0, 0]))
    with pytest.raises(BadInputError):
        dice_curve(counts, np.array([truth.shape[0]]))
    with pytest.raises(BadInputError):
        slice_counts(pred[:-1], truth, truth, 0)


def test_score_options_change_the_ranking_terms():
    truth, pred, prob = _blob_case(8)
    umap = prob * (1 - prob)
    base = score_slices(prob, pred, umap, 0)
    no_unc = score_slices(prob, pred, umap, 0, ScoreOptions(uncertainty_exponent=0.0))
    assert np.allclose(no_unc.iwuo, base.impact)
    summed = score_slices(prob, pred, umap, 0, ScoreOptions(aggregate="sum"))
    assert np.allclose(summed.uncertainty, umap.sum((1, 2)))
    # Boundary weight = 1 + perimeter/area of the predicted slice: a 4x4 square (12 edge voxels of 16) on
    # slice 1, a 1x8 line (all 8 on the edge) on slice 2, nothing on slice 0 (weight 1).
    shapes = np.zeros((3, 10, 10), bool)
    shapes[1, 2:6, 2:6] = True
    shapes[2, 5, 1:9] = True
    p = np.where(shapes, 0.7, 0.2)
    plain = score_slices(p, shapes, p * (1 - p), 0)
    weighted = score_slices(p, shapes, p * (1 - p), 0, ScoreOptions(boundary_weight=True))
    assert weighted.iwuo == pytest.approx(plain.iwuo * np.array([1.0, 1 + 12 / 16, 1 + 8 / 8]), rel=1e-12)
    assert plain.iwuo.min() > 0


def test_slice_axis_is_the_coarsest_spacing_axial_when_isotropic():
    assert slice_axis((1.0, 1.0, 1.0)) == 0
    assert slice_axis((1.0, 1.0, 5.0)) == 0
    assert slice_axis((1.0, 4.0, 1.0)) == 1
    assert slice_axis((3.0, 1.0, 1.0)) == 2


def test_aubc_and_normalisation():
    assert aubc(np.array([0.0, 1.0])) == pytest.approx(0.5)
    assert normalised_aubc(0.8, 0.6, 1.0) == pytest.approx(0.5)
    assert np.isnan(normalised_aubc(0.8, 0.6, 0.6))


def test_holm_and_wilcoxon_and_bootstrap():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([float("nan"), 0.2])[0])
    a = np.linspace(0.5, 0.9, 12)
    assert paired_wilcoxon(a + 0.05, a) < 0.01
    assert np.isnan(paired_wilcoxon(a, a))
    lo, hi = bootstrap_ci(np.array([1.0, 2.0, 3.0, 4.0]))
    assert 1.0 <= lo < 2.5 < hi <= 4.0


def test_budget_larger_than_the_number_of_slices_is_clamped_and_said(tmp_path):
    import json

    from IWUOSegmentationLib.simulation.report import write_report
    from IWUOSegmentationLib.simulation.summary import case_table

    curves = {f"WT|perfect|{s}": [0.5, 0.7, 0.9, 1.0] for s in ("iwuo", "random", "oracle")}
    record = {"case": "c1", "n_slices": 3, "rows": [], "curves": curves, "metrics_before_correction": {}}
    table = case_table([record], budget=50)
    assert table[("WT", "perfect")]["iwuo"]["aubc"][0] == pytest.approx(aubc(np.array(curves["WT|perfect|iwuo"])))
    (tmp_path / "cases" / "c1").mkdir(parents=True)
    (tmp_path / "cases" / "c1" / "evaluation.json").write_text(json.dumps(record))
    text = write_report(tmp_path, budget=50).read_text()
    assert "fewer than 50 slices are evaluated up to their number of slices" in text
