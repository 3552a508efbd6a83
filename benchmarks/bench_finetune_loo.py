"""Benchmark: does fine-tuning the bundled model on a few corrected cases reduce the effort on the next?

    nice -n 10 python benchmarks/bench_finetune_loo.py [--epochs 5 --iterations 25 --work /tmp/iwuo_loo]

Leave-one-out over the real BraTS-2015 cases in ../shared/data/brats2015 (read only): for each
held-out case, the bundled phantom-trained model is fine-tuned with `iwuo train`'s code
(`training.train` on the 4-case dataset: its leave-one-out fold, the bundled model's own 2 mm
plans, no final validation) on the other cases' expert labels — what a perfect expert's corrections of those cases would be — and
the held-out case is analysed before (bundled model) and after (fine-tuned). Reported per
held-out case and region: Dice before and after, and the simulated correction effort (slices
and seconds, perfect expert, experts.TimeModel, slices in IWUO order) to reach a target Dice;
and the fine-tune's wall and CPU seconds. Nothing trained here ships: models go to --work
(outside the project). Writes benchmarks/results/finetune_loo.json after every case; then
`python scripts/readme_figures.py` writes the README's table and figures from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "brats2015"
RESULT = ROOT / "benchmarks" / "results" / "finetune_loo.json"
REGIONS = ("WT", "TC", "ET")
TARGETS = (0.80, 0.90)


def case_files(case: Path) -> tuple[list[Path], Path]:
    return [case / "Flair_subtrMeanDivStd.nii.gz", case / "T1c_subtrMeanDivStd.nii.gz"], case / "OTMultiClass.nii.gz"


def analyse(model_path: str, images: list[Path], fold: str):
    from IWUOSegmentationLib.data.case_images import CaseImages
    from IWUOSegmentationLib.nnunet.analysis import CaseAnalyzer
    from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings

    case = CaseImages.from_files([str(p) for p in images])
    settings = AnalysisSettings(device="cpu", members=("folds",), tta=False)  # one network, no mirroring
    result = CaseAnalyzer.open(model_path, settings, folds=[fold]).analyze(case)
    return result, case.spacing


def effort(result, reference: np.ndarray, spacing_xyz) -> dict:
    """Per region: Dice, and slices/seconds (perfect expert, IWUO order) to reach each target Dice."""
    from IWUOSegmentationLib.ranking.correction_time import TimeModel
    from IWUOSegmentationLib.ranking.slice_counts import slice_counts
    from IWUOSegmentationLib.ranking.slice_scores import region_mask, region_probability, score_slices, slice_axis
    from IWUOSegmentationLib.simulation.budget_curves import dice_curve
    from IWUOSegmentationLib.simulation.evaluation import seconds_per_slice
    from IWUOSegmentationLib.simulation.experts import PerfectExpert

    axis = slice_axis(spacing_xyz)
    out = {}
    for region in REGIONS:
        truth, pred = region_mask(reference, region), region_mask(result.label_map, region)
        prob = region_probability(result.probabilities, result.output_names, result.region_based, region)
        scores = score_slices(prob, pred, result.uncertainty["entropy"], axis)
        order = np.argsort(-scores.iwuo, kind="stable")
        corrected = PerfectExpert().correct(truth, axis)
        curve = dice_curve(slice_counts(pred, truth, corrected, axis), order)
        seconds = np.cumsum(seconds_per_slice(pred, corrected, axis, spacing_xyz, TimeModel())[order])
        row = {"dice": round(float(curve[0]), 4)}
        for target in TARGETS:
            k = int(np.argmax(curve >= target)) if (curve >= target).any() else None
            row[f"slices_to_{target:.2f}"] = k
            row[f"seconds_to_{target:.2f}"] = None if k is None else round(float(seconds[k - 1]) if k else 0.0, 1)
        out[region] = row
    return out


def write_dataset(raw: Path, cases: list[Path], dataset_json: dict) -> Path:
    from IWUOSegmentationLib.nnunet.training import export_corrected_dataset

    if raw.exists():
        shutil.rmtree(raw)
    items = []
    for case in cases:
        images, label = case_files(case)
        items.append({"name": case.name, "images": images, "label": label})
    return export_corrected_dataset(items, raw, dataset_json)


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _in_checkout(path: Path) -> str:
    """`path` relative to the checkout when it lies inside (a record that stays true on another machine)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> None:
    import torch

    from IWUOSegmentationLib.data.analysis_identity import file_sha256
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import open_model
    from IWUOSegmentationLib.nnunet.training import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--initial-lr", type=float, default=None)
    parser.add_argument("--work", default="/tmp/iwuo_finetune_loo")
    parser.add_argument("--resume", action="store_true",
                        help="keep the held-out cases already in the results file (same settings) and run the rest")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"No BraTS cases at {DATA}: nothing to measure.")
    torch.set_num_threads(2)
    os.environ.setdefault("nnUNet_def_n_proc", "2")
    os.environ.setdefault("nnUNet_n_proc_DA", "1")
    cases = sorted(p for p in DATA.iterdir() if p.is_dir())
    bundled = open_model(demo_model_folder())
    base_model = str(bundled.path)
    work = Path(args.work)
    report = {
        "what": "leave-one-out fine-tune of the bundled model on real BraTS-2015 cases (their expert labels = a "
                "perfect expert's corrections), each fold evaluated on its held-out case",
        "settings": {"epochs": args.epochs, "iterations_per_epoch": args.iterations,
                     "folds": "0-3 of the 4-case dataset: iwuo train's leave-one-out splits_final.json",
                     "final_validation": False, "initial_lr": args.initial_lr or 0.01,
                     "plans": "the bundled model's own (2 mm, its patch and network), moved to the dataset",
                     "pretrained_weights": f"{_in_checkout(bundled.path / 'fold_0')} (all layers)",
                     "pretrained_checkpoint_sha256": file_sha256(bundled.checkpoint_path("0")),
                     "analysis": "one network, no mirroring: before = bundled fold 0 (the fine-tune's start), "
                                 "after = the fine-tuned fold that did not see the case",
                     "effort": "perfect expert, slices in IWUO order (entropy), experts.TimeModel() seconds",
                     "targets": list(TARGETS), "nice": os.nice(0), "nnUNet_n_proc_DA": os.environ["nnUNet_n_proc_DA"]},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
                    "note": "2 cores shared with other jobs: wall seconds include waiting, CPU seconds do not"},
        "preprocessing": {}, "cases": [],
    }
    if args.resume and RESULT.is_file():
        previous = json.loads(RESULT.read_text())
        same = all(previous.get("settings", {}).get(k) == report["settings"][k]
                   for k in ("epochs", "iterations_per_epoch", "initial_lr"))
        if same:
            report["cases"], report["preprocessing"] = previous.get("cases", []), previous.get("preprocessing", {})
    done = {row["held_out"] for row in report["cases"]}
    raw = write_dataset(work / "raw" / "Dataset950_BraTSLOO", cases, bundled.dataset_json)
    for fold, held in enumerate(cases):
        if held.name in done:
            continue
        images, label = case_files(held)
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(label))).astype(np.int64)
        t0 = time.time()
        before, spacing = analyse(base_model, images, "0")
        before_seconds = time.time() - t0
        cpu0, t0 = child_cpu_seconds(), time.time()
        result = train(raw, work / "nnunet", [fold], epochs=args.epochs, iterations_per_epoch=args.iterations,
                       pretrained_weights=base_model, final_validation=False, initial_lr=args.initial_lr,
                       skip_preprocessing=True)  # preprocessed once (on the first fold), kept in --work
        train_wall, train_cpu = time.time() - t0, child_cpu_seconds() - cpu0
        record = result.training.get(str(fold), {})
        if fold == 0 and not report["preprocessing"]:
            report["preprocessing"] = {"note": "fold 0's train() call, with the fingerprint and preprocessing of the 4 "
                                               "cases when --work did not have them yet",
                                       "wall_seconds_with_fold_0": round(train_wall, 1)}
        t0 = time.time()
        after, _ = analyse(result.model_folder, images, str(fold))
        after_seconds = time.time() - t0
        row = {"held_out": held.name, "fold": fold, "trained_on": [c.name for c in cases if c != held],
               "splits": result.splits, "before": effort(before, reference, spacing),
               "after": effort(after, reference, spacing),
               "fine_tune_wall_seconds": round(train_wall, 1), "fine_tune_cpu_seconds": round(train_cpu, 1),
               "training_loop_wall_seconds": record.get("training_seconds"),
               "pseudo_dice_last_epoch": record.get("pseudo_dice_last_epoch"),
               "analysis_wall_seconds": {"before": round(before_seconds, 1), "after": round(after_seconds, 1)},
               "plans": result.plans}
        report["cases"].append(row)
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
