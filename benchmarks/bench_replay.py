"""Benchmark: exact replay of all strategies on one 240x240x155 case.

    python benchmarks/bench_replay.py

Uses a real BraTS case's reference from ../shared/data when present (a degraded copy as the
prediction), else a synthetic one of the same size. Times the per-slice precomputation and the
replay of 7 strategies x 20 random seeds x 2 experts x 3 regions, and, as the reference measured
in the same run, brute-force voxel replay of the same curves (timed on a subset, per curve).
Writes benchmarks/results/replay.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from IWUOSegmentationLib.experts import NoisyExpert, PerfectExpert
from IWUOSegmentationLib.replay import dice, dice_curve, slice_counts
from IWUOSegmentationLib.slice_scores import region_mask, score_slices
from IWUOSegmentationLib.strategies import STRATEGIES, RankingContext, make_strategy

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
    rng = np.random.default_rng(1)
    noise = ndimage.gaussian_filter(rng.standard_normal(reference.shape).astype(np.float32), 3)
    t0 = time.perf_counter()
    setups = []
    for region in ("WT", "TC", "ET"):
        truth = region_mask(reference, region)
        soft = ndimage.gaussian_filter(truth.astype(np.float32), 2) + 0.15 * noise
        prob = np.clip(soft, 0, 1)
        pred = prob > 0.5
        scores = score_slices(prob, pred, prob * (1 - prob), axis=0)
        for expert in (PerfectExpert(), NoisyExpert()):
            corrected = expert.correct(truth, 0, seed=0)
            setups.append((region, expert.name, scores, slice_counts(pred, truth, corrected, 0), pred, truth, corrected))
    precompute = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_curves = 0
    for _, _, scores, counts, *_ in setups:
        for strategy in STRATEGIES:
            for seed in range(20 if strategy == "random" else 1):
                dice_curve(counts, make_strategy(strategy).order(RankingContext(scores, counts, seed=seed)))
                n_curves += 1
    replay = time.perf_counter() - t0
    # Reference in the same run: brute-force voxel replay of 3 curves of one setup.
    _, _, scores, counts, pred, truth, corrected = setups[0]
    t0 = time.perf_counter()
    for seed in range(3):
        order = make_strategy("random").order(RankingContext(scores, counts, seed=seed))
        assert np.allclose(brute_force(pred, truth, corrected, order), dice_curve(counts, order))
    brute_per_curve = (time.perf_counter() - t0) / 3
    result = {"case": name, "shape": list(reference.shape), "curves": n_curves,
              "precompute_seconds": round(precompute, 3), "replay_seconds_all_curves": round(replay, 4),
              "brute_force_seconds_per_curve": round(brute_per_curve, 3),
              "speedup_vs_brute_force": round(brute_per_curve * n_curves / replay, 1)}
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "replay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
