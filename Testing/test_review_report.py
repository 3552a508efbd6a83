"""The review report is computed from the budget log alone and says what the log says."""

from __future__ import annotations

import csv
import json

import pytest
from curve_svg_reader import assert_figure_follows_the_log, drawn_points

from IWUOSegmentationLib.review.budget_log import BudgetLog


def _session(path):
    log = BudgetLog(path)
    log.append("session_started", budget_slices=5, n_ranked=40, axis=0, initial_dice=0.80)
    log.append("slice_shown", slice=12, rank=1, seconds=4.0)
    log.append("slice_corrected", slice=13, rank=2, seconds=20.0, voxels_added={"2": 30}, voxels_removed={"1": 5},
               estimated_dice_gain=0.010, measured_dice=0.82)
    log.append("slice_corrected", slice=13, rank=2, seconds=6.0, voxels_added={"2": 4}, voxels_removed={},
               estimated_dice_gain=0.010, measured_dice=0.83)  # same slice again: counts once
    log.append("slice_skipped", slice=14, rank=3, seconds=2.0)
    log.append("slice_corrected", slice=15, rank=4, seconds=10.0, voxels_added={}, voxels_removed={"2": 7},
               estimated_dice_gain=0.004, measured_dice=0.85)
    return log


def test_report_totals_curve_and_csv_follow_the_log(tmp_path):
    from IWUOSegmentationLib.review.report import correction_curve, write_review_report

    log = _session(tmp_path / "review.budget.jsonl")
    report = write_review_report(log.path)
    text = report.read_text()
    assert "| slices corrected | 2 of 5 |" in text
    assert "| voxels changed | 46 |" in text  # 30 + 5 + 4 + 7
    assert "| review time | 00:42 (42.0 s) |" in text
    assert "+0.0140" in text and "| measured all-foreground Dice (last, against the reference) | 0.8500 |" in text
    curve = correction_curve(log.read())
    assert [p["slices"] for p in curve] == [0, 1, 2]
    assert [p["measured_dice"] for p in curve] == [0.80, 0.83, 0.85]
    assert curve[-1]["seconds"] == 42.0 and abs(curve[-1]["estimated_gain"] - 0.014) < 1e-12
    rows = list(csv.DictReader((tmp_path / "review_log.csv").open()))
    assert [r["kind"] for r in rows] == ["slice_shown", "slice_corrected", "slice_corrected", "slice_skipped",
                                          "slice_corrected"]
    assert rows[1]["voxels_added"] == "30" and rows[1]["voxels_removed"] == "5"
    assert "![Dice gain against slices corrected and time](review_curve.svg)" in text
    assert_figure_follows_the_log((tmp_path / "review_curve.svg").read_text(), log.read())
    assert not list(tmp_path.glob(".*partial*"))


def test_figure_is_drawn_without_a_plotting_library_and_reads_back(tmp_path):
    """The figure module imports nothing beyond the standard library (stock Slicer has no matplotlib); a review
    without a reference draws no measured series; a review with nothing corrected still gets axes."""
    import ast
    import sys
    from pathlib import Path

    from IWUOSegmentationLib.review import curve_figure
    from IWUOSegmentationLib.review.report import write_review_report

    tree = ast.parse(Path(curve_figure.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert imported <= set(sys.stdlib_module_names), imported
    log = BudgetLog(tmp_path / "a" / "review.budget.jsonl")
    log.append("session_started", budget_slices=5, n_ranked=40, axis=0)
    log.append("slice_corrected", slice=3, rank=1, seconds=12.5, voxels_added={"1": 9}, voxels_removed={},
               estimated_dice_gain=0.02)
    log.append("slice_corrected", slice=9, rank=2, seconds=7.5, voxels_added={"1": 2}, voxels_removed={},
               estimated_dice_gain=0.005)
    write_review_report(log.path)
    svg = (log.path.parent / "review_curve.svg").read_text()
    assert_figure_follows_the_log(svg, log.read())
    assert drawn_points(svg, "slices")[1] == [] and drawn_points(svg, "seconds")[1] == []
    empty = BudgetLog(tmp_path / "b" / "review.budget.jsonl")
    empty.append("session_started", budget_slices=5, n_ranked=40, axis=0)
    write_review_report(empty.path)
    assert_figure_follows_the_log((empty.path.parent / "review_curve.svg").read_text(), empty.read())


def test_truncated_last_line_is_reported_not_fatal_and_missing_log_is_clear(tmp_path):
    from IWUOSegmentationLib.cli import main
    from IWUOSegmentationLib.errors import BadInputError
    from IWUOSegmentationLib.review.report import write_review_report

    log = _session(tmp_path / "review.budget.jsonl")
    with open(log.path, "a") as f:
        f.write('{"kind": "slice_corr')  # a crash mid-write
    report = write_review_report(log.path, tmp_path / "report")
    assert "last line is incomplete or corrupt" in report.read_text()
    assert "| slices corrected | 2 of 5 |" in report.read_text()
    with pytest.raises(BadInputError, match="No budget log"):
        write_review_report(tmp_path / "missing.jsonl")
    (tmp_path / "other.jsonl").write_text(json.dumps({"kind": "note"}) + "\n")
    assert main(["review-report", "--log", str(tmp_path / "other.jsonl")]) == 2
