"""Replay evaluation of one case: Dice after each visit, per region and averaged, on two axes, per expert draw.

One visit corrects every label on the slice, so each strategy gives one ranking of the slices and
every region's Dice is replayed along it (per-region rankings stay as an option). The expert is a
random variable: each of `expert_draws` draws is one rater (simulation/experts.py), and every
number of a case is the mean over its draws (and over the seeds of the random baselines) before
any statistic across cases. The frame of every number is computed for every run, whatever
strategies were asked for: random (averaged over `random_seeds` orderings) and the oracles. A
region's rows are normalised by that region's own oracle (greedy true gain of that region; on the
time axis per true second; `oracle_order`), the mean over regions by the oracle of the mean.

With `sensitivity`, the correcting expert's draws are replayed again in every cell of the declared
grid (look time, seconds per mm, tolerance, minimum area): a draw's belief does not depend on any
of them and the time constants only change seconds, so each draw is corrected once per tolerance
and area and re-timed per time cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from ..data.structures import ModelStructures, as_evaluation_regions
from ..errors import BadInputError
from ..ranking.case_scores import score_case
from ..ranking.slice_counts import SliceCounts, dice
from ..ranking.slice_scores import slice_axis
from ..ranking.strategies import ORACLES, RANDOMISED, STRATEGIES, RankingContext, greedy_order, make_strategy
from .budget_curves import aubc, aubc_seconds_many, budget_to_reach, dice_at_times_many, dice_curves, normalised_aubc
from .evaluation_config import GAIN_TIMES, EvaluationConfig, cell_key
from .experts import EXPERTS, CorrectingExpert, ExpertCase, ExpertOutcome, draw_seed
from .failure_detection import detection_metrics, score_from_order
from .region_metrics import region_metrics

MEAN = "mean"  # the pseudo-region: mean Dice over the evaluated regions
GAIN_SHARE = 0.8  # budget to reach this share of the oracle's Dice gain is reported
#: Strategies every run replays, as the frame of nAUBC: 0 = random, 1 = oracle.
REFERENCES = ("random", "oracle", "oracle_time")


@dataclass
class AnalysedCase:
    """One analysed case as the evaluation reads it (arrays in z, y, x order, `uncertainty` the chosen map)."""

    name: str
    label_map: np.ndarray
    probabilities: np.ndarray
    uncertainty: np.ndarray
    spacing_xyz: tuple[float, float, float]
    structures: ModelStructures
    member_variance: Optional[np.ndarray] = None


@dataclass
class CaseEvaluation:
    case: str
    axis: int
    n_slices: int
    draws: dict = field(default_factory=dict)  # expert -> number of draws replayed
    curves: dict = field(default_factory=dict)  # (region, expert, strategy) -> Dice after 0..n visits
    time_curves: dict = field(default_factory=dict)  # (region, expert, strategy) -> Dice at time_grid
    time_grid: list = field(default_factory=list)
    rows: list = field(default_factory=list)  # flat table rows
    metrics: dict = field(default_factory=dict)  # region -> Dice and HD95 before correction
    failure_detection: list = field(default_factory=list)  # rows: expert, score, auroc, auprc, aurc
    quality: dict = field(default_factory=dict)  # region -> expected and measured Dice before correction
    expert_agreement: dict = field(default_factory=dict)  # region -> median slice Dice of the full redraw
    sensitivity: dict = field(default_factory=dict)  # grid cell -> strategy -> mean-over-regions AUBC (seconds)


def strategies_to_replay(asked) -> list[str]:
    """The strategies asked for, in STRATEGIES' order, plus the references every run needs."""
    unknown = [s for s in asked if s not in STRATEGIES]
    if unknown:
        raise BadInputError(f"Unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}.")
    wanted = set(asked) | set(REFERENCES)
    return [s for s in STRATEGIES if s in wanted]


class Replay:
    """The orders of one case (GT-free ones once; the oracles per expert outcome) and their curves."""

    def __init__(self, scores, names: list[str], strategies: list[str], config: EvaluationConfig):
        self.names, self.config = names, config
        self.gt_free = [s for s in strategies if s not in ORACLES]
        self.oracles = [s for s in strategies if s in ORACLES]
        self.orders: dict[str, dict[str, np.ndarray]] = {}  # strategy -> region -> (orderings, slices)
        for s in self.gt_free:
            seeds = range(config.random_seeds) if s in RANDOMISED else [0]
            if config.per_region_rankings:
                self.orders[s] = {r: self._ranked(s, scores.only(r), seeds) for r in names}
            else:
                joint = self._ranked(s, scores, seeds)
                self.orders[s] = {r: joint for r in names}

    @staticmethod
    def _ranked(strategy: str, scores, seeds) -> np.ndarray:
        return np.stack([make_strategy(strategy).order(RankingContext(scores, seed=seed)) for seed in seeds])

    def oracle_orders(self, counts: dict[str, SliceCounts], seconds: dict[str, np.ndarray],
                      seconds_all: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """strategy -> region (and MEAN) -> (1, slices): each region's own oracle, and the oracle of the mean."""
        out = {}
        for s in self.oracles:
            cost = (lambda r: seconds[r]) if s == "oracle_time" else (lambda r: None)
            budget = self.config.seconds_budget
            out[s] = {r: oracle_order({r: counts[r]}, cost(r), budget)[None] for r in self.names}
            if not self.config.per_region_rankings:
                out[s][MEAN] = oracle_order(counts, seconds_all if s == "oracle_time" else None, budget)[None]
        return out


def oracle_order(counts: dict[str, SliceCounts], seconds: Optional[np.ndarray], budget: float) -> np.ndarray:
    """The oracles' order: the better of the plain greedy and the greedy with look-ahead (strategies.greedy_order),
    by the AUBC of their axis, mean over `counts`' regions (with `seconds`: the time axis over `budget` s; without:
    the slice axis). The look-ahead matters where a region's Dice moves only when its last error slice is fixed
    (a region absent from the reference but predicted); the plain greedy then visits slices by index. Neither is a
    proven optimum: the reports count the GT-free per-case values above the oracle."""
    plain, ahead = greedy_order(counts, seconds), greedy_order(counts, seconds, look_ahead=True)
    if np.array_equal(plain, ahead):
        return plain

    def value(order: np.ndarray) -> float:
        o = order[None]
        if seconds is None:
            return float(np.mean([aubc(dice_curves(c, o)[0]) for c in counts.values()]))
        return float(np.mean([aubc_seconds_many(dice_curves(c, o), o, seconds, budget)[0] for c in counts.values()]))

    return ahead if value(ahead) > value(plain) else plain


@dataclass
class DrawResult:
    """One draw of one expert: per (region, strategy) the seed-averaged curves and numbers."""

    curves: dict = field(default_factory=dict)
    time_curves: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)  # (region, strategy) -> dict of numbers


def replay_draw(replay: Replay, outcome: ExpertOutcome, config: EvaluationConfig, times: np.ndarray) -> DrawResult:
    """Every strategy's curves on both axes for one expert outcome (the regions and their mean)."""
    names, budget = replay.names, config.seconds_budget
    counts = outcome.counts
    seconds_all = outcome.seconds(config.time_model)
    seconds = ({r: outcome.seconds_of(r, config.time_model) for r in names} if config.per_region_rankings
               else {r: seconds_all for r in names})
    orders = {**replay.orders, **replay.oracle_orders(counts, seconds, seconds_all)}
    result = DrawResult()
    probe = np.concatenate([times, [0.0], GAIN_TIMES])
    raw: dict[tuple, tuple] = {}
    for s, by_region in orders.items():
        for r in names:
            o = by_region[r]
            c = dice_curves(counts[r], o)
            raw[(r, s)] = (o, c, dice_at_times_many(c, o, seconds[r], probe), aubc_seconds_many(c, o, seconds[r], budget))
        if MEAN in by_region:  # the oracle of the mean: every region replayed along its order
            o = by_region[MEAN]
            per = [dice_curves(counts[r], o) for r in names]
            raw[(MEAN, s)] = (o, np.mean(per, axis=0),
                              np.mean([dice_at_times_many(c, o, seconds_all, probe) for c in per], axis=0),
                              np.mean([aubc_seconds_many(c, o, seconds_all, budget) for c in per], axis=0))
        else:  # one order for all regions (or each region its own): the mean of the regions' numbers
            o = by_region[names[0]] if not config.per_region_rankings else None
            raw[(MEAN, s)] = (o, np.mean([raw[(r, s)][1] for r in names], axis=0),
                              np.mean([raw[(r, s)][2] for r in names], axis=0),
                              np.mean([raw[(r, s)][3] for r in names], axis=0))
    n_t = len(times)
    for region in [*names, MEAN]:
        best = raw.get((region, "oracle"), raw.get((region, "oracle_time")))[1]
        oracle_final = float(best.max())
        for s in orders:
            o, c, at, t_aubc = raw[(region, s)]
            d0 = float(c[0, 0])
            reach = np.full((c.shape[0], 2), np.nan)
            if o is not None:
                secs = seconds_all if region == MEAN else seconds[region]
                target = d0 + GAIN_SHARE * (oracle_final - d0)
                reach = np.array([budget_to_reach(c[k], o[k], secs, target) for k in range(c.shape[0])], float)
            result.curves[(region, s)] = c.mean(0)
            result.time_curves[(region, s)] = at[:, :n_t].mean(0)
            gains = at[:, n_t + 1:] - at[:, n_t:n_t + 1]
            result.values[(region, s)] = {
                "dice_before": d0, "dice_after_all": float(c[:, -1].mean()),
                "aubc": float(np.mean([aubc(row) for row in c])), "aubc_seconds": float(t_aubc.mean()),
                **{f"dice_gain_{int(t)}s": float(g) for t, g in zip(GAIN_TIMES, gains.mean(0))},
                "slices_to_80pct": _mean_reached(reach[:, 0]), "seconds_to_80pct": _mean_reached(reach[:, 1]),
                "reached_80pct": float(np.mean(~np.isnan(reach[:, 1]))) if o is not None else float("nan")}
    return result


def _mean_reached(values: np.ndarray) -> float:
    """The mean of the values that are numbers (NaN when none is: never reached, or undefined)."""
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def grid_draw(replay: Replay, expert: CorrectingExpert, case: ExpertCase, draw, config: EvaluationConfig) -> dict:
    """One correcting-expert draw in every cell of the sensitivity grid: cell -> strategy -> mean-over-regions AUBC
    on the time axis (GT-free strategies seed-averaged, and the time oracle of the mean)."""
    out = {}
    names, budget = replay.names, config.seconds_budget
    for tolerance, area in config.grid.tolerances():
        tol = replace(expert.tolerance, distance_tolerance_mm=tolerance, min_area_mm2=area)
        outcome = expert.outcome(case, draw, tol)
        path = np.sum(list(outcome.path_mm.values()), axis=0)
        curves = {s: {r: dice_curves(outcome.counts[r], replay.orders[s][r]) for r in names} for s in replay.gt_free}
        for look, per_mm in config.grid.times():
            seconds = look + per_mm * path
            cell = {s: float(np.mean([aubc_seconds_many(curves[s][r], replay.orders[s][r], seconds, budget).mean()
                                      for r in names])) for s in replay.gt_free}
            o = oracle_order(outcome.counts, seconds, budget)[None]
            cell["oracle_time"] = float(np.mean([aubc_seconds_many(dice_curves(outcome.counts[r], o), o, seconds,
                                                                   budget)[0] for r in names]))
            out[cell_key(look, per_mm, tolerance, area)] = cell
    return out


def _slice_dice_of_beliefs(case: ExpertCase, draw, min_pixels: int = 25) -> dict[str, list[float]]:
    """Per region: Dice of the believed slice against the reference, for slices with >= min_pixels of it."""
    out: dict[str, list[float]] = {r: [] for r in case.names}
    for s, pieces in draw.slices.items():
        for r in case.names:
            b, t = pieces.belief[r], case.truth[r][s]
            if t.sum() >= min_pixels:
                out[r].append(float(dice((b & t).sum(), (b & ~t).sum(), (~b & t).sum())))
    return out


def evaluate_case(case: AnalysedCase, reference: np.ndarray, config: EvaluationConfig | None = None,
                  regions=None) -> CaseEvaluation:
    """Score, rank and replay every strategy for every expert (and expert draw) on one case (all regions per visit).

    `regions`: None (WT/TC/ET of a BraTS model, else each of the model's structures), names of the model's
    structures (WT/TC/ET on BraTS models), a mapping name -> label values, or name -> EvaluationRegion (reference
    values in the reference's convention); see data/structures.py."""
    config = config or EvaluationConfig()
    label_map = case.label_map
    if reference.shape != label_map.shape:
        raise BadInputError(f"Reference {reference.shape} and prediction {label_map.shape} have different grids.")
    strategies = strategies_to_replay(config.strategies)
    unknown = [e for e in config.experts if e not in EXPERTS]
    if unknown:
        raise BadInputError(f"Unknown expert {', '.join(unknown)}; choose from {', '.join(EXPERTS)}.")
    if config.sensitivity and config.per_region_rankings:
        raise BadInputError("The sensitivity grid replays one ranking for all regions; drop --per-region-rankings.")
    regions = as_evaluation_regions(regions if regions is not None else config.regions, case.structures)
    names = list(regions)
    axis = slice_axis(case.spacing_xyz)
    result = CaseEvaluation(case=case.name, axis=axis, n_slices=label_map.shape[axis],
                            metrics=region_metrics(label_map, reference, case.spacing_xyz, regions))
    pred = {r: spec.structure.mask(label_map) for r, spec in regions.items()}
    prob = {r: spec.structure.probability(case.probabilities) for r, spec in regions.items()}
    variance = None
    if case.member_variance is not None:  # per output, combined per structure as its probability is
        variance = {r: spec.structure.probability(case.member_variance) for r, spec in regions.items()}
    scores = score_case(prob, pred, case.uncertainty, axis, case.spacing_xyz, variance, config.score_options,
                        config.time_model, config.notice)
    result.quality = {r: {"expected_dice": round(float(scores.regions[r].expected_dice), 4),
                          "measured_dice": round(float(result.metrics[r]["dice"]), 4)} for r in names}
    times = np.arange(0.0, config.seconds_budget + 1e-9, config.time_step)
    result.time_grid = times.tolist()
    replay = Replay(scores, names, strategies, config)
    expert_case = ExpertCase(pred, reference, {r: spec.reference_values for r, spec in regions.items()}, axis,
                             case.spacing_xyz)
    for expert_name in config.experts:
        expert = EXPERTS[expert_name](config.tolerance) if expert_name != "perfect" else EXPERTS[expert_name]()
        n_draws = config.expert_draws if expert.random else 1
        draws, detections, agreement, grids = [], [], {r: [] for r in names}, []
        for d in range(n_draws):
            draw = expert.draw(expert_case, draw_seed(case.name, d))
            outcome = expert.outcome(expert_case, draw)
            draws.append(replay_draw(replay, outcome, config, times))
            if expert.random:
                detections.append(_detection(replay, outcome, expert_case))
                for r, values in _slice_dice_of_beliefs(expert_case, draw).items():
                    agreement[r] += values
            if config.sensitivity and type(expert) is CorrectingExpert:
                grids.append(grid_draw(replay, expert, expert_case, draw, config))
        result.draws[expert_name] = n_draws
        _add_rows(result, draws, expert_name, names, strategies, {r: not expert_case.truth[r].any() for r in names})
        result.failure_detection += [{"expert": expert_name, "score": s,
                                      **{k: _mean_reached(np.array([d[s][k] for d in detections], float))
                                         for k in detections[0][s]}}
                                     for s in (detections[0] if detections else {})]
        if expert.random and not result.expert_agreement:
            result.expert_agreement = {r: round(float(np.median(v)), 4) if v else float("nan") for r, v in agreement.items()}
        if grids:
            result.sensitivity = {cell: {s: float(np.mean([g[cell][s] for g in grids])) for s in grids[0][cell]}
                                  for cell in grids[0]}
    return result


def _detection(replay: Replay, outcome: ExpertOutcome, case: ExpertCase) -> dict[str, dict]:
    """Failure detection of one draw: how well each deterministic GT-free order finds the slices the expert edits."""
    candidates = case.labelled | case.predicted
    out = {}
    if replay.config.per_region_rankings:
        return out
    for s in replay.gt_free:
        if s in RANDOMISED:
            continue
        score = score_from_order(replay.orders[s][replay.names[0]][0])
        out[s] = detection_metrics(outcome.edited[candidates], score[candidates])
    return out


def _add_rows(result: CaseEvaluation, draws: list[DrawResult], expert: str, names: list[str], strategies: list[str],
              empty: dict[str, bool]) -> None:
    """The case's curves and rows for one expert: every number the mean over its draws (`empty`: regions absent
    from the reference)."""
    time_oracle = "oracle_time" if "oracle_time" in strategies else "oracle"
    for region in [*names, MEAN]:
        mean = {s: {k: float(np.nanmean([d.values[(region, s)][k] for d in draws]))
                    if np.any(~np.isnan([d.values[(region, s)][k] for d in draws])) else float("nan")
                    for k in draws[0].values[(region, s)]} for s in strategies}
        for s in strategies:
            result.curves[(region, expert, s)] = np.mean([d.curves[(region, s)] for d in draws], axis=0)
            result.time_curves[(region, expert, s)] = np.mean([d.time_curves[(region, s)] for d in draws], axis=0)
            v = mean[s]
            result.rows.append({
                "case": result.case, "region": region, "expert": expert, "strategy": s, "draws": len(draws),
                "dice_before": round(v["dice_before"], 4), "dice_after_all": round(v["dice_after_all"], 4),
                "aubc": round(v["aubc"], 6),
                "naubc": round(normalised_aubc(v["aubc"], mean["random"]["aubc"], mean["oracle"]["aubc"]), 4),
                "aubc_seconds": round(v["aubc_seconds"], 6),
                "naubc_seconds": round(normalised_aubc(v["aubc_seconds"], mean["random"]["aubc_seconds"],
                                                       mean[time_oracle]["aubc_seconds"]), 4),
                **{f"dice_gain_{int(t)}s": round(v[f"dice_gain_{int(t)}s"], 5) for t in GAIN_TIMES},
                "slices_to_80pct_oracle_gain": round(v["slices_to_80pct"], 2),
                "seconds_to_80pct_oracle_gain": round(v["seconds_to_80pct"], 1),
                "reached_80pct_share": round(v["reached_80pct"], 3),
                "reference_empty": bool(empty.get(region, False)),
            })

