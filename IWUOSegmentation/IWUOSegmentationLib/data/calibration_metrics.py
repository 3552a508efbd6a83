"""How well probabilities are calibrated: log loss, expected calibration error, reliability bins.

Voxel samples carry weights (a stratified sample stands for its stratum: weight = stratum size /
voxels drawn), so every measure here is the weighted one of the voxels the sample stands for.
numpy only: the fit, the evaluation and the benchmark share these definitions.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

EPS = 1e-7
N_BINS = 15  # equal-width bins of the predicted probability, as in Guo et al. 2017


def _weights(n: int, weights: Optional[np.ndarray]) -> np.ndarray:
    return np.ones(n) if weights is None else np.asarray(weights, float)


def binary_log_loss(p: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    """Weighted mean negative log-likelihood (nats) of binary outcomes `y` under probabilities `p`."""
    q = np.clip(np.asarray(p, float), EPS, 1 - EPS)
    y = np.asarray(y, bool)
    w = _weights(len(q), weights)
    return float(-(w * np.where(y, np.log(q), np.log1p(-q))).sum() / w.sum())


def categorical_log_loss(p: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    """Weighted mean negative log-likelihood of class indices `y` under class probabilities `p` (classes, n)."""
    q = np.clip(np.asarray(p, float)[np.asarray(y, int), np.arange(p.shape[1])], EPS, 1.0)
    w = _weights(len(q), weights)
    return float(-(w * np.log(q)).sum() / w.sum())


def reliability_bins(p: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None,
                     n_bins: int = N_BINS) -> dict[str, list[float]]:
    """Per equal-width bin of `p`: weighted mean prediction, observed frequency and weight (empty bins left out)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    w = _weights(len(p), weights)
    index = np.minimum((p * n_bins).astype(int), n_bins - 1)
    weight = np.bincount(index, w, n_bins)
    mean_p = np.bincount(index, w * p, n_bins)
    frequency = np.bincount(index, w * y, n_bins)
    used = weight > 0
    return {"mean_probability": (mean_p[used] / weight[used]).tolist(),
            "observed_frequency": (frequency[used] / weight[used]).tolist(),
            "weight": weight[used].tolist()}


def expected_calibration_error(p: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None,
                               n_bins: int = N_BINS) -> float:
    """ECE: the weight-averaged gap between mean prediction and observed frequency over the bins."""
    bins = reliability_bins(p, y, weights, n_bins)
    weight = np.asarray(bins["weight"])
    if not weight.size:
        return float("nan")
    gap = np.abs(np.asarray(bins["mean_probability"]) - np.asarray(bins["observed_frequency"]))
    return float((weight * gap).sum() / weight.sum())
