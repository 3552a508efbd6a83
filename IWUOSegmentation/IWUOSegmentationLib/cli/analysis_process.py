"""The parent's side of an `iwuo` child process (`iwuo analyze`, and `iwuo calibrate`: calibration_process.py):
command, progress, cancel, outcome.

Why a protocol and not signals: inside Slicer the child is started through PythonSlicer, which is
CTKAppLauncher. The launcher starts the real Python as its own child and forwards no signal, so
`QProcess.terminate()` stops only the launcher (the analysis runs on, or, on Windows, nothing
stops). What does reach the real child:
- a cancel file beside the output folder, which the child polls between sliding windows;
- EOF on stdin: the launcher hands its stdin to the child (QProcess::ForwardedInputChannel),
  so closing the parent's write channel (or the parent dying) ends the run too.
The child then exits with code 4 having written nothing; its output folder appears whole or not
at all (analysis_files.write_analysis). The GUI (QProcess) and the tests (subprocess) both drive
one `AnalysisRun`, so what decides "load or not" is tested here.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..nnunet.analysis_settings import DEFAULT_DEVICE, DEFAULT_MEMBERS_TEXT
from ..review.folder import ReviewFolder

#: cli/main.py's exit codes that are not failures of the analysis itself.
EXIT_OK, EXIT_CANCELLED = 0, 4


def python_executable() -> str:
    """Slicer's PythonSlicer launcher when present (sets up Slicer's environment), else this Python."""
    here = os.path.dirname(sys.executable)
    for name in ("PythonSlicer", "PythonSlicer.exe"):
        found = shutil.which(name) or (os.path.join(here, name) if os.path.exists(os.path.join(here, name)) else None)
        if found:
            return found
    return sys.executable


def cancel_file_for(output: str | os.PathLike) -> Path:
    """The file whose appearance cancels the analysis writing `output` (beside it: `output` appears only whole)."""
    output = Path(output)
    return output.with_name(f".{output.name}.cancel")


def iwuo_command(arguments: list[str], python: Optional[str] = None) -> list[str]:
    """argv of an `iwuo` child run from this module folder, with JSON progress lines on stderr."""
    module_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds IWUOSegmentationLib
    # os._exit after flushing: nothing is left to clean up (the output appears whole or not at all), and
    # tearing down torch at interpreter exit can take seconds that a cancelled run should not cost.
    bootstrap = (f"import os, sys; sys.path.insert(0, {module_dir!r}); "
                 "from IWUOSegmentationLib.cli import main; code = main(); "
                 "sys.stdout.flush(); sys.stderr.flush(); os._exit(code)")
    return [python or python_executable(), "-c", bootstrap, "--progress", "json", *arguments]


def analyze_command(model: str, inputs: list[str], output: str | os.PathLike, device: str = DEFAULT_DEVICE,
                    members: str = DEFAULT_MEMBERS_TEXT, python: Optional[str] = None, calibration: str = "") -> list[str]:
    """argv of the child: this module folder's `iwuo analyze` with JSON progress and both cancel channels
    (`calibration`: its --calibration, a file or "none"; empty: the default, the file saved for the model)."""
    return iwuo_command(["analyze", "--model", str(model), "--input", *map(str, inputs), "--output", str(output),
                         "--device", device, "--members", members, "--cancel-file", str(cancel_file_for(output)),
                         "--cancel-on-stdin-eof", *(["--calibration", str(calibration)] if str(calibration).strip() else [])],
                        python)


def parse_progress(line: str) -> tuple[float, str] | None:
    """(fraction, message) from one stderr line, or None when it is not a progress line."""
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, TypeError):
        return None
    if isinstance(data, dict) and "progress" in data:
        return float(data["progress"]), str(data.get("message", ""))
    return None


@dataclass(frozen=True)
class Outcome:
    """What the GUI does once the child is gone: load the analysis or not, and what to tell the user."""

    load: bool
    failed: bool
    message: str


class ChildRun:
    """One `iwuo` child process, whatever starts it (QProcess in Slicer, subprocess in tests and scripts): its
    command, its progress lines, the cancel file it polls, and what the GUI does once it is gone."""

    what = "iwuo"  # what the messages call the run
    cancelled_message = "Cancelled: nothing was written."

    def __init__(self, command: list[str], cancel_file: Path, work_dir: Optional[str] = None):
        self.command, self.cancel_file = command, Path(cancel_file)
        self.work_dir = work_dir  # the run's temporary files, removed by cleanup()
        self.cancel_requested = False
        self.fraction = 0.0
        self.message = ""
        self._partial_line = ""

    def prepare(self) -> list[str]:
        """Remove a stale cancel file (it would stop the new run at once); return the command to start."""
        self.cancel_file.unlink(missing_ok=True)
        return self.command

    def feed_stderr(self, text: str) -> None:
        """Take a chunk of the child's stderr (reads may split lines); progress lines move the bar,
        other lines are kept as the message a failure shows."""
        lines = (self._partial_line + text).split("\n")
        self._partial_line = lines.pop()
        for line in lines:
            parsed = parse_progress(line)
            if parsed:
                self.fraction, self.message = parsed
            elif line.strip():
                self.message = line.strip()[-300:]

    def cancel(self) -> None:
        """Ask the child to stop: the cancel file (the GUI also closes the child's stdin)."""
        self.cancel_requested = True
        self.cancel_file.parent.mkdir(parents=True, exist_ok=True)
        self.cancel_file.touch()

    def finished(self, exit_code: int, crashed: bool) -> Outcome:
        """The child has exited; `crashed` is QProcess's CrashExit (killed, or the launcher reported a crash)."""
        self.feed_stderr("\n")
        try:
            return self._outcome(exit_code, crashed)
        finally:
            self.cleanup()

    def _outcome(self, exit_code: int, crashed: bool) -> Outcome:
        if self.cancel_requested or (not crashed and exit_code == EXIT_CANCELLED):
            return Outcome(False, False, self.cancelled_message)
        if crashed:
            return Outcome(False, True, f"The {self.what} process stopped abnormally (crashed or killed). {self.message}")
        if exit_code != EXIT_OK:
            return Outcome(False, True, f"{self.what.capitalize()} failed (exit code {exit_code}): {self.message}")
        return self._succeeded()

    def _succeeded(self) -> Outcome:
        """The outcome of a child that exited with 0."""
        return Outcome(False, False, self.message)

    def failed_to_start(self, error: str) -> Outcome:
        """The process never ran (QProcess::FailedToStart emits errorOccurred, never finished)."""
        self.cleanup()
        return Outcome(False, True, f"The {self.what} could not be started ({self.command[0]}): {error}")

    def cleanup(self) -> None:
        self.cancel_file.unlink(missing_ok=True)
        if self.work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


class AnalysisRun(ChildRun):
    """One analysis child.

    It keeps what the review opened at its end needs, as it was at the start (the GUI may have changed,
    or the scene been closed, since): the model path and the opened model, the scene's volume node IDs
    with the number of scene closes before the start (IDs are reused after a close), and the identity
    of those volumes and the model, hashed once, before the volumes were exported."""

    what = "analysis"
    cancelled_message = "Cancelled: no results were loaded."

    def __init__(self, model: str, inputs: list[str], review_folder: str | os.PathLike, device: str = DEFAULT_DEVICE,
                 members: str = DEFAULT_MEMBERS_TEXT, python: Optional[str] = None, work_dir: Optional[str] = None,
                 opened_model=None, volume_ids: Sequence[str] = (), scene_closes: int = 0,
                 identity: Optional[dict] = None, calibration: str = ""):
        self.model_path = str(model)
        self.model, self.volume_ids, self.scene_closes = opened_model, list(volume_ids), scene_closes
        self.identity = identity
        self.folder = ReviewFolder(review_folder)
        self.output = self.folder.analysis
        super().__init__(analyze_command(model, inputs, self.output, device, members, python, calibration),
                         cancel_file_for(self.output), work_dir)  # work_dir: the exported inputs
        self.inputs = list(inputs)

    def review_inputs(self) -> dict:
        """What the review is opened from when the run has ended: mrml.review_controller's open_analysed arguments."""
        return {"opened_model": self.model, "volume_ids": list(self.volume_ids), "scene_closes": self.scene_closes,
                "identity": self.identity}

    def prepare(self) -> list[str]:
        self.folder.root.mkdir(parents=True, exist_ok=True)
        return super().prepare()

    def _succeeded(self) -> Outcome:
        if not self.folder.has_analysis():
            return Outcome(False, True, f"The analysis ended without writing {self.output}.")
        outcome = Outcome(True, False, f"Analysis written to {self.output}")
        if not self.folder.input_images() and all(os.path.isfile(p) for p in self.inputs):
            try:  # kept with the review: `iwuo export-dataset` trains on them (it says so when they are missing)
                self.folder.save_inputs(self.inputs)
            except OSError as exc:
                outcome = Outcome(True, False, f"{outcome.message} (input images not kept: {exc})")
        return outcome
