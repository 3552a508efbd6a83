"""Merge per-case evaluation results into tables, statistics, plots and a Markdown report."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from .errors import BadInputError
from .io_atomic import atomic_write_text
from .replay import aubc, normalised_aubc
from .statistics import bootstrap_ci, bootstrap_curve_band, holm, paired_wilcoxon

REFERENCE_STRATEGY = "iwuo"
#: One fixed look per strategy, so every plot reads the same way.
STRATEGY_STYLES = {
    "iwuo": dict(lw=2.8, color="#d62728"), "oracle": dict(ls="--", color="k", lw=1.5),
    "random": dict(ls=":", color="gray", lw=1.5), "impact": dict(color="#ff7f0e", lw=1.2),
    "uncertainty": dict(color="#9467bd", lw=1.2), "largest_area": dict(color="#2ca02c", lw=1.2),
    "fixed_interval": dict(color="#1f77b4", lw=1.2),
}


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
                if key.startswith("dice_within_"):
                    timed.setdefault((row["region"], row["expert"], row["strategy"]), {}).setdefault(key, []).append(value)
    summary, tests = [], []
    for (region, expert, strategy), e in sorted(per_case.items()):
        lo, hi = bootstrap_ci(np.array(e["naubc"]))
        reached = np.array(e["target"])
        within = {k: round(float(np.mean(v)), 4) for k, v in timed.get((region, expert, strategy), {}).items()}
        summary.append({"region": region, "expert": expert, "strategy": strategy, "cases": len(e["aubc"]),
                        "aubc": round(float(np.mean(e["aubc"])), 4),
                        "naubc": round(float(np.nanmean(e["naubc"])), 4) if np.any(~np.isnan(e["naubc"])) else "nan",
                        "naubc_ci95": f"[{lo:.3f}, {hi:.3f}]",
                        "slices_to_target_median": float(np.nanmedian(reached)) if np.any(~np.isnan(reached)) else "not reached",
                        "target_reached_cases": int(np.sum(~np.isnan(reached))), **within})
    for region, expert in sorted(groups):
        ref = per_case.get((region, expert, REFERENCE_STRATEGY))
        if ref is None:
            continue
        others = [s for s in sorted(groups[(region, expert)]) if s != REFERENCE_STRATEGY and (region, expert, s) in per_case]
        p_raw = [paired_wilcoxon(np.array(ref["aubc"]), np.array(per_case[(region, expert, s)]["aubc"])) for s in others]
        for s, p, p_adj in zip(others, p_raw, holm(p_raw)):
            diff = np.array(ref["aubc"]) - np.array(per_case[(region, expert, s)]["aubc"])
            tests.append({"region": region, "expert": expert, "comparison": f"iwuo vs {s}",
                          "mean_aubc_difference": round(float(diff.mean()), 5),
                          "iwuo_better_cases": int((diff > 0).sum()), "cases": len(diff),
                          "p_wilcoxon": p if np.isnan(p) else round(p, 5),
                          "p_holm": p_adj if np.isnan(p_adj) else round(p_adj, 5)})
    return summary, tests, curves_by_group


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


def plot_curves(curves_by_group: dict, path: Path, expert: str = "perfect") -> Path | None:
    """Mean Dice-vs-budget curves with 95% case-bootstrap bands, one panel per region."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regions = sorted({r for r, e in curves_by_group if e == expert})
    if not regions:
        return None
    fig, axes = plt.subplots(1, len(regions), figsize=(5 * len(regions), 4), squeeze=False)
    for ax, region in zip(axes[0], regions):
        for strategy, curves in sorted(curves_by_group[(region, expert)].items()):
            arr = np.vstack(curves)
            mean = arr.mean(0)
            x = np.arange(arr.shape[1])
            style = STRATEGY_STYLES.get(strategy, dict(lw=1.2))
            ax.plot(x, mean, label=strategy, **style)
            if arr.shape[0] > 1:
                lo, hi = bootstrap_curve_band(arr)
                ax.fill_between(x, lo, hi, alpha=0.12, color=ax.lines[-1].get_color())
        ax.set_title(f"{region} ({expert} expert, n={len(next(iter(curves_by_group[(region, expert)].values())))})")
        ax.set_xlabel("slices corrected")
        ax.set_ylabel("Dice")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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
    figures = [p for p in (plot_curves(curves, out / f"dice_vs_budget_{e}.png", e) for e in ("perfect", "noisy")) if p]
    failed = {f["case"]: f for f in failures or []}
    for p in (out / "cases").glob("*/error.txt"):
        if not (p.parent / "evaluation.json").is_file():
            failed.setdefault(p.parent.name, {"case": p.parent.name, "kind": "failed", "error": ""})
    text = [f"# IWUO evaluation report\n\n{len(records)} case(s): {', '.join(r['case'] for r in records)}.\n",
            f"Budget: {'all slices' if not budget else f'{budget} slices'}; target Dice {target_dice}. "
            "nAUBC = (AUBC - random) / (oracle - random), random averaged over its seeds; 1 = oracle, 0 = random.\n",
            "Empty reference region with empty prediction scores Dice 1 (BraTS convention).\n"]
    if failed:
        text.append(f"\n**Failed cases (skipped):** {', '.join(sorted(failed))} — see cases/<name>/error.txt.\n\n")
        text += [f"- `{case}` ({f['kind']}){': ' + f['error'].splitlines()[0] if f['error'] else ''}\n"
                 for case, f in sorted(failed.items())]
    if budget and any(r["n_slices"] < budget for r in records):
        text.append(f"\nCases with fewer than {budget} slices are evaluated up to their number of slices.\n")
    text += ["\n## Segmentation before correction (Dice, HD95 in mm; HD95 NaN when one mask is empty)\n\n",
             _markdown_table(metrics),
             "\n## Summary per region, expert and strategy\n\n", _markdown_table(summary),
             "\n## Paired Wilcoxon signed-rank tests on AUBC across cases (Holm-corrected)\n\n", _markdown_table(tests),
             "\nWith few cases the test cannot reach significance (4 cases: smallest two-sided p = 0.125).\n"]
    for f in figures:
        text.append(f"\n![{f.stem}]({f.name})\n")
    report = out / "report.md"
    atomic_write_text(report, "".join(text))
    return report
