"""Benchmark: what calibrating the model to a site's finished reviews changes, leave one case out on 4 real BraTS cases.

    nice -n 10 python benchmarks/bench_calibration.py [--work /work/evalruns/calib24] [--draws 10] [--random-seeds 2000]

The 4 real BraTS-2015 cases of ../shared/data/brats2015 (read only), with the bundled model's 16-member analyses
(8 flips x 2 folds) that the evaluation made (read only; --analyses names them). Each case becomes a finished
review as the front ends leave it (`finished_review`): its analysis, a budget log and the corrected segmentation,
which is the case's expert reference, as bench_finetune_loo.py takes the reference for what a perfect expert's
corrections would give. The whole tumour extent counts as reviewed: every slice with reference or predicted
tumour is logged as corrected. The logs carry no seconds (there are no real review logs of these cases), so the
time model is not fitted: `iwuo calibrate` says so and the evaluation keeps the assumed correction_time.TimeModel().

For each held-out case: `iwuo calibrate`'s fit (review/site_calibration.calibrate_reviews) on the other 3
reviews, applied to the held-out case's analysis (data/calibration.apply_calibration, label map kept). Per
structure (WT, TC, ET): expected Dice (the product's, ranking/slice_scores.impact_per_slice) before and after
against the measured Dice; log loss and expected calibration error on the held-out case's reviewed voxels
(stratified sample with weights, as the fit's own held-out report: review/site_calibration.sample_reviewed_voxels);
reliability bins pooled over the 4 held-out cases (benchmarks/results/calibration_reliability.png); the method
chosen per structure and fold; the default ranking's nAUBC on the time axis with the correcting expert before
and after, replayed by `iwuo evaluate --replay-only [--calibration]`'s code (simulation/evaluate_folders.
evaluate_folder_case, the protocol's seeds and 600 s, `--draws` expert draws, `--random-seeds` random orderings;
the uncalibrated replay is checked against the protocol evaluation's own per-case value); and why Pearson r of
expected vs measured Dice changes sign (`sign_flip_diagnostic`).
Writes benchmarks/results/calibration.json; `python scripts/readme_figures.py` writes the README's figures from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune_loo import DATA, ROOT, case_files  # noqa: E402  (the same cases, read the same way)

RESULT = ROOT / "benchmarks" / "results" / "calibration.json"
FIGURE = ROOT / "benchmarks" / "results" / "calibration_reliability.png"
EVALRUNS = Path("/work/evalruns")
#: The evaluation's 16-member analyses of the 4 cases (development: pat0001-2, confirmation: pat0003-4).
ANALYSES = {f"brats_2013_pat000{i}_1": EVALRUNS / ("dev_brats" if i <= 2 else "conf_brats") / "cases"
            / f"brats_2013_pat000{i}_1" / "analysis" for i in (1, 2, 3, 4)}
SAMPLE_SEED = 1  # the held-out case's voxel sample (the fit draws with its own seed)


def finished_review(case_dir: Path, analysis: Path, root: Path):
    """A finished review of `case_dir` in `root/<case>` as the front ends leave it: the analysis (a link, read
    only), the corrected segmentation (the expert reference) and a budget log in which every slice with reference
    or predicted tumour along the ranked axis is corrected (with the voxels the reference changes) or, where it
    changes none, marked corrected. No seconds are logged: these are not real review sessions."""
    from IWUOSegmentationLib.ranking.slice_scores import slice_axis
    from IWUOSegmentationLib.review.budget_log import BudgetLog
    from IWUOSegmentationLib.review.folder import ReviewFolder
    from IWUOSegmentationLib.storage.atomic_files import atomic_write_image

    folder = ReviewFolder(root / case_dir.name)
    folder.root.mkdir(parents=True, exist_ok=True)
    if not folder.analysis.is_symlink():
        folder.analysis.symlink_to(analysis, target_is_directory=True)
    prediction_image = sitk.ReadImage(str(analysis / "segmentation.nii.gz"))
    prediction = sitk.GetArrayFromImage(prediction_image)
    reference_image = sitk.ReadImage(str(case_files(case_dir)[1]))
    reference = sitk.GetArrayFromImage(reference_image).astype(np.uint8)
    corrected = sitk.GetImageFromArray(reference)
    corrected.CopyInformation(prediction_image)
    atomic_write_image(folder.corrected, corrected)
    axis = slice_axis(prediction_image.GetSpacing())
    reviewed = reviewed_slices(prediction, reference, axis)
    folder.log.unlink(missing_ok=True)
    log = BudgetLog(folder.log)
    log.append("session_started", budget_slices=len(reviewed), n_ranked=prediction.shape[axis], axis=axis, target=None)
    before, after = np.moveaxis(prediction, axis, 0), np.moveaxis(reference, axis, 0)
    for rank, s in enumerate(reviewed, 1):
        added = {str(v): int(((after[s] == v) & (before[s] != v)).sum()) for v in np.unique(after[s]) if v}
        removed = {str(v): int(((before[s] == v) & (after[s] != v)).sum()) for v in np.unique(before[s]) if v}
        added, removed = {k: n for k, n in added.items() if n}, {k: n for k, n in removed.items() if n}
        if added or removed:
            log.append("slice_corrected", slice=s, rank=rank, voxels_added=added, voxels_removed=removed)
        else:
            log.append("slice_marked_corrected", slice=s, rank=rank)
    return folder, axis, reviewed


def reviewed_slices(prediction: np.ndarray, reference: np.ndarray, axis: int) -> list[int]:
    """Slices along `axis` with reference or predicted tumour: the whole tumour extent counts as reviewed."""
    tumour = np.moveaxis((prediction > 0) | (reference > 0), axis, 0).reshape(prediction.shape[axis], -1).any(1)
    return np.flatnonzero(tumour).tolist()


def held_out_measures(analysis, calibrated, reference: np.ndarray, axis: int, reviewed: list[int], structures,
                      calibration) -> tuple[dict, dict]:
    """Per region: expected Dice before/after, measured Dice, log loss and ECE before/after on the reviewed voxels;
    and the voxel samples (for the pooled reliability diagram)."""
    from IWUOSegmentationLib.data.calibration_metrics import binary_log_loss, expected_calibration_error
    from IWUOSegmentationLib.data.structures import evaluation_regions
    from IWUOSegmentationLib.ranking.slice_counts import dice
    from IWUOSegmentationLib.ranking.slice_scores import impact_per_slice
    from IWUOSegmentationLib.review.site_calibration import sample_reviewed_voxels

    probabilities, truth, weights, _ = sample_reviewed_voxels(analysis.probabilities, analysis.label_map, reference,
                                                              axis, reviewed, np.random.default_rng(SAMPLE_SEED))
    sampled = {"before": probabilities, "after": calibration.calibrate(probabilities)}
    out, samples = {}, {}
    for name, region in evaluation_regions(structures).items():
        pred, gold = region.structure.mask(analysis.label_map), region.reference_mask(reference)
        y = region.reference_mask(truth)
        row = {"structure": region.structure.name, "method": calibration.methods.get(region.structure.name, "none"),
               "measured_dice": round(float(dice((pred & gold).sum(), (pred & ~gold).sum(), (~pred & gold).sum())), 4)}
        for when, result in (("before", analysis), ("after", calibrated)):
            p = region.structure.probability(sampled[when])
            row[f"expected_dice_{when}"] = round(float(impact_per_slice(region.structure.probability(result.probabilities),
                                                                        pred, axis)[1]), 4)
            row[f"log_loss_{when}"] = round(binary_log_loss(p, y, weights), 5)
            row[f"ece_{when}"] = round(expected_calibration_error(p, y, weights), 5)
            samples[(name, when)] = (p, y, weights)
        out[name] = row
    return out, samples


def ranking_naubc(case_dir: Path, analysis: Path, out_case: Path, draws: int, seeds: int, calibration=None) -> dict:
    """The default ranking's nAUBC on the time axis (mean over regions and per region), correcting expert: the case
    replayed by `iwuo evaluate --replay-only [--calibration FILE]`'s own code (simulation/evaluate_folders.
    evaluate_folder_case, the analysis linked read-only into `out_case`), the protocol's configuration but `draws`
    expert draws and `seeds` random orderings, and only the strategies nAUBC needs (the default, random, the oracles)."""
    from IWUOSegmentationLib.ranking.strategies import DEFAULT_RANKING
    from IWUOSegmentationLib.simulation.evaluate_folders import evaluate_folder_case
    from IWUOSegmentationLib.simulation.evaluation_config import EvaluationConfig

    config = EvaluationConfig(strategies=(DEFAULT_RANKING,), experts=("noisy",), expert_draws=draws, random_seeds=seeds,
                              calibration=calibration)
    out_case.mkdir(parents=True, exist_ok=True)
    if not (out_case / "analysis").is_symlink():
        (out_case / "analysis").symlink_to(analysis, target_is_directory=True)
    rows = evaluate_folder_case(case_dir, None, None, out_case, config)["rows"]
    return {row["region"]: row["naubc_seconds"] for row in rows
            if row["strategy"] == DEFAULT_RANKING and row["expert"] == "noisy"}


def protocol_naubc(evaluated_case: Path) -> dict:
    """The default ranking's per-case nAUBC on the time axis, correcting expert, in the evaluation that made the
    analysis (its evaluation.json, read only): what the uncalibrated replay must reproduce."""
    from IWUOSegmentationLib.ranking.strategies import DEFAULT_RANKING

    rows = json.loads((evaluated_case / "evaluation.json").read_text())["rows"]
    return {row["region"]: row["naubc_seconds"] for row in rows
            if row["strategy"] == DEFAULT_RANKING and row["expert"] == "noisy"}


def sign_flip_diagnostic(cases: list[Path], calibration_files: dict, reviewed: dict, axes: dict, structures,
                         measured: dict) -> dict:
    """Why Pearson r of expected vs measured Dice changes sign after calibration (a diagnosis, nothing is tuned):
    every fold's calibration applied to every case (expected Dice, the product's, on the whole volume and on the
    reviewed slices only); r with one calibration for all 4 cases (3 of them in its fit) against r with each case's
    own leave-one-out calibration; and the share of the calibrated probability mass on slices nobody reviewed."""
    from IWUOSegmentationLib.data.analysis_files import read_analysis
    from IWUOSegmentationLib.data.calibration import load_calibration
    from IWUOSegmentationLib.data.structures import evaluation_regions
    from IWUOSegmentationLib.ranking.slice_scores import impact_per_slice

    regions = evaluation_regions(structures)
    calibrations = {c: load_calibration(path) for c, path in calibration_files.items()}
    whole: dict = {}  # (region, calibration's held-out case, case) -> expected Dice
    on_reviewed: dict = {}
    unreviewed_mass: dict = {}
    for case in cases:
        analysis = read_analysis(ANALYSES[case.name])
        axis, keep = axes[case.name], np.zeros(analysis.label_map.shape[axes[case.name]], bool)
        keep[reviewed[case.name]] = True
        for held, calibration in calibrations.items():
            probabilities = calibration.calibrate(analysis.probabilities)
            for name, region in regions.items():
                p = region.structure.probability(probabilities)
                pred = region.structure.mask(analysis.label_map)
                whole[(name, held, case.name)] = impact_per_slice(p, pred, axis)[1]
                inside = np.moveaxis(p, axis, 0)[keep]
                on_reviewed[(name, held, case.name)] = impact_per_slice(inside, np.moveaxis(pred, axis, 0)[keep], 0)[1]
                if held == case.name:
                    unreviewed_mass[(name, case.name)] = float(1.0 - inside.sum(dtype=np.float64) / p.sum(dtype=np.float64))
    names = [c.name for c in cases]
    out = {}
    for name in regions:
        y = [measured[(name, c)] for c in names]
        same = [float(np.corrcoef([whole[(name, held, c)] for c in names], y)[0, 1]) for held in names]
        out[name] = {
            "pearson_r_held_out": round(float(np.corrcoef([whole[(name, c, c)] for c in names], y)[0, 1]), 4),
            "pearson_r_one_calibration_for_all": [round(v, 4) for v in same],
            "pearson_r_held_out_reviewed_slices_only": round(float(np.corrcoef(
                [on_reviewed[(name, c, c)] for c in names], y)[0, 1]), 4),
            "expected_dice_matrix": {held: {c: round(float(whole[(name, held, c)]), 4) for c in names} for held in names},
            "unreviewed_probability_mass_share": {c: round(unreviewed_mass[(name, c)], 4) for c in names}}
    return out


def errors(expected: list[float], measured: list[float]) -> dict:
    e, m = np.asarray(expected), np.asarray(measured)
    return {"mae": round(float(np.abs(e - m).mean()), 4), "pearson_r": round(float(np.corrcoef(e, m)[0, 1]), 4)}


def reliability_figure(samples: dict, regions: list[str], path: Path) -> dict:
    """Pooled reliability bins per region before/after, drawn as one panel per region; the bins are returned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from IWUOSegmentationLib.data.calibration_metrics import expected_calibration_error, reliability_bins

    bins = {}
    fig, axes = plt.subplots(1, len(regions), figsize=(4.2 * len(regions), 4.2), sharey=True)
    for ax, region in zip(np.atleast_1d(axes), regions):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        for when, colour in (("before", "tab:red"), ("after", "tab:blue")):
            p, y, w = (np.concatenate(parts) for parts in zip(*samples[(region, when)]))
            b = reliability_bins(p, y, w)
            bins[f"{region}|{when}"] = {k: [round(v, 5) for v in values] for k, values in b.items()}
            ece = expected_calibration_error(p, y, w)
            ax.plot(b["mean_probability"], b["observed_frequency"], "o-", color=colour, ms=4,
                    label=f"{when} (ECE {ece:.3f})")
        ax.set_title(f"{region}: held-out reviewed voxels, 4 cases")
        ax.set_xlabel("predicted probability")
        ax.legend(loc="upper left", fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("observed frequency")
    fig.suptitle("Calibration fitted on 3 reviews, applied to the 4th (leave one case out, real BraTS-2015)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return bins


def main() -> None:
    from IWUOSegmentationLib.data.analysis_files import read_analysis
    from IWUOSegmentationLib.data.calibration import apply_calibration, load_calibration
    from IWUOSegmentationLib.data.structures import evaluation_regions, structures_from_dataset_json
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import open_model
    from IWUOSegmentationLib.ranking.strategies import DEFAULT_RANKING
    from IWUOSegmentationLib.review.site_calibration import calibrate_reviews

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(EVALRUNS / "calib24"), help="review folders and calibration files go here")
    parser.add_argument("--draws", type=int, default=10, help="correcting-expert draws per case (the protocol's: 10)")
    parser.add_argument("--random-seeds", type=int, default=2000,
                        help="orderings of the random baseline (the protocol's: 2000)")
    parser.add_argument("--no-ranking", action="store_true", help="skip the nAUBC replays")
    args = parser.parse_args()
    cases = sorted(p for p in DATA.iterdir() if p.is_dir())
    missing = [str(ANALYSES[c.name]) for c in cases if not (ANALYSES[c.name] / "summary.json").is_file()]
    if missing:
        raise SystemExit(f"The evaluation's analyses are not there yet: {', '.join(missing)}")
    model = open_model(demo_model_folder())
    structures = structures_from_dataset_json(model.dataset_json)
    regions = list(evaluation_regions(structures))
    work = Path(args.work)
    started = time.time()
    reviews, axes, reviewed = {}, {}, {}
    for case in cases:
        members = json.loads((ANALYSES[case.name] / "summary.json").read_text())["members"]["n_members"]
        if members != 16:
            raise SystemExit(f"{ANALYSES[case.name]} has {members} members, not 16")
        reviews[case.name], axes[case.name], reviewed[case.name] = finished_review(case, ANALYSES[case.name],
                                                                                   work / "reviews")
    build_seconds = time.time() - started
    report = {
        "what": "leave-one-case-out site calibration on the 4 real BraTS-2015 cases: fitted by iwuo calibrate's code "
                "on 3 finished reviews (the reference as the corrections), applied to the 4th case's analysis",
        "settings": {
            "analyses": {c: str(p) for c, p in ANALYSES.items()}, "members": 16,
            "reviewed_slices": "every slice with reference or predicted tumour along the ranked axis (the whole "
                               "tumour extent counts as reviewed)",
            "held_out_voxels": "stratified sample of the held-out case's reviewed slices with weights (30 000 boundary "
                               "band, 10 000 predicted foreground, 10 000 background; seed 1), as the fit's own "
                               "held-out report",
            "expected_dice": "ranking/slice_scores.impact_per_slice on the whole volume (the product's)",
            "label_map": "unchanged (no relabelling)",
            "ranking": f"{DEFAULT_RANKING} (ranking/strategies.DEFAULT_RANKING), entropy map, correcting expert, "
                       f"{args.draws} draws (the protocol's draw seeds), random baseline over {args.random_seeds} "
                       f"orderings{'' if args.random_seeds == 2000 else ' (the protocol has 2000: fewer to fit the time)'}"
                       ", 600 s time budget, normalised by the time oracle (oracle_time); replayed by iwuo evaluate "
                       "--replay-only's code (simulation/evaluate_folders.evaluate_folder_case), with --calibration "
                       "for 'after'; only the default ranking and the references nAUBC needs (random, oracles)",
            "random_seeds": args.random_seeds,
            "time_model": "not fitted: the 4 cases have no real review logs (their logs here carry no seconds), and "
                          "fitting it from times simulated with the assumed constants would only return them; the "
                          "replays keep ranking/correction_time.TimeModel() (8 s per slice looked at, 0.15 s per mm)",
            "nice": os.nice(0)},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "note": "2 cores shared with other jobs: wall seconds include waiting"},
        "reviewed_slices": {c: len(v) for c, v in reviewed.items()},
        "build_reviews_wall_seconds": round(build_seconds, 1), "folds": []}
    samples: dict = {}
    for case in cases:
        others = [reviews[c.name].root for c in cases if c != case]
        t0 = time.time()
        fitted = calibrate_reviews(others, model, work / f"held_out_{case.name}" / "calibration.json")
        fit_seconds = time.time() - t0
        calibration = load_calibration(fitted.path, fitted.data["model_identity"])
        analysis = read_analysis(ANALYSES[case.name])
        calibrated = apply_calibration(calibration, analysis)
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(case_files(case)[1]))).astype(np.int64)
        measures, case_samples = held_out_measures(analysis, calibrated, reference, axes[case.name], reviewed[case.name],
                                                   structures, calibration)
        for key, value in case_samples.items():
            samples.setdefault(key, []).append(value)
        fold = {"held_out": case.name, "fitted_on": [Path(p).name for p in others],
                "calibrate_wall_seconds": round(fit_seconds, 1),
                "label_map_unchanged": bool(np.array_equal(calibrated.label_map, analysis.label_map)),
                "time_model": fitted.summary["time_model"], "held_out_split": fitted.data["held_out_split"],
                "fit_report": fitted.summary["structures"], "regions": measures}
        if not args.no_ranking:
            t0 = time.time()
            replays = work / "replays" / case.name
            before = ranking_naubc(case, ANALYSES[case.name], replays / "before" / case.name, args.draws,
                                   args.random_seeds)
            after = ranking_naubc(case, ANALYSES[case.name], replays / "after" / case.name, args.draws,
                                  args.random_seeds, calibration)
            fold["naubc_seconds"] = {"before": before, "after": after}
            fold["before_equals_the_protocol_evaluation"] = before == protocol_naubc(ANALYSES[case.name].parent)
            fold["replay_wall_seconds"] = round(time.time() - t0, 1)
        report["folds"].append(fold)
        print(json.dumps({k: fold[k] for k in ("held_out", "calibrate_wall_seconds", "regions")}), flush=True)
    summary = {}
    for region in regions:
        rows = [f["regions"][region] for f in report["folds"]]
        measured = [r["measured_dice"] for r in rows]
        summary[region] = {when: {**errors([r[f"expected_dice_{when}"] for r in rows], measured),
                                  "mean_log_loss": round(float(np.mean([r[f"log_loss_{when}"] for r in rows])), 5),
                                  "mean_ece": round(float(np.mean([r[f"ece_{when}"] for r in rows])), 5)}
                           for when in ("before", "after")}
        summary[region]["methods"] = [r["method"] for r in rows]
    report["summary"] = summary
    t0 = time.time()
    measured = {(region, f["held_out"]): f["regions"][region]["measured_dice"] for f in report["folds"] for region in regions}
    report["pearson_r_diagnostic"] = sign_flip_diagnostic(
        cases, {c.name: work / f"held_out_{c.name}" / "calibration.json" for c in cases}, reviewed, axes, structures,
        measured)
    report["diagnostic_wall_seconds"] = round(time.time() - t0, 1)
    if not args.no_ranking:
        report["naubc_seconds_mean"] = {when: {region: round(float(np.mean([f["naubc_seconds"][when][region]
                                                                             for f in report["folds"]])), 4)
                                               for region in [*regions, "mean"]} for when in ("before", "after")}
    report["reliability_bins"] = reliability_figure(samples, regions, FIGURE)
    report["figure"] = str(FIGURE.relative_to(ROOT))
    report["wall_seconds"] = round(time.time() - started, 1)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"summary": summary, "naubc_seconds_mean": report.get("naubc_seconds_mean")}, indent=2))


if __name__ == "__main__":
    main()
