"""`iwuo evaluate`: per-case results, resume, skipped failures, shards + merge, report."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from IWUOSegmentationLib.cli import main

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--members", "folds", "--disable-tta", "--random-seeds", "5", "--device", "cpu"]


def _evaluate(cases: Path, out: Path, *extra: str) -> int:
    return main(["--progress", "none", "evaluate", "--cases", str(cases), "--out", str(out), *FAST, *extra])


def _summary(out: Path) -> list[dict]:
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_evaluation_report_resume_and_failures(tmp_path, phantom_cases):
    cases = tmp_path / "cases"
    shutil.copytree(phantom_cases, cases)
    broken = cases / "broken_case"
    shutil.copytree(phantom_cases / "phantom_0011", broken)
    label = sitk.ReadImage(str(broken / "label.nii.gz"))
    label.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(label, str(broken / "label.nii.gz"))
    out = tmp_path / "out"
    assert _evaluate(cases, out) == 0
    summary = _summary(out)
    assert {(r["region"], r["expert"]) for r in summary} == {(g, e) for g in ("WT", "TC", "ET")
                                                            for e in ("perfect", "noisy")}
    assert {r["strategy"] for r in summary} == {"iwuo", "uncertainty", "impact", "random", "fixed_interval",
                                               "largest_area", "oracle"}
    assert all(r["cases"] == "3" for r in summary)
    oracle = [r for r in summary if r["strategy"] == "oracle"]
    assert all(float(r["naubc"]) == 1.0 for r in oracle)
    assert all(float(r["naubc"]) == 0.0 for r in summary if r["strategy"] == "random")
    report = (out / "report.md").read_text()
    assert "broken_case" in report and "differs from the images' grid" in (out / "cases" / "broken_case" /
                                                                           "error.txt").read_text()
    assert (out / "dice_vs_budget_perfect.png").stat().st_size > 10000
    with open(out / "statistics.csv") as f:
        tests = list(csv.DictReader(f))
    assert len(tests) == 6 * 6 and all(t["comparison"].startswith("iwuo vs ") for t in tests)

    # A run killed after two cases: the third case's result is missing; re-running resumes.
    first = json.loads((out / "cases" / "phantom_0013" / "evaluation.json").read_text())
    kept = (out / "cases" / "phantom_0011" / "evaluation.json").stat().st_mtime_ns
    (out / "cases" / "phantom_0013" / "evaluation.json").unlink()
    shutil.rmtree(out / "cases" / "phantom_0013" / "analysis")
    assert _evaluate(cases, out) == 0
    assert (out / "cases" / "phantom_0011" / "evaluation.json").stat().st_mtime_ns == kept
    again = json.loads((out / "cases" / "phantom_0013" / "evaluation.json").read_text())
    assert again["rows"] == first["rows"] and again["curves"] == first["curves"]
    assert _summary(out) == summary


def test_shards_merge_to_the_same_summary(tmp_path, phantom_cases):
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert _evaluate(phantom_cases, whole) == 0
    for shard in ("0/2", "1/2"):
        assert _evaluate(phantom_cases, sharded, "--shard", shard) == 0
    assert not (sharded / "summary.csv").exists()
    assert main(["--progress", "none", "evaluate", "--out", str(sharded), "--merge-only"]) == 0
    assert _summary(sharded) == _summary(whole)


def test_headless_script_runs_the_same_evaluation(tmp_path, phantom_cases):
    """The Slicer --python-script entry point, run here with plain Python from a copy of the module folder as the
    extension installs it (no checkout around it), then through the checkout's scripts/ shim."""
    one = tmp_path / "one"
    shutil.copytree(phantom_cases / "phantom_0012", one / "phantom_0012")
    installed = shutil.copytree(ROOT / "IWUOSegmentation", tmp_path / "installed" / "IWUOSegmentation",
                                ignore=shutil.ignore_patterns("__pycache__"))
    script = installed / "IWUOSegmentationLib" / "gui" / "slicer_headless_evaluate.py"
    proc = subprocess.run([sys.executable, str(script), "--", "--cases",
                           str(one), "--out", str(tmp_path / "out"), *FAST, "--strategies", "iwuo,random,oracle"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _summary(tmp_path / "out")
    assert {r["strategy"] for r in rows} == {"iwuo", "random", "oracle"}
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
