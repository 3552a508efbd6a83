"""Every exit code the README documents (0 ok, 1 internal error, 2 bad input, 3 bad model, 4 cancelled,
5 corrupt log, 6 out of memory), each from a real `iwuo` process.

Codes 1 and 6 need a fault that cannot be provoked from outside on this machine (a bug; a GPU): the
`iwuo` script is then run by a Python that first replaces one internal function by one that raises,
exactly where the real fault would surface (for 6: where a CUDA out-of-memory error reaches
`MemberPredictor.analyze`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from IWUOSegmentationLib.review.budget_log import BudgetLog

ROOT = Path(__file__).resolve().parent.parent
IWUO = shutil.which("iwuo", path=str(Path(sys.executable).parent)) or shutil.which("iwuo")


def _env() -> dict:
    """This checkout's module first on the path (the `iwuo` script honours PYTHONPATH)."""
    path = [str(ROOT / "IWUOSegmentation"), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p), nnUNet_def_n_proc="2")


def _iwuo(*args: str, patch: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `iwuo` script; `patch` is Python run first in the same process (fault injection)."""
    assert IWUO, "the iwuo command is not installed next to this Python"
    if patch is None:
        command = [IWUO, "--progress", "none", *args]
    else:
        runner = (f"{patch}\nimport runpy, sys\nsys.argv = [{IWUO!r}, *sys.argv[1:]]\n"
                  f"runpy.run_path({IWUO!r}, run_name='__main__')")
        command = [sys.executable, "-c", runner, "--progress", "none", *args]
    return subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=timeout, check=False)


def _review_log(path: Path) -> Path:
    log = BudgetLog(path)
    log.append("session_started", case="phantom", budget_slices=5)
    log.append("slice_shown", rank=1, slice=30, seconds=4.0)
    log.append("slice_corrected", rank=1, slice=30, seconds=6.0, estimated_dice_gain=0.02,
               voxels_added={"whole_tumor": 12}, voxels_removed={})
    return path


def _analyze(case: Path, out: Path, *extra: str, patch: str | None = None) -> subprocess.CompletedProcess:
    return _iwuo("analyze", "--input", str(case / "FLAIR.nii.gz"), str(case / "T1c.nii.gz"), "--output", str(out),
                 "--device", "cpu", *extra, patch=patch)


def test_exit_0_ok(tmp_path):
    log = _review_log(tmp_path / "review" / "review.budget.jsonl")
    proc = _iwuo("review-report", "--log", str(log))
    assert proc.returncode == 0, proc.stderr
    report = Path(json.loads(proc.stdout)["report"])
    assert "| slices corrected | 1 of 5 |" in report.read_text()


@pytest.mark.parametrize("error", ["FileNotFoundError('/internal/cache/curve.tmp')", "KeyError('slice')"])
def test_exit_1_internal_error_shows_the_traceback(tmp_path, error):
    """A bug is an internal error (1), not bad input: one that raises FileNotFoundError inside the code (an OSError,
    which the disk-full rule must not take for the user's) and one that raises anything else."""
    log = _review_log(tmp_path / "review.budget.jsonl")
    bug = ("import IWUOSegmentationLib.review.report as r\n"
           f"def broken(events):\n    raise {error}\n"
           "r.correction_curve = broken")
    proc = _iwuo("review-report", "--log", str(log), patch=bug)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr and "in broken" in proc.stderr
    assert not (tmp_path / "review_report.md").exists()


def test_exit_2_bad_input_with_one_clear_line(tmp_path, phantom_cases):
    proc = _iwuo("analyze", "--input", str(phantom_cases / "phantom_0011" / "FLAIR.nii.gz"), "--output",
                 str(tmp_path / "out"), "--device", "cpu")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "expects 2 input images (FLAIR, T1c)" in proc.stderr and "Traceback" not in proc.stderr
    missing = _iwuo("review-report", "--log", str(tmp_path / "nowhere" / "review.budget.jsonl"))
    assert missing.returncode == 2 and "No budget log at" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_exit_3_bad_model(tmp_path, phantom_cases):
    """A folder that is no model is a bad model (3); a model path that does not exist is bad input (2, below)."""
    not_a_model = tmp_path / "empty_folder"
    not_a_model.mkdir()
    proc = _analyze(phantom_cases / "phantom_0011", tmp_path / "out", "--model", str(not_a_model))
    assert proc.returncode == 3, proc.stderr
    assert "is not an nnU-Net model folder" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


#: Each command given a file or folder that is not there (or an output path under a file): what it names.
MISSING = {
    "analyze --input": (["analyze", "--input", "{missing}/FLAIR.nii.gz", "{missing}/T1c.nii.gz", "--output", "{tmp}/out"],
                        "{missing}/FLAIR.nii.gz"),
    "analyze --model": (["analyze", "--model", "{missing}", "--input", "{case}/FLAIR.nii.gz", "{case}/T1c.nii.gz",
                         "--output", "{tmp}/out"], "{missing}"),
    "evaluate --cases": (["evaluate", "--cases", "{missing}", "--out", "{tmp}/out"], "{missing}"),
    "evaluate --model": (["evaluate", "--cases", "{cases}", "--model", "{missing}", "--out", "{tmp}/out"], "{missing}"),
    "review --case folder": (["review", "--case", "{missing}", "--port", "{port}"], "{missing}"),
    "review --case files": (["review", "--case", "{missing}/FLAIR.nii.gz", "{case}/T1c.nii.gz", "--port", "{port}"],
                            "{missing}/FLAIR.nii.gz"),
    "review --model": (["review", "--case", "{case}", "--model", "{missing}", "--port", "{port}"], "{missing}"),
    "review --analysis": (["review", "--case", "{case}", "--analysis", "{missing}", "--out", "{tmp}/review",
                           "--port", "{port}"], "{missing}"),
    "review-report --log": (["review-report", "--log", "{missing}"], "{missing}"),
    "export-dataset --reviews": (["export-dataset", "--reviews", "{missing}", "--out", "{tmp}/Dataset501_X"], "{missing}"),
    "export-dataset --model": (["export-dataset", "--reviews", "{review}", "--model", "{missing}", "--out",
                                "{tmp}/Dataset502_X"], "{missing}"),
    "train --dataset": (["train", "--dataset", "{missing}/Dataset901_X", "--work", "{tmp}/work", "--folds", "0",
                         "--epochs", "1"], "{missing}/Dataset901_X"),
    "train --pretrained-weights": (["train", "--dataset", "{missing}/Dataset901_X", "--work", "{tmp}/work", "--folds",
                                    "0", "--epochs", "1", "--pretrained-weights", "{missing}"], "{missing}"),
    "phantom --out under a file": (["phantom", "--out", "{file}/phantoms", "--n", "1"], "{file}/phantoms"),
    "demo --out under a file": (["demo", "--out", "{file}/demo", "--cases", "1"], "{file}/demo"),
}


@pytest.mark.parametrize("command", list(MISSING))
def test_exit_2_names_a_missing_input_file_model_or_case_folder_in_one_line(command, tmp_path, phantom_cases):
    """Every command: one line naming what is not there, exit code 2, no traceback, before any network runs."""
    review = tmp_path / "a_review"
    (review / "analysis").mkdir(parents=True)
    (review / "analysis" / "summary.json").write_text("{}")
    (tmp_path / "a_file").write_text("not a folder")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    places = {"missing": str(tmp_path / "nowhere"), "tmp": str(tmp_path), "cases": str(phantom_cases),
              "case": str(phantom_cases / "phantom_0011"), "review": str(review), "file": str(tmp_path / "a_file"),
              "port": str(port)}
    argv, named = MISSING[command]
    proc = _iwuo(*[a.format(**places) for a in argv], timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and named.format(**places) in lines[0], proc.stderr
    assert not (tmp_path / "nowhere").exists()


def test_exit_4_cancelled_by_sigterm_writes_nothing(tmp_path, phantom_cases):
    """SIGTERM while the sliding window runs (after window 1 of 12): exit 4, and no output folder at all."""
    case = phantom_cases / "phantom_0011"
    out = tmp_path / "out"
    proc = subprocess.Popen([IWUO, "--progress", "json", "analyze", "--input", str(case / "FLAIR.nii.gz"),
                             str(case / "T1c.nii.gz"), "--output", str(out), "--device", "cpu", "--members", "folds",
                             "--disable-tta"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        for line in proc.stderr:
            if line.startswith("{") and "sliding window" in json.loads(line)["message"]:
                proc.send_signal(signal.SIGTERM)
                break
        code = proc.wait(timeout=600)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 4, rest
    assert "cancelled: Analysis cancelled; nothing was written." in rest
    assert list(tmp_path.iterdir()) == []


def test_exit_5_corrupt_log(tmp_path):
    log = tmp_path / "review.budget.jsonl"
    log.write_bytes(b"\x00\x93garbage\n{\"kind\": \"session_star\nnot json either\n")
    proc = _iwuo("review-report", "--log", str(log))
    assert proc.returncode == 5, proc.stderr
    assert "corrupt" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["review.budget.jsonl"]


OUT_OF_MEMORY = """
import torch
from IWUOSegmentationLib.nnunet.inference import MemberPredictor
def out_of_memory(self, *args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
MemberPredictor.predict_preprocessed = out_of_memory
"""


def test_exit_6_out_of_memory_says_how_to_run_anyway(tmp_path, phantom_cases):
    proc = _analyze(phantom_cases / "phantom_0011", tmp_path / "out", "--members", "folds", "--disable-tta",
                    patch=OUT_OF_MEMORY)
    assert proc.returncode == 6, proc.stderr
    assert "ran out of memory" in proc.stderr and "--cpu-fallback" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not shutil.which("nvidia-smi"), reason="needs a CUDA GPU: a real out-of-memory error")
def test_exit_6_on_a_real_gpu_out_of_memory(tmp_path, phantom_cases):
    """On a GPU, a memory cap far below what one window needs gives a genuine CUDA out-of-memory error."""
    cap = "import torch\ntorch.cuda.set_per_process_memory_fraction(0.0005)\n"
    proc = _analyze(phantom_cases / "phantom_0011", tmp_path / "out", "--members", "folds", "--disable-tta",
                    "--device", "cuda", patch=cap)
    assert proc.returncode == 6, proc.stderr[-3000:]
    assert "CUDA device ran out of memory" in proc.stderr
    fallback = _analyze(phantom_cases / "phantom_0011", tmp_path / "out", "--members", "folds", "--disable-tta",
                        "--device", "cuda", "--cpu-fallback", patch=cap)
    assert fallback.returncode == 0, fallback.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert any("ran out of memory: retried on the CPU" in n for n in summary["members"]["notes"])


def test_exit_2_for_an_analysis_of_another_case_on_the_same_grid(tmp_path, phantom_cases):
    """Two phantoms share one 80x94x77 grid: `iwuo review --analysis` of the other one must be refused (2),
    before any server starts, not silently reviewed against the wrong images."""
    other = phantom_cases / "phantom_0012"
    analysis = tmp_path / "analysis_of_0012"
    made = _analyze(other, analysis, "--members", "folds", "--disable-tta")
    assert made.returncode == 0, made.stderr[-2000:]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([IWUO, "--progress", "none", "review", "--case", str(phantom_cases / "phantom_0011"),
                             "--analysis", str(analysis), "--out", str(tmp_path / "review"), "--port", str(port),
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(_env(), PYTHONUNBUFFERED="1"))
    watchdog = threading.Timer(300, proc.kill)
    watchdog.start()
    try:
        output = []
        for line in proc.stdout:  # refused: the process ends; accepted: it announces its page and serves
            output.append(line)
            if "open http://" in line:
                break
        served = any("open http://" in line for line in output)  # not poll(): a refused child may still be exiting
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert not served, "the review of phantom_0011 started with phantom_0012's analysis"
    assert proc.returncode == 2 and "made from other inputs than this case" in "".join(output), "".join(output)[-2000:]


def test_exit_2_for_a_calibration_of_another_model_before_any_network_is_built(tmp_path, phantom_cases):
    """`iwuo analyze --calibration` with a file fitted for another model (here: the same network files with one
    fold, a different identity): one line, exit 2, nothing written, and the refusal comes before inference (a
    predictor built at all would exit 99 here)."""
    from IWUOSegmentationLib.data.analysis_identity import model_identity
    from IWUOSegmentationLib.data.calibration import calibration_text, model_key
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import open_model

    other = model_identity(open_model(demo_model_folder(), folds=["0"]))
    outputs = ["whole_tumor", "tumor_core", "enhancing_tumor"]
    calibration = tmp_path / "calibration.json"
    calibration.write_text(calibration_text({
        "format": "iwuo-calibration", "version": 1, "model_identity": other, "model_key": model_key(other),
        "outputs": outputs, "region_based": True, "written_labels": {"whole_tumor": 2, "tumor_core": 1, "enhancing_tumor": 4},
        "transform": {"channels": [{"method": "temperature", "temperature": 2.0}] * 3}, "structures": {},
        "fitted_on": [{"review": "r"}], "voxels": 100}))
    no_inference = ("import IWUOSegmentationLib.nnunet.inference as inference\n"
                    "def built(*args, **kwargs):\n    raise SystemExit(99)\n"
                    "inference.MemberPredictor.__init__ = built")
    proc = _analyze(phantom_cases / "phantom_0011", tmp_path / "out", "--calibration", str(calibration), patch=no_inference)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "fitted for another model" in proc.stderr
    assert not (tmp_path / "out").exists()
