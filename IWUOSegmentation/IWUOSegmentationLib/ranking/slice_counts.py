"""Per-slice confusion counts of a prediction and of its corrected slices, and the Dice they give.

Counted once per case, they are what the oracle and greedy rankings re-estimate after each pick and
what the replay (simulation/budget_curves.py) sums into Dice-vs-budget curves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError


@dataclass
class SliceCounts:
    """Per-slice confusion counts of the prediction and of the expert-corrected slices."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tp_fixed: np.ndarray
    fp_fixed: np.ndarray
    fn_fixed: np.ndarray

    @property
    def n_slices(self) -> int:
        return len(self.tp)


def _count(pred: np.ndarray, truth: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    other = tuple(a for a in range(pred.ndim) if a != axis)
    return ((pred & truth).sum(other, dtype=np.int64), (pred & ~truth).sum(other, dtype=np.int64),
            (~pred & truth).sum(other, dtype=np.int64))


def slice_counts(pred: np.ndarray, truth: np.ndarray, corrected: np.ndarray, axis: int) -> SliceCounts:
    """Counts for a binary region: `corrected` is the expert's mask (equal to `truth` for a perfect one)."""
    if pred.shape != truth.shape or corrected.shape != truth.shape:
        raise BadInputError(f"Prediction {pred.shape} and reference {truth.shape} have different shapes; "
                            "resample the reference onto the prediction's grid first.")
    tp, fp, fn = _count(pred, truth, axis)
    tpf, fpf, fnf = _count(corrected, truth, axis)
    return SliceCounts(tp, fp, fn, tpf, fpf, fnf)


def dice(tp: np.ndarray | float, fp: np.ndarray | float, fn: np.ndarray | float) -> np.ndarray:
    """Dice; an empty reference with an empty prediction scores 1 (the BraTS convention)."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 1.0)
