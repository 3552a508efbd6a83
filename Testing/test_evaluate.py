"""`iwuo evaluate`: per-case results, resume, failures listed and counted in the exit code, shards + merge, report."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.cli import main
from IWUOSegmentationLib.ranking.strategies import DEFAULT_RANKING, GT_FREE
from IWUOSegmentationLib.simulation.budget_curves import aubc
from IWUOSegmentationLib.simulation.evaluate_folders import STRATEGY_NAMES

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--members", "folds", "--disable-tta", "--random-seeds", "5", "--expert-draws", "2", "--device", "cpu"]


def _evaluate(cases: Path, out: Path, *extra: str) -> int:
    return main(["--progress", "none", "evaluate", "--cases", str(cases), "--out", str(out), *FAST, *extra])


def _summary(out: Path) -> list[dict]:
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def _red_pixels_per_panel(png: Path, panels: int = 4) -> list[int]:
    """Pixels drawn in the default ranking's curve colour (#d62728) in each of the figure's panels (WT, TC, ET, mean),
    read back from the PNG."""
    import matplotlib.image

    rgb = (matplotlib.image.imread(png)[..., :3] * 255).round()
    red = np.all(np.abs(rgb - np.array([214, 39, 40])) <= 12, axis=-1)
    return [int(part.sum()) for part in np.array_split(red, panels, axis=1)]


def test_evaluation_report_resume_and_failures(tmp_path, phantom_cases):
    cases = tmp_path / "cases"
    shutil.copytree(phantom_cases, cases)
    broken = cases / "broken_case"
    shutil.copytree(phantom_cases / "phantom_0011", broken)
    label = sitk.ReadImage(str(broken / "label.nii.gz"))
    label.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(label, str(broken / "label.nii.gz"))
    out = tmp_path / "out"
    assert _evaluate(cases, out) == 2  # a case with bad input fails the run, the others are still reported
    summary = _summary(out)
    assert {(r["region"], r["expert"]) for r in summary} == {(g, e) for g in ("WT", "TC", "ET", "mean")
                                                            for e in ("perfect", "noisy")}
    assert {r["strategy"] for r in summary} == set(STRATEGY_NAMES)
    assert all(r["cases"] == "3" for r in summary)
    records = {name: json.loads((out / "cases" / name / "evaluation.json").read_text())
               for name in ("phantom_0011", "phantom_0012", "phantom_0013")}
    for record in records.values():
        for key, curve in record["curves"].items():
            region, expert, _ = key.split("|")
            assert len(curve) == record["n_slices"] + 1
            before = record["metrics_before_correction"]
            start = np.mean([m["dice"] for m in before.values()]) if region == "mean" else before[region]["dice"]
            assert curve[0] == pytest.approx(start, abs=1e-5), key  # "mean": the mean Dice over the regions
            if expert == "perfect":  # every slice replaced by the reference: Dice 1
                assert curve[-1] == pytest.approx(1.0), key
    for row in summary:  # the merged AUBC is the mean of the cases' curves' AUBC
        key = f"{row['region']}|{row['expert']}|{row['strategy']}"
        assert float(row["aubc"]) == pytest.approx(np.mean([aubc(np.array(r["curves"][key])) for r in records.values()]),
                                                   abs=1e-4), key
    wt = {r["strategy"]: r for r in summary if r["region"] == "WT" and r["expert"] == "perfect"}
    assert float(wt["iwuo"]["naubc"]) > 0.5 and float(wt["iwuo"]["aubc"]) > float(wt["random"]["aubc"])
    report = (out / "report.md").read_text()
    assert "`broken_case` (bad input): Case broken_case: the reference label's grid" in report
    assert "differs from the images' grid" in (out / "cases" / "broken_case" / "error.txt").read_text()
    failures = json.loads((out / "failures.json").read_text())
    assert [(f["case"], f["kind"], f["exit_code"]) for f in failures] == [("broken_case", "bad input", 2)]
    red = _red_pixels_per_panel(out / "dice_vs_budget_perfect.png")
    assert all(n > 300 for n in red), red  # the default ranking's curve is drawn in each region's panel
    with open(out / "statistics.csv") as f:
        tests = list(csv.DictReader(f))
    # the default against every other GT-free ranking, per region (3 + mean), expert (2) and axis (2)
    assert len(tests) == 4 * 2 * 2 * (len(GT_FREE) - 1)
    assert all(t["comparison"].startswith(f"{DEFAULT_RANKING} vs ") for t in tests)

    # A run killed after two cases: the third case's result is missing; re-running resumes.
    first = json.loads((out / "cases" / "phantom_0013" / "evaluation.json").read_text())
    kept = (out / "cases" / "phantom_0011" / "evaluation.json").stat().st_mtime_ns
    (out / "cases" / "phantom_0013" / "evaluation.json").unlink()
    shutil.rmtree(out / "cases" / "phantom_0013" / "analysis")
    # ... and phantom_0012's result was cut off mid-write by an older version: it is redone, not dropped.
    (out / "cases" / "phantom_0012" / "evaluation.json").write_text('{"case": "phantom_0012", "rows": [')
    shutil.rmtree(broken)  # the bad case is taken out of the batch (and its results folder with it)
    shutil.rmtree(out / "cases" / "broken_case")
    assert _evaluate(cases, out) == 0
    assert (out / "cases" / "phantom_0011" / "evaluation.json").stat().st_mtime_ns == kept
    again = json.loads((out / "cases" / "phantom_0013" / "evaluation.json").read_text())
    assert again["rows"] == first["rows"] and again["curves"] == first["curves"]
    assert json.loads((out / "cases" / "phantom_0012" / "evaluation.json").read_text()) == records["phantom_0012"]
    assert _summary(out) == summary

    # --merge-only cannot redo a case: an unreadable result is a failure, named, and the exit code says so.
    (out / "cases" / "phantom_0012" / "evaluation.json").write_text("not json")
    assert main(["--progress", "none", "evaluate", "--out", str(out), "--merge-only"]) == 1
    assert [(f["case"], f["kind"]) for f in json.loads((out / "failures.json").read_text())] == [
        ("phantom_0012", "unreadable result")]
    assert "`phantom_0012` (unreadable result)" in (out / "report.md").read_text()


def test_an_internal_error_in_one_case_is_listed_as_such_and_exits_1(tmp_path, phantom_cases, monkeypatch, capsys):
    """A bug while evaluating one case (not the case's files) is an internal error: exit 1, named, traceback kept."""
    import IWUOSegmentationLib.simulation.evaluation as evaluation

    cases = tmp_path / "cases"
    for name in ("phantom_0011", "phantom_0012"):
        shutil.copytree(phantom_cases / name, cases / name)
    real = evaluation.evaluate_case

    def buggy_for_one_case(case, *args, **kwargs):
        if case.name == "phantom_0012":
            raise KeyError("whole_tumour")  # stands for a bug in the code, e.g. a misspelt key
        return real(case, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_case", buggy_for_one_case)
    out = tmp_path / "out"
    assert _evaluate(cases, out, "--strategies", "iwuo,random,oracle", "--expert", "perfect") == 1
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(f["case"], f["kind"], f["exit_code"]) for f in printed["failures"]] == [
        ("phantom_0012", "internal error", 1)]
    assert printed["failures"] == json.loads((out / "failures.json").read_text())
    assert "`phantom_0012` (internal error): KeyError: 'whole_tumour'" in (out / "report.md").read_text()
    assert "in buggy_for_one_case" in (out / "cases" / "phantom_0012" / "error.txt").read_text()
    assert all(r["cases"] == "1" for r in _summary(out))
    monkeypatch.setattr(evaluation, "evaluate_case", real)  # the bug fixed: the failed case is redone, the run is clean
    assert _evaluate(cases, out, "--strategies", "iwuo,random,oracle", "--expert", "perfect") == 0
    assert json.loads((out / "failures.json").read_text()) == []
    assert all(r["cases"] == "2" for r in _summary(out))
    assert not (out / "cases" / "phantom_0012" / "error.txt").exists()


#: One network (fold 0, no mirroring), three rankings, the perfect expert: the cheapest real evaluation.
CHEAP = ["--folds", "0", "--members", "folds", "--disable-tta", "--device", "cpu", "--strategies", "iwuo,random,oracle",
         "--expert", "perfect", "--random-seeds", "2"]


@pytest.mark.skipif(not shutil.which("bash"), reason="the job-array script is a bash script")
def test_shards_run_at_once_into_one_folder_merge_to_the_same_summary(tmp_path, phantom_cases):
    """A job array on one machine: scripts/slurm_evaluate.sh as tasks 0-2 of an array of 3, started together as
    three processes that analyse and evaluate into one --out folder, each locking its own shard; then the merge
    job. The merged summary equals an unsharded run's (which reuses the saved analyses: the analysis is
    deterministic, the replay and the merge are what is compared)."""
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "IWUOSegmentation"), os.environ.get("PYTHONPATH", "")]),
               EVALUATE=f"{sys.executable} -m IWUOSegmentationLib.cli --progress none evaluate",
               SLURM_ARRAY_TASK_COUNT="3", SLURM_ARRAY_TASK_MIN="0")
    script = ROOT / "scripts" / "slurm_evaluate.sh"
    tasks = [subprocess.Popen(["bash", str(script), str(phantom_cases), str(sharded), *CHEAP], env=dict(
        env, SLURM_ARRAY_TASK_ID=str(i)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    outputs = [task.communicate(timeout=900) for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    shards = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [s["shard"] for s in shards] == ["0/3", "1/3", "2/3"] and all(s["failures"] == [] for s in shards)
    holders = [json.loads((sharded / f".iwuo.shard-{i}-of-3.lock.json").read_text()) for i in range(3)]
    assert len({h["pid"] for h in holders}) == 3  # each task held its own shard's lock
    cases = sorted(p.name for p in phantom_cases.iterdir())
    assert sorted(p.name for p in (sharded / "cases").iterdir()) == cases and not (sharded / "summary.csv").exists()
    merge = subprocess.run(["bash", str(script), "--merge-only", str(sharded)], env=env, capture_output=True, text=True)
    assert merge.returncode == 0, merge.stderr[-2000:]
    for case in cases:
        shutil.copytree(sharded / "cases" / case / "analysis", whole / "cases" / case / "analysis")
    assert main(["--progress", "none", "evaluate", "--cases", str(phantom_cases), "--out", str(whole), *CHEAP]) == 0
    assert _summary(sharded) == _summary(whole)


def test_headless_script_runs_the_same_evaluation(tmp_path, phantom_cases):
    """The Slicer --python-script entry point, run here with plain Python from a copy of the module folder as the
    extension installs it (no checkout around it), then through the checkout's scripts/ shim."""
    one = tmp_path / "one"
    shutil.copytree(phantom_cases / "phantom_0012", one / "phantom_0012")
    installed = shutil.copytree(ROOT / "IWUOSegmentation", tmp_path / "installed" / "IWUOSegmentation",
                                ignore=shutil.ignore_patterns("__pycache__"))
    script = installed / "IWUOSegmentationLib" / "cli" / "slicer_headless_evaluate.py"
    proc = subprocess.run([sys.executable, str(script), "--", "--cases",
                           str(one), "--out", str(tmp_path / "out"), *FAST, "--strategies", "iwuo,random,oracle"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _summary(tmp_path / "out")
    assert {r["strategy"] for r in rows} == {"iwuo", "random", "oracle", "oracle_time"}  # the references always run
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "slicer_headless_evaluate.py"), "--", "--cases",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "o2")], capture_output=True, text=True)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_reference_with_unknown_labels_is_reported(tmp_path, phantom_cases):
    cases = tmp_path / "cases"
    shutil.copytree(phantom_cases / "phantom_0011", cases / "odd")
    label = sitk.ReadImage(str(cases / "odd" / "label.nii.gz"))
    array = sitk.GetArrayFromImage(label)
    array[array == 2] = 9
    out_image = sitk.GetImageFromArray(array.astype(np.uint8))
    out_image.CopyInformation(label)
    sitk.WriteImage(out_image, str(cases / "odd" / "label.nii.gz"))
    assert _evaluate(cases, tmp_path / "out", "--strategies", "iwuo") == 2  # no case left to report on
    error = (tmp_path / "out" / "cases" / "odd" / "error.txt").read_text()
    assert "label values [9]" in error


def test_a_changed_image_is_evaluated_again_not_reused(tmp_path, phantom_cases, capsys):
    """The saved analysis and result of a case are reused only for the same images and model."""
    cases = tmp_path / "cases"
    shutil.copytree(phantom_cases / "phantom_0011", cases / "phantom_0011")
    out = tmp_path / "out"
    quick = ("--strategies", "iwuo,random", "--expert", "perfect")
    result = out / "cases" / "phantom_0011" / "evaluation.json"
    summary = out / "cases" / "phantom_0011" / "analysis" / "summary.json"
    assert _evaluate(cases, out, *quick) == 0
    first_identity = json.loads(summary.read_text())["identity"]["inputs"][0]["voxels_sha256"]
    kept = result.stat().st_mtime_ns
    assert _evaluate(cases, out, *quick) == 0  # unchanged: reused
    assert result.stat().st_mtime_ns == kept

    flair = sitk.ReadImage(str(cases / "phantom_0011" / "FLAIR.nii.gz"))
    sitk.WriteImage(sitk.Cast(flair, sitk.sitkFloat32) * 1.05, str(cases / "phantom_0011" / "FLAIR.nii.gz"))
    capsys.readouterr()
    assert _evaluate(cases, out, *quick) == 0
    assert "was made from other images or another model" in capsys.readouterr().out
    assert result.stat().st_mtime_ns != kept
    identity = json.loads(summary.read_text())["identity"]["inputs"][0]["voxels_sha256"]
    assert identity != first_identity  # the analysis was redone from the new image
