"""Replay evaluation of one case: Dice after each visit, per region and averaged, on two axes.

One visit corrects every label on the slice, so each strategy gives one ranking of the slices
and every region's Dice is replayed along it (per-region rankings stay as an option). The expert
decides what a visited slice becomes (computed once per slice); the time model turns it into
seconds, so each ranking yields a Dice-vs-slices and a Dice-vs-seconds curve. Random is averaged
over `random_seeds` orderings; nAUBC = (AUBC - random) / (oracle - random), on the time axis
against the time oracle (true gain per true second) when it is evaluated.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from ..data.structures import ModelStructures, as_evaluation_regions
from ..errors import BadInputError
from ..ranking.case_scores import CaseScores, score_case
from ..ranking.correction_time import TimeModel, path_length_per_slice
from ..ranking.slice_counts import dice, slice_counts
from ..ranking.slice_scores import ScoreOptions, model_structures
from ..ranking.strategies import ORACLES, STRATEGIES, RankingContext, make_strategy
from .budget_curves import aubc, aubc_seconds, budget_to_reach, dice_at_times, dice_curve, normalised_aubc
from .experts import EXPERTS
from .failure_detection import detection_metrics, score_from_order
from .region_metrics import region_metrics

DEFAULT_STRATEGIES = tuple(STRATEGIES)
MEAN = "mean"  # the pseudo-region: mean Dice over the evaluated regions
GAIN_SHARE = 0.8  # budget to reach this share of the oracle's Dice gain is reported


@dataclass
class CaseEvaluation:
    case: str
    axis: int
    n_slices: int
    curves: dict = field(default_factory=dict)  # (region, expert, strategy) -> Dice after 0..n visits
    time_curves: dict = field(default_factory=dict)  # (region, expert, strategy) -> Dice at time_grid
    time_grid: list = field(default_factory=list)
    rows: list = field(default_factory=list)  # flat table rows
    metrics: dict = field(default_factory=dict)  # region -> Dice and HD95 before correction
    failure_detection: list = field(default_factory=list)  # rows: expert, score, auroc, auprc, aurc
    quality: dict = field(default_factory=dict)  # region -> expected and measured Dice before correction
    expert_agreement: dict = field(default_factory=dict)  # region -> median slice Dice of the full redraw


def seconds_per_slice(pred: np.ndarray, corrected: np.ndarray, axis: int, spacing_xyz, time_model: TimeModel) -> np.ndarray:
    """Time the expert spends on each slice of one region (look time included once)."""
    return time_model.look_seconds + time_model.seconds_per_mm * path_length_per_slice(pred, corrected, axis,
                                                                                        spacing_xyz)


def dice_within_seconds(curve: np.ndarray, order: np.ndarray, seconds: np.ndarray, budget: float) -> tuple[float, int]:
    """Dice reached, and slices corrected, before the cumulative time exceeds `budget` seconds."""
    k = int(np.searchsorted(np.cumsum(seconds[np.asarray(order, dtype=np.int64)]), budget, side="right"))
    return float(curve[k]), k


def _slice_dice(a: np.ndarray, b: np.ndarray, axis: int, min_pixels: int) -> np.ndarray:
    other = tuple(i for i in range(a.ndim) if i != axis)
    tp, fp, fn = ((a & b).sum(other), (a & ~b).sum(other), (~a & b).sum(other))
    keep = b.sum(other) >= min_pixels
    return dice(tp, fp, fn)[keep]


def evaluate_case(name: str, label_map: np.ndarray, probabilities: np.ndarray, output_names: list[str],
                  region_based: bool, uncertainty: np.ndarray, reference: np.ndarray, axis: int,
                  regions=None, strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
                  experts: tuple[str, ...] = ("perfect", "noisy"), random_seeds: int = 20,
                  label_values: dict | None = None, options: ScoreOptions | None = None,
                  spacing_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0), time_model: TimeModel | None = None,
                  seconds_budget: float = 600.0, member_variance: np.ndarray | None = None,
                  per_region_rankings: bool = False, time_step: float = 5.0,
                  structures: ModelStructures | None = None) -> CaseEvaluation:
    """Score, rank and replay every strategy for every expert on one case (all regions per visit).

    `regions`: None (WT/TC/ET of a BraTS model, else each of the model's structures), names of the model's
    structures (WT/TC/ET on BraTS models), a mapping name -> label values, or name -> EvaluationRegion (reference
    values in the reference's convention); see data/structures.py."""
    if reference.shape != label_map.shape:
        raise BadInputError(f"Reference {reference.shape} and prediction {label_map.shape} have different grids.")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise BadInputError(f"Unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}.")
    time_model = time_model or TimeModel()
    structures = structures or model_structures(output_names, region_based, label_values)
    regions = as_evaluation_regions(regions, structures)
    names = list(regions)
    result = CaseEvaluation(case=name, axis=axis, n_slices=label_map.shape[axis],
                            metrics=region_metrics(label_map, reference, spacing_xyz, regions))
    truth = {r: spec.reference_mask(reference) for r, spec in regions.items()}
    pred = {r: spec.structure.mask(label_map) for r, spec in regions.items()}
    prob = {r: spec.structure.probability(probabilities) for r, spec in regions.items()}
    variance = None
    if member_variance is not None:  # per output, combined per structure as its probability is
        variance = {r: spec.structure.probability(member_variance) for r, spec in regions.items()}
    scores = score_case(prob, pred, uncertainty, axis, spacing_xyz, variance, options, time_model)
    result.quality = {r: {"expected_dice": round(float(scores.regions[r].expected_dice), 4),
                          "measured_dice": round(float(result.metrics[r]["dice"]), 4)} for r in names}
    times = np.arange(0.0, seconds_budget + 1e-9, time_step)
    result.time_grid = times.tolist()
    gt_free_orders: dict[tuple, list[np.ndarray]] = {}

    def rank(strategy: str, case_scores: CaseScores, counts, seconds, seed: int = 0) -> np.ndarray:
        key = (strategy, tuple(case_scores.regions), seed)
        if strategy not in ORACLES and key in gt_free_orders:  # GT-free orders do not depend on the expert
            return gt_free_orders[key]
        order = make_strategy(strategy).order(RankingContext(case_scores, counts, seed=seed, seconds=seconds))
        if strategy not in ORACLES:
            gt_free_orders[key] = order
        return order

    for expert_name in experts:
        if expert_name not in EXPERTS:
            raise BadInputError(f"Unknown expert {expert_name!r}; choose from {', '.join(EXPERTS)}.")
        expert = EXPERTS[expert_name]()
        corrected = {r: expert.corrected(pred[r], truth[r], axis, spacing_xyz, seed=zlib.crc32(f"{name}/{r}".encode()))
                     for r in names}
        counts = {r: slice_counts(pred[r], truth[r], corrected[r], axis) for r in names}
        paths = {r: path_length_per_slice(pred[r], corrected[r], axis, spacing_xyz) for r in names}
        seconds_all = time_model.look_seconds + time_model.seconds_per_mm * np.sum(list(paths.values()), axis=0)
        seconds_of = {r: time_model.look_seconds + time_model.seconds_per_mm * paths[r] for r in names}
        if hasattr(expert, "belief") and not result.expert_agreement:
            for r in names:
                b = expert.belief(truth[r], axis, spacing_xyz, seed=zlib.crc32(f"{name}/{r}".encode()))
                d = _slice_dice(b, truth[r], axis, min_pixels=25)
                result.expert_agreement[r] = round(float(np.median(d)), 4) if d.size else float("nan")
        failed = np.zeros(result.n_slices, bool)
        for r in names:
            failed |= counts[r].tp_fixed != counts[r].tp
            failed |= counts[r].fp_fixed != counts[r].fp
        candidates = np.zeros(result.n_slices, bool)
        for r in names:
            candidates |= (counts[r].tp + counts[r].fp + counts[r].fn) > 0
        stats: dict[str, dict] = {}
        for strategy in strategies:
            seeds = range(random_seeds) if strategy == "random" else [0]
            per_seed = []
            for seed in seeds:
                if per_region_rankings:
                    orders = {r: rank(strategy, scores.only(r), {r: counts[r]}, seconds_of[r], seed) for r in names}
                    secs = seconds_of
                else:
                    order = rank(strategy, scores, counts, seconds_all, seed)
                    orders = {r: order for r in names}
                    secs = {r: seconds_all for r in names}
                curves = {r: dice_curve(counts[r], orders[r]) for r in names}
                tcurves = {r: dice_at_times(curves[r], orders[r], secs[r], times) for r in names}
                t_aubc = {r: aubc_seconds(curves[r], orders[r], secs[r], seconds_budget) for r in names}
                curves[MEAN] = np.mean([curves[r] for r in names], axis=0)
                tcurves[MEAN] = np.mean([tcurves[r] for r in names], axis=0)
                t_aubc[MEAN] = float(np.mean([t_aubc[r] for r in names]))
                per_seed.append((orders, curves, tcurves, t_aubc))
            stats[strategy] = per_seed
            if strategy not in (*ORACLES, "random") and expert_name != "perfect" and not per_region_rankings:
                result.failure_detection.append({"expert": expert_name, "score": strategy,
                                                 **detection_metrics(failed[candidates],
                                                                     score_from_order(orders[names[0]])[candidates])})
        oracle_final = {}
        for r in [*names, MEAN]:
            ref = stats.get("oracle", stats.get("oracle_time"))
            oracle_final[r] = float(np.max(ref[0][1][r])) if ref else float("nan")
        for region in [*names, MEAN]:
            aubcs = {s: float(np.mean([aubc(p[1][region]) for p in stats[s]])) for s in strategies}
            taubcs = {s: float(np.mean([p[3][region] for p in stats[s]])) for s in strategies}
            time_oracle = "oracle_time" if "oracle_time" in taubcs else "oracle"
            for strategy in strategies:
                per_seed = stats[strategy]
                curve = np.mean([p[1][region] for p in per_seed], axis=0)
                result.curves[(region, expert_name, strategy)] = curve
                result.time_curves[(region, expert_name, strategy)] = np.mean([p[2][region] for p in per_seed], axis=0)
                d0 = float(curve[0])
                target = d0 + GAIN_SHARE * (oracle_final[region] - d0)
                reach = []
                for orders, curves, _, _ in per_seed:
                    if region == MEAN:
                        order, secs = orders[names[0]], (seconds_all if not per_region_rankings else None)
                    else:
                        order, secs = orders[region], (seconds_of[region] if per_region_rankings else seconds_all)
                    reach.append(budget_to_reach(curves[region], order, secs, target) if secs is not None
                                 else (float("nan"), float("nan")))
                reach = np.array(reach, float)
                within = [dice_within_seconds(p[1][region], p[0][names[0] if region == MEAN else region],
                                              seconds_all, seconds_budget)[0] for p in per_seed]
                result.rows.append({
                    "case": name, "region": region, "expert": expert_name, "strategy": strategy,
                    "dice_before": round(d0, 4), "dice_after_all": round(float(curve[-1]), 4),
                    "aubc": round(aubcs[strategy], 5),
                    "naubc": round(normalised_aubc(aubcs[strategy], aubcs.get("random", np.nan),
                                                   aubcs.get("oracle", np.nan)), 4),
                    "aubc_seconds": round(taubcs[strategy], 5),
                    "naubc_seconds": round(normalised_aubc(taubcs[strategy], taubcs.get("random", np.nan),
                                                           taubcs.get(time_oracle, np.nan)), 4),
                    f"dice_within_{int(seconds_budget)}s": round(float(np.mean(within)), 4),
                    "slices_to_80pct_oracle_gain": round(float(np.nanmean(reach[:, 0])), 2)
                    if np.any(~np.isnan(reach[:, 0])) else float("nan"),
                    "seconds_to_80pct_oracle_gain": round(float(np.nanmean(reach[:, 1])), 1)
                    if np.any(~np.isnan(reach[:, 1])) else float("nan"),
                    "reference_empty": bool(not truth[region].any()) if region != MEAN else False,
                })
    return result
