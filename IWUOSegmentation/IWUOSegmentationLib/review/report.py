"""A reviewer's correction budget as a report: what was corrected, how long it took, what it bought.

Read from the BudgetLog alone (the source of truth), so the desktop module, the browser app and
`iwuo review-report` give the same report for the same session: `review_report.md`, the events as
`review_log.csv`, and `review_curve.svg` (Dice gain against slices corrected and against time, drawn
without a plotting library: review/curve_figure.py, so stock Slicer exports it too).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Optional

from ..errors import BadInputError, CorruptLogError, MissingInputError
from ..storage.atomic_files import atomic_write_text, make_folder
from .budget_log import CORRECTION_KINDS, FOREGROUND_DICE_KEY, BudgetLog, logged_foreground_dice
from .corrected_dataset import export_readiness
from .correction_curve import correction_curve
from .curve_figure import curve_svg
from .folder import ReviewFolder

CSV_COLUMNS = ("kind", "rank", "slice", "seconds", "voxels_added", "voxels_removed", "estimated_dice_gain",
               FOREGROUND_DICE_KEY)


def _csv(events: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in events:
        if e["kind"] == "session_started":
            continue
        added = sum(e.get("voxels_added", {}).values())
        removed = sum(e.get("voxels_removed", {}).values())
        dice = logged_foreground_dice(e)
        writer.writerow([e["kind"], e.get("rank", ""), e.get("slice", ""), e.get("seconds", ""),
                         added if e["kind"] in CORRECTION_KINDS else "",
                         removed if e["kind"] in CORRECTION_KINDS else "",
                         e.get("estimated_dice_gain", ""), "" if dice is None else dice])
    return out.getvalue()


def _write_figure(points: list[dict], path: Path) -> None:
    """The curve's SVG through the atomic writer (the report figure's write point `figure.tmp`)."""
    atomic_write_text(path, curve_svg(points), tmp_point="figure.tmp", done_point=None)


def write_review_report(log_path: str | os.PathLike, out_dir: Optional[str | os.PathLike] = None) -> Path:
    """Write the report files next to the log (or into `out_dir`); return the report's path."""
    log = BudgetLog(log_path)
    if not log.path.is_file():
        raise MissingInputError(f"No budget log at {log.path}: nothing has been reviewed there yet.")
    events = log.read()
    if not events and log.warnings:
        raise CorruptLogError(f"{log.path} is corrupt: none of its lines is a readable event ({log.warnings[0]})")
    if not any(e["kind"] == "session_started" for e in events):
        raise BadInputError(f"{log.path} has no session_started event: it is not an IWUO review log.")
    summary = log.summary()
    out = Path(out_dir) if out_dir else log.path.parent
    make_folder(out)
    points = correction_curve(events)
    _write_figure(points, out / "review_curve.svg")
    atomic_write_text(out / "review_log.csv", _csv(events))
    minutes, seconds = divmod(int(summary.seconds_used), 60)
    budget = f" of {summary.budget_slices}" if summary.budget_slices else ""
    lines = [
        f"# Review report: {log.path.parent.name}", "",
        f"Budget log: `{log.path}` ({len(events)} events).", "",
        "| measure | value |", "|---|---|",
        f"| slices corrected | {summary.slices_corrected}{budget} |",
        f"| slices looked at | {summary.slices_shown} |",
        f"| review time | {minutes:02d}:{seconds:02d} ({summary.seconds_used:.1f} s) |",
        f"| voxels changed | {summary.voxels_changed} |",
        f"| estimated Dice gain (sum of the corrected slices' impact) | {summary.estimated_dice_gain:+.4f} |",
    ]
    if summary.measured_foreground_dice is not None:
        lines.append(f"| measured all-foreground Dice (last, against the reference) | {summary.measured_foreground_dice:.4f} |")
    targets = [e["target"] for e in events if e["kind"] in ("session_started", "target_changed") and e.get("target")]
    if targets:  # the structures the slices were ranked for, in order
        lines.append(f"| review target | {' → '.join(dict.fromkeys(targets))} |")
    lines += ["", "![Dice gain against slices corrected and time](review_curve.svg)", "",
              "## Corrected slices", "", "| rank | slice | seconds | voxels added | voxels removed | estimated gain |",
              "|---|---|---|---|---|---|"]
    for e in events:
        if e["kind"] in CORRECTION_KINDS:
            lines.append(f"| {e.get('rank') or '-'} | {e['slice']} | {float(e.get('seconds', 0.0)):.1f} | "
                         f"{sum(e.get('voxels_added', {}).values())} | {sum(e.get('voxels_removed', {}).values())} | "
                         f"{float(e.get('estimated_dice_gain') or 0.0):+.4f} |")
    if log.warnings:
        lines += ["", "## Log warnings", "", *[f"- {w}" for w in log.warnings]]
    if ReviewFolder(log.path.parent).has_analysis():
        lines += ["", "## Training data", "", export_readiness(ReviewFolder(log.path.parent))]
    lines += ["", "All events: [review_log.csv](review_log.csv)."]
    report = out / "review_report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report
