"""Per-case results into the across-case numbers the report quotes: pooled nAUBC with case-level intervals,
Dice gained after 2, 5 and 10 minutes, minutes to 80 % of the oracle's gain, and the paired tests.

Every per-case number is already the mean over the case's expert draws and random seeds
(simulation/evaluation.py). A region's rows are normalised by that region's own oracle. The primary
endpoint is the pooled nAUBC on the time axis, correcting expert (`noisy`), mean over regions.
"""

from __future__ import annotations

import numpy as np

from ..ranking.strategies import GT_FREE, STRATEGIES
from .budget_curves import aubc, normalised_aubc
from .evaluation_config import GAIN_TIMES
from .statistics import case_interval, compare_with, pooled_naubc, top_group

PRIMARY = ("mean", "noisy")  # region, expert of the primary endpoint
GAIN_FIELDS = tuple(f"dice_gain_{int(t)}s" for t in GAIN_TIMES)
ROW_FIELDS = ("aubc_seconds", "naubc_seconds", "dice_before", "dice_after_all", *GAIN_FIELDS,
              "seconds_to_80pct_oracle_gain", "slices_to_80pct_oracle_gain")


def _pad(curve, length: int) -> np.ndarray:
    c = np.asarray(curve, float)
    return np.concatenate([c, np.full(length - len(c), c[-1])]) if len(c) < length else c[:length]


def case_table(records: list[dict], budget: int | None = None) -> dict[tuple, dict[str, dict[str, np.ndarray]]]:
    """(region, expert) -> strategy -> field -> per-case values (cases in `records` order, NaN where missing).

    The slice-axis AUBC is recomputed from the curves over the first `budget` slices (all when None); the
    time-axis numbers come from the per-case rows."""
    cases = [r["case"] for r in records]
    table: dict[tuple, dict[str, dict[str, np.ndarray]]] = {}

    def cell(region, expert, strategy, name):
        group = table.setdefault((region, expert), {}).setdefault(strategy, {})
        return group.setdefault(name, np.full(len(cases), np.nan))

    for i, r in enumerate(records):
        n = min(budget, r["n_slices"]) if budget else r["n_slices"]
        for key, curve in r["curves"].items():
            region, expert, strategy = key.split("|")
            cell(region, expert, strategy, "aubc")[i] = aubc(_pad(curve, n + 1))
        for row in r["rows"]:
            for name in ROW_FIELDS:
                value = row.get(name)
                cell(row["region"], row["expert"], row["strategy"], name)[i] = (
                    float(value) if value not in (None, "nan") else np.nan)
    for strategies in table.values():
        for values in strategies.values():
            for name in ("aubc", *ROW_FIELDS):
                values.setdefault(name, np.full(len(cases), np.nan))
        if {"random", "oracle"} <= set(strategies):
            for values in strategies.values():
                values["naubc"] = np.array([normalised_aubc(a, r, o) for a, r, o in zip(
                    values["aubc"], strategies["random"]["aubc"], strategies["oracle"]["aubc"])])
    return table


def _time_oracle(strategies: dict) -> str:
    return "oracle_time" if "oracle_time" in strategies else "oracle"


def pooled_values(strategies: dict, axis: str = "seconds") -> dict[str, float]:
    """strategy -> pooled nAUBC on the time axis (`seconds`) or the slice axis (`slices`)."""
    field, oracle = ("aubc_seconds", _time_oracle(strategies)) if axis == "seconds" else ("aubc", "oracle")
    if "random" not in strategies or oracle not in strategies:
        return {s: float("nan") for s in strategies}
    rand, top = strategies["random"][field], strategies[oracle][field]
    return {s: pooled_naubc(v[field], rand, top) for s, v in strategies.items()}


def _fmt(lo: float, hi: float) -> str:
    return "" if lo != lo else f"[{lo:.3f}, {hi:.3f}]"


def summary_rows(table: dict) -> list[dict]:
    """One row per (region, expert, strategy): pooled nAUBC on both axes with intervals, the effect sizes."""
    rows = []
    for (region, expert), strategies in sorted(table.items()):
        pooled_by_axis = {axis_name: pooled_values(strategies, axis_name) for axis_name in ("seconds", "slices")}
        oracle_t = _time_oracle(strategies)
        for s in [x for x in STRATEGIES if x in strategies]:
            v = strategies[s]
            row = {"region": region, "expert": expert, "strategy": s, "cases": int(np.sum(~np.isnan(v["aubc"])))}
            for axis_name, field, per_case, oracle in (("seconds", "aubc_seconds", "naubc_seconds", oracle_t),
                                                       ("slices", "aubc", "naubc", "oracle")):
                pooled = pooled_by_axis[axis_name][s]
                lo, hi, kind = case_interval(v.get(per_case, np.full(len(v["aubc"]), np.nan)), pooled_naubc,
                                             (v[field], strategies["random"][field], strategies[oracle][field])) \
                    if "random" in strategies and oracle in strategies else (np.nan, np.nan, "none")
                row[f"pooled_naubc_{axis_name}"] = round(pooled, 4) if pooled == pooled else "nan"
                row[f"pooled_naubc_{axis_name}_interval"] = _fmt(lo, hi)
                row["interval_kind"] = kind
            row["mean_case_naubc_seconds"] = _round_mean(v.get("naubc_seconds"), 4)
            row["aubc_seconds"] = _round_mean(v.get("aubc_seconds"), 5)
            for name in GAIN_FIELDS:
                values = v.get(name, np.full(len(v["aubc"]), np.nan))
                lo, hi, _ = case_interval(values, np.nanmean, (values,))
                row[name] = _round_mean(values, 4)
                row[f"{name}_interval"] = _fmt(lo, hi)
            minutes = v.get("seconds_to_80pct_oracle_gain", np.full(len(v["aubc"]), np.nan)) / 60.0
            reached = ~np.isnan(minutes)
            lo, hi, _ = case_interval(minutes[reached], np.nanmedian, (minutes[reached],))
            row["minutes_to_80pct_oracle_gain"] = round(float(np.median(minutes[reached])), 2) if reached.any() else "nan"
            row["minutes_to_80pct_interval"] = _fmt(lo, hi)
            row["reached_80pct_cases"] = int(reached.sum())
            row["dice_before"] = _round_mean(v.get("dice_before"), 4)
            row["dice_after_all"] = _round_mean(v.get("dice_after_all"), 4)
            row["aubc"] = _round_mean(v.get("aubc"), 5)
            row["naubc"] = _round_mean(v.get("naubc"), 4)
            rows.append(row)
    return rows


def _round_mean(values, digits: int):
    if values is None:
        return "nan"
    values = np.asarray(values, float)
    return round(float(np.nanmean(values)), digits) if np.any(~np.isnan(values)) else "nan"


def above_the_oracle(table: dict, cases: list[str]) -> list[dict]:
    """Per expert and axis: how many GT-free per-case values (regions and their mean) lie above their oracle, and the
    largest excess (Dice averaged over the budget). The oracles are greedy orders, not proven optima
    (evaluation.oracle_order): this says where one was beaten, and by how much."""
    out = []
    for expert in sorted({e for _, e in table}):
        for axis_name, field in (("seconds", "aubc_seconds"), ("slices", "aubc")):
            values, worst = 0, (0.0, "", "", "")
            above = 0
            for (region, e), strategies in sorted(table.items()):
                oracle = strategies.get(_time_oracle(strategies) if axis_name == "seconds" else "oracle")
                if e != expert or oracle is None:
                    continue
                for s in gt_free_family(strategies):
                    excess = strategies[s][field] - oracle[field]
                    finite = ~np.isnan(excess)
                    values += int(finite.sum())
                    above += int((excess[finite] > 1e-9).sum())
                    if finite.any() and np.nanmax(excess) > worst[0]:
                        i = int(np.nanargmax(excess))
                        worst = (float(excess[i]), cases[i], region, s)
            out.append({"expert": expert, "axis": axis_name, "values": values, "above_oracle": above,
                        "largest_excess": round(worst[0], 5), "case": worst[1], "region": worst[2], "ranking": worst[3]})
    return out


def gt_free_family(strategies) -> list[str]:
    """The Holm family: the ground-truth-free rankings evaluated (the oracles never enter the tests)."""
    return [s for s in GT_FREE if s in strategies]


def best_and_top_group(table: dict, region: str = PRIMARY[0], expert: str = PRIMARY[1]) -> tuple[str | None, list[str]]:
    """The best GT-free ranking by pooled nAUBC on the time axis and its top group (statistics.top_group)."""
    strategies = table.get((region, expert))
    if not strategies:
        return None, []
    pooled = pooled_values(strategies)
    family = [s for s in gt_free_family(strategies) if pooled.get(s) == pooled.get(s)]
    if not family:
        return None, []
    return top_group(pooled, {s: strategies[s]["aubc_seconds"] for s in family}, family)


def paired_test_rows(table: dict, compared: str) -> list[dict]:
    """`compared` vs every other GT-free ranking, per region and expert, on both axes (Holm within each)."""
    rows = []
    for (region, expert), strategies in sorted(table.items()):
        family = gt_free_family(strategies)
        if compared not in family:
            continue
        for axis_name, field in (("seconds", "aubc_seconds"), ("slices", "aubc")):
            for r in compare_with(compared, {s: strategies[s][field] for s in family}, family):
                rows.append({"region": region, "expert": expert, "axis": axis_name,
                             "comparison": f"{compared} vs {r['other']}",
                             "mean_aubc_difference": round(r["mean_difference"], 6),
                             "better_cases": r["better_cases"], "cases": r["cases"],
                             "p_wilcoxon": r["p"] if r["p"] != r["p"] else round(r["p"], 6),
                             "p_holm": r["p_holm"] if r["p_holm"] != r["p_holm"] else round(r["p_holm"], 6)})
    return rows
