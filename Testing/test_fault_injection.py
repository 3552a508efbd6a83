"""Nothing lost under faults: process death at every write point, I/O errors, hostile files.

SQLite's crash tests are the model: every write point, every fault. A review (and an analysis and
evaluation writer) runs in a child process with IWUO_FAULT armed at the n-th hit of one write point
(fault_injection.py): the file being written is cut short and the process SIGKILLs itself, so no
Python clean-up runs. Then the review is restarted and checked:
  - no correction the log counts is missing from the saved segmentation,
  - no correction saved is uncounted after the restart,
  - no half-written file is read as valid (cut log lines are skipped and reported, cut temporary
    files are never read, the saved files read back whole),
  - finishing the review gives the segmentation and the counts of an uninterrupted run.
n runs from 1 until the child gets through without reaching the n-th hit, so every hit of every
point is a fault. I/O errors (disk full, read-only file system) are injected at every write of a
review: a clear error, the saved state intact, and the session goes on once space is back.

With IWUO_FAULT_FIGURES=<file>, the tally (points, faults injected, survived, corrections lost) is
written there: benchmarks/bench_faults.py runs this module, the slow cases included, for the README.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import traceback
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_review import BOX, WRITTEN, open_case, read_log_events, review_script, write_synthetic_analysis

from IWUOSegmentationLib.cli import main
from IWUOSegmentationLib.storage.fault_injection import ENV, reset_counts

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash tests fork (POSIX)")

N_CORRECTIONS = 2  # slices the scripted reviewer corrects: every write point is hit at least twice
REVIEW_POINTS = ("log.line", "corrected.tmp", "corrected.saved", "atomic.tmp", "atomic.replaced", "figure.tmp")
ANALYSIS_POINTS = ("analysis.image", "atomic.tmp", "atomic.replaced", "analysis.swap")
TALLY: dict = {"points": set(), "faults_injected": 0, "survived": 0, "corrections_lost": 0, "by_kind": {}}


class InjectedFault:
    """One fault in the tally: counted as injected when made, and as survived only by `survived()`, which the
    test calls after its checks have all passed (a failed check raises first, so the fault stays unsurvived)."""

    def __init__(self, kind: str, point: str | None = None):
        TALLY["faults_injected"] += 1
        TALLY["by_kind"][kind] = TALLY["by_kind"].get(kind, 0) + 1
        if point:
            TALLY["points"].add(point)
        self.lost = 0

    def lose(self, corrections: int) -> int:
        """Record corrections found lost (before the check that fails on them)."""
        self.lost += corrections
        TALLY["corrections_lost"] += corrections
        return self.lost

    def survived(self) -> None:
        TALLY["survived"] += int(self.lost == 0)


@contextmanager
def checked(kind: str, point: str | None = None) -> Iterator[InjectedFault]:
    """The checks of one injected fault: it counts as survived only if the block returns (every check held)."""
    fault = InjectedFault(kind, point)
    yield fault
    fault.survived()


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    path = os.environ.get("IWUO_FAULT_FIGURES")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
        merged = {**previous, "points": sorted(set(previous.get("points", [])) | TALLY["points"])}
        for key in ("faults_injected", "survived", "corrections_lost"):
            merged[key] = previous.get(key, 0) + TALLY[key]
        merged["by_kind"] = dict(previous.get("by_kind", {}))
        for kind, n in TALLY["by_kind"].items():
            merged["by_kind"][kind] = merged["by_kind"].get(kind, 0) + n
        Path(path).write_text(json.dumps(merged, indent=2) + "\n")


def test_a_fault_whose_checks_fail_is_injected_but_not_survived():
    """The tally counts from the checks: a fault counts as survived only when its checks all returned."""
    before = json.loads(json.dumps({k: v for k, v in TALLY.items() if k != "points"}))
    with pytest.raises(AssertionError), checked("a test of the tally"):
        raise AssertionError("a check that fails")
    with checked("a test of the tally") as fault:
        pass
    lost = InjectedFault("a test of the tally")
    assert lost.lose(1) == 1
    lost.survived()
    assert fault.lost == 0
    injected, survived = TALLY["faults_injected"] - before["faults_injected"], TALLY["survived"] - before["survived"]
    TALLY.update(before)  # leave the suite's own tally as it was
    assert (injected, survived) == (3, 1)


def run_child(work, fault: str) -> int:
    """Run `work()` in a forked child with IWUO_FAULT=`fault`; its wait status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.environ[ENV] = fault
            reset_counts()
            work()
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def killed_at_each_hit(point: str, prepare, child) -> Iterator[tuple[int, Path]]:
    """Kill the child `child(target)` at the n-th hit of `point`, n = 1, 2, ..., each on a fresh
    `target = prepare(n)`, until a run finishes (the point has fewer than n hits: every one was tried);
    yields (n, target) after each kill for the caller's checks, and fails if the point was never reached."""
    kills = 0
    for n in range(1, 40):
        target = prepare(n)
        status = run_child(child(target), f"{point}:{n}")
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            break
        assert killed(status), f"{point}:{n}: the child failed instead of being killed ({status})"
        kills += 1
        yield n, target
    assert kills >= 1, f"{point} was never reached"


@pytest.fixture(scope="module")
def case_dir(phantom_cases):
    return sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]


@pytest.fixture(scope="module")
def clean_run(case_dir, tmp_path_factory):
    """The uninterrupted review: analysis, N_CORRECTIONS corrections, report. Its results are the reference."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene

    folder = tmp_path_factory.mktemp("clean")
    write_synthetic_analysis(case_dir, folder / "analysis")
    _, _, session = open_case(create_headless_scene(), case_dir, folder)
    review_script(session, N_CORRECTIONS)
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "corrected_segmentation.nii.gz")))
    corrected = sorted({int(e["slice"]) for e in read_log_events(folder) if e["kind"] == "slice_corrected"})
    assert len(corrected) == N_CORRECTIONS
    return {"folder": folder, "saved": saved, "corrected": corrected,
            "prediction": sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "analysis" / "segmentation.nii.gz")))}


def _fresh_review_folder(clean_run, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    shutil.copytree(clean_run["folder"] / "analysis", folder / "analysis")
    return folder


def check_restart(case_dir: Path, folder: Path, prediction: np.ndarray) -> tuple[set, set]:
    """Restart the review after a crash; (counted corrections missing from the saved segmentation,
    saved corrections uncounted after the restart)."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import segmentation_label_map

    scene = create_headless_scene()
    volume, loaded, session = open_case(scene, case_dir, folder)  # reads the saved file: a cut one would fail here
    events = read_log_events(folder)
    logged = {int(e["slice"]) for e in events if e["kind"] == "slice_corrected" and e.get("voxels_added")}
    corrected = folder / "corrected_segmentation.nii.gz"
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(corrected))) if corrected.exists() else prediction
    assert np.array_equal(segmentation_label_map(loaded.segmentation, volume, loaded.labels), saved), \
        "the restarted scene does not show the saved segmentation"
    box_label = WRITTEN["whole_tumor"]
    missing = {s for s in logged if not np.all(saved[(s, *BOX)] == box_label)}
    uncounted = set(np.unique(np.argwhere(saved != prediction)[:, 0]).tolist()) - logged
    session.close()
    scene.Clear(1)
    return missing, uncounted


def _review_child(case_dir: Path, folder: Path):
    def work():
        from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene

        _, _, session = open_case(create_headless_scene(), case_dir, folder)
        review_script(session, N_CORRECTIONS)
    return work


@pytest.mark.parametrize("point", REVIEW_POINTS)
def test_review_survives_a_kill_at_every_hit_of_a_write_point(point, case_dir, clean_run, tmp_path):
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene

    for n, folder in killed_at_each_hit(point, lambda n: _fresh_review_folder(clean_run, tmp_path, f"{point}_{n}"),
                                        lambda folder: _review_child(case_dir, folder)):
        with checked("process killed during a review", point) as fault:
            missing, uncounted = check_restart(case_dir, folder, clean_run["prediction"])
            fault.lose(len(missing))
            assert not missing, f"{point}:{n}: counted corrections on slices {missing} are not in the saved segmentation"
            assert not uncounted, f"{point}:{n}: saved corrections on slices {uncounted} are not counted after restart"
            report = folder / "review_report.md"
            if report.exists():  # a report is whole or absent; its temporary files are hidden and never read
                assert report.read_text().endswith("\n") and "| slices corrected |" in report.read_text()
            _, _, session = open_case(create_headless_scene(), case_dir, folder)  # finish the review
            review_script(session, N_CORRECTIONS)
            saved = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "corrected_segmentation.nii.gz")))
            corrected = sorted({int(e["slice"]) for e in read_log_events(folder) if e["kind"] == "slice_corrected"})
            fault.lose(int(not np.array_equal(saved, clean_run["saved"])) + len(set(clean_run["corrected"]) - set(corrected)))
            assert np.array_equal(saved, clean_run["saved"]), f"{point}:{n}: the finished review differs from a clean run"
            assert corrected == clean_run["corrected"], f"{point}:{n}: counted {corrected}, not {clean_run['corrected']}"


def _analysis_child(case_dir: Path, out: Path):
    def work():
        write_synthetic_analysis(case_dir, out)
    return work


@pytest.mark.parametrize("point", ANALYSIS_POINTS)
def test_analysis_folder_is_old_or_new_never_partial_after_a_kill(point, case_dir, clean_run, tmp_path):
    """Killed while an analysis replaces an older one: the folder read back is one whole analysis or absent
    (then the next run writes it); a cut map or summary is never read as an analysis."""
    from IWUOSegmentationLib.data.analysis_files import read_analysis
    from IWUOSegmentationLib.errors import BadInputError

    new_summary = json.loads((clean_run["folder"] / "analysis" / "summary.json").read_text())
    old_summary = {**new_summary, "old": True}  # marks the older analysis

    def older_analysis(n: int) -> Path:
        out = tmp_path / f"{n}" / "analysis"
        shutil.copytree(clean_run["folder"] / "analysis", out)
        (out / "summary.json").write_text(json.dumps(old_summary))
        return out

    for n, out in killed_at_each_hit(point, older_analysis, lambda out: _analysis_child(case_dir, out)):
        with checked("process killed while writing an analysis", point):
            if (out / "summary.json").exists():
                analysis = read_analysis(out)  # whole: every map reads back
                assert analysis.summary in (old_summary, new_summary), \
                    f"{point}:{n}: the summary read back is neither the old analysis' nor the new one's"
                assert np.array_equal(analysis.label_map, clean_run["prediction"])
            else:
                assert not out.exists() or not any(out.iterdir()), "an analysis folder without its summary was left"
                with pytest.raises(BadInputError):
                    read_analysis(out)
            write_synthetic_analysis(case_dir, out)  # the next run
            assert read_analysis(out).summary == new_summary
            assert not list(out.parent.glob(".analysis.*")), "the next run left the crashed run's leftovers"


@pytest.mark.parametrize("point", ["log.line", "corrected.tmp", "corrected.saved"])
@pytest.mark.parametrize("error", ["enospc", "erofs"])
def test_disk_full_or_read_only_folder_during_a_review(point, error, case_dir, clean_run, tmp_path, monkeypatch):
    """The write fails with a clear OSError, what was saved and counted stays consistent, and the same session
    saves and counts the correction once the disk has space again."""
    from synthetic_review import correct_slice

    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene

    folder = _fresh_review_folder(clean_run, tmp_path, "review")
    fault = InjectedFault(f"I/O error during a review ({error})", point)
    _, _, session = open_case(create_headless_scene(), case_dir, folder)
    first = session.next()
    correct_slice(session, first)
    session.flush_edits()
    second = session.next()
    correct_slice(session, second)
    log_before = (folder / "review.budget.jsonl").read_bytes()
    saved_before = (folder / "corrected_segmentation.nii.gz").read_bytes()
    monkeypatch.setenv(ENV, f"{point}:1:{error}")
    reset_counts()
    message = {"enospc": "No space left on device", "erofs": "Read-only file system"}[error]
    with pytest.raises(OSError, match=message):
        session.flush_edits()
    assert (folder / "review.budget.jsonl").read_bytes() == log_before, "a failed write changed the log"
    if point != "log.line":
        assert (folder / "corrected_segmentation.nii.gz").read_bytes() == saved_before
    assert not list(folder.glob(".*partial*")), "a failed write left a temporary file"
    with pytest.raises(OSError, match=message):  # still full: still refused, nothing counted twice
        session.flush_edits()
    monkeypatch.delenv(ENV)  # space is back
    session.flush_edits()
    assert session.log.summary().corrected_slices == sorted({first, second})
    session.close()
    missing, uncounted = check_restart(case_dir, folder, clean_run["prediction"])
    assert not missing and not uncounted
    events = [e for e in read_log_events(folder) if e["kind"] == "slice_corrected"]
    assert [e["slice"] for e in events] == [first, second], "a correction was logged twice or not at all"
    fault.survived()


def test_disk_full_on_the_command_line_is_one_line_and_keeps_the_previous_report(clean_run, tmp_path, monkeypatch,
                                                                                capsys):
    folder = tmp_path / "r"
    shutil.copytree(clean_run["folder"], folder, ignore=shutil.ignore_patterns(".iwuo.lock*"))
    report = (folder / "review_report.md").read_bytes()
    for fault in ("figure.tmp:1:enospc", "atomic.tmp:1:enospc", "atomic.tmp:2:enospc"):  # every report write
        monkeypatch.setenv(ENV, fault)
        reset_counts()
        with checked("I/O error on the command line (enospc)", fault.split(":")[0]):
            assert main(["review-report", "--log", str(folder / "review.budget.jsonl")]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("error: cannot write") and "No space left" in err[0], err
            assert (folder / "review_report.md").read_bytes() == report
    monkeypatch.delenv(ENV)
    assert main(["review-report", "--log", str(folder / "review.budget.jsonl")]) == 0


# -- corrupted and hostile files: the documented exit code and one clear line -----------------------------------

def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


def _analyze(inputs, out, model=None) -> int:
    return main(["--progress", "none", "analyze", *(["--model", str(model)] if model else []), "--input",
                 *map(str, inputs), "--output", str(out), "--device", "cpu", "--disable-tta"])


def _write_case(case_dir: Path, tmp_path: Path, array_fn=None, spacing=None) -> list[Path]:
    paths = []
    for channel in ("FLAIR", "T1c"):
        image = sitk.ReadImage(str(case_dir / f"{channel}.nii.gz"))
        if array_fn is not None:
            new = sitk.GetImageFromArray(array_fn(sitk.GetArrayFromImage(image)))
            new.SetSpacing(image.GetSpacing())
            image = new
        path = tmp_path / f"{channel}.nrrd"
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path))
        if spacing is not None:  # written into the header as it is, as a broken scanner export would
            text = path.read_bytes()
            old = [line for line in text.split(b"\n") if line.startswith(b"space directions")][0]
            new_line = b"space directions: " + b" ".join(
                b"(" + b",".join(str(float(spacing[i]) if j == i else 0.0).encode() for j in range(3)) + b")"
                for i in range(3))
            path.write_bytes(text.replace(old, new_line, 1))
        paths.append(path)
    return paths


def test_hostile_images_get_exit_2_and_one_line(case_dir, tmp_path, capsys):
    flair, t1c = case_dir / "FLAIR.nii.gz", case_dir / "T1c.nii.gz"
    truncated = tmp_path / "FLAIR_truncated.nii.gz"
    truncated.write_bytes(flair.read_bytes()[: flair.stat().st_size // 2])
    garbled = tmp_path / "FLAIR_garbled.nii.gz"
    garbled.write_bytes(os.urandom(4096))
    cases = {
        "truncated NIfTI": ([truncated, t1c], "Cannot read image"),
        "garbled NIfTI": ([garbled, t1c], "Cannot read image"),
        "NaN voxels": (_write_case(case_dir, tmp_path / "nan", lambda a: np.where(a > a.mean(), np.nan, a)
                                   .astype(np.float32)), "NaN"),
        "1 x N x M volume": (_write_case(case_dir, tmp_path / "thin", lambda a: a[:1].copy()), "2-D"),
        "huge spacing": (_write_case(case_dir, tmp_path / "huge", spacing=(2.0, 2.0, 1e9)), "spacing"),
        "zero spacing": (_write_case(case_dir, tmp_path / "zero", spacing=(2.0, 0.0, 2.0)), "Cannot read image"),
    }
    for what, (inputs, expected) in cases.items():
        out = tmp_path / f"out_{what.replace(' ', '_')}"
        with checked("hostile input file"):
            code = _analyze(inputs, out)
            line = _one_error_line(capsys)
            assert code == 2, f"{what}: exit {code} ({line})"
            assert expected in line, f"{what}: {line}"
            assert not out.exists(), f"{what}: an output was written"


def test_damaged_analysis_and_budget_log_are_refused_or_skipped_clearly(clean_run, tmp_path, capsys):
    from IWUOSegmentationLib.data.analysis_files import read_analysis
    from IWUOSegmentationLib.data.analysis_identity import read_summary
    from IWUOSegmentationLib.errors import BadInputError

    for damage in ("summary", "map"):
        out = tmp_path / damage
        shutil.copytree(clean_run["folder"] / "analysis", out)
        if damage == "summary":
            (out / "summary.json").write_text('{"outputs": ["whole_tumor", ')
        else:
            path = out / "uncertainty_entropy.nii.gz"
            path.write_bytes(path.read_bytes()[:1000])
        with checked("hostile input file"):
            with pytest.raises(BadInputError, match="is damaged") as refused:
                read_analysis(out)
            assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
            if damage == "summary":  # what a review opens first (the module, `iwuo review --analysis`): the summary
                with pytest.raises(BadInputError, match="is damaged"):
                    read_summary(out)
    log = tmp_path / "review.budget.jsonl"
    lines = (clean_run["folder"] / "review.budget.jsonl").read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:2]) + b"\x00\xff garbage \x9c\n" + b"".join(lines[2:]) + lines[-1][:20])
    with checked("hostile input file"):
        assert main(["review-report", "--log", str(log), "--out", str(tmp_path / "rep")]) == 0
        capsys.readouterr()
        report = (tmp_path / "rep" / "review_report.md").read_text()
        assert f"| slices corrected | {N_CORRECTIONS} of" in report, "a garbled line cost the report a correction"


def _zip_demo_model(path: Path, extra: dict[str, bytes] | None = None) -> Path:
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder

    root = demo_model_folder()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in root.rglob("*"):
            if file.is_file():
                archive.write(file, file.relative_to(root.parent))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def test_hostile_model_zips_and_checkpoints_get_exit_3_and_never_run_code(case_dir, tmp_path, capsys):
    import torch

    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import load_checkpoint

    inputs = [case_dir / "FLAIR.nii.gz", case_dir / "T1c.nii.gz"]
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Dataset900_X/zeros.bin", b"\0" * (300 * 2**20))
    not_a_zip = tmp_path / "model.zip"
    not_a_zip.write_bytes(os.urandom(2048))
    marker = tmp_path / "pwned"
    evil_folder = tmp_path / "evil" / demo_model_folder().name
    shutil.copytree(demo_model_folder(), evil_folder)
    checkpoint_path = next(evil_folder.rglob("checkpoint_final.pth"))
    checkpoint = load_checkpoint(checkpoint_path)
    checkpoint["_best_ema"] = _Payload(str(marker))
    torch.save(checkpoint, checkpoint_path)
    cases = {"zip bomb": (bomb, "zip bomb"), "not a zip": (not_a_zip, "model.zip"),
             "pickled code in a checkpoint": (evil_folder, "--trust-model")}
    for what, (model, expected) in cases.items():
        with checked("hostile model file"):
            code = _analyze(inputs, tmp_path / "out", model=model)
            line = _one_error_line(capsys)
            assert code == 3 and expected in line, f"{what}: exit {code}: {line}"
            assert not marker.exists(), "the checkpoint's code ran"
            assert not (tmp_path / "out").exists()
            assert not list(tmp_path.rglob("zeros.bin")), "the zip bomb was unpacked"


class _Payload:
    """Pickles to a call that creates a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_two_front_ends_at_once_second_is_refused_or_read_only_and_nothing_is_lost(case_dir, clean_run, tmp_path):
    """A review running in another process (a child that corrects a slice, then waits): this process is
    refused, browses read-only without writing, and the child's corrections all arrive."""
    from synthetic_review import correct_slice

    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.storage.folder_lock import FolderLockedError

    folder = _fresh_review_folder(clean_run, tmp_path, "review")
    fault = InjectedFault("two front ends on one review folder")
    opened, go_on = os.pipe(), os.pipe()

    def first_front_end():
        _, _, session = open_case(create_headless_scene(), case_dir, folder, front_end="Slicer")
        os.write(opened[1], b"1")
        os.read(go_on[0], 1)
        review_script(session, N_CORRECTIONS, report=False)

    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            first_front_end()
        finally:
            os._exit(0)
    assert os.read(opened[0], 1) == b"1"
    with pytest.raises(FolderLockedError, match=f"Slicer on .*process {pid}"):
        open_case(create_headless_scene(), case_dir, folder, front_end="the browser review")
    log_before = (folder / "review.budget.jsonl").read_bytes()
    _, _, browse = open_case(create_headless_scene(), case_dir, folder, read_only=True)
    first = browse.next()
    correct_slice(browse, first)
    assert browse.flush_edits() == 0
    browse.close()
    assert (folder / "review.budget.jsonl").read_bytes() == log_before, "the read-only front end wrote"
    assert not (folder / "corrected_segmentation.nii.gz").exists()
    os.write(go_on[1], b"1")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    missing, uncounted = check_restart(case_dir, folder, clean_run["prediction"])
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "corrected_segmentation.nii.gz")))
    assert fault.lose(len(missing) + len(uncounted) + int(not np.array_equal(saved, clean_run["saved"]))) == 0
    fault.survived()


# -- slow: kills at random moments of the real commands --------------------------------------------------------

def _iwuo(args: list[str], env: dict | None = None, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "IWUOSegmentationLib.cli", "--progress", "none", *args],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _kill_after(args: list[str], seconds: float) -> int:
    import time

    proc = subprocess.Popen([sys.executable, "-m", "IWUOSegmentationLib.cli", "--progress", "none", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    return proc.wait()


@pytest.mark.slow
def test_iwuo_evaluate_killed_at_random_moments_resumes_to_the_uninterrupted_results(phantom_cases, tmp_path):
    import time

    cases = tmp_path / "cases"  # two cases: one evaluation.json written, the next case under way
    cases.mkdir()
    for case in sorted(p for p in phantom_cases.iterdir() if p.is_dir())[:2]:
        (cases / case.name).symlink_to(case)
    options = ["--cases", str(cases), "--strategies", "iwuo,random,oracle", "--expert", "perfect",
               "--random-seeds", "3", "--disable-tta", "--device", "cpu", "--members", "folds"]
    start = time.time()
    clean = _iwuo(["evaluate", *options, "--out", str(tmp_path / "clean")])
    assert clean.returncode == 0, clean.stderr[-2000:]
    duration = time.time() - start
    out = tmp_path / "killed"
    rng = np.random.default_rng(0)
    faults = []  # survived only once the resumed run below equals the uninterrupted one
    for moment in sorted(rng.uniform(0.1, 0.95, 4) * duration):
        if _kill_after(["evaluate", *options, "--out", str(out)], moment) == -signal.SIGKILL:
            faults.append(InjectedFault("iwuo evaluate killed at a random moment"))
    for point in ("atomic.tmp:2", "atomic.replaced:3"):
        killed_run = _iwuo(["evaluate", *options, "--out", str(out)], env={ENV: point})
        assert killed_run.returncode in (-signal.SIGKILL, 0)
        if killed_run.returncode == -signal.SIGKILL:
            faults.append(InjectedFault("iwuo evaluate killed at a write point", point.split(":")[0]))
    resumed = _iwuo(["evaluate", *options, "--out", str(out)])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(faults) >= 2
    for case in sorted(p.name for p in (tmp_path / "clean" / "cases").iterdir()):
        a = json.loads((tmp_path / "clean" / "cases" / case / "evaluation.json").read_text())
        b = json.loads((out / "cases" / case / "evaluation.json").read_text())
        a.pop("analysis_seconds"), b.pop("analysis_seconds")
        assert a == b, f"{case}: the resumed evaluation differs from the uninterrupted one"
    assert (tmp_path / "clean" / "summary.csv").read_text() == (out / "summary.csv").read_text()
    for fault in faults:
        fault.survived()


@pytest.mark.slow
def test_iwuo_analyze_killed_at_random_moments_leaves_no_partial_analysis(case_dir, tmp_path):
    import time

    from IWUOSegmentationLib.data.analysis_files import read_analysis

    args = ["analyze", "--input", str(case_dir / "FLAIR.nii.gz"), str(case_dir / "T1c.nii.gz"), "--device", "cpu",
            "--disable-tta", "--members", "folds"]
    start = time.time()
    assert _iwuo([*args, "--output", str(tmp_path / "clean")]).returncode == 0
    duration = time.time() - start
    clean = read_analysis(tmp_path / "clean")
    out = tmp_path / "killed"
    for moment in sorted(np.random.default_rng(1).uniform(0.2, 1.0, 4) * duration):
        if _kill_after([*args, "--output", str(out)], moment) != -signal.SIGKILL:
            continue  # it had finished: no fault was injected
        with checked("iwuo analyze killed at a random moment"):
            if (out / "summary.json").exists():
                assert np.array_equal(read_analysis(out).label_map, clean.label_map)
            else:
                assert not out.exists(), "a partial analysis folder was left under the output name"
    assert _iwuo([*args, "--output", str(out)]).returncode == 0
    assert np.array_equal(read_analysis(out).label_map, clean.label_map)



@pytest.mark.slow
def test_browser_review_server_killed_at_random_moments_loses_no_counted_correction(phantom_cases, tmp_path):
    """`iwuo review` SIGKILLed at random moments around paint strokes made in Chromium: after each restart
    the log and the saved segmentation agree and every stroke the log counted is still saved."""
    from playwright.sync_api import sync_playwright
    from test_web_review import (
        CHROMIUM,
        CHROMIUM_ARGS,
        assert_log_matches_saved_segmentation,
        free_port,
        open_page,
        paint_stroke,
        read_log,
        start_server,
    )

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    out = tmp_path / "out"
    rng = np.random.default_rng(2)
    counted_before: set = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for round_ in range(3):
            port = free_port()
            proc = start_server(case_dir, out, port)
            page = open_page(browser, port)
            for _ in range(round_ + 1):
                page.click("[data-testid=btn-next]")
            page.wait_for_timeout(500)
            if round_ == 0:  # one stroke surely saved and counted before the first kill
                paint_stroke(page)
                page.wait_for_selector("[data-testid=budget-text]:has-text('1 of 20 slices')", timeout=60_000)
                page.click("[data-testid=btn-next]")
            paint_stroke(page)
            page.wait_for_timeout(float(rng.uniform(0, 1500)))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            page.close()
            with checked("browser review server killed at a random moment") as fault:
                counted = {int(e["slice"]) for e in read_log(out) if e["kind"] == "slice_corrected"}
                fault.lose(len(counted_before - counted))
                changed = assert_log_matches_saved_segmentation(out, settle=0)
                assert counted_before <= counted and changed <= counted
                counted_before = counted
        browser.close()
    proc = start_server(case_dir, out, free_port())  # a last restart finds it consistent and takes over
    proc.terminate()
    proc.wait(timeout=30)
    assert_log_matches_saved_segmentation(out, settle=0)
