"""Benchmark: exact replay of all strategies on one 240x240x155 case.

    python benchmarks/bench_replay.py

Uses a real BraTS case's reference from ../shared/data when present (a degraded copy as the
prediction), else a synthetic one of the same size. Times the per-slice precomputation (scores,
and each expert's outcome of every slice: perfect and the correcting expert, with their added
path lengths, computed once per slice) and then:
* the 156-curve figure: 7 strategies (random x 20 seeds) x 2 experts x 3 regions, each region
  ranked on its own (per-region rankings), as in earlier versions of this benchmark;
* the evaluation's default: all 13 strategies ranked once over all regions (one visit fixes
  every label), every region's curve on both the slice and the time axis;
and, as the reference measured in the same run, brute-force voxel replay of the same curves
(timed on a subset, per curve). Writes benchmarks/results/replay.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from IWUOSegmentationLib.ranking.case_scores import score_case
from IWUOSegmentationLib.ranking.correction_time import TimeModel, path_length_per_slice
from IWUOSegmentationLib.ranking.slice_counts import dice, slice_counts
from IWUOSegmentationLib.ranking.slice_scores import region_mask
from IWUOSegmentationLib.ranking.strategies import STRATEGIES, RankingContext, make_strategy
from IWUOSegmentationLib.simulation.budget_curves import aubc_seconds, dice_at_times, dice_curve
from IWUOSegmentationLib.simulation.experts import CorrectingExpert, PerfectExpert

CLASSIC = ("iwuo", "uncertainty", "impact", "random", "fixed_interval", "largest_area", "oracle")

ROOT = Path(__file__).resolve().parent.parent
CASE = ROOT.parent / "shared" / "data" / "brats2015" / "brats_2013_pat0001_1" / "OTMultiClass.nii.gz"


def load_case() -> tuple[np.ndarray, str]:
    if CASE.exists():
        return sitk.GetArrayFromImage(sitk.ReadImage(str(CASE))).astype(np.int64), CASE.parent.name
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.standard_normal((155, 240, 240)), 8)
    label = np.zeros(field.shape, np.int64)
    label[field > 0.02] = 2
    label[field > 0.04] = 4
    label[field > 0.05] = 1
    return label, "synthetic"


def brute_force(pred: np.ndarray, truth: np.ndarray, corrected: np.ndarray, order: np.ndarray) -> np.ndarray:
    current = pred.copy()
    out = [dice((current & truth).sum(), (current & ~truth).sum(), (~current & truth).sum())]
    for s in order:
        current[s] = corrected[s]
        out.append(dice((current & truth).sum(), (current & ~truth).sum(), (~current & truth).sum()))
    return np.array(out)


def main() -> None:
    reference, name = load_case()
    spacing = (1.0, 1.0, 1.0)
    rng = np.random.default_rng(1)
    noise = ndimage.gaussian_filter(rng.standard_normal(reference.shape).astype(np.float32), 3)
    time_model = TimeModel()
    t0 = time.perf_counter()
    probs, preds, truths = {}, {}, {}
    for region in ("WT", "TC", "ET"):
        truths[region] = region_mask(reference, region)
        soft = ndimage.gaussian_filter(truths[region].astype(np.float32), 2) + 0.15 * noise
        probs[region] = np.clip(soft, 0, 1)
        preds[region] = probs[region] > 0.5
    scores = score_case(probs, preds, probs["WT"] * (1 - probs["WT"]), 0, spacing,
                        {r: 0.1 * p * (1 - p) for r, p in probs.items()})
    experts = {}
    for expert in (PerfectExpert(), CorrectingExpert()):
        corrected = {r: expert.corrected(preds[r], truths[r], 0, spacing, seed=0) for r in truths}
        counts = {r: slice_counts(preds[r], truths[r], corrected[r], 0) for r in truths}
        paths = {r: path_length_per_slice(preds[r], corrected[r], 0, spacing) for r in truths}
        seconds = time_model.look_seconds + time_model.seconds_per_mm * np.sum(list(paths.values()), axis=0)
        experts[expert.name] = (corrected, counts, seconds)
    precompute = time.perf_counter() - t0
    # The 156-curve figure: 7 strategies, per-region rankings.
    t0, c0 = time.perf_counter(), time.process_time()
    n_curves = 0
    for _, counts, _ in experts.values():
        for region in truths:
            only = scores.only(region)
            for strategy in CLASSIC:
                for seed in range(20 if strategy == "random" else 1):
                    order = make_strategy(strategy).order(RankingContext(only, {region: counts[region]}, seed=seed))
                    dice_curve(counts[region], order)
                    n_curves += 1
    replay, replay_cpu = time.perf_counter() - t0, time.process_time() - c0
    # All 13 strategies, one ranking over all regions, slice and time axes.
    t0 = time.perf_counter()
    n_joint = 0
    times = np.arange(0.0, 600.0 + 1e-9, 5.0)
    for _, counts, seconds in experts.values():
        for strategy in STRATEGIES:
            for seed in range(20 if strategy == "random" else 1):
                order = make_strategy(strategy).order(RankingContext(scores, counts, seed=seed, seconds=seconds))
                for region in truths:
                    curve = dice_curve(counts[region], order)
                    dice_at_times(curve, order, seconds, times)
                    aubc_seconds(curve, order, seconds, 600.0)
                    n_joint += 1
    joint = time.perf_counter() - t0
    # Reference in the same run: brute-force voxel replay of 3 curves of one setup (correcting expert, WT).
    corrected, counts, _ = experts["noisy"]
    t0 = time.perf_counter()
    for seed in range(3):
        order = make_strategy("random").order(RankingContext(scores, counts, seed=seed))
        assert np.allclose(brute_force(preds["WT"], truths["WT"], corrected["WT"], order), dice_curve(counts["WT"], order))
    brute_per_curve = (time.perf_counter() - t0) / 3
    result = {"case": name, "shape": list(reference.shape), "curves": n_curves,
              "precompute_seconds": round(precompute, 3), "replay_seconds_all_curves": round(replay, 4),
              "replay_cpu_seconds_all_curves": round(replay_cpu, 4),
              "joint_curves_all_strategies": n_joint, "joint_replay_seconds": round(joint, 4),
              "brute_force_seconds_per_curve": round(brute_per_curve, 3),
              "speedup_vs_brute_force": round(brute_per_curve * n_curves / replay, 1)}
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "replay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
