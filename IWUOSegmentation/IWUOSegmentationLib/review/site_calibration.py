"""Calibrate to the site: finished reviews -> the model's probability calibration and the expert time model.

What `iwuo calibrate` runs. Reviews are read, never written: no lock is taken (a review open in
another session can be fitted while it goes on), no file in a review folder is opened for writing.

Which voxels count: only the slices the log says the reviewer corrected or marked done
(`slice_corrected`); there the corrected segmentation is the expert's word. Elsewhere it is the model's
own prediction, and fitting on it would teach the calibration that the model is always right, pushing
towards overconfidence. A slice that differs from the prediction without a logged correction (saved,
not yet logged, in a review still open) is left out the same way.

Sampling: a reviewed slice of a 240x240 case has 57 600 voxels, almost all far from any boundary. Per
case, with a fixed seed, up to 30 000 voxels are drawn from the boundary band (within 2 pixels in
plane of a label boundary of the prediction or of the correction, or changed by the reviewer), and up
to 10 000 each from the rest of the predicted foreground and of the background; each drawn voxel
carries the weight stratum size / voxels drawn, so losses and fits are those of all reviewed voxels.
The held-out split keeps each case whole (with one case: five slabs of consecutive reviewed slices).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

from ..data.analysis_files import read_analysis
from ..data.analysis_identity import identity_differences, model_identity, read_summary
from ..data.calibration import FORMAT, VERSION, calibration_from_data, calibration_text, default_calibration_path, model_key
from ..data.structures import ModelStructures, evaluation_regions, structures_from_labels
from ..errors import BadCalibrationError, BadInputError
from ..ranking.correction_time import path_length_per_slice
from ..storage.atomic_files import atomic_write_text
from .calibration_fit import MAX_FOLDS, VoxelSamples, fit_transform, structure_report
from .corrected_dataset import check_label_values, find_review_folders, read_review_state
from .folder import ReviewFolder
from .time_model_fit import SliceTiming, fit_time_model, slice_timings

SAMPLE_SIZES = {"boundary": 30_000, "foreground": 10_000, "background": 10_000}
BAND_PX = 2
SEED = 0


def _label_edges(labels: np.ndarray) -> np.ndarray:
    """Voxels of (slices, rows, columns) whose in-plane 4-neighbour has another label."""
    edges = np.zeros(labels.shape, bool)
    for axis in (1, 2):
        step = np.diff(labels, axis=axis) != 0
        head = [slice(None)] * 3
        tail = [slice(None)] * 3
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        edges[tuple(head)] |= step
        edges[tuple(tail)] |= step
    return edges


def sample_reviewed_voxels(probabilities: np.ndarray, prediction: np.ndarray, corrected: np.ndarray, axis: int,
                           slices: list[int], rng: np.random.Generator,
                           sizes: Optional[dict[str, int]] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified voxels of the reviewed `slices`: probabilities (outputs, n), corrected label, weight, slice."""
    sizes = sizes or SAMPLE_SIZES
    index = np.asarray(sorted(slices), int)
    pred = np.moveaxis(prediction, axis, 0)[index]
    truth = np.moveaxis(corrected, axis, 0)[index]
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    band = ndimage.binary_dilation(_label_edges(pred) | _label_edges(truth) | (pred != truth), plane,
                                   iterations=BAND_PX)
    strata = {"boundary": band, "foreground": (pred > 0) & ~band, "background": (pred == 0) & ~band}
    chosen, weights = [np.zeros(0, np.int64)], [np.zeros(0)]
    for name, mask in strata.items():
        members = np.flatnonzero(mask)
        k = min(len(members), sizes[name])
        if k:
            chosen.append(rng.choice(members, k, replace=False))
            weights.append(np.full(k, len(members) / k))
    voxels = np.concatenate(chosen)
    planes = np.moveaxis(probabilities, axis + 1, 1)[:, index].reshape(len(probabilities), -1)
    slice_of = index[voxels // (pred.shape[1] * pred.shape[2])]
    return planes[:, voxels], truth.reshape(-1)[voxels], np.concatenate(weights), slice_of


def slab_groups(slice_of: np.ndarray) -> np.ndarray:
    """Held-out groups within one case: up to MAX_FOLDS slabs of consecutive reviewed slices."""
    slices = np.unique(slice_of)
    n = min(MAX_FOLDS, len(slices))
    return np.searchsorted(slices, slice_of) * n // max(len(slices), 1)


@dataclass
class ReviewContribution:
    """What one review gives the fit: voxel samples of its reviewed slices and its slice timings."""

    review: str
    reviewed_slices: list[int]
    probabilities: np.ndarray
    truth: np.ndarray
    weights: np.ndarray
    slice_of: np.ndarray
    timings: list[SliceTiming] = field(default_factory=list)
    recovered: int = 0

    def record(self) -> dict:
        return {"review": self.review, "reviewed_slices": self.reviewed_slices, "voxels_sampled": int(self.truth.size),
                "voxels_represented": int(round(float(self.weights.sum()))), "timed_slices": len(self.timings)}


def other_model(folder: ReviewFolder, identity: dict) -> Optional[str]:
    """Why a review's analysis is not of the model with `identity` (None when it is)."""
    if not folder.has_analysis():
        return None  # read_review_state says what is missing
    recorded = read_summary(folder.analysis).get("identity")
    if not recorded or not recorded.get("model"):
        return "its analysis records no model identity (written by an older version)"
    differences = identity_differences(recorded, model=identity)
    return f"analysed with another model ({'; '.join(differences)})" if differences else None


def read_contribution(folder: ReviewFolder, structures: ModelStructures, labels: dict,
                      rng: np.random.Generator) -> ReviewContribution:
    """Read one review (read-only) and take its samples and timings."""
    state = read_review_state(folder)
    check_label_values(state, labels)
    analysis = read_analysis(folder.analysis)
    n_slices = state.prediction.shape[state.axis]
    reviewed = sorted(s for s in state.logged_slices if 0 <= s < n_slices)
    probabilities, truth, weights, slice_of = sample_reviewed_voxels(
        analysis.probabilities, state.prediction, state.corrected, state.axis, reviewed, rng)
    keep = ~np.isin(truth, structures.ignore_values)
    spacing = analysis.geometry.GetSpacing()
    path = np.zeros(n_slices)
    for region in evaluation_regions(structures).values():  # as `iwuo evaluate` charges its experts
        path += path_length_per_slice(region.structure.mask(state.prediction), region.structure.mask(state.corrected),
                                      state.axis, spacing)
    timings, recovered = slice_timings(state.events, path, str(folder.root))
    return ReviewContribution(str(folder.root), reviewed, probabilities[:, keep], truth[keep], weights[keep],
                              slice_of[keep], timings, recovered)


@dataclass
class SiteCalibration:
    """The written calibration file, its content and the summary `iwuo calibrate` prints."""

    path: Path
    data: dict
    summary: dict


def _samples(parts: list[ReviewContribution]) -> tuple[VoxelSamples, str]:
    cases = [p for p in parts if p.truth.size]
    if len(cases) >= 2:
        groups = np.concatenate([np.full(p.truth.size, i) for i, p in enumerate(cases)])
        split = f"by case ({min(len(cases), MAX_FOLDS)} folds over {len(cases)} cases)"
    else:
        groups = slab_groups(cases[0].slice_of)
        split = f"by slab of consecutive reviewed slices of the one case ({len(np.unique(groups))} folds)"
    samples = VoxelSamples(np.concatenate([p.probabilities for p in cases], axis=1),
                           np.concatenate([p.truth for p in cases]), np.concatenate([p.weights for p in cases]), groups)
    return samples, split


def calibrate_reviews(reviews: list[str | os.PathLike], model, out: Optional[str | os.PathLike] = None,
                      progress: Optional[Callable[[float, str], None]] = None) -> SiteCalibration:
    """Fit the calibration of `model` (a ModelFolder) and the time model from finished reviews; write the file
    atomically to `out` (default: the model's file in data/calibration.calibrations_folder())."""
    progress = progress or (lambda fraction, message: None)
    identity = model_identity(model)
    structures = structures_from_labels(model.labels)
    outputs = list(model.output_names)
    folders = find_review_folders(reviews)
    parts, skipped = [], []
    for folder in folders:
        progress(0.7 * (len(parts) + len(skipped)) / len(folders), f"reading review {folder.root.name}")
        reason = other_model(folder, identity)
        if reason:
            skipped.append({"review": str(folder.root), "reason": reason})
            continue
        parts.append(read_contribution(folder, structures, model.labels, np.random.default_rng([SEED, len(parts)])))
    if not parts:
        raise BadCalibrationError(f"None of the {len(folders)} review(s) was analysed with the model {model.path} "
                                  f"({skipped[0]['reason']}); name the model the reviews used with --model.")
    if not any(p.truth.size for p in parts):
        raise BadCalibrationError(f"The {len(parts)} review(s) have no reviewed slice (a slice counts once the log records "
                                  "it corrected or marked done): nothing to fit on; review some slices, then fit again.")
    samples, split = _samples(parts)
    progress(0.75, f"fitting the calibration on {samples.n} voxels")
    transform, held_out, notes = fit_transform(samples, structures, len(outputs))
    report = structure_report(samples, held_out, structures, transform, notes)
    progress(0.9, "fitting the time model")
    data = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model_identity": identity, "model_key": model_key(identity), "model_path": str(model.path),
            "outputs": outputs, "region_based": bool(structures.region_based),
            "written_labels": {k: int(v) for k, v in model.written_labels.items()},
            "transform": transform, "structures": report, "fitted_on": [p.record() for p in parts],
            "voxels": int(samples.n), "voxels_represented": int(round(float(samples.weights.sum()))),
            "sampling": {"seed": SEED, "per_case": SAMPLE_SIZES, "boundary_band_pixels": BAND_PX,
                         "weights": "stratum size / voxels drawn"},
            "held_out_split": split, "notes": notes, "time_model": None}
    try:
        fit = fit_time_model([t for p in parts for t in p.timings], sum(p.recovered for p in parts))
        data["time_model"] = fit.to_json()
    except BadInputError as exc:
        data["time_model_refused"] = str(exc)
    out = Path(out) if out is not None else default_calibration_path(identity)
    checked = calibration_from_data(data, out)  # the check a reader applies, before anything is written
    atomic_write_text(out, calibration_text(data))
    progress(1.0, f"{out} written")
    return SiteCalibration(out, data, _summary(out, data, skipped, checked.sha256))


def _summary(out: Path, data: dict, skipped: list[dict], sha256: str) -> dict:
    """The JSON `iwuo calibrate` prints: methods, held-out losses and ECE, time model, what it was fitted on."""
    time_model = data["time_model"]
    return {"calibration": str(out), "sha256": sha256, "model": data["model_path"], "model_key": data["model_key"],
            "reviews": len(data["fitted_on"]), "skipped": skipped,
            "cases_with_reviewed_slices": sum(1 for f in data["fitted_on"] if f["voxels_sampled"]),
            "reviewed_slices": sum(len(f["reviewed_slices"]) for f in data["fitted_on"]),
            "voxels_sampled": data["voxels"], "voxels_represented": data["voxels_represented"],
            "held_out_split": data["held_out_split"], "notes": data["notes"],
            "structures": {name: {"method": r["method"], **r["held_out"]} for name, r in data["structures"].items()},
            "time_model": time_model if time_model else {"refused": data["time_model_refused"]}}


def check_calibration_file(path: str | os.PathLike, model=None, analysis_folder: Optional[str | os.PathLike] = None) -> dict:
    """What `iwuo calibrate --check` prints: the file checked against `model`, or applied in memory to the analysis
    in `analysis_folder` (checked against the model that analysis records); nothing is written."""
    from ..data.calibration import apply_calibration, calibration_record, load_calibration
    from ..data.structures import structures_from_summary

    calibration = load_calibration(path, None if model is None else model_identity(model))
    out = {**calibration_record(calibration), "time_model": calibration.data.get("time_model")
           or {"refused": calibration.data.get("time_model_refused")},
           "structures": {name: {"method": r["method"], **r["held_out"]} for name, r in calibration.data["structures"].items()}}
    if analysis_folder is not None:
        analysis = read_analysis(analysis_folder)
        calibrated = apply_calibration(calibration, analysis)
        structures = structures_from_summary(analysis.summary)
        out["analysis"] = {
            "folder": str(analysis_folder), "label_map_unchanged": bool(np.array_equal(calibrated.label_map, analysis.label_map)),
            "entropy_mean": [round(float(a.uncertainty["entropy"].mean()), 6) for a in (analysis, calibrated)],
            "expected_voxels": {name: [round(float(s.probability(a.probabilities).sum()), 1) for a in (analysis, calibrated)]
                                for name, s in structures.structures.items()}}
    return out
