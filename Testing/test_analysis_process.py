"""The analysis child's protocol (cli/analysis_process.py) through a launcher that forwards no signal.

Slicer starts Python through PythonSlicer (CTKAppLauncher): the launcher runs the real Python as
its own child, hands it its stdin/stderr and returns its exit code, but forwards no signal. The
parent here is such a launcher, started the way the module's QProcess starts it (child_launcher.py); cancelling must
stop the real child within 5 s with exit code 4, load nothing and leave no analysis folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from child_launcher import start_through_a_launcher


def _start(run):
    launcher = start_through_a_launcher(run)
    deadline = time.time() + 240
    while run.fraction < 0.05:  # wait for the sliding windows (after imports, model loading, preprocessing)
        assert launcher.poll() is None, f"the analysis ended before its windows: {run.message}"
        assert time.time() < deadline, "no sliding-window progress within 240 s"
        time.sleep(0.05)
    return launcher


@pytest.mark.parametrize("channel", ["cancel_file", "stdin_eof"])
def test_cancel_reaches_the_real_child_through_a_launcher(phantom_cases, tmp_path, channel):
    from IWUOSegmentationLib.cli.analysis_process import AnalysisRun
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder

    case = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    run = AnalysisRun(str(demo_model_folder()), [str(case / "FLAIR.nii.gz"), str(case / "T1c.nii.gz")],
                      tmp_path / "review", device="cpu", python=sys.executable)
    launcher = _start(run)
    started = time.time()
    if channel == "cancel_file":
        run.cancel()  # what Cancel does; the launcher would ignore a terminate() it cannot forward
    else:
        run.cancel_requested = True
        launcher.stdin.close()  # QProcess.closeWriteChannel(), or Slicer exiting
    exit_code = launcher.wait(timeout=30)
    seconds = time.time() - started
    outcome = run.finished(exit_code, crashed=exit_code < 0)
    assert exit_code == 4, (exit_code, run.message)
    assert seconds < 5.0, f"the child took {seconds:.1f} s to stop"
    assert not outcome.load and not outcome.failed and "Cancelled" in outcome.message
    leftovers = sorted(p.name for p in (tmp_path / "review").iterdir())
    assert leftovers == [], f"a cancelled run left {leftovers}"


def test_outcomes_of_crash_failed_start_failure_and_missing_output(tmp_path):
    from IWUOSegmentationLib.cli.analysis_process import AnalysisRun

    def run_():
        run = AnalysisRun("model", ["a.nii.gz"], tmp_path / "review", python="/nonexistent/python")
        run.prepare()
        return run

    run = run_()
    run.feed_stderr('{"progress": 0.5, "message": "window 3/6"}\nTraceback: boom\n{"progr')
    assert run.fraction == 0.5 and run.message == "Traceback: boom"
    run.feed_stderr('ess": 0.7, "message": "window 4/6"}\n')  # a line split across two reads
    assert (run.fraction, run.message) == (0.7, "window 4/6")
    crashed = run.finished(-9, crashed=True)
    assert not crashed.load and crashed.failed and "abnormally" in crashed.message
    failed = run_().finished(2, crashed=False)
    assert not failed.load and failed.failed and "exit code 2" in failed.message
    started = run_().failed_to_start("No such file or directory")
    assert not started.load and started.failed and "/nonexistent/python" in started.message
    missing = run_().finished(0, crashed=False)
    assert not missing.load and missing.failed, "exit 0 without an analysis folder must not be loaded"
    (tmp_path / "review" / "analysis").mkdir()
    (tmp_path / "review" / "analysis" / "summary.json").write_text("{}")
    ok = run_()
    assert ok.finished(0, crashed=False).load
    cancelled = run_()
    cancelled.cancel()
    assert cancelled.cancel_file.exists()
    late = cancelled.finished(0, crashed=False)  # finished just as Cancel was pressed: still not loaded
    assert not late.load and not cancelled.cancel_file.exists()
    assert not run_().cancel_file.exists(), "prepare() must remove a stale cancel file"
    assert not Path(tmp_path / "review" / ".analysis.cancel").exists()


def test_the_run_keeps_the_model_and_volumes_it_started_with(tmp_path, demo_model):
    """The review at the end of a run is opened from what the run kept at its start (mrml.review_controller's
    analysis_inputs), never from the panel as it is then: the child analyses that model's folder."""
    from IWUOSegmentationLib.cli.analysis_process import AnalysisRun

    identity = {"version": 1, "inputs": [{"voxels_sha256": "ab"}], "model": {"files": {}}}
    run = AnalysisRun(str(demo_model.path), ["a.nrrd", "b.nrrd"], tmp_path / "review", opened_model=demo_model,
                      volume_ids=["vtkMRMLScalarVolumeNode3", "vtkMRMLScalarVolumeNode4"], scene_closes=2,
                      identity=identity)
    assert run.model_path == str(demo_model.path) and run.command[run.command.index("--model") + 1] == run.model_path
    kept = run.review_inputs()
    assert kept == {"opened_model": demo_model, "volume_ids": ["vtkMRMLScalarVolumeNode3", "vtkMRMLScalarVolumeNode4"],
                    "scene_closes": 2, "identity": identity}
    kept["volume_ids"].append("changed")
    assert run.review_inputs()["volume_ids"] == ["vtkMRMLScalarVolumeNode3", "vtkMRMLScalarVolumeNode4"]
