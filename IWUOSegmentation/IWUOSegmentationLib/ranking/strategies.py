"""Slice-ranking strategies behind one interface: `order(context) -> slice indices, best first`.

Adding a strategy is one row of STRATEGIES: its name and the one score it orders by (ScoreOrder), or a
small class with an `order` method. Strategies read the scores of one region (SliceScores) or of all
regions at once (CaseScores: one visit corrects every label on the slice, so the combined scores add the
regions' gains). Only the oracles see the ground truth (`counts`, and `seconds`, the expert's true time
per slice).

`DEFAULT_RANKING` is the ranking the product (Slicer module, browser review, demo) uses, picked on
development data by the rule of the frozen protocol (docs/evaluation/protocol.md; README, "Evaluation
results").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Optional, Protocol, Union

import numpy as np

from ..data.structures import Structure
from .case_scores import CaseScores
from .slice_counts import SliceCounts
from .slice_scores import SliceScores

if TYPE_CHECKING:
    from ..data.analysis_files import LoadedAnalysis


@dataclass
class RankingContext:
    """What a strategy may look at. `counts` and `seconds` (ground truth) are for the oracles only."""

    scores: Union[SliceScores, CaseScores]
    counts: Union[SliceCounts, dict, None] = None
    seed: int = 0
    seconds: Optional[np.ndarray] = None

    @property
    def case_scores(self) -> CaseScores:
        return self.scores if isinstance(self.scores, CaseScores) else CaseScores.from_slice_scores(self.scores)

    @property
    def counts_by_region(self) -> dict[str, SliceCounts]:
        if self.counts is None:
            raise ValueError("The oracle strategies need a reference segmentation.")
        return self.counts if isinstance(self.counts, dict) else {"": self.counts}


class Strategy(Protocol):
    def order(self, ctx: RankingContext) -> np.ndarray:
        """The slice indices, best first."""


def greedy_order(counts: dict[str, SliceCounts], cost: Optional[np.ndarray] = None,
                 look_ahead: bool = False) -> np.ndarray:
    """Greedy marginal gain of the mean Dice over regions, re-estimated after every pick.

    `counts` are the true counts (oracle) or their expectations (GT-free); with `cost` (seconds
    per slice) the pick maximises gain per second. One slice at a time is myopic where a region's Dice
    moves only once its last error slice is fixed (a region absent from the reference but predicted: Dice 0
    until every false positive is erased, then 1): each slice alone gains nothing. With `look_ahead` a move may
    also be "every remaining slice that changes region r" (the region's completion), taken whole when its
    gain per slice (per second) beats the best single slice's, its slices by their own gain.
    """
    regions = list(counts.values())
    n = regions[0].n_slices
    state = np.array([[c.tp.sum(), c.fp.sum(), c.fn.sum()] for c in regions], dtype=np.float64)  # (R, 3)
    deltas = np.stack([np.stack([c.tp_fixed - c.tp, c.fp_fixed - c.fp, c.fn_fixed - c.fn]) for c in regions]
                      ).astype(np.float64)  # (R, 3, n)
    seconds = np.ones(n) if cost is None else np.asarray(cost, np.float64)
    inv_cost = None if cost is None else 1.0 / seconds
    changes = (deltas != 0).any(1)  # (R, n): the slices whose visit changes each region
    remaining = np.ones(n, bool)
    order: list[int] = []

    def mean_dice(tp, fp, fn):
        denom = 2 * tp + fp + fn
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 1.0).mean(0)

    while len(order) < n:
        now = mean_dice(state[:, 0], state[:, 1], state[:, 2])
        after = state[:, :, None] + deltas
        rate = mean_dice(after[:, 0], after[:, 1], after[:, 2]) - now
        if inv_cost is not None:
            rate = rate * inv_cost
        rate[~remaining] = -np.inf
        pick = [int(np.argmax(rate))]
        best = rate[pick[0]]
        for r in range(len(regions) if look_ahead else 0):
            batch = np.flatnonzero(remaining & changes[r])
            if batch.size < 2:
                continue
            whole = state + deltas[:, :, batch].sum(2)
            batch_rate = (mean_dice(whole[:, 0], whole[:, 1], whole[:, 2]) - now) / seconds[batch].sum()
            if batch_rate > best + 1e-12:
                best, pick = batch_rate, batch[np.argsort(-rate[batch], kind="stable")].tolist()
        for s in pick:
            order.append(s)
            remaining[s] = False
            state += deltas[:, :, s]
    return np.array(order, dtype=np.int64)


def _by_score(score: np.ndarray) -> np.ndarray:
    """Descending score, ties broken by slice index (stable, deterministic)."""
    return np.argsort(-np.asarray(score, float), kind="stable")


class ScoreOrder:
    """Slices by one per-slice score, highest first: `attribute` of the scores, read from the case-wide
    scores when `case_wide` (the member-disagreement terms exist only there)."""

    def __init__(self, attribute: str, case_wide: bool = False):
        self.attribute, self.case_wide = attribute, case_wide

    def order(self, ctx: RankingContext) -> np.ndarray:
        return _by_score(getattr(ctx.case_scores if self.case_wide else ctx.scores, self.attribute))


class RandomOrder:
    """A random permutation of the slices, reproducible by `ctx.seed` (the baseline)."""

    def order(self, ctx: RankingContext) -> np.ndarray:
        return np.random.default_rng(ctx.seed).permutation(len(ctx.scores.iwuo))


class FixedInterval:
    """Every k-th slice through the predicted tumour's extent, then the rest, as annotators often do."""

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


class TumourFirstRandom:
    """Slices with predicted tumour first, in random order, then the rest in random order (reproducible by
    `ctx.seed`): the random baseline that does not spend looks on empty slices."""

    def order(self, ctx: RankingContext) -> np.ndarray:
        rng = np.random.default_rng(ctx.seed)
        present = ctx.scores.predicted_area > 0
        return np.concatenate([rng.permutation(np.flatnonzero(present)),
                               rng.permutation(np.flatnonzero(~present))]).astype(np.int64)


class TumourFixedInterval:
    """Every k-th of the slices with predicted tumour, then the ones between (k-1 more sweeps), then the slices
    without predicted tumour, nearest to a tumour slice first: a fixed interval over the predicted tumour only."""

    def __init__(self, interval: int = 4):
        self.interval = interval

    def order(self, ctx: RankingContext) -> np.ndarray:
        n = len(ctx.scores.predicted_area)
        present = np.flatnonzero(ctx.scores.predicted_area > 0)
        sweeps = [present[offset::self.interval] for offset in range(self.interval)]
        absent = np.setdiff1d(np.arange(n), present)
        if present.size:
            distance = np.abs(absent[:, None] - present[None, :]).min(1)
            absent = absent[np.argsort(distance, kind="stable")]
        return np.concatenate([*sweeps, absent]).astype(np.int64)


class Oracle:
    """True marginal Dice gain (mean over regions), recomputed after each pick (greedy, with the look-ahead that
    completes a region); needs ground truth. The evaluation keeps the better of this and the plain greedy order
    (simulation/evaluation.oracle_order): a reference, not a proven optimum."""

    def order(self, ctx: RankingContext) -> np.ndarray:
        return greedy_order(ctx.counts_by_region, look_ahead=True)


class OracleTime:
    """True marginal Dice gain per true second of the expert (the reference of the time axis)."""

    def order(self, ctx: RankingContext) -> np.ndarray:
        seconds = None if ctx.seconds is None else np.asarray(ctx.seconds, float)
        return greedy_order(ctx.counts_by_region, seconds, look_ahead=True)


class GainPerSecond:
    """Expected Dice gain over all regions per expected correction second (Atzeni et al. 2022 style)."""

    def order(self, ctx: RankingContext) -> np.ndarray:
        cs = ctx.case_scores
        return _by_score(cs.impact / cs.expected_seconds)


class GreedyGain:
    """Greedy expected marginal gain: the oracle's re-estimation with expected counts instead of true ones."""

    def order(self, ctx: RankingContext) -> np.ndarray:
        return greedy_order(ctx.case_scores.expected_counts())


class GreedyGainPerSecond:
    """Greedy expected marginal gain per expected second."""

    def order(self, ctx: RankingContext) -> np.ndarray:
        cs = ctx.case_scores
        return greedy_order(cs.expected_counts(), cs.expected_seconds)


#: Every strategy by name, in the order the reports list them: a class, or the one score it orders by.
#: "iwuo_disagreement" is IWUO with the uncertainty measured as member disagreement (1 - pairwise Dice,
#: Zenk et al. 2025); "disagreement" is that disagreement alone. "noticed_gain" is the expected Dice gain from
#: the errors a correcting clinician would notice (noticed_errors.py), "_per_second" its per-second form, and
#: "_no_reach" / "_no_size" its ablations (one term off each; both off is "impact").
STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "noticed_gain": partial(ScoreOrder, "noticed_gain", case_wide=True),
    "noticed_gain_per_second": partial(ScoreOrder, "noticed_gain_per_second", case_wide=True),
    "noticed_gain_no_reach": partial(ScoreOrder, "noticed_gain_no_reach", case_wide=True),
    "noticed_gain_no_size": partial(ScoreOrder, "noticed_gain_no_size", case_wide=True),
    "iwuo": partial(ScoreOrder, "iwuo"),
    "uncertainty": partial(ScoreOrder, "uncertainty"),
    "impact": partial(ScoreOrder, "impact"),
    "random": RandomOrder,
    "tumour_first_random": TumourFirstRandom,
    "fixed_interval": FixedInterval,
    "tumour_fixed_interval": TumourFixedInterval,
    "largest_area": partial(ScoreOrder, "predicted_area"),
    "gain_per_second": GainPerSecond,
    "greedy_gain": GreedyGain,
    "greedy_gain_per_second": GreedyGainPerSecond,
    "iwuo_disagreement": partial(ScoreOrder, "iwuo_disagreement", case_wide=True),
    "disagreement": partial(ScoreOrder, "member_disagreement", case_wide=True),
    "oracle": Oracle,
    "oracle_time": OracleTime,
}
#: Strategies that look at the ground truth (upper bounds, never offered in the product).
ORACLES = ("oracle", "oracle_time")
#: Strategies whose order depends on `ctx.seed` (replayed over many seeds and averaged).
RANDOMISED = ("random", "tumour_first_random")
#: The ground-truth-free strategies (the family of the paired tests and of the pick of the default).
GT_FREE = tuple(s for s in STRATEGIES if s not in ORACLES)
#: The product's default ranking, picked by the frozen protocol's rule (docs/evaluation/protocol.md): the GT-free
#: ranking with the highest pooled nAUBC on the time axis (correcting expert, mean over regions, 600 s) on the 20
#: development phantoms (docs/evaluation/development/phantoms/report.md; README "Evaluation results").
DEFAULT_RANKING = "noticed_gain"


def make_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}.")
    return STRATEGIES[name]()


def rank_case(analysis: LoadedAnalysis, structures: Optional[Mapping[str, Structure]] = None,
              strategy: str = DEFAULT_RANKING, limit: Optional[int] = None) -> tuple[int, CaseScores, list[dict]]:
    """The product's slice ranking of an analysed case over all `structures` at once (one visit corrects
    every structure on the slice), with the analysis' entropy as its uncertainty and its member variance
    (per output) for the disagreement terms.

    `structures`: name -> structures.Structure; None takes the regions the evaluation scores (WT/TC/ET of a
    BraTS model, else each structure of the model, as the analysis' summary.json records them), which is what
    the default review target (all foreground) ranks. Returns (axis, scores, rows of
    slice/iwuo/impact/uncertainty, best first), the shape of `slice_scores.iwuo_ranking`.
    """
    from ..data.structures import evaluation_regions, structures_from_summary
    from .case_scores import score_case
    from .slice_scores import slice_axis

    if strategy in ORACLES:
        raise ValueError(f"{strategy} needs the ground truth; choose a ground-truth-free ranking.")
    if structures is None:
        model = structures_from_summary(analysis.summary)
        structures = {name: region.structure for name, region in evaluation_regions(model).items()}
    spacing_xyz = analysis.geometry.GetSpacing()
    axis = slice_axis(spacing_xyz)
    probs = {r: s.probability(analysis.probabilities) for r, s in structures.items()}
    preds = {r: s.mask(analysis.label_map) for r, s in structures.items()}
    variances = None
    if analysis.member_variance is not None:  # per output, combined per structure as its probability is
        variances = {r: s.probability(analysis.member_variance) for r, s in structures.items()}
    scores = score_case(probs, preds, analysis.uncertainty["entropy"], axis, spacing_xyz, variances)
    order = make_strategy(strategy).order(RankingContext(scores))[:limit]
    iwuo, impact, unc = scores.iwuo, scores.impact, scores.uncertainty
    rows = [{"slice": int(s), "iwuo": float(iwuo[s]), "impact": float(impact[s]), "uncertainty": float(unc[s])}
            for s in order]
    return axis, scores, rows
