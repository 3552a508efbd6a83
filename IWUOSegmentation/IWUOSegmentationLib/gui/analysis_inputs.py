"""The channel volumes written for the analysis child, and its AnalysisRun (GUI layer: exportNode needs slicer.app)."""

from __future__ import annotations

import os
import tempfile


def analysis_run(model_path: str, volumes: list, review_folder: str, device: str, members: str):
    """Export `volumes` (one per model channel, in order) to a temporary folder that the run removes when it ends."""
    import slicer

    from ..cli.analysis_process import AnalysisRun

    work = tempfile.mkdtemp(prefix="iwuo_")
    inputs = [os.path.join(work, f"input_{i:04d}.nrrd") for i in range(len(volumes))]
    for volume, path in zip(volumes, inputs):
        slicer.util.exportNode(volume, path)
    return AnalysisRun(model_path, inputs, review_folder, device, members, work_dir=work)
