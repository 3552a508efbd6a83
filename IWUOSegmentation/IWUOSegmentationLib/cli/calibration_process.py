"""The parent's side of the Slicer module's "Calibrate to these reviews": an `iwuo calibrate` child.

Why a child process and not a call with a wait cursor: on the real BraTS cases, fitting on three finished
reviews takes tens of seconds (benchmarks/results/calibration.json, `calibrate_wall_seconds`; much of it
reading the reviews' 240x240x155 maps), too long to freeze Slicer. It runs as the analysis
does (analysis_process.py: PythonSlicer, JSON progress lines, cancel file and stdin EOF), and the module
drives it with the same QProcess (gui/qt_analysis.py). The fit needs scikit-learn: Slicer's own Python has
none, the analysis's packages bring it (nnunetv2 depends on scikit-learn), so without it the button says so
in one line before anything starts.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Optional

from ..errors import BadInputError
from ..review.folder import ReviewFolder
from .analysis_process import ChildRun, Outcome, iwuo_command

NO_SCIKIT_LEARN = ("Calibrating needs scikit-learn, which Slicer's Python does not have yet; the analysis's packages "
                   "bring it (nnunetv2 depends on it): press Analyse on a case once to install them.")


class CalibrationRun(ChildRun):
    """`iwuo calibrate --reviews REVIEWS --model MODEL` as a child: the calibration is saved for the model
    (~/.iwuo/calibrations/<model key>.json), where the next analysis of that model finds it."""

    what = "calibration"

    def __init__(self, reviews: str | os.PathLike, model: str | os.PathLike, python: Optional[str] = None):
        self.reviews = Path(reviews)
        work = tempfile.mkdtemp(prefix="iwuo_calibrate_")
        cancel = Path(work) / "cancel"
        command = iwuo_command(["calibrate", "--reviews", str(self.reviews), "--model", str(model),
                                "--cancel-file", str(cancel), "--cancel-on-stdin-eof"], python)
        super().__init__(command, cancel, work_dir=work)

    def _succeeded(self) -> Outcome:
        return Outcome(False, False, f"Calibrated to the reviews in {self.reviews}: {self.message}; new analyses of "
                                     "this model use it.")


def calibration_run(review_folder: Optional[ReviewFolder], model: str | os.PathLike,
                    python: Optional[str] = None) -> CalibrationRun:
    """The run of the module's button for the review open in `review_folder` (None: none is open): it fits on
    every review beside it (its parent folder). One line (BadInputError) without a review or scikit-learn."""
    if review_folder is None:
        raise BadInputError("No review yet: analyse a case first.")
    if importlib.util.find_spec("sklearn") is None:
        raise BadInputError(NO_SCIKIT_LEARN)
    return CalibrationRun(review_folder.root.parent, model, python)
