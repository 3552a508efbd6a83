"""BudgetLog: append-only JSON Lines, survives a crash mid-write, resumes, summarises the budget."""

from __future__ import annotations

import json

import pytest

from IWUOSegmentationLib.review.budget_log import BudgetLog


def test_events_round_trip_and_summary_counts_each_slice_once(tmp_path):
    log = BudgetLog(tmp_path / "session.budget.jsonl")
    log.append("session_started", budget_slices=5, budget_seconds=300.0)
    log.append("slice_shown", slice=12, rank=1, seconds=4.0)
    log.append("slice_corrected", slice=12, seconds=20.0, voxels_added={"2": 30}, voxels_removed={"2": 5},
               estimated_dice_gain=0.01)
    log.append("slice_corrected", slice=12, seconds=6.0, voxels_added={"4": 3}, voxels_removed={},
               estimated_dice_gain=0.012, measured_dice=0.81)
    log.append("slice_shown", slice=9, rank=2, seconds=3.0)
    log.append("slice_skipped", slice=9, seconds=1.0)
    events = log.read()
    assert [e["kind"] for e in events][:3] == ["session_started", "slice_shown", "slice_corrected"]
    s = log.summary()
    assert s.slices_corrected == 1 and s.corrected_slices == [12] and s.slices_shown == 2
    assert s.seconds_used == pytest.approx(34.0) and s.voxels_changed == 38
    assert s.estimated_dice_gain == pytest.approx(0.012) and s.measured_foreground_dice == pytest.approx(0.81)
    assert s.slices_remaining == 4 and s.seconds_remaining == pytest.approx(266.0)


def test_truncated_last_line_is_reported_skipped_and_appending_resumes(tmp_path):
    path = tmp_path / "log.jsonl"
    log = BudgetLog(path)
    log.append("slice_corrected", slice=3, seconds=10.0, estimated_dice_gain=0.02)
    with open(path, "a") as handle:  # a crash in the middle of a write
        handle.write('{"kind": "slice_corrected", "slice": 4, "sec')
    resumed = BudgetLog(path)
    assert [e["slice"] for e in resumed.read()] == [3]
    assert len(resumed.warnings) == 1 and "last line" in resumed.warnings[0]
    resumed.append("slice_corrected", slice=5, seconds=2.0, estimated_dice_gain=0.01)
    events = resumed.read()
    assert [e["slice"] for e in events] == [3, 5]
    assert "line 2" in resumed.warnings[0]
    assert resumed.summary().corrected_slices == [3, 5]
    fresh = BudgetLog(path)  # the file itself: the line after the cut one starts a line of its own
    assert [e["slice"] for e in fresh.read()] == [3, 5] and len(fresh.warnings) == 1
    assert json.loads(path.read_text().splitlines()[-1])["slice"] == 5


def test_unknown_event_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Unknown budget-log event"):
        BudgetLog(tmp_path / "x.jsonl").append("slice_painted", slice=1)
    assert not (tmp_path / "x.jsonl").exists()


def test_missing_log_is_an_empty_session(tmp_path):
    s = BudgetLog(tmp_path / "none.jsonl").summary(budget_slices=10)
    assert s.slices_corrected == 0 and s.slices_remaining == 10 and s.measured_foreground_dice is None


def test_events_in_memory_follow_the_file_and_a_failed_write_leaves_them_behind_it(tmp_path, monkeypatch):
    """Read once, then each append extends the memory only once its line is on disk: a disk-full append adds
    nothing to read() or summary(), and the retry adds the event once, as a fresh read of the file shows."""
    from IWUOSegmentationLib.storage.fault_injection import ENV, reset_counts

    path = tmp_path / "log.jsonl"
    BudgetLog(path).append("session_started", budget_slices=4)
    log = BudgetLog(path)
    assert [e["kind"] for e in log.read()] == ["session_started"]
    log.append("slice_corrected", slice=2, seconds=1.0, estimated_dice_gain=0.5)
    monkeypatch.setenv(ENV, "log.line:1:enospc")
    reset_counts()
    with pytest.raises(OSError, match="No space left"):
        log.append("slice_corrected", slice=7, seconds=1.0, estimated_dice_gain=0.25)
    assert log.summary().corrected_slices == [2] and len(log.read()) == 2
    monkeypatch.delenv(ENV)
    log.append("slice_corrected", slice=7, seconds=1.0, estimated_dice_gain=0.25)
    fresh = BudgetLog(path)
    assert log.read() == fresh.read() and log.summary() == fresh.summary()
    assert log.summary().corrected_slices == [2, 7] and log.summary().slices_remaining == 2


def test_an_old_log_reads_as_the_same_review_as_its_new_form(tmp_path):
    """Logs written before `slice_marked_corrected` and `measured_foreground_dice` (a mark logged as a
    `slice_corrected` of no voxels, the Dice under `measured_dice`) give the same summary, curve and report
    rows as the same review logged today."""
    from IWUOSegmentationLib.review.correction_curve import correction_curve
    from IWUOSegmentationLib.review.report import write_review_report

    def write(name: str, mark: tuple[str, dict], dice_key: str) -> BudgetLog:
        log = BudgetLog(tmp_path / name / "review.budget.jsonl")
        log.append("session_started", budget_slices=5, initial_dice=0.7)
        log.append("slice_shown", slice=4, rank=1, seconds=2.0)
        log.append("slice_corrected", slice=6, rank=2, seconds=5.0, voxels_added={"2": 9}, voxels_removed={},
                   estimated_dice_gain=0.02, **{dice_key: 0.75})
        log.append(mark[0], slice=6, rank=2, seconds=1.5, **mark[1])
        log.append(mark[0], slice=8, rank=3, seconds=3.0, **mark[1])
        return log

    old = write("old", ("slice_corrected", {"voxels_added": {}, "voxels_removed": {}}), "measured_dice")
    new = write("new", ("slice_marked_corrected", {}), "measured_foreground_dice")
    assert old.summary() == new.summary()
    assert new.summary().corrected_slices == [6, 8] and new.summary().measured_foreground_dice == 0.75
    assert new.summary().seconds_used == pytest.approx(11.5)
    assert correction_curve(old.read()) == correction_curve(new.read())
    assert [p["slices"] for p in correction_curve(new.read())] == [0, 1, 2]
    # Marking slice 6 done after its edit keeps the edit's estimated gain (a mark carries no estimate of its own).
    assert new.summary().estimated_dice_gain == pytest.approx(0.02)
    assert correction_curve(new.read())[-1]["estimated_gain"] == pytest.approx(0.02)
    reports = [write_review_report(log.path).read_text().split("## Corrected slices")[1] for log in (old, new)]
    assert reports[0].replace("old", "new") == reports[1] and reports[1].count("| 6 |") == 2
