"""The bundled demo model on phantoms it never saw (threshold) and on real BraTS cases (reported)."""

from __future__ import annotations

import json

import numpy as np

from IWUOSegmentationLib.case_folders import list_case_folders
from IWUOSegmentationLib.demo_model import FIRST_TRAINING_SEED
from IWUOSegmentationLib.evaluate_command import evaluate_folder_case
from IWUOSegmentationLib.inference import MemberPredictor
from IWUOSegmentationLib.phantom import write_phantoms

OPTIONS = {"strategies": ("iwuo", "random", "oracle"), "experts": ("perfect",), "regions": ("WT", "TC", "ET"),
           "uncertainty_map": "entropy", "random_seeds": 3}


def _dice(folders, demo_model, out):
    """Segmentation quality without test-time mirroring (8x faster); the README reports Dice with mirroring."""
    predictor = MemberPredictor(demo_model, device="cpu", members=("folds",), tta=False)
    return {f.name: evaluate_folder_case(f, demo_model, predictor, out / f.name, OPTIONS)["metrics_before_correction"]
            for f in folders}


def test_demo_model_segments_unseen_phantoms(tmp_path, demo_model):
    seeds = range(200, 210)
    assert max(seeds) < FIRST_TRAINING_SEED
    write_phantoms(tmp_path / "cases", len(seeds), seed=seeds[0], layout="cases")
    metrics = _dice(list_case_folders(tmp_path / "cases"), demo_model, tmp_path / "out")
    mean = {r: float(np.mean([m[r]["dice"] for m in metrics.values()])) for r in ("WT", "TC", "ET")}
    print("demo model on 10 unseen phantoms, mean Dice:", json.dumps(mean))
    assert mean["WT"] >= 0.80
    assert mean["TC"] >= 0.5 and mean["ET"] >= 0.3


def test_demo_model_on_real_brats_cases_is_reported(tmp_path, demo_model, brats_cases):
    metrics = _dice(list_case_folders(brats_cases), demo_model, tmp_path / "out")
    for case, m in metrics.items():
        print(case, {r: round(v["dice"], 3) for r, v in m.items()})
    assert len(metrics) == 4
    assert all(0.0 <= v["dice"] <= 1.0 for m in metrics.values() for v in m.values())
