"""The sensitivity grid across cases: in each cell of expert assumptions (look time, seconds per mm, tolerance,
minimum area), the pooled nAUBC of every ground-truth-free ranking on the time axis (correcting expert, mean
over regions), the best one, its top group, and where the product's default stands (protocol.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .statistics import pooled_naubc, top_group
from .summary import gt_free_family


def _parse(cell: str) -> dict[str, float]:
    return {k: float(v) for k, v in (part.split("=") for part in cell.split("|"))}


def sensitivity_rows(records: list[dict], default: str) -> list[dict]:
    """One row per grid cell over the cases that have the grid (empty when none has)."""
    graded = [r for r in records if r.get("sensitivity")]
    if not graded:
        return []
    cells = [c for c in graded[0]["sensitivity"] if all(c in r["sensitivity"] for r in graded)]
    rows = []
    for cell in cells:
        strategies = set.intersection(*(set(r["sensitivity"][cell]) for r in graded))
        per_case = {s: np.array([r["sensitivity"][cell][s] for r in graded], float) for s in strategies}
        family = gt_free_family(strategies)
        pooled = {s: pooled_naubc(per_case[s], per_case["random"], per_case["oracle_time"]) for s in family}
        best, group = top_group(pooled, per_case, family)
        ranking = sorted(family, key=lambda s: -pooled[s])
        rows.append({**_parse(cell), "cases": len(graded), "best": best, "best_naubc": round(pooled[best], 4),
                     "default": default, "default_naubc": round(pooled.get(default, float("nan")), 4),
                     "default_rank": ranking.index(default) + 1 if default in ranking else "nan",
                     "default_in_top_group": default in group, "top_group": " ".join(group),
                     **{f"naubc_{s}": round(pooled[s], 4) for s in family}})
    return rows


def plot_sensitivity(rows: list[dict], path: Path) -> Path | None:
    """Rank of every ranking (1 = best) in every cell; a dot marks the top group, the default's row is boxed."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k[len("naubc_"):] for k in rows[0] if k.startswith("naubc_")]
    ranks = np.zeros((len(names), len(rows)))
    for j, row in enumerate(rows):
        order = sorted(names, key=lambda s: -row[f"naubc_{s}"])
        for i, s in enumerate(names):
            ranks[i, j] = order.index(s) + 1
    fig, ax = plt.subplots(figsize=(max(8.0, 0.28 * len(rows) + 3), 0.34 * len(names) + 2.4))
    image = ax.imshow(ranks, cmap="viridis_r", aspect="auto", vmin=1, vmax=len(names))
    for j, row in enumerate(rows):
        for i, s in enumerate(names):
            if s in row["top_group"].split():
                ax.plot(j, i, "o", color="white", ms=3.5, mec="black", mew=0.5)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xticks(range(len(rows)), [f"{r['look']:g}s {r['per_mm']:g}/mm {r['tolerance']:g}mm {r['area']:g}mm²"
                                     for r in rows], rotation=90, fontsize=6)
    default = rows[0]["default"]
    if default in names:
        i = names.index(default)
        ax.add_patch(plt.Rectangle((-0.5, i - 0.5), len(rows), 1, fill=False, ec="red", lw=1.5))
    fig.colorbar(image, ax=ax, label="rank (1 = best pooled nAUBC)", fraction=0.02)
    ax.set_title(f"Rank of each ranking per cell (look, s/mm, tolerance, minimum area; {rows[0]['cases']} cases); "
                 f"dot: top group; box: the default ({default})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
