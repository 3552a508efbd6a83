"""Dice-vs-budget curves: the Dice after correcting the first k slices of an ordering, and their areas.

Corrections on different slices are independent, so from the per-slice counts
(ranking/slice_counts.py) the curve is a cumulative sum, with no voxel work per budget step. The
`_many` forms replay many orderings at once (rows: one ordering each; the random baselines'
hundreds of seeds).
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
    return dice_curves(counts, order[None, :])[0]


def _cumulative(values: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """0 then the running sum of `values` along each ordering (rows)."""
    return np.concatenate([np.zeros((orders.shape[0], 1)), np.cumsum(values[orders], axis=1)], axis=1)


def dice_curves(counts: SliceCounts, orders: np.ndarray) -> np.ndarray:
    """Dice curves of many orderings of distinct slices at once: (orderings, slices + 1)."""
    orders = np.asarray(orders, dtype=np.int64)
    tp = counts.tp.sum() + _cumulative((counts.tp_fixed - counts.tp).astype(np.float64), orders)
    fp = counts.fp.sum() + _cumulative((counts.fp_fixed - counts.fp).astype(np.float64), orders)
    fn = counts.fn.sum() + _cumulative((counts.fn_fixed - counts.fn).astype(np.float64), orders)
    return dice(tp, fp, fn)


def finish_times(orders: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Seconds at which the k-th slice of each ordering is finished (k = 0, ..., slices; 0 first)."""
    return _cumulative(np.asarray(seconds, np.float64), np.asarray(orders, dtype=np.int64))


def dice_at_times_many(curves: np.ndarray, orders: np.ndarray, seconds: np.ndarray, times) -> np.ndarray:
    """Dice of each ordering's curve at each time (a slice counts once its correction is finished)."""
    ends = finish_times(orders, seconds)[:, 1:]
    times = np.asarray(times, float)
    # One sorted search for all orderings: each row's finish times shifted past the previous row's.
    shift = (np.arange(ends.shape[0]) * (max(float(ends.max(initial=0.0)), float(times.max(initial=0.0))) + 1.0))[:, None]
    found = np.searchsorted((ends + shift).ravel(), (times[None, :] + shift).ravel(), side="right")
    done = found.reshape(ends.shape[0], len(times)) - np.arange(ends.shape[0])[:, None] * ends.shape[1]
    return np.take_along_axis(np.asarray(curves, float), done, axis=1)


def aubc_seconds_many(curves: np.ndarray, orders: np.ndarray, seconds: np.ndarray, budget: float) -> np.ndarray:
    """Exact mean Dice over [0, budget] s of each ordering's step curve."""
    curves = np.asarray(curves, float)
    if budget <= 0:
        return curves[:, 0].copy()
    ends = np.minimum(finish_times(orders, seconds), budget)
    widths = np.diff(np.concatenate([ends, np.full((ends.shape[0], 1), budget)], axis=1), axis=1)
    return (curves[:, :widths.shape[1]] * widths).sum(1) / budget


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
    return dice_at_times_many(np.asarray(curve, float)[None], np.asarray(order)[None], seconds, times)[0]


def aubc_seconds(curve: np.ndarray, order: np.ndarray, seconds: np.ndarray, budget: float) -> float:
    """Exact mean Dice over the time budget [0, budget] s (area under the Dice-vs-seconds step curve / budget)."""
    return float(aubc_seconds_many(np.asarray(curve, float)[None], np.asarray(order)[None], seconds, budget)[0])


def budget_to_reach(curve: np.ndarray, order: np.ndarray, seconds: np.ndarray, target: float) -> tuple[float, float]:
    """(slices, seconds) until the curve first reaches `target`; NaN if it never does."""
    hit = np.flatnonzero(np.asarray(curve) >= target - 1e-12)
    if not hit.size:
        return float("nan"), float("nan")
    k = int(hit[0])
    return float(k), float(np.asarray(seconds, float)[np.asarray(order, dtype=np.int64)[:k]].sum())
