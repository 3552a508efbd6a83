"""Merge per-case evaluation results into tables, statistics, plots and a Markdown report.

The headline names the product's default ranking (ranking/strategies.DEFAULT_RANKING, chosen by the
frozen protocol, docs/evaluation/protocol.md) and the best ground-truth-free ranking on the cases at
hand, and says why when they differ. Every sentence about what the tests can show is computed from
the number of cases at hand.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..storage.atomic_files import atomic_write_text
from .evaluation_config import EvaluationConfig
from .failure_detection import quality_estimate_errors
from .sensitivity import plot_sensitivity, sensitivity_rows
from .statistics import ALPHA, MIN_BOOTSTRAP_CASES, bootstrap_curve_band, smallest_wilcoxon_p
from .summary import (
    GAIN_FIELDS,
    PRIMARY,
    above_the_oracle,
    best_and_top_group,
    case_table,
    gt_free_family,
    paired_test_rows,
    summary_rows,
)

#: The look of the product's default ranking in every plot (whatever its name).
DEFAULT_STYLE = dict(lw=2.8, color="#d62728")
#: One fixed look per strategy, so every plot reads the same way.
STRATEGY_STYLES = {
    "iwuo": dict(lw=1.6, color="#ff9896"), "oracle": dict(ls="--", color="k", lw=1.5),
    "oracle_time": dict(ls="-.", color="k", lw=1.2), "random": dict(ls=":", color="gray", lw=1.5),
    "tumour_first_random": dict(ls=":", color="#1f77b4", lw=1.8), "impact": dict(color="#ff7f0e", lw=1.2),
    "tumour_fixed_interval": dict(ls="--", color="#1f77b4", lw=1.2), "uncertainty": dict(color="#9467bd", lw=1.2),
    "largest_area": dict(color="#2ca02c", lw=1.2), "fixed_interval": dict(color="#aec7e8", lw=1.2),
    "gain_per_second": dict(color="#17becf", lw=1.5), "greedy_gain": dict(color="#8c564b", lw=1.2),
    "greedy_gain_per_second": dict(color="#e377c2", lw=1.5), "iwuo_disagreement": dict(color="#bcbd22", lw=1.5),
    "disagreement": dict(color="#7f7f7f", lw=1.0, ls="-."), "noticed_gain": dict(color="#2ca02c", lw=2.2),
    "noticed_gain_per_second": dict(color="#98df8a", lw=2.2), "noticed_gain_no_reach": dict(color="#c5b0d5", lw=1.0),
    "noticed_gain_no_size": dict(color="#c49c94", lw=1.0),
}
#: Drawn in the curve plots (besides the default and the best): the baselines and the references.
PLOTTED = ("impact", "iwuo", "noticed_gain", "tumour_first_random", "tumour_fixed_interval", "random", "oracle",
           "oracle_time")


def default_ranking() -> str:
    from ..ranking.strategies import DEFAULT_RANKING

    return DEFAULT_RANKING


def load_case_results(out: Path) -> list[dict]:
    records = []
    for path in sorted((out / "cases").glob("*/evaluation.json")):
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            print(f"skipping unreadable result {path}")
    return records


def _nan_stat(fn, values, digits: int):
    arr = np.asarray(values, float)
    return round(float(fn(arr)), digits) if np.any(~np.isnan(arr)) else "nan"


def failure_detection_table(records: list[dict]) -> list[dict]:
    """Mean over cases of each score's AUROC, AUPRC and AURC (risk-coverage) for slices the expert edits."""
    groups: dict[tuple, dict[str, list]] = {}
    for r in records:
        for row in r.get("failure_detection", []):
            g = groups.setdefault((row["expert"], row["score"]), {"auroc": [], "auprc": [], "aurc": [], "prevalence": []})
            for k in g:
                g[k].append(float(row[k]) if row[k] == row[k] else np.nan)
    out = []
    for (expert, score), g in sorted(groups.items()):
        out.append({"expert": expert, "score": score, "cases": len(g["auroc"]),
                    "auroc": _nan_stat(np.nanmean, g["auroc"], 3), "auprc": _nan_stat(np.nanmean, g["auprc"], 3),
                    "aurc": _nan_stat(np.nanmean, g["aurc"], 3),
                    "failed_slice_share": _nan_stat(np.nanmean, g["prevalence"], 3)})
    return out


def quality_table(records: list[dict]) -> list[dict]:
    """Per region: expected Dice (from the probabilities) against measured Dice before correction."""
    regions = sorted({g for r in records for g in r.get("quality", {})})
    out = []
    for g in regions:
        pairs = [r["quality"][g] for r in records if g in r.get("quality", {})]
        err = quality_estimate_errors(np.array([p["expected_dice"] for p in pairs]),
                                      np.array([p["measured_dice"] for p in pairs]))
        out.append({"region": g, "cases": err["cases"], "mean_expected_dice": round(float(np.mean(
                    [p["expected_dice"] for p in pairs])), 4), "mean_measured_dice": round(float(np.mean(
                    [p["measured_dice"] for p in pairs])), 4), "mae": round(err["mae"], 4),
                    "pearson_r": round(err["pearson_r"], 3) if err["pearson_r"] == err["pearson_r"] else "nan"})
    return out


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "_none_\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def curves_by_group(records: list[dict], key: str = "curves") -> tuple[dict, np.ndarray | None]:
    """(region, expert) -> strategy -> per-case curves: `time_curves` on the common time grid (returned), or the
    slice curves padded with their last value to the longest case."""
    if key == "time_curves":
        grids = [r["time_grid"] for r in records if r.get("time_grid")]
        if not grids:
            return {}, None
        grid = np.asarray(min(grids, key=len), float)
        width = len(grid)
    else:
        grid, width = None, max(len(c) for r in records for c in r["curves"].values())
    out: dict[tuple, dict[str, list]] = {}
    for r in records:
        for name, curve in r.get(key, {}).items():
            region, expert, strategy = name.split("|")
            c = np.asarray(curve, float)[:width]
            c = np.concatenate([c, np.full(width - len(c), c[-1])])
            out.setdefault((region, expert), {}).setdefault(strategy, []).append(c)
    return out, grid


def plot_curves(groups: dict, path: Path, expert: str, shown: list[str], x: np.ndarray | None = None,
                xlabel: str = "slices corrected") -> Path | None:
    """Mean Dice gain over the prediction (Dice - starting Dice, per case) of the `shown` rankings, with 95%
    case-bootstrap bands for the default, random and the oracles, one panel per region and one for the mean over
    regions. Gains, not Dice: the cases' different starting Dice would otherwise hide the differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    default = default_ranking()
    regions = sorted({r for r, e in groups if e == expert}, key=lambda r: (r == "mean", r))
    if not regions:
        return None
    fig, axes = plt.subplots(1, len(regions), figsize=(4.6 * len(regions), 4.2), squeeze=False)
    for ax, region in zip(axes[0], regions):
        curves = groups[(region, expert)]
        for strategy in [s for s in shown if s in curves]:
            arr = np.vstack(curves[strategy])
            arr = arr - arr[:, :1]
            xs = np.arange(arr.shape[1]) if x is None else x[:arr.shape[1]]
            style = DEFAULT_STYLE if strategy == default else STRATEGY_STYLES.get(strategy, dict(lw=1.2))
            ax.plot(xs, arr.mean(0), label=f"{strategy} (default)" if strategy == default else strategy, **style)
            if arr.shape[0] > 1 and strategy in ("random", "oracle", "oracle_time", default):
                lo, hi = bootstrap_curve_band(arr)
                ax.fill_between(xs, lo, hi, alpha=0.10, color=ax.lines[-1].get_color())
        title = "mean over regions" if region == "mean" else region
        ax.set_title(f"{title} ({expert} expert, n={len(next(iter(curves.values())))})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Dice gain over the prediction")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _value(rows: list[dict], strategy: str, region: str = PRIMARY[0], expert: str = PRIMARY[1]) -> dict | None:
    return next((r for r in rows if r["region"] == region and r["expert"] == expert and r["strategy"] == strategy), None)


def small_n_sentence(n: int, comparisons: int) -> str:
    """What the paired tests can show with n cases and this Holm family, computed."""
    p = smallest_wilcoxon_p(n)
    adjusted = min(1.0, p * comparisons) if comparisons else p
    can = "can" if adjusted < ALPHA else "cannot"
    return (f"With {n} case(s) the smallest two-sided Wilcoxon p possible is {p:.3g} (every case one way); after Holm "
            f"over the {comparisons} comparisons of the family the smallest adjusted p is {adjusted:.3g}: a "
            f"difference {can} reach p < {ALPHA} with these cases. Intervals are "
            f"{'95% case-bootstrap intervals' if n >= MIN_BOOTSTRAP_CASES else 'the range (min-max) of the per-case values'}"
            f" ({'n >= ' if n >= MIN_BOOTSTRAP_CASES else 'n < '}{MIN_BOOTSTRAP_CASES}).")


def headline(summary: list[dict], table: dict, n_cases: int, default: str | None = None) -> str:
    """The first lines of the report: the default, the best GT-free ranking here, and why they may differ."""
    default = default or default_ranking()
    best, group = best_and_top_group(table)
    if best is None:
        return "No ground-truth-free ranking was replayed with the correcting expert; no headline.\n"
    def fmt(s: str) -> str:
        row = _value(summary, s)
        return f"`{s}` (pooled nAUBC {row['pooled_naubc_seconds']} {row['pooled_naubc_seconds_interval']})" if row \
            else f"`{s}`"

    lines = [f"**Default ranking (the product's, chosen on development data by the frozen protocol, "
             f"docs/evaluation/protocol.md): {fmt(default)}. Best ground-truth-free ranking on these {n_cases} "
             f"case(s): {fmt(best)}.** Primary endpoint: pooled nAUBC on the time axis, correcting expert, mean over "
             "regions (1 = oracle, 0 = random).\n"]
    if best != default:
        family = gt_free_family(table[PRIMARY])
        tests = {r["comparison"]: r for r in paired_test_rows({PRIMARY: table[PRIMARY]}, best)
                 if r["axis"] == "seconds"}
        row = tests.get(f"{best} vs {default}")
        where = "inside" if default in group else "outside"
        detail = (f"`{best}` is ahead by {row['mean_aubc_difference']:+.5f} mean Dice over the time budget, better on "
                  f"{row['better_cases']}/{row['cases']} cases (Holm-adjusted p = {row['p_holm']}); " if row else "")
        lines.append(f"\nThey differ. {detail}the default is {where} the top group here (rankings not significantly "
                     f"worse than the best). The default is not re-chosen on these cases: "
                     f"{small_n_sentence(n_cases, len(family) - 1)} "
                     f"{'A few cases are not evidence; ' if n_cases < MIN_BOOTSTRAP_CASES else ''}"
                     "the pick was made once, by the protocol's rule on its development data.\n")
    return "".join(lines)


def write_report(out: Path, budget: int | None = None, failures: list[dict] | None = None) -> Path:
    records = load_case_results(out)
    if not records:
        raise BadInputError(f"No per-case results in {out / 'cases'}; nothing to report.")
    default = default_ranking()
    table = case_table(records, budget)
    summary = summary_rows(table)
    best, group = best_and_top_group(table)
    tests = paired_test_rows(table, default)
    best_tests = paired_test_rows(table, best) if best and best != default else []
    rows = [row for r in records for row in r["rows"]]
    metrics = [{"case": r["case"], "region": region, "dice": round(m["dice"], 4),
                "hd95_mm": round(m["hd95_mm"], 2) if m["hd95_mm"] == m["hd95_mm"] else "nan"}
               for r in records for region, m in r.get("metrics_before_correction", {}).items()]
    grid = sensitivity_rows(records, default)
    fd = failure_detection_table(records)
    quality = quality_table(records)
    for name, content in (("results_per_case.csv", rows), ("segmentation_metrics.csv", metrics), ("summary.csv", summary),
                          ("statistics.csv", tests), ("statistics_best.csv", best_tests), ("failure_detection.csv", fd),
                          ("quality_estimate.csv", quality), ("sensitivity.csv", grid)):
        if content or name != "sensitivity.csv":
            atomic_write_text(out / name, _csv(content))
    experts = sorted({k[1] for k in table}, key=lambda e: (e != "perfect", e))
    shown = list(dict.fromkeys([default, *([best] if best else []), *PLOTTED]))
    time_groups, time_grid = curves_by_group(records, "time_curves")
    slice_groups, _ = curves_by_group(records)
    figures = [p for e in experts for p in (
        plot_curves(time_groups, out / f"dice_vs_seconds_{e}.png", e, shown, time_grid, "seconds of expert time")
        if time_grid is not None else None, plot_curves(slice_groups, out / f"dice_vs_budget_{e}.png", e, shown)) if p]
    grid_figure = plot_sensitivity(grid, out / "sensitivity.png")
    failed = {f["case"]: f for f in failures or []}
    for p in (out / "cases").glob("*/error.txt"):
        if not (p.parent / "evaluation.json").is_file():
            failed.setdefault(p.parent.name, {"case": p.parent.name, "kind": "failed", "error": ""})
    settings = records[0].get("settings", {})
    draws = sorted({d.get("noisy", d.get("correcting")) for d in (r.get("draws", {}) for r in records)} - {None})
    agreement = sorted({g for r in records for g in r.get("expert_agreement", {})})
    agreement_rows = [{"region": g, "median_slice_dice_of_full_redraw": round(float(np.nanmedian(
        [r["expert_agreement"][g] for r in records if g in r.get("expert_agreement", {})])), 3)} for g in agreement]
    family = gt_free_family(table.get(PRIMARY, {}))
    n = len(records)
    text = [f"# IWUO evaluation report\n\n{n} case(s): {', '.join(r['case'] for r in records)}.\n\n",
            headline(summary, table, n, default) if PRIMARY in table else "",
            f"\nSettings: correcting-expert draws per case {', '.join(map(str, draws)) or 'none'}; random baselines "
            f"averaged over {settings.get('random_seeds', '?')} seeds; time budget {records[0].get('seconds_budget', '?')} "
            f"s; slice budget {'all slices' if not budget else f'{budget} slices'}; time model "
            f"{settings.get('time_model', '?')} ({_time_model_source(settings)}); {_calibration_text(settings)}; expert "
            f"tolerance {settings.get('expert_tolerance', '?')}; members "
            f"{_members(records)}. Every per-case number is the mean over the case's expert draws and random seeds. "
            "One visit corrects every region on the slice (one ranking per strategy); `mean` is the mean Dice over "
            "regions. Pooled nAUBC = sum over cases of (AUBC - random) / sum of (oracle - random); each region is "
            "normalised by its own oracle (greedy true gain of that region, with a look-ahead that completes a "
            "region; on the time axis per true second: `oracle_time`), the mean by the oracle of the mean. Dice gained "
            "after 2, 5 and 10 minutes: mean over cases; minutes to reach 80 % of the oracle's Dice gain: median over "
            "the cases that reach it. An empty reference region with an empty prediction scores Dice 1 (BraTS "
            "convention).\n"]
    if draws and min(draws) < EvaluationConfig().expert_draws:
        text.append(f"\nFewer correcting-expert draws per case ({min(draws)}) than the protocol's "
                    f"{EvaluationConfig().expert_draws}, to keep this run short: each case's numbers are noisier.\n")
    if failed:
        text.append(f"\n**Failed cases (skipped):** {', '.join(sorted(failed))} — see cases/<name>/error.txt.\n\n")
        text += [f"- `{case}` ({f['kind']}){': ' + f['error'].splitlines()[0] if f['error'] else ''}\n"
                 for case, f in sorted(failed.items())]
    if budget and any(r["n_slices"] < budget for r in records):
        text.append(f"\nCases with fewer than {budget} slices are evaluated up to their number of slices.\n")
    for f in figures:
        text.append(f"\n![{f.stem}]({f.name})\n")
    text += ["\n## Primary endpoint: pooled nAUBC, correcting expert, mean over regions (full table: summary.csv)\n\n",
             _markdown_table(_primary_table(summary, "noisy", default, group)),
             "\n## Perfect expert, mean over regions\n\n", _markdown_table(_primary_table(summary, "perfect", default, [])),
             "\n## Per region (each region normalised by its own oracle)\n\n", _markdown_table(_region_table(summary)),
             above_oracle_sentence(above_the_oracle(table, [r["case"] for r in records])),
             f"\n## Paired Wilcoxon signed-rank tests: the default ({default}) vs each ground-truth-free ranking "
             "(per-case AUBC; Holm-corrected over the ground-truth-free family, per region, expert and axis)\n\n",
             _markdown_table([t for t in tests if t["region"] == PRIMARY[0]]),
             f"\n{small_n_sentence(n, max(len(family) - 1, 0))}\n"]
    if best_tests:
        text += [f"\n## The best here ({best}) vs each ground-truth-free ranking\n\n",
                 _markdown_table([t for t in best_tests if t["region"] == PRIMARY[0]])]
    if grid:
        in_top = sum(bool(g["default_in_top_group"]) for g in grid)
        bests = {}
        for g in grid:
            bests[g["best"]] = bests.get(g["best"], 0) + 1
        text += [f"\n## Sensitivity grid (protocol.md): {len(grid)} cells of expert assumptions\n\n",
                 f"The default `{default}` is in the top group in {in_top} of {len(grid)} cells. Best ranking per cell: "
                 + ", ".join(f"`{s}` {k}" for s, k in sorted(bests.items(), key=lambda kv: -kv[1])) + ". "
                 "Top group: the best and every ranking not significantly worse (Holm-adjusted paired Wilcoxon "
                 f"p >= {ALPHA} over the ground-truth-free family). Full grid: sensitivity.csv.\n",
                 f"\n![sensitivity]({grid_figure.name})\n\n",
                 _markdown_table([{k: g[k] for k in ("look", "per_mm", "tolerance", "area", "best", "best_naubc",
                                                      "default_naubc", "default_rank", "default_in_top_group")}
                                  for g in grid])]
    text += ["\n## Segmentation before correction (Dice, HD95 in mm; HD95 NaN when one mask is empty)\n\n",
             _markdown_table(metrics),
             "\n## Slice-level failure detection (slices the expert edits; mean over cases and draws; AURC lower is "
             "better)\n\nScores are the rankings' orders (rank as score); evaluated on slices where the prediction "
             "or the reference has tumour.\n\n", _markdown_table(fd),
             "\n## Per-case quality estimate: expected Dice (from the probabilities) vs measured Dice\n\n",
             _markdown_table(quality),
             "\n## Correcting expert: agreement of a full redraw with the reference (median per-slice Dice over "
             "slices with at least 25 reference pixels, all draws; BraTS inter-rater Dice 0.74-0.85, Menze et al. "
             "2015)\n\n", _markdown_table(agreement_rows)]
    report = out / "report.md"
    atomic_write_text(report, "".join(text))
    return report


def above_oracle_sentence(rows: list[dict]) -> str:
    """Where a GT-free ranking beat its oracle (nAUBC > 1 for that case), said with the size of the excess."""
    parts = [f"{r['expert']} expert, {r['axis']} axis: {r['above_oracle']} of {r['values']}"
             + (f" (largest +{r['largest_excess']} on {r['case']}, {r['region']}, {r['ranking']})" if r["above_oracle"]
                else "") for r in rows]
    return ("\nThe oracles are greedy orders (with a look-ahead that completes a region, the better of the two kept), "
            "not proven optima: a ranking can beat one, and its nAUBC is then above 1. GT-free per-case values (regions "
            "and mean, AUBC) above their oracle: " + "; ".join(parts) + ".\n")


def _members(records: list[dict]) -> str:
    kinds = {json.dumps(r.get("members"), sort_keys=True) for r in records}
    return "; ".join(sorted(kinds)) if kinds else "?"


def _primary_table(summary: list[dict], expert: str, default: str, group: list[str]) -> list[dict]:
    """Mean over regions for one expert, best first on the time axis; the default and the top group marked."""
    rows = [r for r in summary if r["region"] == PRIMARY[0] and r["expert"] == expert]
    rows.sort(key=lambda r: -float(r["pooled_naubc_seconds"]) if r["pooled_naubc_seconds"] != "nan" else np.inf)
    out = []
    for r in rows:
        name = r["strategy"] + (" (default)" if r["strategy"] == default else "") + \
            (" *" if r["strategy"] in group else "")
        out.append({"ranking": name, "nAUBC seconds": r["pooled_naubc_seconds"],
                    "interval": r["pooled_naubc_seconds_interval"], "nAUBC slices": r["pooled_naubc_slices"],
                    **{f"Dice +{f.split('_')[2]}": f"{r[f]} {r[f + '_interval']}" for f in GAIN_FIELDS},
                    "min to 80% oracle": f"{r['minutes_to_80pct_oracle_gain']} {r['minutes_to_80pct_interval']} "
                                         f"({r['reached_80pct_cases']}/{r['cases']})"})
    return out


def _region_table(summary: list[dict]) -> list[dict]:
    """Pooled nAUBC per region and expert (regions only; the mean is above)."""
    return [{"region": r["region"], "expert": r["expert"], "ranking": r["strategy"],
             "nAUBC seconds": r["pooled_naubc_seconds"], "interval": r["pooled_naubc_seconds_interval"],
             "nAUBC slices": r["pooled_naubc_slices"]} for r in summary if r["region"] != PRIMARY[0]]


def _time_model_source(settings: dict) -> str:
    """Where the replay's time model came from: a file fitted by `iwuo calibrate`, or the assumed constants."""
    return f"fitted, from {settings['time_model_file']}" if settings.get("time_model_file") else "assumed"


def _calibration_text(settings: dict) -> str:
    """Which site calibration the probabilities were replayed with (data/calibration.calibration_record)."""
    record = settings.get("calibration")
    if not record:
        return "probabilities uncalibrated"
    methods = ", ".join(f"{k} {v}" for k, v in sorted(record.get("methods", {}).items()))
    return (f"probabilities calibrated with {record.get('file')} (SHA-256 {str(record.get('sha256'))[:12]}; {methods}; "
            "label map kept)")
