"""Benchmark: exact replay of all strategies on one 240x240x155 case.

    python benchmarks/bench_replay.py

Uses a real BraTS case's reference from ../shared/data when present (a degraded copy as the
prediction), else a synthetic one of the same size. Times the per-slice precomputation (scores,
and each expert's outcome of every slice: perfect and one draw of the correcting expert, with
their added path lengths, computed once per slice) and then:
* the 156-curve figure: 7 strategies (random x 20 seeds) x 2 experts x 3 regions, each region
  ranked on its own (per-region rankings), as in earlier versions of this benchmark;
* one expert draw as the evaluation replays it: every strategy ranked once over all regions (one
  visit fixes every label), the random baselines over the evaluation's 2000 seeds, every region's
  curve on both the slice and the time axis, and the oracles re-ranked on the draw's outcome;
* one more correcting-expert draw (belief + pieces) and its outcome, and the 54-cell sensitivity
  grid of that draw;
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
from IWUOSegmentationLib.ranking.slice_counts import dice
from IWUOSegmentationLib.ranking.slice_scores import BRATS_REGIONS, region_mask
from IWUOSegmentationLib.ranking.strategies import STRATEGIES, RankingContext, make_strategy
from IWUOSegmentationLib.simulation.budget_curves import dice_curve
from IWUOSegmentationLib.simulation.evaluation import Replay, grid_draw, replay_draw
from IWUOSegmentationLib.simulation.evaluation_config import EvaluationConfig
from IWUOSegmentationLib.simulation.experts import CorrectingExpert, ExpertCase, PerfectExpert, corrected_regions

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
    config = EvaluationConfig()
    t0 = time.perf_counter()
    probs, preds = {}, {}
    for region in ("WT", "TC", "ET"):
        soft = ndimage.gaussian_filter(region_mask(reference, region).astype(np.float32), 2) + 0.15 * noise
        probs[region] = np.clip(soft, 0, 1)
    for region, inner in (("WT", None), ("TC", "WT"), ("ET", "TC")):  # nested, as a region model writes them
        preds[region] = (probs[region] > 0.5) & (preds[inner] if inner else True)
    scores = score_case(probs, preds, probs["WT"] * (1 - probs["WT"]), 0, spacing,
                        {r: 0.1 * p * (1 - p) for r, p in probs.items()})
    case = ExpertCase(preds, reference, BRATS_REGIONS, 0, spacing)
    correcting = CorrectingExpert()
    outcomes = {"perfect": PerfectExpert().outcome(case, None),
                "noisy": correcting.outcome(case, correcting.draw(case, (0, 0)))}
    precompute = time.perf_counter() - t0
    # The 156-curve figure: 7 strategies, per-region rankings.
    t0, c0 = time.perf_counter(), time.process_time()
    n_curves = 0
    for outcome in outcomes.values():
        for region in BRATS_REGIONS:
            only = scores.only(region)
            for strategy in CLASSIC:
                for seed in range(20 if strategy == "random" else 1):
                    order = make_strategy(strategy).order(RankingContext(only, {region: outcome.counts[region]},
                                                                         seed=seed))
                    dice_curve(outcome.counts[region], order)
                    n_curves += 1
    replay, replay_cpu = time.perf_counter() - t0, time.process_time() - c0
    # One draw as the evaluation replays it: GT-free orders once (2000 seeds per random baseline), then the draw.
    t0 = time.perf_counter()
    orders = Replay(scores, list(BRATS_REGIONS), list(STRATEGIES), config)
    ranking = time.perf_counter() - t0
    times = np.arange(0.0, config.seconds_budget + 1e-9, config.time_step)
    t0 = time.perf_counter()
    for outcome in outcomes.values():
        replay_draw(orders, outcome, config, times)
    joint = (time.perf_counter() - t0) / len(outcomes)
    # Another correcting-expert draw and its outcome, and the sensitivity grid of that draw.
    t0 = time.perf_counter()
    draw = correcting.draw(case, (0, 1))
    correcting.outcome(case, draw)
    one_draw = time.perf_counter() - t0
    t0 = time.perf_counter()
    grid = grid_draw(orders, correcting, case, draw, config)
    grid_seconds = time.perf_counter() - t0
    # Reference in the same run: brute-force voxel replay of 3 curves of one setup (correcting expert, WT).
    corrected = corrected_regions(correcting, case, (0, 0))
    t0 = time.perf_counter()
    for seed in range(3):
        order = make_strategy("random").order(RankingContext(scores, seed=seed))
        assert np.allclose(brute_force(preds["WT"], case.truth["WT"], corrected["WT"], order),
                           dice_curve(outcomes["noisy"].counts["WT"], order))
    brute_per_curve = (time.perf_counter() - t0) / 3
    result = {"case": name, "shape": list(reference.shape), "curves": n_curves,
              "precompute_seconds": round(precompute, 3), "replay_seconds_all_curves": round(replay, 4),
              "replay_cpu_seconds_all_curves": round(replay_cpu, 4),
              "gt_free_orders_seconds": round(ranking, 3), "strategies": len(STRATEGIES),
              "random_seeds": config.random_seeds, "replay_seconds_per_expert_draw": round(joint, 3),
              "correcting_draw_and_outcome_seconds": round(one_draw, 3),
              "sensitivity_grid_seconds_per_draw": round(grid_seconds, 3), "grid_cells": len(grid),
              "brute_force_seconds_per_curve": round(brute_per_curve, 3),
              "speedup_vs_brute_force": round(brute_per_curve * n_curves / replay, 1),
              "load_average_1min": round(__import__("os").getloadavg()[0], 2)}
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "replay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
