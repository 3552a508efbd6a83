"""Calibrate to the site: the probability calibration and the expert time model fitted from finished reviews.

Synthetic data with known answers: probabilities sigmoid(z) of an overconfident model whose truth is drawn
from sigmoid(z / T); review logs whose seconds are look x visits + s/mm x added path length, with noise
and idle gaps. The review folders are written by the real writers (analysis folder, budget log, NIfTI)
with the bundled demo model's identity and small arrays; `iwuo calibrate` is the real command.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from IWUOSegmentationLib.data.calibration import (
    apply_calibration,
    calibration_from_data,
    calibration_text,
    load_calibration,
    model_key,
    sigmoid,
)
from IWUOSegmentationLib.data.case_images import AnalysisResult
from IWUOSegmentationLib.data.structures import structures_from_labels
from IWUOSegmentationLib.errors import BadCalibrationError, BadInputError
from IWUOSegmentationLib.review import time_model_fit
from IWUOSegmentationLib.review.calibration_fit import (
    VoxelSamples,
    fit_logistic,
    fit_softmax_temperatures,
    fit_transform,
)
from IWUOSegmentationLib.review.time_model_fit import SliceTiming, fit_time_model, slice_timings

ROOT = Path(__file__).resolve().parent.parent
IWUO = shutil.which("iwuo", path=str(Path(sys.executable).parent)) or shutil.which("iwuo")
OUTPUTS = ["whole_tumor", "tumor_core", "enhancing_tumor"]
WRITTEN = {"background": 0, "whole_tumor": 2, "tumor_core": 1, "enhancing_tumor": 4}
LOOK, PER_MM = 8.0, 0.15


# -- synthetic data ------------------------------------------------------------------------------------
def _overconfident(rng, n, t_true, scale=4.0):
    """Logits z, the model's probabilities sigmoid(z), and truth drawn from sigmoid(z / t_true)."""
    z = rng.normal(0.0, scale, n)
    return z, np.asarray(sigmoid(z), float), rng.random(n) < 1.0 / (1.0 + np.exp(-z / t_true))


def _timings(rng, n, changed_fraction=0.6, sd=0.35, idle=0, review="r"):
    changed = rng.random(n) < changed_fraction
    path = np.where(changed, rng.gamma(2.0, 40.0, n), 0.0)
    visits = 1 + (rng.random(n) < 0.1)
    seconds = (LOOK * visits + PER_MM * path) * rng.lognormal(0.0, sd, n)
    seconds[rng.choice(n, idle, replace=False)] += rng.uniform(300, 900, idle)  # the reviewer was called away
    return [SliceTiming(review, i, float(s), int(v), float(p)) for i, (s, v, p) in enumerate(zip(seconds, visits, path))]


def _demo_model(dropout=False):
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import open_model

    return open_model(demo_model_folder(dropout))


def _fields(rng, shape, t_true):
    """Nested region logits (WT >= TC >= ET), the overconfident probabilities, and truth masks drawn with one
    uniform per voxel from sigmoid(z / t_true), so the true regions nest as BraTS regions do."""
    grid = np.indices(shape).astype(float)
    centre = np.array(shape, float)[:, None, None, None] / 2 + rng.normal(0, 1.5, (3, 1, 1, 1))
    radius = np.sqrt((((grid - centre) * np.array([0.5, 1, 1])[:, None, None, None]) ** 2).sum(0))
    noise = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.5) * 6
    z = np.stack([2.0 * (r - radius) + noise for r in (11.0, 7.0, 4.0)])
    u = rng.random(shape)
    truth = [u < 1 / (1 + np.exp(-zr / t_true)) for zr in z]
    return z, np.asarray(sigmoid(z), np.float32), truth


def _label_map(masks):
    out = np.zeros(masks[0].shape, np.uint8)
    for name, mask in zip(OUTPUTS, masks):  # later (nested) regions win, as nnU-Net writes regions
        out[mask] = WRITTEN[name]
    return out


def _write_review(folder: Path, rng, model, t_true=2.0, shape=(24, 32, 32), reviewed=18):
    """A review folder as the front ends leave it: analysis (real writer), budget log (real writer) with timed
    visits, corrected segmentation = the truth on the corrected slices."""
    from IWUOSegmentationLib.data.analysis_files import write_analysis
    from IWUOSegmentationLib.data.case_images import CaseImages
    from IWUOSegmentationLib.data.structures import evaluation_regions
    from IWUOSegmentationLib.ranking.correction_time import path_length_per_slice
    from IWUOSegmentationLib.review.budget_log import BudgetLog

    z, probabilities, truth = _fields(rng, shape, t_true)
    prediction = _label_map([p > 0.5 for p in probabilities])
    reference = _label_map(truth)
    corrected_slices = sorted(rng.choice(shape[0], reviewed, replace=False).tolist())
    corrected = prediction.copy()
    corrected[corrected_slices] = reference[corrected_slices]
    entropy = -(probabilities * np.log(probabilities + 1e-7) + (1 - probabilities) * np.log(1 - probabilities + 1e-7)).sum(0)
    uncertainty = {"entropy": entropy, "variance": np.full(shape, 0.01, np.float32),
                   "mutual_information": entropy / 4, "disagreement": np.zeros(shape, np.float32),
                   "member_variance": probabilities * (1 - probabilities) / 4}
    case = CaseImages(arrays=[rng.normal(0, 1, shape).astype(np.float32) for _ in range(2)], spacing=(1.0, 1.0, 2.0))
    result = AnalysisResult(label_map=prediction, probabilities=probabilities, uncertainty=uncertainty,
                            output_names=OUTPUTS, region_based=True, members={"n_members": 2}, seconds=0.0)
    write_analysis(result, case, folder / "analysis", model.describe())
    sitk.WriteImage(case.to_image(corrected), str(folder / "corrected_segmentation.nii.gz"), True)
    structures = structures_from_labels(model.labels)
    path = sum(path_length_per_slice(r.structure.mask(prediction), r.structure.mask(corrected), 0, case.spacing)
               for r in evaluation_regions(structures).values())
    log = BudgetLog(folder / "review.budget.jsonl")
    log.append("session_started", budget_slices=20, n_ranked=shape[0], axis=0, target=None)
    for rank, s in enumerate(rng.permutation(shape[0]).tolist(), 1):
        seconds = (LOOK + PER_MM * path[s]) * rng.lognormal(0.0, 0.2)
        if s in corrected_slices and path[s] > 0:
            log.append("slice_corrected", slice=s, rank=rank, seconds=round(0.7 * seconds, 3),
                       voxels_added={"2": 1}, voxels_removed={})
            log.append("slice_shown", slice=s, rank=rank, seconds=round(0.3 * seconds, 3))
        elif s in corrected_slices:  # looked at and marked done: no edit
            log.append("slice_corrected", slice=s, rank=rank, seconds=round(seconds, 3), voxels_added={},
                       voxels_removed={})
        else:
            log.append("slice_shown", slice=s, rank=rank, seconds=round(seconds, 3))
    return folder


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _iwuo(*args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    assert IWUO, "the iwuo command is not installed next to this Python"
    path = [str(ROOT / "IWUOSegmentation"), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p))
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([IWUO, "--progress", "none", *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """Three finished reviews of the demo model (truth drawn with temperature 2) in one folder."""
    root = tmp_path_factory.mktemp("reviews")
    model = _demo_model()
    rng = np.random.default_rng(5)
    for i in range(3):
        (root / f"case{i}").mkdir()
        _write_review(root / f"case{i}", rng, model)
    return root


# -- the probability calibration ----------------------------------------------------------------------
def test_the_fit_recovers_a_known_temperature():
    """Must show: truth ~ Bernoulli(sigmoid(z / 2)), the model says sigmoid(z): the fitted T is 2 (+-10 %)."""
    z, _, y = _overconfident(np.random.default_rng(0), 40_000, 2.0)
    a, b = fit_logistic(z, y, np.ones(len(z)), intercept=False)
    assert b == 0.0 and 1 / a == pytest.approx(2.0, rel=0.10)
    for t_true in (0.7, 3.0):  # underconfident too
        z, _, y = _overconfident(np.random.default_rng(1), 40_000, t_true)
        assert 1 / fit_logistic(z, y, np.ones(len(z)), intercept=False)[0] == pytest.approx(t_true, rel=0.10)


def test_a_softmax_temperature_is_recovered_too():
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 3.0, (3, 30_000))
    true = np.exp(logits / 1.8)
    true /= true.sum(0)
    y = np.minimum((rng.random(true.shape[1])[None] > np.cumsum(true, 0)).sum(0), 2)
    model = np.exp(logits) / np.exp(logits).sum(0)
    t = fit_softmax_temperatures(model, y, np.ones(len(y)), per_class=False)
    assert t[0] == pytest.approx(1.8, rel=0.10)


def test_the_held_out_choice_calibrates_and_records_every_candidate():
    """Per region, the transform chosen on held-out groups brings the probabilities to the truth's: on a grid of
    logits the calibrated probability is within 0.03 of sigmoid(z / T_true), and 'none' lost on held-out voxels."""
    rng = np.random.default_rng(3)
    z, p, y = _overconfident(rng, 20_000, 2.5)
    structures = structures_from_labels({"background": 0, "tumour": [1, 2]})
    samples = VoxelSamples(p[None].astype(np.float32), np.where(y, 1, 0), np.ones(len(p)), rng.integers(0, 4, len(p)))
    transform, held_out, skipped = fit_transform(samples, structures, 1)
    spec = transform["channels"][0]
    assert not skipped and spec["method"] in ("temperature", "platt", "isotonic")
    assert set(spec["held_out_log_loss"]) == {"none", "temperature", "platt", "isotonic"}
    assert min(spec["held_out_log_loss"].values()) < spec["held_out_log_loss"]["none"] - 0.01
    data = _calibration_data(transform)
    grid = np.linspace(-8, 8, 33)
    calibrated = calibration_from_data(data).calibrate(np.asarray(sigmoid(grid))[None])[0]
    assert np.abs(calibrated - 1 / (1 + np.exp(-grid / 2.5))).max() < 0.03


def test_a_label_model_is_calibrated_as_one_softmax_and_its_union_follows():
    """Label (softmax) models: the classes are fitted together; 'all foreground' is derived from them; a class the
    reviewed voxels hardly hold leaves only the shared temperature to try, and says so."""
    from IWUOSegmentationLib.review.calibration_fit import structure_report

    rng = np.random.default_rng(8)
    logits = rng.normal(0.0, 3.0, (3, 20_000))
    true = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum(0)
    y = np.minimum((rng.random(true.shape[1])[None] > np.cumsum(true, 0)).sum(0), 2)
    model = (np.exp(logits) / np.exp(logits).sum(0)).astype(np.float32)
    structures = structures_from_labels({"background": 0, "a": 1, "b": 2})
    samples = VoxelSamples(model, y, np.ones(len(y)), rng.integers(0, 3, len(y)))
    transform, held_out, skipped = fit_transform(samples, structures, 3)
    assert transform["method"] in ("temperature", "class_temperatures") and not skipped
    report = structure_report(samples, held_out, structures, transform, skipped)
    assert report["all foreground"]["method"] == "derived from a, b"
    for row in report.values():
        assert row["held_out"]["log_loss_after"] < row["held_out"]["log_loss_before"]
    rare = VoxelSamples(model, np.where(y == 2, 0, y), np.ones(len(y)), samples.groups)
    rare.truth[:10] = 2
    transform, _, skipped = fit_transform(rare, structures, 3)
    assert set(transform["held_out_log_loss"]) == {"none", "temperature"} and "b below 50" in skipped["per-class candidates"]


def test_the_held_out_split_keeps_each_case_or_slab_whole():
    """Cases (or, with one case, slabs of consecutive reviewed slices) are held out whole, never voxel by voxel."""
    from IWUOSegmentationLib.review.calibration_fit import held_out_folds
    from IWUOSegmentationLib.review.site_calibration import slab_groups

    slices = np.repeat([3, 4, 5, 9, 10, 11, 12, 20, 21, 30], 7)
    slabs = slab_groups(slices)
    assert len(np.unique(slabs)) == 5 and np.all(np.diff(slabs) >= 0)  # consecutive slices share a slab
    groups = np.random.default_rng(0).integers(0, 7, 500)
    folds = held_out_folds(groups)
    assert len(folds) == 5
    for fit, held_out in folds:
        assert not set(groups[fit]) & set(groups[held_out])
    with pytest.raises(BadCalibrationError, match="at least two reviewed slices"):
        held_out_folds(np.zeros(50, int))


def _calibration_data(transform, outputs=("tumour",), region_based=True, written=None, identity=None):
    identity = identity or {"configuration": "3d", "folds": ["0"], "checkpoint": "c.pth", "files": {"plans.json": "x"}}
    return {"format": "iwuo-calibration", "version": 1, "model_identity": identity, "model_key": model_key(identity),
            "outputs": list(outputs), "region_based": region_based,
            "written_labels": written or {o: i + 1 for i, o in enumerate(outputs)}, "transform": transform,
            "structures": {}, "fitted_on": [{"review": "r"}], "voxels": 100}


def _analysis(rng, region_based=True, shape=(6, 20, 20)):
    if region_based:
        z, probabilities, _ = _fields(rng, shape, 1.0)
        label_map = _label_map([p > 0.5 for p in probabilities])
        outputs = OUTPUTS
    else:
        probabilities = np.exp(rng.normal(0, 3, (3, *shape))).astype(np.float32)
        probabilities /= probabilities.sum(0)
        label_map = np.argmax(probabilities, 0).astype(np.uint8)
        outputs = ["background", "a", "b"]
    uncertainty = {"entropy": np.zeros(shape, np.float32), "variance": rng.random(shape).astype(np.float32),
                   "mutual_information": rng.random(shape).astype(np.float32),
                   "disagreement": rng.random(shape).astype(np.float32),
                   "member_variance": rng.random((3, *shape)).astype(np.float32)}
    return AnalysisResult(label_map=label_map, probabilities=probabilities, uncertainty=uncertainty,
                          output_names=outputs, region_based=region_based, members={}, seconds=0.0)


def test_calibrated_probabilities_keep_the_label_map_unless_relabelling_is_asked_for():
    """Must show: a Platt offset and class temperatures move the 0.5 crossing and the argmax; the label map stays
    identical unless relabel=True, the entropy follows the new probabilities, the member-spread maps stay."""
    rng = np.random.default_rng(4)
    analysis = _analysis(rng)
    platt = {"method": "platt", "a": 0.5, "b": -2.0}
    calibration = calibration_from_data(_calibration_data({"channels": [platt] * 3}, OUTPUTS, True, WRITTEN))
    kept = apply_calibration(calibration, analysis)
    assert np.array_equal(kept.label_map, analysis.label_map)
    assert not np.allclose(kept.probabilities, analysis.probabilities)
    relabelled = apply_calibration(calibration, analysis, relabel=True)
    assert (relabelled.label_map != analysis.label_map).sum() > 50  # the same calibration does move decisions
    assert np.array_equal(relabelled.label_map, _label_map([p > 0.5 for p in relabelled.probabilities]))
    q = np.clip(kept.probabilities, 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(kept.uncertainty["entropy"], -(q * np.log(q) + (1 - q) * np.log(1 - q)).sum(0), rtol=1e-4)
    for name in ("variance", "mutual_information", "disagreement", "member_variance"):
        assert kept.uncertainty[name] is analysis.uncertainty[name]

    softmax_model = _analysis(rng, region_based=False)
    spec = {"method": "class_temperatures", "temperatures": [0.3, 3.0, 1.0]}
    calibration = calibration_from_data(_calibration_data(spec, softmax_model.output_names, False,
                                                          {"background": 0, "a": 1, "b": 2}))
    kept = apply_calibration(calibration, softmax_model)
    assert np.array_equal(kept.label_map, softmax_model.label_map)
    moved = apply_calibration(calibration, softmax_model, relabel=True)
    assert (moved.label_map != softmax_model.label_map).sum() > 50
    np.testing.assert_allclose(kept.probabilities.sum(0), 1.0, atol=1e-5)


def test_a_temperature_never_moves_a_decision():
    rng = np.random.default_rng(6)
    analysis = _analysis(rng)
    calibration = calibration_from_data(_calibration_data({"channels": [{"method": "temperature", "temperature": 2.7}] * 3},
                                                          OUTPUTS, True, WRITTEN))
    assert np.array_equal(apply_calibration(calibration, analysis, relabel=True).label_map, analysis.label_map)


@pytest.mark.parametrize("damage, words", [
    (lambda text, data: text[: len(text) // 2], "is damaged (not JSON"),
    (lambda text, data: json.dumps({**data, "model_key": "0" * 64}), "is damaged (its model identity"),
    (lambda text, data: json.dumps({**data, "voxels": 0}), "was fitted on no data"),
    (lambda text, data: json.dumps({**data, "fitted_on": []}), "was fitted on no data"),
    (lambda text, data: json.dumps({**data, "transform": {"channels": [{"method": "temperature", "temperature": -1}]}}),
     "invalid parameters"),
    (lambda text, data: json.dumps({**data, "format": "something else"}), "is not an IWUO calibration"),
])
def test_a_damaged_or_empty_calibration_is_refused_with_one_line(tmp_path, damage, words):
    data = _calibration_data({"channels": [{"method": "temperature", "temperature": 2.0}]})
    path = tmp_path / "calibration.json"
    path.write_text(damage(calibration_text(data), data))
    with pytest.raises(BadCalibrationError) as refused:
        load_calibration(path)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_a_calibration_of_another_model_is_refused(tmp_path):
    data = _calibration_data({"channels": [{"method": "none"}]})
    path = tmp_path / "calibration.json"
    path.write_text(calibration_text(data))
    other = {**data["model_identity"], "folds": ["0", "1"]}
    with pytest.raises(BadCalibrationError, match="fitted for another model"):
        load_calibration(path, other)
    assert load_calibration(path, data["model_identity"]).model_key == model_key(data["model_identity"])


def test_an_entry_point_finds_the_calibration_saved_for_its_model_and_knows_when_an_analysis_matches(tmp_path,
                                                                                                       monkeypatch):
    """What phase 2's entry points call: no option -> the file saved for the model (or none), "none" -> none, a
    path -> that file for this model only; and whether a saved analysis was calibrated with the file wanted."""
    from IWUOSegmentationLib.data.calibration import calibration_differs, default_calibration_path, resolve_calibration

    monkeypatch.setenv("HOME", str(tmp_path))
    data = _calibration_data({"channels": [{"method": "temperature", "temperature": 2.0}]})
    identity = data["model_identity"]
    assert resolve_calibration(None, identity) is None
    saved = default_calibration_path(identity)
    saved.parent.mkdir(parents=True)
    saved.write_text(calibration_text(data))
    found = resolve_calibration(None, identity)
    assert found.path == str(saved) and resolve_calibration("none", identity) is None
    with pytest.raises(BadCalibrationError, match="fitted for another model"):
        resolve_calibration(saved, {**identity, "folds": ["1"]})
    record = {"calibration": {"file": str(saved), "sha256": found.sha256}}
    assert calibration_differs(record, found) is None and calibration_differs({}, None) is None
    assert "not calibrated" in calibration_differs({}, found)
    assert "an uncalibrated one is wanted" in calibration_differs(record, None)
    assert "another file" in calibration_differs({"calibration": {"sha256": "0"}}, found)


# -- the time model -----------------------------------------------------------------------------------
def test_the_time_fit_recovers_look_time_and_seconds_per_mm_despite_idle_gaps():
    """Must show: 3 x 80 slices with log-normal noise (sd 0.25) and 6 idle gaps of 5-15 minutes: both constants
    within 10 %, the gaps dropped and counted, and the true values inside the 95 % intervals."""
    rng = np.random.default_rng(7)
    timings = [t for r in range(3) for t in _timings(rng, 80, sd=0.25, idle=2, review=f"r{r}")]
    fit = fit_time_model(timings)
    assert fit.look_seconds == pytest.approx(LOOK, rel=0.10)
    assert fit.seconds_per_mm == pytest.approx(PER_MM, rel=0.10)
    assert fit.idle_dropped >= 6 and fit.slices == 240 - fit.idle_dropped
    assert fit.look_seconds_ci95[0] < LOOK < fit.look_seconds_ci95[1]
    assert fit.seconds_per_mm_ci95[0] < PER_MM < fit.seconds_per_mm_ci95[1]
    assert fit.time_model().look_seconds == fit.look_seconds


def test_the_time_fit_refuses_too_few_slices_saying_how_many_are_needed():
    """The minimum is where the interval becomes usable: at MIN_SLICES (60 % corrected, timing sd 0.35) the
    median 95 % interval over 5 synthetic sites is within +-20 % (look) and +-35 % (s/mm); one slice fewer
    is refused with one line naming the numbers needed."""
    n = time_model_fit.MIN_SLICES
    widths = []
    for seed in range(5):
        fit = fit_time_model(_timings(np.random.default_rng(100 + seed), n))
        widths.append(((fit.look_seconds_ci95[1] - fit.look_seconds_ci95[0]) / 2 / fit.look_seconds,
                       (fit.seconds_per_mm_ci95[1] - fit.seconds_per_mm_ci95[0]) / 2 / fit.seconds_per_mm))
    look_width, per_mm_width = np.median(widths, axis=0)
    assert look_width < 0.20 and per_mm_width < 0.35
    with pytest.raises(BadInputError) as refused:
        fit_time_model(_timings(np.random.default_rng(100), n - 1))
    message = str(refused.value)
    assert f"needs at least {n}, {time_model_fit.MIN_CHANGED_SLICES} with a change" in message and "\n" not in message


def test_slice_timings_add_up_visits_and_leave_out_recovered_slices():
    """A slice corrected on two visits: its seconds add up, two looks, its final boundary once; an edit that no
    Next/Done closed (the session was closed) is one visit; a slice recovered after a crash is left out."""
    events = [{"kind": "session_started", "axis": 0},
              {"kind": "slice_corrected", "slice": 3, "seconds": 5.0, "voxels_added": {"2": 4}},
              {"kind": "slice_shown", "slice": 3, "seconds": 2.0},
              {"kind": "slice_skipped", "slice": 5, "seconds": 1.5},
              {"kind": "slice_corrected", "slice": 3, "seconds": 4.0, "voxels_removed": {"2": 1}},
              {"kind": "slice_corrected", "slice": 3, "seconds": 1.0, "voxels_added": {}, "voxels_removed": {}},
              {"kind": "slice_corrected", "slice": 7, "seconds": 9.0, "voxels_added": {"1": 2}, "recovered": True},
              {"kind": "slice_corrected", "slice": 8, "seconds": 6.0, "voxels_added": {"1": 2}},
              {"kind": "slice_marked_corrected", "slice": 10, "seconds": 2.5},  # Mark corrected: a visit with its time
              {"kind": "session_started", "axis": 0},
              {"kind": "slice_shown", "slice": 9, "seconds": 3.0}]
    path = np.arange(12) * 10.0
    timings, recovered = slice_timings(events, path, "r")
    assert recovered == 1
    assert {t.slice: (t.seconds, t.visits, t.path_mm) for t in timings} == {
        3: (12.0, 2, 30.0), 5: (1.5, 1, 50.0), 8: (6.0, 1, 80.0), 9: (3.0, 1, 90.0), 10: (2.5, 1, 100.0)}


# -- iwuo calibrate on review folders ------------------------------------------------------------------
def test_iwuo_calibrate_fits_from_reviews_read_only_even_while_one_is_open(reviews, tmp_path):
    """The real command on three review folders (one held open by another session's lock): exit 0, a JSON summary
    with the method per structure, held-out losses and ECE, the time model with intervals; every file of every
    review folder byte for byte as before; the calibration recovers the overconfidence the reviews show."""
    from IWUOSegmentationLib.storage.folder_lock import FolderLock

    lock = FolderLock(reviews / "case1", "test: a review open elsewhere").acquire()
    try:
        before = _hashes(reviews)
        out = tmp_path / "site.json"
        run = _iwuo("calibrate", "--reviews", str(reviews), "--out", str(out))
        assert run.returncode == 0, run.stderr
        assert _hashes(reviews) == before
    finally:
        lock.release()
    summary = json.loads(run.stdout)
    assert summary["reviews"] == 3 and summary["cases_with_reviewed_slices"] == 3 and summary["notes"] == {}
    assert summary["reviewed_slices"] == 54 and summary["held_out_split"].startswith("by case")
    assert set(summary["structures"]) == {"whole_tumor", "tumor_core", "enhancing_tumor"}
    for name, row in summary["structures"].items():
        assert row["method"] in ("temperature", "platt", "isotonic"), name
        assert row["log_loss_after"] < row["log_loss_before"] and row["ece_after"] < row["ece_before"], name
    calibration = load_calibration(out, _model_identity())
    temperatures = [c.get("temperature") for c in calibration.data["transform"]["channels"]]
    assert any(t is not None and t == pytest.approx(2.0, rel=0.25) for t in temperatures) or \
        all(c["method"] != "temperature" for c in calibration.data["transform"]["channels"])
    time_model = summary["time_model"]
    assert time_model["slices"] + time_model["idle_dropped"] == 72
    assert time_model["look_seconds"] == pytest.approx(LOOK, rel=0.15)
    assert time_model["seconds_per_mm"] == pytest.approx(PER_MM, rel=0.15)
    assert time_model["look_seconds_ci95"][0] < time_model["look_seconds"] < time_model["look_seconds_ci95"][1]
    assert time_model_fit.load_time_model(out).seconds_per_mm == pytest.approx(time_model["seconds_per_mm"], rel=1e-3)


def _model_identity(dropout=False):
    from IWUOSegmentationLib.data.analysis_identity import model_identity

    return model_identity(_demo_model(dropout))


def test_the_calibration_is_saved_for_the_model_and_refused_for_an_analysis_of_another_model(reviews, tmp_path,
                                                                                             monkeypatch):
    """Without --out the file goes to ~/.iwuo/calibrations/<model key>.json; `iwuo calibrate --check` applies it
    in memory to an analysis of that model (label map unchanged) and refuses an analysis of another model with
    exit code 2 and one line (the real command)."""
    from IWUOSegmentationLib.data.analysis_files import read_analysis, write_analysis
    from IWUOSegmentationLib.data.case_images import CaseImages
    from IWUOSegmentationLib.review.site_calibration import calibrate_reviews, check_calibration_file

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = calibrate_reviews([reviews / "case0", reviews / "case2"], _demo_model())
    saved = tmp_path / "home" / ".iwuo" / "calibrations" / f"{model_key(_model_identity())}.json"
    assert result.path == saved and saved.is_file()
    assert "needs at least 60" in result.summary["time_model"]["refused"]  # 48 timed slices
    checked = check_calibration_file(saved, analysis_folder=reviews / "case1" / "analysis")
    assert checked["analysis"]["label_map_unchanged"] is True and checked["sha256"] == result.summary["sha256"]

    loaded = read_analysis(reviews / "case1" / "analysis")
    case = CaseImages(arrays=[np.zeros(loaded.label_map.shape, np.float32)] * 2, spacing=loaded.geometry.GetSpacing())
    result = AnalysisResult(label_map=loaded.label_map, probabilities=loaded.probabilities,
                            uncertainty={**loaded.uncertainty, "member_variance": loaded.member_variance},
                            output_names=OUTPUTS, region_based=True, members={}, seconds=0.0)
    other_analysis = write_analysis(result, case, tmp_path / "other" / "analysis", _demo_model(dropout=True).describe())
    refused = _iwuo("calibrate", "--check", str(saved), "--analysis", str(other_analysis))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and "fitted for another model" in refused.stderr


def test_reviews_of_another_model_are_skipped_and_none_left_is_refused(reviews, tmp_path):
    from IWUOSegmentationLib.review.site_calibration import calibrate_reviews

    with pytest.raises(BadCalibrationError, match="was analysed with the model .*analysed with another model"):
        calibrate_reviews([reviews / "case0"], _demo_model(dropout=True), tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_unreviewed_slices_are_not_fitted_on(reviews, tmp_path):
    """Only slices the log records as corrected or marked done give voxels: a review whose log has none is refused
    (fitted on no data), and the samples of a review come from its logged slices only."""
    from IWUOSegmentationLib.review.folder import ReviewFolder
    from IWUOSegmentationLib.review.site_calibration import calibrate_reviews, read_contribution

    folder = tmp_path / "looked_only"
    shutil.copytree(reviews / "case0", folder)
    log = folder / "review.budget.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text("".join(json.dumps(e) + "\n" for e in lines if e["kind"] != "slice_corrected"))
    with pytest.raises(BadCalibrationError, match="no reviewed slice"):
        calibrate_reviews([folder], _demo_model(), tmp_path / "y.json")
    logged = {e["slice"] for e in lines if e["kind"] == "slice_corrected"}
    part = read_contribution(ReviewFolder(reviews / "case0"), structures_from_labels(_demo_model().labels),
                             _demo_model().labels, np.random.default_rng(0))
    assert set(part.reviewed_slices) == logged and set(np.unique(part.slice_of)) <= logged
    assert part.weights.sum() == pytest.approx(len(logged) * 32 * 32)


def test_apply_refuses_a_loaded_analysis_of_another_model_or_one_calibrated_already(reviews):
    from IWUOSegmentationLib.data.analysis_files import read_analysis

    loaded = read_analysis(reviews / "case1" / "analysis")
    identity = _model_identity()
    data = _calibration_data({"channels": [{"method": "temperature", "temperature": 2.0}] * 3}, OUTPUTS, True, WRITTEN,
                             identity)
    calibrated = apply_calibration(calibration_from_data(data), loaded)
    assert calibrated.summary["calibration"]["methods"] == {} and calibrated.summary["calibration"]["sha256"]
    with pytest.raises(BadCalibrationError, match="calibrated already"):
        apply_calibration(calibration_from_data(data), calibrated)
    other = _calibration_data(data["transform"], OUTPUTS, True, WRITTEN, _model_identity(dropout=True))
    with pytest.raises(BadCalibrationError, match="fitted for another model"):
        apply_calibration(calibration_from_data(other), loaded)
    with pytest.raises(BadCalibrationError, match="records no model identity"):
        apply_calibration(calibration_from_data(data), dataclasses.replace(loaded, summary={**loaded.summary, "identity": {}}))
