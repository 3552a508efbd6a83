"""Replay evaluation of one case: Dice-vs-budget curves per region, strategy and expert.

Random is averaged over `random_seeds` orderings; nAUBC is (AUBC - random) / (oracle - random).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import BadInputError
from .experts import EXPERTS
from .replay import aubc, dice_curve, normalised_aubc, slice_counts
from .slice_scores import ScoreOptions, region_mask, region_probability, score_slices
from .strategies import STRATEGIES, RankingContext, make_strategy

DEFAULT_STRATEGIES = tuple(STRATEGIES)


@dataclass
class CaseEvaluation:
    case: str
    axis: int
    n_slices: int
    curves: dict = field(default_factory=dict)  # (region, expert, strategy) -> curve
    rows: list = field(default_factory=list)  # flat table rows


def evaluate_case(name: str, label_map: np.ndarray, probabilities: np.ndarray, output_names: list[str],
                  region_based: bool, uncertainty: np.ndarray, reference: np.ndarray, axis: int,
                  regions: tuple[str, ...] = ("WT", "TC", "ET"), strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
                  experts: tuple[str, ...] = ("perfect", "noisy"), random_seeds: int = 20,
                  label_values: dict | None = None, options: ScoreOptions | None = None) -> CaseEvaluation:
    """Score, rank and replay every strategy for every region and expert on one case."""
    if reference.shape != label_map.shape:
        raise BadInputError(f"Reference {reference.shape} and prediction {label_map.shape} have different grids.")
    result = CaseEvaluation(case=name, axis=axis, n_slices=label_map.shape[axis])
    for region in regions:
        truth = region_mask(reference, region)
        pred = region_mask(label_map, region)
        prob = region_probability(probabilities, output_names, region_based, region, label_values)
        scores = score_slices(prob, pred, uncertainty, axis, options)
        for expert_name in experts:
            corrected = EXPERTS[expert_name]().correct(truth, axis, seed=zlib.crc32(f"{name}/{region}".encode()))
            counts = slice_counts(pred, truth, corrected, axis)
            aubcs = {}
            for strategy in strategies:
                if strategy == "random":
                    curves = [dice_curve(counts, make_strategy("random").order(RankingContext(scores, seed=s)))
                              for s in range(random_seeds)]
                    curve = np.mean(curves, axis=0)
                else:
                    curve = dice_curve(counts, make_strategy(strategy).order(RankingContext(scores, counts)))
                result.curves[(region, expert_name, strategy)] = curve
                aubcs[strategy] = aubc(curve)
            for strategy in strategies:
                curve = result.curves[(region, expert_name, strategy)]
                result.rows.append({
                    "case": name, "region": region, "expert": expert_name, "strategy": strategy,
                    "dice_before": round(float(curve[0]), 4), "dice_after_all": round(float(curve[-1]), 4),
                    "aubc": round(aubcs[strategy], 5),
                    "naubc": round(normalised_aubc(aubcs[strategy], aubcs.get("random", np.nan),
                                                   aubcs.get("oracle", np.nan)), 4),
                    "reference_empty": bool(not truth.any()),
                })
    return result
