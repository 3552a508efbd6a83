"""Fitting a post-hoc calibration of a model's probabilities from voxel samples, chosen by held-out log loss.

Why a choice: a temperature (one parameter) cannot move a decision and rarely overfits; Platt scaling
(slope and offset of the logit) and isotonic regression (any monotone map) can fit more and can
overfit. Each candidate is fitted on some cases (or, with one case, some slabs of slices) and scored
by the log loss on the others, so the choice is made on voxels the fit did not see; voxels of one
case or slab are strongly correlated, and a voxel-random split would reward overfitting. The lowest
held-out loss wins, the simpler candidate on a tie (within 0.1 %). "none" is a candidate too: if
nothing beats the raw probabilities on held-out voxels, nothing is applied.

Units: a region (sigmoid) model is calibrated per output on z = logit p (candidates none, temperature,
platt, isotonic). A label (softmax) model's classes share one normalisation, so its classes are
calibrated together on z_c = log p_c (candidates none, temperature: one T; class_temperatures: one T
per class; isotonic: each class's p, renormalised) and chosen by the multi-class log loss; the
per-class candidates need every class present in the reviewed voxels. Structures that are unions
(all foreground, a BraTS label model's whole tumour and tumour core) follow from their members.

Transforms are applied with data/calibration.py, the code the analysis uses: what is scored here is
what will be applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import minimize

from ..data.calibration import EPS, logit, sigmoid_transform, softmax_transform
from ..data.calibration_metrics import binary_log_loss, categorical_log_loss, expected_calibration_error
from ..data.structures import ModelStructures
from ..errors import BadCalibrationError

MIN_CLASS_VOXELS = 50  # sampled voxels of a structure (and of its outside) below which it is left uncalibrated
MAX_FOLDS = 5
ISOTONIC_FLOOR = 1e-6  # isotonic outputs are kept off 0 and 1, or one surprise on held-out voxels costs infinity
TIE = 1e-3  # held-out log losses within 0.1 % of the best are a tie, which the simplest candidate wins
_SCALE_BOUNDS = (1e-3, 1e3)


@dataclass
class VoxelSamples:
    """Sampled voxels of the reviewed slices: the analysis' probabilities (outputs, n), the corrected label
    value, the weight (voxels each one stands for) and the group the held-out split keeps together."""

    probabilities: np.ndarray
    truth: np.ndarray
    weights: np.ndarray
    groups: np.ndarray

    @property
    def n(self) -> int:
        return len(self.truth)


def _mean_logistic_loss(params: np.ndarray, z: np.ndarray, y: np.ndarray, w: np.ndarray, intercept: bool):
    a, b = params[0], (params[1] if intercept else 0.0)
    s = a * z + b
    loss = (w * (np.logaddexp(0.0, s) - y * s)).sum()
    g = w * (0.5 * (1.0 + np.tanh(0.5 * s)) - y)
    grad = np.array([(g * z).sum(), g.sum()] if intercept else [(g * z).sum()])
    return loss / w.sum(), grad / w.sum()


def fit_logistic(z: np.ndarray, y: np.ndarray, w: np.ndarray, intercept: bool) -> tuple[float, float]:
    """(a, b) of p = sigmoid(a z + b) by weighted maximum likelihood (b = 0 without intercept: a = 1 / T)."""
    z, y, w = np.asarray(z, float), np.asarray(y, float), np.asarray(w, float)
    start = np.array([1.0, 0.0] if intercept else [1.0])
    bounds = [_SCALE_BOUNDS, (None, None)] if intercept else [_SCALE_BOUNDS]
    result = minimize(_mean_logistic_loss, start, args=(z, y, w, intercept), jac=True, method="L-BFGS-B", bounds=bounds)
    return float(result.x[0]), float(result.x[1]) if intercept else 0.0


def _mean_softmax_loss(theta: np.ndarray, log_p: np.ndarray, onehot: np.ndarray, w: np.ndarray):
    scale = np.exp(theta)[:, None]  # 1 / T per class (one shared value broadcasts)
    s = scale * log_p
    s = s - s.max(0, keepdims=True)
    q = np.exp(s)
    q /= q.sum(0, keepdims=True)
    loss = -(w * (onehot * np.log(np.clip(q, 1e-300, None))).sum(0)).sum()
    grad = ((q - onehot) * log_p * w).sum(1) * scale[:, 0]
    if len(theta) == 1:
        grad = grad.sum(keepdims=True)
    return loss / w.sum(), grad / w.sum()


def fit_softmax_temperatures(p: np.ndarray, y: np.ndarray, w: np.ndarray, per_class: bool) -> np.ndarray:
    """Temperatures of softmax(log p_c / T_c) by weighted maximum likelihood (one shared T unless `per_class`)."""
    log_p = np.log(np.clip(np.asarray(p, float), EPS, 1.0))
    onehot = np.zeros_like(log_p)
    onehot[np.asarray(y, int), np.arange(log_p.shape[1])] = 1.0
    theta = np.zeros(len(log_p) if per_class else 1)
    bound = (np.log(_SCALE_BOUNDS[0]), np.log(_SCALE_BOUNDS[1]))
    result = minimize(_mean_softmax_loss, theta, args=(log_p, onehot, np.asarray(w, float)), jac=True,
                      method="L-BFGS-B", bounds=[bound] * len(theta))
    return 1.0 / np.exp(result.x)


def fit_isotonic(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict:
    """A monotone map of p (knots x -> y, interpolated linearly), kept off 0 and 1."""
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(np.asarray(p, float), np.asarray(y, float), sample_weight=np.asarray(w, float))
    knots = np.clip(model.y_thresholds_, ISOTONIC_FLOOR, 1 - ISOTONIC_FLOOR)
    return {"x": [round(float(v), 7) for v in model.X_thresholds_], "y": [round(float(v), 7) for v in knots]}


def sigmoid_candidates(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, dict]:
    """Every candidate transform of one sigmoid output, fitted on (p, y, w)."""
    z = logit(p)
    a, _ = fit_logistic(z, y, w, intercept=False)
    slope, offset = fit_logistic(z, y, w, intercept=True)
    return {"none": {"method": "none"}, "temperature": {"method": "temperature", "temperature": 1.0 / a},
            "platt": {"method": "platt", "a": slope, "b": offset}, "isotonic": {"method": "isotonic", **fit_isotonic(p, y, w)}}


def softmax_candidates(p: np.ndarray, y: np.ndarray, w: np.ndarray, per_class: bool) -> dict[str, dict]:
    """Every candidate transform of a softmax's classes; the per-class ones only with every class present."""
    out = {"none": {"method": "none"},
           "temperature": {"method": "temperature", "temperature": float(fit_softmax_temperatures(p, y, w, False)[0])}}
    if per_class:
        out["class_temperatures"] = {"method": "class_temperatures",
                                     "temperatures": fit_softmax_temperatures(p, y, w, True).tolist()}
        out["isotonic"] = {"method": "isotonic", "classes": [fit_isotonic(p[c], y == c, w) for c in range(len(p))]}
    return out


def held_out_folds(groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, held-out) index pairs with every group (case or slab) held out once, whole."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise BadCalibrationError("The reviewed voxels come from one case and one slab: a held-out choice needs at "
                                  "least two reviewed slices; review more slices, then fit again.")
    splitter = GroupKFold(n_splits=min(n_groups, MAX_FOLDS))
    return list(splitter.split(np.zeros(len(groups)), groups=groups))


@dataclass
class UnitFit:
    """One calibrated unit: the chosen transform (fitted on all voxels), every candidate's held-out log loss,
    and the held-out (out-of-fold) probabilities of the chosen one."""

    spec: dict
    held_out_log_loss: dict[str, float]
    held_out: np.ndarray


def choose_transform(probabilities: np.ndarray, folds, candidates: Callable[[np.ndarray], dict[str, dict]],
                     apply: Callable[[np.ndarray, dict], np.ndarray], loss: Callable[..., float],
                     w: np.ndarray) -> UnitFit:
    """Fit the candidates on each fold's fitting voxels, score them on its held-out voxels, keep the best (the
    simplest within TIE of it: candidates are listed simplest first) and fit it again on all voxels."""
    predicted: dict[str, np.ndarray] = {}
    for fit_index, test_index in folds:
        for method, spec in candidates(fit_index).items():
            out = predicted.setdefault(method, np.zeros(probabilities.shape, np.float32))
            out[..., test_index] = apply(probabilities[..., test_index], spec)
    losses = {method: loss(p, w) for method, p in predicted.items()}
    lowest = min(losses.values())
    best = next(m for m, value in losses.items() if value <= lowest + TIE * abs(lowest))
    spec = candidates(np.arange(probabilities.shape[-1]))[best]
    return UnitFit(spec={**spec, "held_out_log_loss": {m: round(v, 6) for m, v in losses.items()}},
                   held_out_log_loss=losses, held_out=predicted[best])


def _too_few(count_in: int, count_out: int) -> bool:
    return min(count_in, count_out) < MIN_CLASS_VOXELS


def fit_transform(samples: VoxelSamples, structures: ModelStructures, n_outputs: int) -> tuple[dict, np.ndarray, dict]:
    """The calibration transform of a model's outputs (the file's `transform`), the held-out calibrated
    probabilities of every sample, and per output structure why it was left uncalibrated (if it was)."""
    folds = held_out_folds(samples.groups)
    w = samples.weights
    p_all = samples.probabilities.astype(np.float32)
    held_out = np.zeros_like(p_all)
    skipped: dict[str, str] = {}
    if structures.region_based:
        channels = []
        for name, structure in ((n, s) for n, s in structures.structures.items() if s.kind == "region"):
            c = structure.channels[0]
            y = structure.mask(samples.truth)
            if _too_few(int(y.sum()), int((~y).sum())):
                skipped[name] = (f"{int(y.sum())} reviewed voxels sampled inside and {int((~y).sum())} outside; "
                                 f"at least {MIN_CLASS_VOXELS} of each are needed")
                channels.append({"method": "none"})
                held_out[c] = p_all[c]
                continue
            p = p_all[c]
            fit = choose_transform(p, folds, lambda i, p=p, y=y: sigmoid_candidates(p[i], y[i], w[i]),
                                   sigmoid_transform, lambda q, w, y=y: binary_log_loss(q, y, w), w)
            channels.append(fit.spec)
            held_out[c] = fit.held_out
        return {"channels": channels}, held_out, skipped
    classes = class_indices(samples.truth, structures, n_outputs)
    counts = np.bincount(classes, minlength=n_outputs)
    per_class = bool(counts.min() >= MIN_CLASS_VOXELS)
    if not per_class:
        absent = [name for name, s in structures.structures.items() if s.kind == "label"
                  and counts[s.channels[0]] < MIN_CLASS_VOXELS]
        skipped["per-class candidates"] = (f"{', '.join(absent)} below {MIN_CLASS_VOXELS} sampled reviewed voxels: "
                                           "only one shared temperature was tried")
    fit = choose_transform(p_all, folds, lambda i: softmax_candidates(p_all[:, i], classes[i], w[i], per_class),
                           softmax_transform, lambda q, w: categorical_log_loss(q, classes, w), w)
    return fit.spec, fit.held_out, skipped


def class_indices(truth: np.ndarray, structures: ModelStructures, n_outputs: int) -> np.ndarray:
    """Softmax class (output channel) of each corrected label value; background is the channel no label uses."""
    lookup = {s.label_values[0]: s.channels[0] for s in structures.structures.values() if s.kind == "label"}
    background = next(c for c in range(n_outputs) if c not in lookup.values())
    out = np.full(truth.shape, background, np.int64)
    for value, channel in lookup.items():
        out[truth == value] = channel
    return out


def structure_report(samples: VoxelSamples, held_out: np.ndarray, structures: ModelStructures, transform: dict,
                     skipped: dict[str, str]) -> dict[str, dict]:
    """Per structure of the model: its method and held-out log loss and ECE before and after."""
    report = {}
    for name, structure in structures.structures.items():
        y = structure.mask(samples.truth)
        before = structure.probability(samples.probabilities)
        after = structure.probability(held_out)
        if structure.kind == "union":
            members = [n for n, s in structures.structures.items()
                       if s.kind != "union" and set(s.channels) <= set(structure.channels)]
            method = f"derived from {', '.join(members)}"
        elif structures.region_based:
            method = transform["channels"][structure.channels[0]]["method"]
        else:
            method = transform["method"]
        entry = {"method": method, "voxels_inside": int(y.sum()), "voxels_outside": int((~y).sum()),
                 "held_out": {"log_loss_before": round(binary_log_loss(before, y, samples.weights), 6),
                              "log_loss_after": round(binary_log_loss(after, y, samples.weights), 6),
                              "ece_before": round(expected_calibration_error(before, y, samples.weights), 6),
                              "ece_after": round(expected_calibration_error(after, y, samples.weights), 6)}}
        if name in skipped:
            entry["note"] = skipped[name]
        report[name] = entry
    return report
