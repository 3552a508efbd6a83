"""A review reads its budget log once, when it starts (issue 15): after that, edits, navigation, the summary
and the budget text come from the events in memory, and the front ends refresh on each logged event."""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import pytest
from synthetic_review import WRITTEN, case_images, correct_slice, expected_identity, open_case, write_synthetic_analysis

from IWUOSegmentationLib.review.budget_log import BudgetLog


@pytest.fixture
def review_case(phantom_cases):
    return sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]


class FileReads:
    """Counts the opens of one file for reading, by any reader (open, io.open, pathlib's read_text/read_bytes)."""

    def __init__(self, monkeypatch, path: Path):
        self.path, self.count, real_open = os.path.realpath(path), 0, io.open

        def counting_open(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and ("r" in mode or "+" in mode) \
                    and os.path.realpath(file) == self.path:
                self.count += 1
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(io, "open", counting_open)
        monkeypatch.setattr(builtins, "open", counting_open)


def test_review_edits_read_the_log_file_zero_times_after_the_session_started(mrml_scene, review_case, tmp_path,
                                                                            monkeypatch):
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_controller import ReviewController
    from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image

    write_synthetic_analysis(review_case, tmp_path / "analysis")
    _, _, earlier = open_case(create_headless_scene(), review_case, tmp_path)  # an earlier session: one correction
    correct_slice(earlier, earlier.next())
    earlier.flush_edits()
    earlier.close()

    log = tmp_path / "review.budget.jsonl"
    reads = FileReads(monkeypatch, log)
    shown: list[tuple[str, str]] = []  # (event kind, budget text) as a front end's on_logged sees them
    controller = ReviewController(mrml_scene, on_logged=lambda event: shown.append((event["kind"],
                                                                                    controller.progress().budget_text)))
    volume = add_volume_from_image(case_images(review_case)[0], "FLAIR")
    session = controller.open_case(tmp_path, volume, WRITTEN, expected_identity(review_case), budget_slices=10)
    assert reads.count >= 1, "resuming the session reads its log"
    n_at_start = len(session.log.read())

    reads.count = 0
    for _ in range(3):  # next, a stroke, its flush (save, then log)
        controller.act("next")
        correct_slice(session, session.ranking[session.current_rank])
        controller.flush()
    controller.act("next")
    controller.act("mark_corrected")
    controller.act("skip")
    progress = controller.progress()
    corrected, budget, text = progress.slices_corrected, progress.budget_slices, progress.budget_text
    summary, events = session.log.summary(), session.log.read()
    assert reads.count == 0, f"the log file was read {reads.count} times during the review"

    on_disk = BudgetLog(log)
    assert on_disk.read() == events and on_disk.summary() == summary, "memory and file differ"
    assert corrected == summary.slices_corrected == 5 and budget == 10 and text.startswith("5 of 10 slices")
    assert [kind for kind, _ in shown] == [e["kind"] for e in events[n_at_start:]], "one on_logged call per event"
    assert shown[-1][1] != shown[0][1] and shown[-2][1].startswith("5 of 10 slices"), "the text followed the log"
    controller.close()
