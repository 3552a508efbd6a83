"""Ground-truth-free rankings over all regions, the time axis of the replay, and failure-detection metrics."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.data.analysis_files import LoadedAnalysis
from IWUOSegmentationLib.ranking.case_scores import score_case
from IWUOSegmentationLib.ranking.slice_counts import SliceCounts, dice
from IWUOSegmentationLib.ranking.slice_scores import member_disagreement_per_slice
from IWUOSegmentationLib.ranking.strategies import (
    DEFAULT_RANKING,
    ORACLES,
    STRATEGIES,
    RankingContext,
    greedy_order,
    make_strategy,
    rank_case,
)
from IWUOSegmentationLib.simulation.budget_curves import aubc_seconds, budget_to_reach, dice_at_times, dice_curve
from IWUOSegmentationLib.simulation.failure_detection import aurc, detection_metrics, quality_estimate_errors, score_from_order


def _random_counts(rng, n=12) -> SliceCounts:
    tp = rng.integers(0, 50, n)
    fp = rng.integers(0, 20, n)
    fn = rng.integers(0, 20, n)
    return SliceCounts(tp, fp, fn, tp + fn, np.zeros(n, int), np.zeros(n, int))


def test_greedy_order_picks_the_best_mean_dice_step_by_step():
    rng = np.random.default_rng(0)
    counts = {"A": _random_counts(rng), "B": _random_counts(rng)}
    order = greedy_order(counts)
    done: list[int] = []
    for pick in order:
        def mean_dice_with(s):
            chosen = done + [s]
            return np.mean([dice(c.tp.sum() + (c.tp_fixed - c.tp)[chosen].sum(), c.fp.sum() + (c.fp_fixed - c.fp)[chosen].sum(),
                                 c.fn.sum() + (c.fn_fixed - c.fn)[chosen].sum()) for c in counts.values()])
        best = max((s for s in range(12) if s not in done), key=mean_dice_with)
        assert mean_dice_with(int(pick)) == pytest.approx(mean_dice_with(best))
        done.append(int(pick))
    # With a cost, a cheap slice with nearly the same gain comes first.
    cost = np.ones(12) * 100.0
    cost[order[1]] = 1.0
    assert greedy_order(counts, cost)[0] == order[1]


def test_time_axis_aubc_is_the_exact_area_under_the_step_curve():
    rng = np.random.default_rng(1)
    counts = _random_counts(rng, 10)
    order = rng.permutation(10)
    seconds = rng.uniform(5, 40, 10)
    curve = dice_curve(counts, order)
    budget = 150.0
    fine = np.linspace(0, budget, 300001)[:-1]
    numeric = dice_at_times(curve, order, seconds, fine).mean()
    assert aubc_seconds(curve, order, seconds, budget) == pytest.approx(numeric, abs=1e-4)
    # A slice counts once finished: before the first slice's time the Dice is the starting one.
    assert dice_at_times(curve, order, seconds, np.array([seconds[order[0]] - 1e-6, seconds[order[0]]])).tolist() == \
        [curve[0], curve[1]]
    k, secs = budget_to_reach(curve, order, seconds, curve[3])
    assert k <= 3 and secs == pytest.approx(seconds[order[:int(k)]].sum())


def _case(rng, shape=(10, 24, 24)):
    truth = np.zeros(shape, bool)
    truth[2:8, 6:18, 6:18] = True
    prob = np.clip(truth * 0.8 + rng.uniform(0, 0.3, shape) * (1 - truth), 0, 1)
    prob[5, 6:18, 6:12] = 0.3  # a missed part on slice 5
    return truth, prob


def test_every_gt_free_ranking_is_a_permutation_and_gain_per_second_divides_by_expected_time():
    rng = np.random.default_rng(2)
    truth, prob = _case(rng)
    inner = truth.copy()
    inner[:, 6:10] = False
    probs, preds = {"WT": prob, "TC": prob * inner}, {"WT": prob > 0.5, "TC": (prob * inner) > 0.5}
    scores = score_case(probs, preds, prob * (1 - prob), 0, (1.0, 1.0, 1.0),
                        {"WT": 0.05 * prob * (1 - prob), "TC": 0.05 * prob * inner})
    assert scores.impact == pytest.approx(scores.regions["WT"].impact + scores.regions["TC"].impact)
    for name in STRATEGIES:
        if name in ORACLES:
            continue
        order = make_strategy(name).order(RankingContext(scores, seed=1))
        assert sorted(order.tolist()) == list(range(10)), name
    gps = make_strategy("gain_per_second").order(RankingContext(scores))
    assert np.array_equal(gps, np.argsort(-(scores.impact / scores.expected_seconds), kind="stable"))
    assert scores.expected_seconds.min() >= 8.0 and scores.expected_seconds[5] > scores.expected_seconds[0]


def test_member_disagreement_matches_pairwise_dice_of_binary_members():
    rng = np.random.default_rng(3)
    base = np.zeros((1, 40, 40), bool)
    base[0, 10:30, 10:30] = True
    members = np.stack([base ^ (rng.random(base.shape) < 0.04 * k) for k in range(1, 7)]).astype(float)
    mean, var = members.mean(0), members.var(0)
    pairwise = [1 - 2 * (a * b).sum() / (a.sum() + b.sum()) for i, a in enumerate(members) for b in members[i + 1:]]
    expected = float(np.mean(pairwise))
    value = float(member_disagreement_per_slice(var, mean, 0)[0])
    # Pairs with replacement include identical pairs: the ratio is (M-1)/M of the distinct-pair mean.
    assert value == pytest.approx(expected * (len(members) - 1) / len(members), rel=0.15)
    assert member_disagreement_per_slice(np.zeros_like(var), mean, 0)[0] == 0.0


def test_failure_detection_metrics():
    failed = np.array([1, 1, 0, 0, 0], bool)
    perfect = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    worst = perfect[::-1]
    assert detection_metrics(failed, perfect)["auroc"] == 1.0 and detection_metrics(failed, perfect)["auprc"] == 1.0
    assert detection_metrics(failed, worst)["auroc"] == 0.0
    # Risk-coverage: accept the least suspicious first; perfect ranking accepts 3 clean slices first.
    assert aurc(failed, perfect) == pytest.approx(np.mean([0, 0, 0, 1 / 4, 2 / 5]))
    assert aurc(failed, perfect) < aurc(failed, worst)
    assert np.array_equal(score_from_order(np.array([2, 0, 1])), [2.0, 1.0, 3.0])
    q = quality_estimate_errors(np.array([0.8, 0.9, 0.7]), np.array([0.7, 0.85, 0.6]))
    assert q["mae"] == pytest.approx(np.mean([0.1, 0.05, 0.1])) and q["pearson_r"] > 0.9


def test_rank_case_uses_the_default_ranking_over_all_regions():
    rng = np.random.default_rng(4)
    truth, prob = _case(rng)
    label = np.where(prob > 0.5, 2, 0)
    label[(prob > 0.5) & truth] = 1
    probabilities = np.stack([prob, prob * truth, prob * truth * 0.5])  # region model: WT, TC, ET outputs
    names = ["whole_tumor", "tumor_core", "enhancing_tumor"]
    geometry = sitk.Image(*label.shape[::-1], sitk.sitkUInt8)
    geometry.SetSpacing((1.0, 1.0, 3.0))
    analysis = LoadedAnalysis(label_map=label, probabilities=probabilities, uncertainty={"entropy": prob * (1 - prob)},
                              member_variance=None, summary={"outputs": names, "region_based": True}, geometry=geometry)
    axis, scores, rows = rank_case(analysis)
    expected = make_strategy(DEFAULT_RANKING).order(RankingContext(scores))
    assert axis == 0 and [r["slice"] for r in rows] == expected.tolist()
    assert set(scores.regions) == {"WT", "TC", "ET"} and set(rows[0]) == {"slice", "iwuo", "impact", "uncertainty"}
    with pytest.raises(ValueError):
        rank_case(analysis, strategy="oracle")


def test_evaluate_rejects_unknown_strategy_and_expert_names(tmp_path, capsys):
    from IWUOSegmentationLib.cli import main

    assert main(["--progress", "none", "evaluate", "--out", str(tmp_path), "--strategies", "iwuo,bogus"]) == 2
    assert "Unknown strategy bogus" in capsys.readouterr().err
    assert main(["--progress", "none", "evaluate", "--out", str(tmp_path), "--expert", "sloppy"]) == 2
    assert "Unknown expert sloppy" in capsys.readouterr().err
