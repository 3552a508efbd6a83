"""The channel volumes written for the analysis child, and its AnalysisRun (GUI layer: exportNode needs slicer.app)."""

from __future__ import annotations

import os
import tempfile


def analysis_run(volumes: list, review_folder: str, device: str, members: str, review_inputs: dict, calibration: str = ""):
    """Export `volumes` (one per model channel, in order) to a temporary folder that the run removes when it ends;
    `calibration` is the child's --calibration (empty: the file saved for the model).

    `review_inputs` is mrml.review_controller.ReviewController.analysis_inputs(volumes, model), taken before the
    export: the run analyses with that opened model's folder and keeps it all, so the review it opens at the end
    is of these volumes and this model, whatever the panel shows by then."""
    import slicer

    from ..cli.analysis_process import AnalysisRun

    work = tempfile.mkdtemp(prefix="iwuo_")
    inputs = [os.path.join(work, f"input_{i:04d}.nrrd") for i in range(len(volumes))]
    for volume, path in zip(volumes, inputs):
        slicer.util.exportNode(volume, path)
    return AnalysisRun(str(review_inputs["opened_model"].path), inputs, review_folder, device, members, work_dir=work,
                       calibration=calibration, **review_inputs)
