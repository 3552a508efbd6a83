"""One writer per review folder (storage/folder_lock.py): a second opener is refused with the holder's name, or
browses read-only and writes nothing; a crashed holder leaves no stale lock.

The other holder is a real second process wherever the claim is about two programs (`iwuo review`,
`iwuo evaluate`, a SIGKILLed holder); the MRML sessions are real (slicer-core).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_review import correct_slice, open_case, read_log_events, write_synthetic_analysis

from IWUOSegmentationLib.storage.folder_lock import FolderLockedError, lock_folder, read_holder

IWUO = [sys.executable, "-m", "IWUOSegmentationLib.cli"]
HOLD = ("import sys, time; from IWUOSegmentationLib.storage.folder_lock import lock_folder; "
        "held = lock_folder(sys.argv[1], sys.argv[2]); print('locked', flush=True); time.sleep(600)")


def hold_in_other_process(folder: Path, front_end: str) -> subprocess.Popen:
    """Another program holding `folder`'s lock (as Slicer or a browser server would)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), front_end], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "locked", "the holder process did not take the lock"
    return proc


def test_second_opener_is_refused_with_the_holder_named_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = hold_in_other_process(tmp_path, "Slicer")
    try:
        with pytest.raises(FolderLockedError) as refused:
            lock_folder(tmp_path, "the browser review")
        message = str(refused.value)
        assert f"process {holder.pid}" in message and "Slicer" in message and socket.gethostname() in message
        assert refused.value.exit_code == 2 and refused.value.holder.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no clean-up runs in the holder
        holder.wait()
    lock = lock_folder(tmp_path, "the browser review")  # the OS released it: no stale lock
    assert read_holder(tmp_path).pid == os.getpid() and read_holder(tmp_path).front_end == "the browser review"
    with pytest.raises(FolderLockedError, match="the browser review"):
        lock_folder(tmp_path, "a second session in the same process")  # locks are per open file, not per process
    lock.release()
    lock_folder(tmp_path, "after release").release()


def test_iwuo_review_second_start_exits_2_naming_the_holder_and_writes_nothing(phantom_cases, tmp_path):
    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    out = tmp_path / "review"
    holder = hold_in_other_process(out, "the browser review (iwuo review)")
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        run = subprocess.run([*IWUO, "--progress", "none", "review", "--case", str(case_dir), "--out", str(out),
                              "--port", str(port), "--device", "cpu"], capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 2, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"process {holder.pid}" in lines[0] and "iwuo review" in lines[0], run.stderr
    assert "--read-only" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == [".iwuo.lock", ".iwuo.lock.json"], "the refused start wrote"
    ro = subprocess.run([*IWUO, "--progress", "none", "review", "--case", str(case_dir), "--out", str(out),
                         "--port", str(port), "--read-only"], capture_output=True, text=True, timeout=300)
    assert ro.returncode == 2 and "no review to browse" in ro.stderr, ro.stderr[-2000:]


def test_iwuo_evaluate_locks_its_output_folder(tmp_path):
    holder = hold_in_other_process(tmp_path, "iwuo evaluate")
    try:
        run = subprocess.run([*IWUO, "evaluate", "--out", str(tmp_path), "--merge-only"], capture_output=True,
                             text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 2 and f"process {holder.pid}" in run.stderr and "evaluation folder" in run.stderr, \
        run.stderr[-2000:]
    shard = lock_folder(tmp_path, "iwuo evaluate --shard 0/2", name=".iwuo.shard-0-of-2.lock")
    other = lock_folder(tmp_path, "iwuo evaluate --shard 1/2", name=".iwuo.shard-1-of-2.lock")  # shards side by side
    shard.release()
    other.release()


def test_iwuo_evaluate_holds_its_lock_until_the_report_is_written(tmp_path, monkeypatch):
    """Held for the whole run, not only checked at the start: while `iwuo evaluate` writes its report (its last
    step) another opener of the folder is refused (a lock per open file: the same process is refused too), and
    once the command has returned the folder is free."""
    import IWUOSegmentationLib.simulation.report as report
    from IWUOSegmentationLib.cli.main import main

    attempts = []

    def write_report_while_someone_tries_the_lock(out, **_):
        try:
            lock_folder(out, "test: a second evaluation", what="evaluation").release()
            attempts.append("taken")
        except FolderLockedError as refused:
            attempts.append(str(refused))
        return Path(out) / "report.md"

    monkeypatch.setattr(report, "write_report", write_report_while_someone_tries_the_lock)
    assert main(["--progress", "none", "evaluate", "--out", str(tmp_path), "--merge-only"]) == 0
    assert len(attempts) == 1 and "iwuo evaluate" in attempts[0] and f"process {os.getpid()}" in attempts[0], attempts
    lock_folder(tmp_path, "test: after the run", what="evaluation").release()


@pytest.fixture(scope="module")
def review_case(phantom_cases):
    return sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]


def test_second_front_end_on_an_open_review_is_refused_or_read_only_and_nothing_is_lost(review_case, tmp_path):
    """Front end A reviews; B (another scene) is refused, or opens read-only: it sees A's progress, its edits
    are undone and it writes nothing; A's corrections continue; after A closes, B can take over."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import read_corrected_segmentation

    write_synthetic_analysis(review_case, tmp_path / "analysis")
    scene_a, scene_b = create_headless_scene(), create_headless_scene()
    _, _, a = open_case(scene_a, review_case, tmp_path, front_end="Slicer")
    first = a.next()
    correct_slice(a, first)
    assert a.flush_edits() == 1
    with pytest.raises(FolderLockedError, match=f"Slicer on .* \\(process {os.getpid()}\\)"):
        open_case(create_headless_scene(), review_case, tmp_path, front_end="the browser review")

    log_before = (tmp_path / "review.budget.jsonl").read_bytes()
    saved_before = (tmp_path / "corrected_segmentation.nii.gz").read_bytes()
    _, _, b = open_case(scene_b, review_case, tmp_path, read_only=True)
    assert b.read_only and b.lock is None
    assert b.log.summary().slices_corrected == 1 and b.current_rank == a.current_rank
    second = b.next()
    assert correct_slice(b, second) > 0
    assert b.flush_edits() == 0 and not b.dirty
    import slicer.util

    segment = next(iter(b.label_values))
    assert not slicer.util.arrayFromSegmentBinaryLabelmap(b.segmentation, segment, b.volume)[second, 10:14, 10:15].all(), \
        "the read-only session kept an edit"
    b.mark_corrected()
    b.close()
    assert (tmp_path / "review.budget.jsonl").read_bytes() == log_before, "the read-only session wrote log lines"
    assert (tmp_path / "corrected_segmentation.nii.gz").read_bytes() == saved_before

    second = a.next()  # A goes on: its lock was not touched by B's close
    correct_slice(a, second)
    assert a.flush_edits() == 1
    a.close()
    _, _, c = open_case(create_headless_scene(), review_case, tmp_path, front_end="the browser review")
    assert c.log.summary().corrected_slices == sorted({first, second})
    saved = read_corrected_segmentation(tmp_path / "corrected_segmentation.nii.gz", c.accounted_masks()[segment].shape)
    assert np.all(saved[[first, second]][:, 10:14, 10:15] > 0), "a correction was lost"
    c.close()
    assert [e["kind"] for e in read_log_events(tmp_path)].count("session_started") == 1
    assert sitk.ReadImage(str(tmp_path / "corrected_segmentation.nii.gz")).GetSize() == \
        sitk.ReadImage(str(review_case / "FLAIR.nii.gz")).GetSize()

