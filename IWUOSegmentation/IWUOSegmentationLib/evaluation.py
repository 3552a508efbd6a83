"""Replay evaluation of one case: Dice-vs-budget curves per region, strategy and expert.

Random is averaged over `random_seeds` orderings; nAUBC is (AUBC - random) / (oracle - random).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import BadInputError
from .experts import EXPERTS, TimeModel
from .metrics import region_metrics
from .replay import aubc, dice_curve, normalised_aubc, slice_counts
from .slice_scores import ScoreOptions, model_structures, score_slices
from .strategies import STRATEGIES, RankingContext, make_strategy
from .structures import ModelStructures, as_evaluation_regions

DEFAULT_STRATEGIES = tuple(STRATEGIES)


@dataclass
class CaseEvaluation:
    case: str
    axis: int
    n_slices: int
    curves: dict = field(default_factory=dict)  # (region, expert, strategy) -> curve
    rows: list = field(default_factory=list)  # flat table rows
    metrics: dict = field(default_factory=dict)  # region -> Dice and HD95 before correction


def seconds_per_slice(pred: np.ndarray, corrected: np.ndarray, axis: int, spacing_xyz, time_model: TimeModel) -> np.ndarray:
    """Time the expert spends on each slice under `time_model` (in-plane pixel size from the spacing)."""
    in_plane = [s for i, s in enumerate(np.asarray(spacing_xyz, float)[::-1]) if i != axis]
    pixel_mm = float(np.sqrt(in_plane[0] * in_plane[1]))
    p, c = np.moveaxis(pred, axis, 0), np.moveaxis(corrected, axis, 0)
    return np.array([time_model.seconds(a, b, pixel_mm) for a, b in zip(p, c)])


def dice_within_seconds(curve: np.ndarray, order: np.ndarray, seconds: np.ndarray, budget: float) -> tuple[float, int]:
    """Dice reached, and slices corrected, before the cumulative time exceeds `budget` seconds."""
    k = int(np.searchsorted(np.cumsum(seconds[np.asarray(order, dtype=np.int64)]), budget, side="right"))
    return float(curve[k]), k


def evaluate_case(name: str, label_map: np.ndarray, probabilities: np.ndarray, output_names: list[str],
                  region_based: bool, uncertainty: np.ndarray, reference: np.ndarray, axis: int,
                  regions=None, strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
                  experts: tuple[str, ...] = ("perfect", "noisy"), random_seeds: int = 20,
                  label_values: dict | None = None, options: ScoreOptions | None = None,
                  spacing_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0), time_model: TimeModel | None = None,
                  seconds_budget: float = 300.0, structures: ModelStructures | None = None) -> CaseEvaluation:
    """Score, rank and replay every strategy for every region and expert on one case.

    `regions`: None (WT/TC/ET of a BraTS model, else each of the model's structures), names of the model's
    structures (WT/TC/ET on BraTS models), a mapping name -> label values, or name -> EvaluationRegion (reference
    values in the reference's convention); see structures.py."""
    if reference.shape != label_map.shape:
        raise BadInputError(f"Reference {reference.shape} and prediction {label_map.shape} have different grids.")
    time_model = time_model or TimeModel()
    structures = structures or model_structures(output_names, region_based, label_values)
    regions = as_evaluation_regions(regions, structures)
    result = CaseEvaluation(case=name, axis=axis, n_slices=label_map.shape[axis],
                            metrics=region_metrics(label_map, reference, spacing_xyz, regions))
    for region, spec in regions.items():
        truth = spec.reference_mask(reference)
        pred = spec.structure.mask(label_map)
        prob = spec.structure.probability(probabilities)
        scores = score_slices(prob, pred, uncertainty, axis, options)
        for expert_name in experts:
            corrected = EXPERTS[expert_name]().correct(truth, axis, seed=zlib.crc32(f"{name}/{region}".encode()))
            counts = slice_counts(pred, truth, corrected, axis)
            seconds = seconds_per_slice(pred, corrected, axis, spacing_xyz, time_model)
            aubcs, timed = {}, {}
            for strategy in strategies:
                if strategy == "random":
                    orders = [make_strategy("random").order(RankingContext(scores, seed=s)) for s in range(random_seeds)]
                    curves = [dice_curve(counts, o) for o in orders]
                    curve = np.mean(curves, axis=0)
                    within = [dice_within_seconds(c, o, seconds, seconds_budget) for c, o in zip(curves, orders)]
                    timed[strategy] = (float(np.mean([w[0] for w in within])), float(np.mean([w[1] for w in within])))
                else:
                    order = make_strategy(strategy).order(RankingContext(scores, counts))
                    curve = dice_curve(counts, order)
                    timed[strategy] = dice_within_seconds(curve, order, seconds, seconds_budget)
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
                    f"dice_within_{int(seconds_budget)}s": round(timed[strategy][0], 4),
                    f"slices_within_{int(seconds_budget)}s": round(timed[strategy][1], 1),
                    "reference_empty": bool(not truth.any()),
                })
    return result
