"""Merge per-case evaluation results into tables, statistics, plots and a Markdown report."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..storage.atomic_files import atomic_write_text
from .budget_curves import aubc, normalised_aubc
from .failure_detection import quality_estimate_errors
from .statistics import bootstrap_ci, bootstrap_curve_band, holm, paired_wilcoxon

#: The strategy the paired tests compare every other one with ("reference" is the reference segmentation).
COMPARED_STRATEGY = "iwuo"
ORACLE_NAMES = ("oracle", "oracle_time")
#: One fixed look per strategy, so every plot reads the same way.
STRATEGY_STYLES = {
    "iwuo": dict(lw=2.8, color="#d62728"), "oracle": dict(ls="--", color="k", lw=1.5),
    "oracle_time": dict(ls="-.", color="k", lw=1.2),
    "random": dict(ls=":", color="gray", lw=1.5), "impact": dict(color="#ff7f0e", lw=1.2),
    "uncertainty": dict(color="#9467bd", lw=1.2), "largest_area": dict(color="#2ca02c", lw=1.2),
    "fixed_interval": dict(color="#1f77b4", lw=1.2), "gain_per_second": dict(color="#17becf", lw=2.0),
    "greedy_gain": dict(color="#8c564b", lw=1.2), "greedy_gain_per_second": dict(color="#e377c2", lw=2.0),
    "iwuo_disagreement": dict(color="#bcbd22", lw=1.5), "disagreement": dict(color="#7f7f7f", lw=1.0, ls="-."),
}
#: Per-case row values averaged (or, for budgets to reach a target, medians) in the summary.
ROW_MEANS = ("aubc_seconds", "naubc_seconds")
ROW_MEDIANS = ("slices_to_80pct_oracle_gain", "seconds_to_80pct_oracle_gain")


def load_case_results(out: Path) -> list[dict]:
    records = []
    for path in sorted((out / "cases").glob("*/evaluation.json")):
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            print(f"skipping unreadable result {path}")
    return records


def _pad(curve: list[float], length: int) -> np.ndarray:
    c = np.asarray(curve, float)
    return np.concatenate([c, np.full(length - len(c), c[-1])]) if len(c) < length else c[:length]


def slices_to_target(curve: np.ndarray, target: float) -> float:
    """Slices corrected before the Dice first reaches `target` (NaN: never within the budget)."""
    hit = np.flatnonzero(curve >= target)
    return float(hit[0]) if hit.size else float("nan")


def summarise(records: list[dict], budget: int | None, target_dice: float) -> tuple[list[dict], list[dict], dict]:
    """Per (region, expert, strategy): mean nAUBC with CI, AUBC, slices to target; plus paired tests."""
    keys = sorted({k for r in records for k in r["curves"]})
    groups: dict[tuple, dict[str, dict]] = {}
    for key in keys:
        region, expert, strategy = key.split("|")
        groups.setdefault((region, expert), {}).setdefault(strategy, {})
    per_case: dict[tuple, dict[str, list]] = {}
    curves_by_group: dict[tuple, dict[str, list]] = {}
    for (region, expert), strategies in groups.items():
        for r in records:
            n = min(budget, r["n_slices"]) if budget else r["n_slices"]
            curves = {s: _pad(r["curves"][f"{region}|{expert}|{s}"], n + 1) for s in strategies
                      if f"{region}|{expert}|{s}" in r["curves"]}
            if not curves:
                continue
            aubcs = {s: aubc(c) for s, c in curves.items()}
            for s, c in curves.items():
                entry = per_case.setdefault((region, expert, s), {"aubc": [], "naubc": [], "target": [], "case": []})
                entry["aubc"].append(aubcs[s])
                entry["naubc"].append(normalised_aubc(aubcs[s], aubcs.get("random", np.nan), aubcs.get("oracle", np.nan)))
                entry["target"].append(slices_to_target(c, target_dice))
                entry["case"].append(r["case"])
                width = max(len(x["curves"][f"{region}|{expert}|{s}"]) for x in records)
                curves_by_group.setdefault((region, expert), {}).setdefault(s, []).append(
                    _pad(r["curves"][f"{region}|{expert}|{s}"], width))
    timed: dict[tuple, dict[str, list]] = {}
    for r in records:
        for row in r["rows"]:
            for key, value in row.items():
                if key.startswith("dice_within_") or key in ROW_MEANS or key in ROW_MEDIANS:
                    timed.setdefault((row["region"], row["expert"], row["strategy"]), {}).setdefault(key, []).append(
                        float(value) if value not in (None, "nan") else float("nan"))
    summary, tests = [], []
    for (region, expert, strategy), e in sorted(per_case.items()):
        lo, hi = bootstrap_ci(np.array(e["naubc"]))
        reached = np.array(e["target"])
        values = timed.get((region, expert, strategy), {})
        within = {k: _nan_stat(np.nanmedian if k in ROW_MEDIANS else np.nanmean, v, 1 if k in ROW_MEDIANS else 4)
                  for k, v in values.items() if k not in ("aubc_seconds", "naubc_seconds")}
        t_lo, t_hi = bootstrap_ci(np.array(values.get("naubc_seconds", [np.nan])))
        summary.append({"region": region, "expert": expert, "strategy": strategy, "cases": len(e["aubc"]),
                        "aubc": round(float(np.mean(e["aubc"])), 4),
                        "naubc": round(float(np.nanmean(e["naubc"])), 4) if np.any(~np.isnan(e["naubc"])) else "nan",
                        "naubc_ci95": f"[{lo:.3f}, {hi:.3f}]",
                        "aubc_seconds": _nan_stat(np.nanmean, values.get("aubc_seconds", [np.nan]), 4),
                        "naubc_seconds": _nan_stat(np.nanmean, values.get("naubc_seconds", [np.nan]), 4),
                        "naubc_seconds_ci95": f"[{t_lo:.3f}, {t_hi:.3f}]",
                        "slices_to_target_median": float(np.nanmedian(reached)) if np.any(~np.isnan(reached)) else "not reached",
                        "target_reached_cases": int(np.sum(~np.isnan(reached))), **within})
    seconds_aubc: dict[tuple, list] = {}
    for r in records:
        for row in r["rows"]:
            if "aubc_seconds" in row:
                seconds_aubc.setdefault((row["region"], row["expert"], row["strategy"]), []).append(
                    float(row["aubc_seconds"]))
    for region, expert in sorted(groups):
        tests += paired_tests(per_case, seconds_aubc, groups[(region, expert)], region, expert, COMPARED_STRATEGY)
    return summary, tests, curves_by_group


def _nan_stat(fn, values, digits: int):
    arr = np.asarray(values, float)
    return round(float(fn(arr)), digits) if np.any(~np.isnan(arr)) else "nan"


def paired_tests(per_case: dict, seconds_aubc: dict, strategies, region: str, expert: str, compared: str) -> list[dict]:
    """`compared` vs every other strategy: paired Wilcoxon on AUBC (slices) and on AUBC over the time
    budget (seconds), Holm-corrected within each axis."""
    ref = per_case.get((region, expert, compared))
    if ref is None:
        return []
    others = [s for s in sorted(strategies) if s != compared and (region, expert, s) in per_case]
    ref_t = np.array(seconds_aubc.get((region, expert, compared), []))
    p_raw = [paired_wilcoxon(np.array(ref["aubc"]), np.array(per_case[(region, expert, s)]["aubc"])) for s in others]
    pt_raw = [paired_wilcoxon(ref_t, np.array(seconds_aubc.get((region, expert, s), [])))
              if len(ref_t) and len(seconds_aubc.get((region, expert, s), [])) == len(ref_t) else float("nan")
              for s in others]
    rows = []
    for s, p, p_adj, pt, pt_adj in zip(others, p_raw, holm(p_raw), pt_raw, holm(pt_raw)):
        diff = np.array(ref["aubc"]) - np.array(per_case[(region, expert, s)]["aubc"])
        other_t = np.array(seconds_aubc.get((region, expert, s), []))
        diff_t = ref_t - other_t if len(other_t) == len(ref_t) else np.array([np.nan])
        rows.append({"region": region, "expert": expert, "comparison": f"{compared} vs {s}",
                     "mean_aubc_difference": round(float(diff.mean()), 5),
                     "better_cases": int((diff > 0).sum()), "cases": len(diff),
                     "p_wilcoxon": p if np.isnan(p) else round(p, 5),
                     "p_holm": p_adj if np.isnan(p_adj) else round(p_adj, 5),
                     "mean_aubc_seconds_difference": round(float(np.mean(diff_t)), 5),
                     "better_cases_seconds": int((diff_t > 0).sum()),
                     "p_wilcoxon_seconds": pt if np.isnan(pt) else round(pt, 5),
                     "p_holm_seconds": pt_adj if np.isnan(pt_adj) else round(pt_adj, 5)})
    return rows


def best_gt_free(summary: list[dict], expert: str = "noisy", region: str = "mean") -> str | None:
    """The ground-truth-free strategy with the highest mean nAUBC on the time axis."""
    rows = [r for r in summary if r["expert"] == expert and r["region"] == region
            and r["strategy"] not in (*ORACLE_NAMES, "random") and r["naubc_seconds"] != "nan"]
    return max(rows, key=lambda r: float(r["naubc_seconds"]))["strategy"] if rows else None


def _per_case_aubcs(records: list[dict], budget: int | None) -> tuple[dict, dict, dict]:
    per_case: dict[tuple, dict[str, list]] = {}
    groups: dict[tuple, set] = {}
    seconds_aubc: dict[tuple, list] = {}
    for r in records:
        n = min(budget, r["n_slices"]) if budget else r["n_slices"]
        for key, curve in r["curves"].items():
            region, expert, strategy = key.split("|")
            groups.setdefault((region, expert), set()).add(strategy)
            per_case.setdefault((region, expert, strategy), {"aubc": []})["aubc"].append(aubc(_pad(curve, n + 1)))
        for row in r["rows"]:
            if "aubc_seconds" in row:
                seconds_aubc.setdefault((row["region"], row["expert"], row["strategy"]), []).append(
                    float(row["aubc_seconds"]))
    return per_case, seconds_aubc, groups


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


def time_curves_by_group(records: list[dict]) -> tuple[dict, np.ndarray | None]:
    """(region, expert) -> strategy -> per-case Dice-vs-seconds curves on the common time grid."""
    grids = [r["time_grid"] for r in records if r.get("time_grid")]
    if not grids:
        return {}, None
    grid = np.asarray(min(grids, key=len), float)
    out: dict[tuple, dict[str, list]] = {}
    for r in records:
        for key, curve in r.get("time_curves", {}).items():
            region, expert, strategy = key.split("|")
            out.setdefault((region, expert), {}).setdefault(strategy, []).append(np.asarray(curve, float)[:len(grid)])
    return out, grid


def plot_curves(curves_by_group: dict, path: Path, expert: str = "perfect", x: np.ndarray | None = None,
                xlabel: str = "slices corrected") -> Path | None:
    """Mean Dice gain over the prediction (Dice - starting Dice, per case) with 95% case-bootstrap bands for
    IWUO, random and the oracles, one panel per region and one for the mean over regions. Gains, not Dice:
    the cases' different starting Dice would otherwise hide the differences between rankings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regions = sorted({r for r, e in curves_by_group if e == expert}, key=lambda r: (r == "mean", r))
    if not regions:
        return None
    fig, axes = plt.subplots(1, len(regions), figsize=(4.6 * len(regions), 4.2), squeeze=False)
    for ax, region in zip(axes[0], regions):
        for strategy, curves in sorted(curves_by_group[(region, expert)].items()):
            arr = np.vstack(curves)
            arr = arr - arr[:, :1]
            mean = arr.mean(0)
            xs = np.arange(arr.shape[1]) if x is None else x[:arr.shape[1]]
            style = STRATEGY_STYLES.get(strategy, dict(lw=1.2))
            ax.plot(xs, mean, label=strategy, **style)
            if arr.shape[0] > 1 and strategy in ("random", "oracle", "oracle_time", COMPARED_STRATEGY):
                lo, hi = bootstrap_curve_band(arr)
                ax.fill_between(xs, lo, hi, alpha=0.10, color=ax.lines[-1].get_color())
        title = "mean over regions" if region == "mean" else region
        ax.set_title(f"{title} ({expert} expert, n={len(next(iter(curves_by_group[(region, expert)].values())))})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Dice gain over the prediction")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(out: Path, budget: int | None = None, target_dice: float = 0.9,
                 failures: list[dict] | None = None) -> Path:
    records = load_case_results(out)
    if not records:
        raise BadInputError(f"No per-case results in {out / 'cases'}; nothing to report.")
    summary, tests, curves = summarise(records, budget, target_dice)
    rows = [row for r in records for row in r["rows"]]
    metrics = [{"case": r["case"], "region": region, "dice": round(m["dice"], 4),
                "hd95_mm": round(m["hd95_mm"], 2) if m["hd95_mm"] == m["hd95_mm"] else "nan"}
               for r in records for region, m in r.get("metrics_before_correction", {}).items()]
    atomic_write_text(out / "results_per_case.csv", _csv(rows))
    atomic_write_text(out / "segmentation_metrics.csv", _csv(metrics))
    atomic_write_text(out / "summary.csv", _csv(summary))
    atomic_write_text(out / "statistics.csv", _csv(tests))
    fd = failure_detection_table(records)
    quality = quality_table(records)
    atomic_write_text(out / "failure_detection.csv", _csv(fd))
    atomic_write_text(out / "quality_estimate.csv", _csv(quality))
    experts = sorted({k[1] for k in curves}, key=lambda e: (e != "perfect", e))
    time_curves, grid = time_curves_by_group(records)
    figures = [p for e in experts for p in (
        plot_curves(time_curves, out / f"dice_vs_seconds_{e}.png", e, grid, "seconds of expert time") if grid is not None
        else None, plot_curves(curves, out / f"dice_vs_budget_{e}.png", e)) if p]
    best = best_gt_free(summary)
    from ..ranking.strategies import DEFAULT_RANKING

    best_tests = []
    per_case, seconds_aubc, groups = _per_case_aubcs(records, budget)
    for compared in dict.fromkeys(r for r in (DEFAULT_RANKING, best) if r and r != COMPARED_STRATEGY):
        for region, expert in sorted(groups):
            best_tests += paired_tests(per_case, seconds_aubc, groups[(region, expert)], region, expert, compared)
    atomic_write_text(out / "statistics_best.csv", _csv(best_tests))
    failed = {f["case"]: f for f in failures or []}
    for p in (out / "cases").glob("*/error.txt"):
        if not (p.parent / "evaluation.json").is_file():
            failed.setdefault(p.parent.name, {"case": p.parent.name, "kind": "failed", "error": ""})
    budget_s = records[0].get("seconds_budget", "?")
    agreement = sorted({g for r in records for g in r.get("expert_agreement", {})})
    agreement_rows = [{"region": g, "median_slice_dice_of_full_redraw": round(float(np.nanmedian(
        [r["expert_agreement"][g] for r in records if g in r.get("expert_agreement", {})])), 3)} for g in agreement]
    columns = ("region", "expert", "strategy", "cases", "naubc_seconds", "naubc_seconds_ci95", "naubc", "naubc_ci95",
               "slices_to_80pct_oracle_gain", "seconds_to_80pct_oracle_gain")
    compact = [{k: row.get(k, "") for k in columns} for row in summary]
    text = [f"# IWUO evaluation report\n\n{len(records)} case(s): {', '.join(r['case'] for r in records)}.\n",
            f"Slice budget: {'all slices' if not budget else f'{budget} slices'}; time budget {budget_s} s; "
            f"target Dice {target_dice}. "
            "One visit corrects every region on the slice (one ranking per strategy); `mean` is the mean Dice over "
            "regions. nAUBC = (AUBC - random) / (oracle - random), random averaged over its seeds; 1 = oracle, "
            "0 = random. On the time axis (`naubc_seconds`, the primary measure) the AUBC is the mean Dice over "
            "[0, time budget] under the expert time model and the upper bound is `oracle_time` (true gain per true "
            "second). `slices/seconds_to_80pct_oracle_gain`: median budget to reach 80 % of the oracle's Dice gain.\n",
            "Empty reference region with empty prediction scores Dice 1 (BraTS convention).\n"]
    if best:
        text.append(f"\n**Best ground-truth-free ranking on the time axis (noisy = correcting expert, mean over "
                    f"regions): `{best}`.**\n")
    if failed:
        text.append(f"\n**Failed cases (skipped):** {', '.join(sorted(failed))} — see cases/<name>/error.txt.\n\n")
        text += [f"- `{case}` ({f['kind']}){': ' + f['error'].splitlines()[0] if f['error'] else ''}\n"
                 for case, f in sorted(failed.items())]
    if budget and any(r["n_slices"] < budget for r in records):
        text.append(f"\nCases with fewer than {budget} slices are evaluated up to their number of slices.\n")
    for f in figures:
        text.append(f"\n![{f.stem}]({f.name})\n")
    text += ["\n## Segmentation before correction (Dice, HD95 in mm; HD95 NaN when one mask is empty)\n\n",
             _markdown_table(metrics),
             "\n## Summary per region, expert and strategy (full table: summary.csv)\n\n", _markdown_table(compact),
             f"\n## Paired Wilcoxon signed-rank tests, the product's default ranking ({DEFAULT_RANKING}) and the best "
             f"here ({best}) vs each strategy (AUBC on slices and on seconds; Holm-corrected per axis)\n\n",
             _markdown_table(best_tests),
             "\n## Paired Wilcoxon signed-rank tests, iwuo vs each strategy (Holm-corrected per axis)\n\n",
             _markdown_table(tests),
             "\nWith few cases the test cannot reach significance (4 cases: smallest two-sided p = 0.125).\n",
             "\n## Slice-level failure detection (slices the expert edits; mean over cases; AURC lower is better)\n\n"
             "Scores are the rankings' orders (rank as score); evaluated on slices where the prediction or the "
             "reference has tumour.\n\n", _markdown_table(fd),
             "\n## Per-case quality estimate: expected Dice (from the probabilities) vs measured Dice\n\n",
             _markdown_table(quality),
             "\n## Correcting expert: agreement of a full redraw with the reference (median per-slice Dice over "
             "slices with at least 25 reference pixels; BraTS inter-rater Dice 0.74-0.85, Menze et al. 2015)\n\n",
             _markdown_table(agreement_rows)]
    report = out / "report.md"
    atomic_write_text(report, "".join(text))
    return report
