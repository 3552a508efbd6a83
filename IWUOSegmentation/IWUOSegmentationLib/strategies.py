"""Slice-ranking strategies behind one interface: `order(context) -> slice indices, best first`.

Adding a strategy is one small class with a `name` and an `order` method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .replay import SliceCounts, dice
from .slice_scores import SliceScores


@dataclass
class RankingContext:
    """What a strategy may look at. `counts` (ground truth) is for the oracle only."""

    scores: SliceScores
    counts: Optional[SliceCounts] = None
    seed: int = 0


def _by_score(score: np.ndarray) -> np.ndarray:
    """Descending score, ties broken by slice index (stable, deterministic)."""
    return np.argsort(-np.asarray(score, float), kind="stable")


class IWUO:
    name = "iwuo"

    def order(self, ctx: RankingContext) -> np.ndarray:
        return _by_score(ctx.scores.iwuo)


class UncertaintyOnly:
    name = "uncertainty"

    def order(self, ctx: RankingContext) -> np.ndarray:
        return _by_score(ctx.scores.uncertainty)


class ImpactOnly:
    name = "impact"

    def order(self, ctx: RankingContext) -> np.ndarray:
        return _by_score(ctx.scores.impact)


class RandomOrder:
    name = "random"

    def order(self, ctx: RankingContext) -> np.ndarray:
        return np.random.default_rng(ctx.seed).permutation(len(ctx.scores.iwuo))


class FixedInterval:
    """Every k-th slice through the predicted tumour's extent, then the rest, as annotators often do."""

    name = "fixed_interval"

    def __init__(self, interval: int = 4):
        self.interval = interval

    def order(self, ctx: RankingContext) -> np.ndarray:
        n = len(ctx.scores.iwuo)
        present = np.nonzero(ctx.scores.predicted_area > 0)[0]
        lo, hi = (int(present.min()), int(present.max())) if present.size else (0, n - 1)
        first = list(range(lo, hi + 1, self.interval))
        rest = [s for offset in range(1, self.interval) for s in range(lo + offset, hi + 1, self.interval)]
        outside = [s for s in range(n) if s < lo or s > hi]
        return np.array(first + rest + outside, dtype=np.int64)


class LargestArea:
    name = "largest_area"

    def order(self, ctx: RankingContext) -> np.ndarray:
        return _by_score(ctx.scores.predicted_area)


class Oracle:
    """True marginal Dice gain, recomputed after each pick (greedy); needs ground truth."""

    name = "oracle"

    def order(self, ctx: RankingContext) -> np.ndarray:
        c = ctx.counts
        if c is None:
            raise ValueError("The oracle strategy needs a reference segmentation.")
        tp, fp, fn = float(c.tp.sum()), float(c.fp.sum()), float(c.fn.sum())
        d_tp, d_fp, d_fn = c.tp_fixed - c.tp, c.fp_fixed - c.fp, c.fn_fixed - c.fn
        remaining = np.ones(c.n_slices, bool)
        order = []
        for _ in range(c.n_slices):
            gain = dice(tp + d_tp, fp + d_fp, fn + d_fn)
            gain = np.where(remaining, gain, -np.inf)
            s = int(np.argmax(gain))
            order.append(s)
            remaining[s] = False
            tp, fp, fn = tp + d_tp[s], fp + d_fp[s], fn + d_fn[s]
        return np.array(order, dtype=np.int64)


STRATEGIES = {cls.name: cls for cls in (IWUO, UncertaintyOnly, ImpactOnly, RandomOrder, FixedInterval, LargestArea,
                                        Oracle)}


def make_strategy(name: str):
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}.")
    return STRATEGIES[name]()
