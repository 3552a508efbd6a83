"""`iwuo evaluate --calibration FILE --time-model FILE` (issue 24): the replay with a site's calibration and its fitted
time model.

The calibration is applied to each case's analysis probabilities (the label map kept) and refused, in one line with
exit code 2 and before any case is replayed, for another model; the time model (the one `iwuo calibrate` writes into
its file) charges the simulated expert and the time-axis rankings; both are recorded in the per-case settings and
the report. The analyses are synthetic (the real writer, tests/synthetic_review.py) and replayed with `--replay-only`:
seconds, no network.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from synthetic_review import write_synthetic_analysis
from test_calibration_wiring import _calibration_file, _identity

from IWUOSegmentationLib.cli.main import main
from IWUOSegmentationLib.data.calibration import load_calibration
from IWUOSegmentationLib.ranking.correction_time import TimeModel
from IWUOSegmentationLib.ranking.strategies import DEFAULT_RANKING

FAST = ["--strategies", DEFAULT_RANKING, "--expert", "noisy", "--expert-draws", "2", "--random-seeds", "5"]


@pytest.fixture
def one_case(phantom_cases, tmp_path) -> Path:
    """A folder holding one phantom case folder (its images and reference label)."""
    cases = tmp_path / "cases"
    cases.mkdir()
    case = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    (cases / case.name).symlink_to(case, target_is_directory=True)
    return cases


def _replay(cases: Path, out: Path, *extra: str) -> tuple[int, dict | None]:
    """`iwuo evaluate --replay-only` of the case's synthetic analysis into `out`; the exit code and the case's result."""
    case = next(cases.iterdir())
    if not (out / "cases" / case.name / "analysis").is_dir():
        write_synthetic_analysis(case, out / "cases" / case.name / "analysis")
    code = main(["--progress", "none", "evaluate", "--cases", str(cases), "--out", str(out), "--replay-only", *FAST,
                 *extra])
    result = out / "cases" / case.name / "evaluation.json"
    return code, json.loads(result.read_text()) if result.is_file() else None


def _with_time_model(path: Path, time_model: dict | None) -> Path:
    """A calibration file of the bundled model as `iwuo calibrate` writes one, with this time model (or the reason
    it has none)."""
    _calibration_file(path, _identity())
    data = json.loads(path.read_text())
    data.update({"time_model": time_model} if time_model else {"time_model": None, "time_model_refused": "too few"})
    path.write_text(json.dumps(data))
    return path


def test_a_calibration_of_another_model_is_refused_in_one_line_before_any_replay(one_case, tmp_path, capsys):
    other = _calibration_file(tmp_path / "other.json", _identity(["0"]))  # the bundled model with one fold
    capsys.readouterr()
    code, result = _replay(one_case, tmp_path / "out", "--calibration", str(other))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and result is None and not (tmp_path / "out" / "report.md").exists()
    assert len(err) == 1 and "another model" in err[0]


def test_a_replay_without_calibration_reads_an_analysis_that_records_no_model_identity(one_case, tmp_path):
    """Analyses written before the model identity was recorded still replay when no calibration is asked for."""
    case = next(one_case.iterdir())
    analysis = tmp_path / "out" / "cases" / case.name / "analysis"
    write_synthetic_analysis(case, analysis)
    summary = json.loads((analysis / "summary.json").read_text())
    summary.pop("identity", None)
    (analysis / "summary.json").write_text(json.dumps(summary))
    code, result = _replay(one_case, tmp_path / "out")
    assert code == 0 and result is not None


def test_a_file_without_a_time_model_is_refused_in_one_line(one_case, tmp_path, capsys):
    path = _with_time_model(tmp_path / "no_time.json", None)
    capsys.readouterr()
    code = main(["--progress", "none", "evaluate", "--cases", str(one_case), "--out", str(tmp_path / "out"),
                 "--replay-only", "--time-model", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no time model" in err[0] and "too few" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_calibration_changes_the_expected_dice_the_replay_uses_and_keeps_the_label_map(one_case, tmp_path):
    from IWUOSegmentationLib.data.analysis_files import read_analysis
    from IWUOSegmentationLib.data.structures import evaluation_regions, structures_from_summary
    from IWUOSegmentationLib.ranking.slice_scores import impact_per_slice

    calibration = load_calibration(_calibration_file(tmp_path / "site.json", _identity()))
    code, plain = _replay(one_case, tmp_path / "plain")
    assert code == 0
    code, calibrated = _replay(one_case, tmp_path / "calibrated", "--calibration", calibration.path)
    assert code == 0
    # the label map is the model's own: the Dice before any correction and every region's starting point are equal
    assert calibrated["metrics_before_correction"] == plain["metrics_before_correction"]
    assert [r["dice_before"] for r in calibrated["rows"]] == [r["dice_before"] for r in plain["rows"]]
    # the expected Dice is the product's, on the calibrated probabilities of the same analysis: the case's scores
    # (ranking/case_scores.score_case), which every ranking of the replay is ordered by, are the calibrated ones
    analysis = read_analysis(tmp_path / "calibrated" / "cases" / next(one_case.iterdir()).name / "analysis")
    probabilities = calibration.calibrate(analysis.probabilities)
    for name, region in evaluation_regions(structures_from_summary(analysis.summary)).items():
        pred = region.structure.mask(analysis.label_map)
        expected = impact_per_slice(region.structure.probability(probabilities), pred, calibrated["axis"])[1]
        assert calibrated["quality"][name]["expected_dice"] == pytest.approx(expected, abs=1e-4)
        assert abs(calibrated["quality"][name]["expected_dice"] - plain["quality"][name]["expected_dice"]) > 0.01
    assert calibrated["settings"]["calibration"]["sha256"] == calibration.sha256 and plain["settings"]["calibration"] is None
    assert calibration.path in (tmp_path / "calibrated" / "report.md").read_text()


def test_a_fitted_time_model_charges_the_replay_by_its_constants(one_case, tmp_path):
    assumed = TimeModel()
    fitted = {"look_seconds": 2 * assumed.look_seconds, "seconds_per_mm": 2 * assumed.seconds_per_mm}
    path = _with_time_model(tmp_path / "site.json", fitted)
    code, plain = _replay(one_case, tmp_path / "plain")
    assert code == 0
    code, timed = _replay(one_case, tmp_path / "timed", "--time-model", str(path))
    assert code == 0
    constants = json.loads(path.read_text())["time_model"]
    assert timed["settings"]["time_model"] == constants and timed["settings"]["time_model_file"] == str(path)
    assert plain["settings"]["time_model"] == asdict(assumed) and plain["settings"]["time_model_file"] is None
    assert f"fitted, from {path}" in (tmp_path / "timed" / "report.md").read_text()
    # every slice costs k times as long (both constants scaled by k), so Dice at k*t is the assumed model's at t
    k = constants["look_seconds"] / assumed.look_seconds
    assert k == constants["seconds_per_mm"] / assumed.seconds_per_mm and k == int(k) > 1
    for region in ("WT", "TC", "ET", "mean"):
        key = f"{region}|noisy|{DEFAULT_RANKING}"
        slow, fast = np.asarray(timed["time_curves"][key]), np.asarray(plain["time_curves"][key])
        stretched = slow[::int(k)]
        np.testing.assert_array_equal(stretched, fast[:len(stretched)])
        if fast[-1] > fast[0]:
            assert not np.array_equal(slow, fast)


def test_a_result_replayed_with_another_calibration_or_time_model_is_not_reused(tmp_path):
    from IWUOSegmentationLib.simulation.evaluate_folders import replayed_with_other_settings
    from IWUOSegmentationLib.simulation.evaluation_config import EvaluationConfig

    calibration = load_calibration(_calibration_file(tmp_path / "site.json", _identity()))
    record = {"settings": {"calibration": None, "time_model": asdict(TimeModel())}}
    assert replayed_with_other_settings(record, EvaluationConfig()) is None
    assert "calibration" in replayed_with_other_settings(record, EvaluationConfig(calibration=calibration))
    slower = EvaluationConfig(time_model=TimeModel(look_seconds=2 * TimeModel().look_seconds))
    assert "time model" in replayed_with_other_settings(record, slower)


def test_the_sensitivity_grid_writes_its_declared_cells_as_a_csv_and_a_figure(one_case, tmp_path):
    """`--sensitivity`: one row per declared cell (look x s/mm x tolerance x area), each naming its best ranking and
    whether the default is in that cell's top group, and the figure beside it."""
    import csv
    import itertools

    code, result = _replay(one_case, tmp_path / "out", "--sensitivity", "--strategies",
                           f"{DEFAULT_RANKING},iwuo,random,oracle,oracle_time")
    assert code == 0 and result is not None
    with (tmp_path / "out" / "sensitivity.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    cells = {(float(r["look"]), float(r["per_mm"]), float(r["tolerance"]), float(r["area"])) for r in rows}
    assert cells == set(itertools.product((2.0, 8.0, 20.0), (0.05, 0.15, 0.3), (2.0, 4.0), (4.0, 16.0, 36.0)))
    assert all(r["default"] == DEFAULT_RANKING and r["best"] in r["top_group"].split() for r in rows)
    assert all(r["default_in_top_group"] == str(DEFAULT_RANKING in r["top_group"].split()) for r in rows)
    assert (tmp_path / "out" / "sensitivity.png").stat().st_size > 0
