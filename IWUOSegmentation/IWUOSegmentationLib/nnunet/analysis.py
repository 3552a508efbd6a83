"""The one way to analyse cases: a model's networks loaded once, each case analysed with its members and,
when asked, written as an analysis folder.

Every caller goes through `CaseAnalyzer` (`iwuo analyze`, `iwuo review`'s preparation, the demo, the
evaluation, the self-test, the scripts and benchmarks); `MemberPredictor` is built nowhere else
(Testing/test_one_way.py). A batch (evaluation, demo) makes one analyzer and reuses its loaded networks for
every case. The defaults are `AnalysisSettings`'s (analysis_settings.py).

A site calibration (data/calibration.py), resolved by the caller before the networks load (a bad file is
refused before any inference), is applied here to every result, after inference and before anything is
written: the probabilities and the entropy are the calibrated ones, the label map is kept unless `relabel`,
and summary.json records the calibration.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from ..data.analysis_files import write_analysis
from ..data.analysis_identity import model_identity
from ..data.calibration import Calibration, apply_calibration, check_model
from ..data.case_images import AnalysisResult, CaseImages
from ..errors import CancelledError
from .analysis_settings import DEFAULT_SETTINGS, AnalysisSettings
from .inference import MemberPredictor, ProgressCallback
from .model_folder import ModelFolder, open_model


class CaseAnalyzer:
    """A model opened and its networks loaded once, for any number of cases."""

    def __init__(self, model: ModelFolder, settings: AnalysisSettings = DEFAULT_SETTINGS,
                 calibration: Optional[Calibration] = None, relabel: bool = False):
        if calibration is not None:  # another model's calibration is refused before the networks load
            check_model(calibration, model_identity(model))
        self.model = model
        self.settings = settings
        self.calibration, self.relabel = calibration, relabel
        self.predictor = MemberPredictor(model, settings)

    @classmethod
    def open(cls, model_path: Optional[str | os.PathLike], settings: AnalysisSettings = DEFAULT_SETTINGS,
             configuration: Optional[str] = None, folds: Optional[list[str]] = None) -> CaseAnalyzer:
        """Open the model (None: the bundled demo model) and load its networks."""
        return cls(open_model(model_path, configuration=configuration, folds=folds), settings)

    def analyze(self, case: CaseImages, progress: Optional[ProgressCallback] = None,
                cancel: Optional[Callable[[], bool]] = None) -> AnalysisResult:
        """Segmentation, probabilities and uncertainty maps of one case, in its own geometry (calibrated when the
        analyzer has a calibration)."""
        result = self.predictor.analyze(case, progress=progress, cancel=cancel)
        return result if self.calibration is None else apply_calibration(self.calibration, result, self.relabel)

    def analyze_into(self, case: CaseImages, out_dir: str | os.PathLike, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[Callable[[], bool]] = None, extension: str = ".nii.gz") -> AnalysisResult:
        """Analyse one case and write it as the analysis folder `out_dir` (whole or not at all, with the identity
        of the case and the model); a cancel seen before the folder is written leaves nothing."""
        result = self.analyze(case, progress=progress, cancel=cancel)
        if cancel is not None and cancel():
            raise CancelledError("Analysis cancelled; nothing was written.")
        write_analysis(result, case, out_dir, self.model.describe(), extension=extension)
        return result
