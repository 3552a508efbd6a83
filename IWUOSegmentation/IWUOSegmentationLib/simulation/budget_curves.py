"""Dice-vs-budget curves: the Dice after correcting the first k slices of an ordering, and their areas.

Corrections on different slices are independent, so from the per-slice counts
(ranking/slice_counts.py) the curve is a cumulative sum, with no voxel work per budget step.
"""

from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from ..ranking.slice_counts import SliceCounts, dice


def dice_curve(counts: SliceCounts, order: np.ndarray) -> np.ndarray:
    """Dice after correcting 0, 1, ..., len(order) slices in `order`."""
    order = np.asarray(order, dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= counts.n_slices or len(np.unique(order)) != order.size):
        raise BadInputError("A slice ordering must list distinct slice indices inside the volume.")
    tp0, fp0, fn0 = counts.tp.sum(), counts.fp.sum(), counts.fn.sum()
    dtp = np.concatenate([[0], np.cumsum(counts.tp_fixed[order] - counts.tp[order])])
    dfp = np.concatenate([[0], np.cumsum(counts.fp_fixed[order] - counts.fp[order])])
    dfn = np.concatenate([[0], np.cumsum(counts.fn_fixed[order] - counts.fn[order])])
    return dice(tp0 + dtp, fp0 + dfp, fn0 + dfn)


def aubc(curve: np.ndarray) -> float:
    """Area under the Dice-vs-budget curve, normalised by the number of steps (trapezoid rule)."""
    if len(curve) < 2:
        return float(curve[0]) if len(curve) else 0.0
    return float(np.trapezoid(curve, dx=1.0) / (len(curve) - 1)) if hasattr(np, "trapezoid") else \
        float(np.trapz(curve, dx=1.0) / (len(curve) - 1))


def normalised_aubc(value: float, random_value: float, oracle_value: float) -> float:
    """nAUBC = (AUBC - AUBC_random) / (AUBC_oracle - AUBC_random); NaN when oracle equals random."""
    span = oracle_value - random_value
    return float((value - random_value) / span) if abs(span) > 1e-12 else float("nan")


def dice_at_times(curve: np.ndarray, order: np.ndarray, seconds: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Dice of a slice curve at each time in `times`: a slice counts once its correction is finished."""
    done = np.searchsorted(np.cumsum(np.asarray(seconds, float)[np.asarray(order, dtype=np.int64)]), times, side="right")
    return np.asarray(curve, float)[done]


def aubc_seconds(curve: np.ndarray, order: np.ndarray, seconds: np.ndarray, budget: float) -> float:
    """Exact mean Dice over the time budget [0, budget] s (area under the Dice-vs-seconds step curve / budget)."""
    ends = np.minimum(np.concatenate([[0.0], np.cumsum(np.asarray(seconds, float)[np.asarray(order, dtype=np.int64)])]),
                      budget)
    widths = np.diff(np.concatenate([ends, [budget]]))
    return float(np.dot(np.asarray(curve, float)[:len(widths)], widths) / budget) if budget > 0 else float(curve[0])


def budget_to_reach(curve: np.ndarray, order: np.ndarray, seconds: np.ndarray, target: float) -> tuple[float, float]:
    """(slices, seconds) until the curve first reaches `target`; NaN if it never does."""
    hit = np.flatnonzero(np.asarray(curve) >= target - 1e-12)
    if not hit.size:
        return float("nan"), float("nan")
    k = int(hit[0])
    return float(k), float(np.asarray(seconds, float)[np.asarray(order, dtype=np.int64)[:k]].sum())
