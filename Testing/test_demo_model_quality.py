"""The bundled demo model on phantoms it never saw and on the 4 real BraTS cases: floors just below what
was measured (README, *Measured*), so a worse model or a broken inference path fails here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from IWUOSegmentationLib.data.case_folders import list_case_folders
from IWUOSegmentationLib.data.phantom import write_phantoms
from IWUOSegmentationLib.nnunet.analysis import CaseAnalyzer
from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings
from IWUOSegmentationLib.nnunet.demo_model import FIRST_TRAINING_SEED
from IWUOSegmentationLib.simulation.evaluate_folders import evaluate_folder_case
from IWUOSegmentationLib.simulation.evaluation_config import EvaluationConfig

OPTIONS = EvaluationConfig(strategies=("iwuo", "random", "oracle"), experts=("perfect",), regions=("WT", "TC", "ET"),
                           random_seeds=3)
#: Measured (README): mean Dice on phantoms 200-209, folds 0+1, no mirroring: WT 0.857, TC 0.863, ET 0.807.
PHANTOM_FLOORS = {"WT": 0.83, "TC": 0.83, "ET": 0.77}
#: Measured (README), same settings, per case: floors 0.03 below each.
BRATS_MEASURED = {"brats_2013_pat0001_1": {"WT": 0.588, "TC": 0.656, "ET": 0.745},
                  "brats_2013_pat0002_1": {"WT": 0.363, "TC": 0.207, "ET": 0.440},
                  "brats_2013_pat0003_1": {"WT": 0.626, "TC": 0.459, "ET": 0.636},
                  "brats_2013_pat0004_1": {"WT": 0.687, "TC": 0.454, "ET": 0.738}}


def _evaluate(folders, demo_model, out):
    """Analysis without test-time mirroring (8x faster) + the replay; the README reports both settings."""
    analyzer = CaseAnalyzer(demo_model, AnalysisSettings(device="cpu", members=("folds",), tta=False))
    return {f.name: evaluate_folder_case(f, demo_model, analyzer, out / f.name, OPTIONS) for f in folders}


def _naubc(record: dict, region: str) -> float:
    return next(r["naubc"] for r in record["rows"] if r["region"] == region and r["strategy"] == "iwuo")


def test_demo_model_segments_unseen_phantoms(tmp_path, demo_model):
    seeds = range(200, 210)
    assert max(seeds) < FIRST_TRAINING_SEED
    write_phantoms(tmp_path / "cases", len(seeds), seed=seeds[0], layout="cases")
    records = _evaluate(list_case_folders(tmp_path / "cases"), demo_model, tmp_path / "out")
    mean = {r: float(np.mean([m["metrics_before_correction"][r]["dice"] for m in records.values()]))
            for r in ("WT", "TC", "ET")}
    print("demo model on 10 unseen phantoms, mean Dice:", json.dumps(mean))
    for region, floor in PHANTOM_FLOORS.items():
        assert mean[region] >= floor, (region, mean[region])


@pytest.mark.slow
def test_demo_model_and_iwuo_evaluation_on_the_real_brats_cases(tmp_path, demo_model, brats_cases):
    records = _evaluate(list_case_folders(brats_cases), demo_model, tmp_path / "out")
    measured = {case: {r: round(v["dice"], 3) for r, v in record["metrics_before_correction"].items()}
                for case, record in records.items()}
    naubc = {case: round(_naubc(record, "WT"), 3) for case, record in records.items()}
    print("demo model on the BraTS cases:", json.dumps(measured), "IWUO WT nAUBC:", json.dumps(naubc))
    assert sorted(measured) == sorted(BRATS_MEASURED)
    for case, regions in BRATS_MEASURED.items():
        for region, value in regions.items():
            assert measured[case][region] >= value - 0.03, (case, region, measured[case][region])
    # The evaluation on real scans: IWUO's ranking is far better than random on every case (README: 0.93).
    assert all(v > 0.7 for v in naubc.values()), naubc
