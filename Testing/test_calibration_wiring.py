"""A site calibration wired into the analysis and the review (issue 24, phase 2).

`iwuo analyze` applies the calibration it is given (or the one saved for the model, unless `--calibration
none`) after inference, records it in summary.json and keeps the label map unless asked; `iwuo review` and
the Slicer module decide what to do with an analysis made with another calibration than asked; the module's
"Calibrate to these reviews" runs `iwuo calibrate` as a child with the analysis child's cancel protocol.
The analyses are real (the bundled model on a phantom, one fold without mirroring: seconds each).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from child_launcher import start_through_a_launcher
from synthetic_review import OUTPUTS, WRITTEN, expected_identity, write_synthetic_analysis

from IWUOSegmentationLib.data.calibration import (
    calibration_from_data,
    calibration_text,
    default_calibration_path,
    keep_saved_analysis,
    model_key,
)
from IWUOSegmentationLib.errors import BadCalibrationError, BadInputError

#: Moves the 0.5 crossing of every region (what relabelling would change), unlike a temperature.
PLATT = {"method": "platt", "a": 0.5, "b": -2.0}


def _calibration_file(path: Path, identity: dict, spec: dict = PLATT) -> Path:
    data = {"format": "iwuo-calibration", "version": 1, "model_identity": identity, "model_key": model_key(identity),
            "outputs": OUTPUTS, "region_based": True, "written_labels": WRITTEN, "transform": {"channels": [spec] * 3},
            "structures": {name: {"method": spec["method"]} for name in OUTPUTS}, "fitted_on": [{"review": "r"}],
            "voxels": 100}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(calibration_text(calibration_from_data(data).data))
    return path


def _identity(folds=None) -> dict:
    from IWUOSegmentationLib.data.analysis_identity import model_identity
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import open_model

    return model_identity(open_model(demo_model_folder(), folds=folds))


@pytest.fixture
def signals_restored():
    """`iwuo analyze` run in-process installs its cancel handlers; the test process gets its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _analyze(case: Path, out: Path, *extra: str) -> dict:
    from IWUOSegmentationLib.cli.main import main

    code = main(["--progress", "none", "analyze", "--input", str(case / "FLAIR.nii.gz"), str(case / "T1c.nii.gz"),
                 "--output", str(out), "--device", "cpu", "--disable-tta", "--folds", "0", *extra])
    assert code == 0
    return json.loads((out / "summary.json").read_text())


def _image(folder: Path, name: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{name}.nii.gz")))


def test_iwuo_analyze_applies_the_calibration_records_it_and_keeps_the_label_map(phantom_cases, tmp_path, monkeypatch,
                                                                                  signals_restored):
    """The file saved for the model is found and applied by default, `--calibration none` turns it off, a file
    given is applied: the probabilities on disk are the calibration of the uncalibrated ones, the entropy follows
    them, summary.json records the file, and the label map is the model's own unless --relabel-calibrated."""
    from IWUOSegmentationLib.data.calibration import load_calibration, predictive_entropy

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    case = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    identity = _identity(["0"])
    saved = _calibration_file(default_calibration_path(identity), identity)
    plain = _analyze(case, tmp_path / "none", "--calibration", "none")
    assert "calibration" not in plain
    found = _analyze(case, tmp_path / "default")
    calibration = load_calibration(saved)
    assert found["calibration"]["file"] == str(saved) and found["calibration"]["sha256"] == calibration.sha256
    assert found["calibration"]["methods"] == {name: "platt" for name in OUTPUTS} and not found["calibration"]["relabel"]
    given = _analyze(case, tmp_path / "given", "--calibration", str(saved))
    assert given["calibration"] == found["calibration"]

    before = np.stack([_image(tmp_path / "none", f"probability_{n}") for n in OUTPUTS])
    after = np.stack([_image(tmp_path / "given", f"probability_{n}") for n in OUTPUTS])
    np.testing.assert_allclose(after, calibration.calibrate(before), atol=1e-6)
    assert np.abs(after - before).max() > 0.3
    np.testing.assert_allclose(_image(tmp_path / "given", "uncertainty_entropy"), predictive_entropy(after, True), atol=1e-5)
    np.testing.assert_array_equal(_image(tmp_path / "given", "uncertainty_variance"),
                                  _image(tmp_path / "none", "uncertainty_variance"))
    label_map = _image(tmp_path / "none", "segmentation")
    np.testing.assert_array_equal(_image(tmp_path / "given", "segmentation"), label_map)

    relabelled = _analyze(case, tmp_path / "relabelled", "--calibration", str(saved), "--relabel-calibrated")
    assert relabelled["calibration"]["relabel"] is True
    moved = _image(tmp_path / "relabelled", "segmentation")
    assert (moved != label_map).sum() > 100  # the same calibration does move the decisions when asked to
    np.testing.assert_array_equal(moved, calibration.label_map(after))


def test_a_bad_calibration_file_is_refused_before_the_analysis_starts(phantom_cases, tmp_path, signals_restored):
    from IWUOSegmentationLib.cli.main import main

    case = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{\"format\": ")
    code = main(["--progress", "none", "analyze", "--input", str(case / "FLAIR.nii.gz"), str(case / "T1c.nii.gz"),
                 "--output", str(tmp_path / "out"), "--calibration", str(damaged)])
    assert code == 2 and not (tmp_path / "out").exists()


def test_the_saved_analysis_is_reused_analysed_again_or_refused_for_the_calibration_asked(tmp_path):
    """The default keeps any saved analysis; an explicit file (or none) it was not made with re-analyses the review
    folder's own analysis before a review began on it, and is refused (one line) once one has, or for an analysis
    given from elsewhere."""
    identity = _identity()
    calibration = calibration_from_data(json.loads(_calibration_file(tmp_path / "c.json", identity).read_text()),
                                        tmp_path / "c.json")
    plain, calibrated = {}, {"calibration": {"file": "c.json", "sha256": calibration.sha256, "relabel": False}}
    assert keep_saved_analysis(plain, None, None, replaceable=False, where="a")  # the default: as it was made
    assert keep_saved_analysis(calibrated, None, None, replaceable=False, where="a")
    assert keep_saved_analysis(calibrated, "c.json", calibration, replaceable=False, where="a")
    assert keep_saved_analysis(plain, "none", None, replaceable=False, where="a")
    assert not keep_saved_analysis(plain, "c.json", calibration, replaceable=True, where="a")
    assert not keep_saved_analysis(calibrated, "none", None, replaceable=True, where="a")
    assert not keep_saved_analysis(calibrated, "c.json", calibration, replaceable=True, where="a", relabel=True)
    with pytest.raises(BadCalibrationError) as refused:
        keep_saved_analysis(calibrated, "none", None, replaceable=False, where="rev/analysis")
    assert "rev/analysis" in str(refused.value) and "a review has begun" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_iwuo_review_analyses_again_for_an_explicit_calibration_until_the_review_has_begun(phantom_cases, tmp_path,
                                                                                          monkeypatch):
    from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings
    from IWUOSegmentationLib.review.budget_log import BudgetLog
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[1]
    folder = tmp_path / "review"
    write_synthetic_analysis(case_dir, folder / "analysis")  # uncalibrated, no review yet
    calibration = _calibration_file(tmp_path / "site.json", _identity())

    def prepare(option):
        request = ReviewRequest([str(case_dir)], review_folder=str(folder), calibration=option,
                                settings=AnalysisSettings(device="cpu", tta=False))
        case = prepare_review_case(request)
        case.lock.release()
        return json.loads((case.analysis_dir / "summary.json").read_text())

    synthetic = json.loads((folder / "analysis" / "summary.json").read_text())["members"]
    assert prepare(None)["members"] == synthetic  # the default reuses it as it was made
    analysed = prepare(str(calibration))  # no review begun: analysed again, with the file
    assert analysed["calibration"]["file"] == str(calibration) and analysed["members"] != synthetic
    BudgetLog(folder / "review.budget.jsonl").append("session_started", budget_slices=20)
    with pytest.raises(BadCalibrationError, match="a review has begun"):
        prepare("none")
    assert prepare(None)["calibration"]["file"] == str(calibration)  # continued as it was made


def test_the_module_reuses_analyses_or_analyses_again_and_checks_the_calibration_first(phantom_cases, tmp_path,
                                                                                      monkeypatch):
    """mrml.review_controller.reuses_analysis, what Analyse asks before it opens a folder or starts a child."""
    from IWUOSegmentationLib.mrml.review_controller import reuses_analysis

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cases = sorted(p for p in phantom_cases.iterdir() if p.is_dir())
    identity = expected_identity(cases[0])
    folder = tmp_path / "review"
    assert not reuses_analysis(folder, identity)  # no analysis: the child runs
    write_synthetic_analysis(cases[0], folder / "analysis")
    calibration = _calibration_file(tmp_path / "site.json", identity["model"])
    assert reuses_analysis(folder, identity, "")
    assert not reuses_analysis(folder, identity, str(calibration))
    (folder / "review.budget.jsonl").write_text('{"kind": "session_started", "time": 0}\n')
    with pytest.raises(BadCalibrationError, match="a review has begun"):
        reuses_analysis(folder, identity, str(calibration))
    other_model = _calibration_file(tmp_path / "other.json", _identity(["0"]))
    with pytest.raises(BadCalibrationError, match="fitted for another model"):
        reuses_analysis(folder, identity, str(other_model))  # refused before anything, analysis or not
    with pytest.raises(BadInputError, match="made from other inputs"):
        reuses_analysis(folder, expected_identity(cases[1]), "")


def test_the_analysis_child_gets_the_calibration_option():
    from IWUOSegmentationLib.cli.analysis_process import AnalysisRun

    run = AnalysisRun("model", ["a.nrrd"], "/tmp/review", calibration="/site/c.json")
    assert run.command[run.command.index("--calibration") + 1] == "/site/c.json"
    assert "--calibration" not in AnalysisRun("model", ["a.nrrd"], "/tmp/review").command


# -- the module's "Calibrate to these reviews" ------------------------------------------------------------
def _run_through_a_launcher(run, cancel: bool = False) -> tuple[int, float]:
    started = time.time()
    launcher = start_through_a_launcher(run)
    if cancel:
        run.cancel()  # what Cancel does; the child sees the file at its first step
    code = launcher.wait(timeout=300)
    launcher.reader.join(timeout=10)
    return code, time.time() - started


def _three_reviews(root: Path, phantom_cases: Path) -> Path:
    """Three finished reviews (synthetic analyses of the phantoms, corrected on every tumour slice)."""
    from IWUOSegmentationLib.review.budget_log import BudgetLog

    for case_dir in sorted(p for p in phantom_cases.iterdir() if p.is_dir()):
        folder = root / case_dir.name
        write_synthetic_analysis(case_dir, folder / "analysis")
        label = sitk.ReadImage(str(case_dir / "label.nii.gz"))
        sitk.WriteImage(label, str(folder / "corrected_segmentation.nii.gz"))
        log = BudgetLog(folder / "review.budget.jsonl")
        log.append("session_started", budget_slices=20, axis=0)
        for s in np.flatnonzero(sitk.GetArrayFromImage(label).reshape(label.GetSize()[2], -1).any(1)).tolist():
            log.append("slice_corrected", slice=s, rank=1, seconds=8.0 + 0.1 * s, voxels_added={"2": 5}, voxels_removed={})
    return root


def test_calibrate_to_these_reviews_runs_iwuo_calibrate_as_a_cancellable_child(phantom_cases, tmp_path, monkeypatch):
    """The button's run fits on every review beside the open one and saves the file for the model (where the next
    analysis finds it); Cancel reaches the child through a launcher (exit 4, nothing written); without a review or
    without scikit-learn it says so in one line before anything starts."""
    import importlib.util

    from IWUOSegmentationLib.cli import calibration_process
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.review.folder import ReviewFolder

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the children inherit it
    reviews = _three_reviews(tmp_path / "IWUOSegmentation", phantom_cases)
    open_review = ReviewFolder(sorted(reviews.iterdir())[0])
    saved = default_calibration_path(_identity())

    cancelled = calibration_process.calibration_run(open_review, demo_model_folder(), python=sys.executable)
    code, _ = _run_through_a_launcher(cancelled, cancel=True)
    outcome = cancelled.finished(code, crashed=code < 0)
    assert code == 4 and not outcome.failed and "nothing was written" in outcome.message
    assert not saved.exists() and not Path(cancelled.work_dir).exists()

    run = calibration_process.calibration_run(open_review, demo_model_folder(), python=sys.executable)
    assert run.command[run.command.index("--reviews") + 1] == str(reviews)
    code, seconds = _run_through_a_launcher(run)
    outcome = run.finished(code, crashed=code < 0)
    assert code == 0 and not outcome.failed and not outcome.load, run.message
    assert saved.is_file() and f"{saved} written" in outcome.message
    fitted_on = {Path(entry["review"]).name for entry in json.loads(saved.read_text())["fitted_on"]}
    assert fitted_on == {p.name for p in reviews.iterdir()}
    print(f"calibrate child on 3 phantom reviews: {seconds:.1f} s")

    with pytest.raises(BadInputError, match="No review yet"):
        calibration_process.calibration_run(None, demo_model_folder())
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real_find_spec(name, *a))
    with pytest.raises(BadInputError) as missing:
        calibration_process.calibration_run(open_review, demo_model_folder())
    assert str(missing.value) == calibration_process.NO_SCIKIT_LEARN and "\n" not in str(missing.value)


def test_the_time_model_is_not_fitted_from_logs_without_time():
    from IWUOSegmentationLib.review.time_model_fit import SliceTiming, fit_time_model

    timings = [SliceTiming("r", s, 0.0, 1, 40.0 * (s % 2)) for s in range(80)]
    with pytest.raises(BadInputError, match="no time for any of their 80"):
        fit_time_model(timings)
