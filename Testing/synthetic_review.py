"""A review folder for the lock and fault tests, and the scripted reviewer that corrects it.

The analysis is made from a phantom's reference label (smoothed region masks as probabilities), not
by the model: these tests are about what the review writes, and an nnU-Net run per test would cost
minutes. The writer, the reader, the MRML scene and the session are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

#: The demo model's outputs and written labels (regions of BraTS labels 1-4).
OUTPUTS = ["whole_tumor", "tumor_core", "enhancing_tumor"]
REGIONS = {"whole_tumor": (1, 2, 3, 4), "tumor_core": (1, 3, 4), "enhancing_tumor": (4,)}
WRITTEN = {"background": 0, "whole_tumor": 2, "tumor_core": 1, "enhancing_tumor": 4}
BOX = (slice(10, 14), slice(10, 15))  # the scripted reviewer's correction, on each slice it corrects


def write_synthetic_analysis(case_dir: Path, out: Path) -> Path:
    """An analysis folder (real writer) of the phantom in `case_dir`, eroded so corrections are needed."""
    from IWUOSegmentationLib.data.analysis_files import UNCERTAINTY_MAPS, write_analysis
    from IWUOSegmentationLib.nnunet.inference import AnalysisResult, CaseImages

    case = CaseImages.from_files([str(case_dir / "FLAIR.nii.gz"), str(case_dir / "T1c.nii.gz")])
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "label.nii.gz")))
    probabilities = np.stack([ndimage.gaussian_filter(np.isin(label, REGIONS[n]).astype(np.float32), 1.5)
                              for n in OUTPUTS]).clip(0, 1)
    label_map = np.zeros(label.shape, np.uint8)
    for name in OUTPUTS:  # later (nested) regions win, as nnU-Net's region conversion does
        label_map[probabilities[OUTPUTS.index(name)] > 0.6] = WRITTEN[name]
    p = probabilities[0]
    entropy = -(p * np.log(p + 1e-6) + (1 - p) * np.log(1 - p + 1e-6))
    uncertainty = {"entropy": entropy, "variance": p * (1 - p) / 4, "mutual_information": entropy / 3,
                   "disagreement": (np.abs(p - 0.5) < 0.2).astype(np.float32),
                   "member_variance": probabilities * (1 - probabilities) / 4}
    assert set(UNCERTAINTY_MAPS) <= set(uncertainty)
    result = AnalysisResult(label_map=label_map, probabilities=probabilities, uncertainty=uncertainty,
                            output_names=OUTPUTS, region_based=True, members={"n_members": 2, "kinds": ["synthetic"]},
                            seconds=0.0)
    return write_analysis(result, case, out, _demo_model().describe())


def _demo_model():
    """The bundled model the synthetic analysis stands in for (its outputs and labels; an analysis records
    the identity of its model's files)."""
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import open_model

    return open_model(demo_model_folder())


def expected_identity(case_dir: Path) -> dict:
    """The identity of this case's images and the bundled model, as a front end computes it before reuse."""
    from IWUOSegmentationLib.data.analysis_identity import analysis_identity, case_identity, model_identity
    from IWUOSegmentationLib.data.case_images import CaseImages

    model = _demo_model()
    case = CaseImages.from_files([str(case_dir / "FLAIR.nii.gz"), str(case_dir / "T1c.nii.gz")])
    return analysis_identity(case_identity(case, model.channel_names), model_identity(model))


def case_images(case_dir: Path) -> list:
    return [sitk.ReadImage(str(case_dir / f"{c}.nii.gz")) for c in ("FLAIR", "T1c")]


def open_case(scene, case_dir: Path, folder: Path, **kwargs):
    """What both front ends do on start: saved corrections (if any) into the scene, then open_review."""
    from IWUOSegmentationLib.mrml.review_session import SessionOptions
    from IWUOSegmentationLib.mrml.review_workflow import (
        add_volume_from_image,
        load_analysis_into_scene,
        open_review,
        read_corrected_segmentation,
    )
    from IWUOSegmentationLib.review.folder import ReviewFolder

    review = ReviewFolder(folder)
    image = case_images(case_dir)[0]
    volume = add_volume_from_image(image, "FLAIR")
    size = image.GetSize()
    saved = read_corrected_segmentation(review.corrected, (size[2], size[1], size[0]))
    loaded = load_analysis_into_scene(scene, review.analysis, volume, WRITTEN, saved,
                                      expected_identity=expected_identity(case_dir))
    session = open_review(scene, loaded, volume, review.log, SessionOptions(budget_slices=10, **kwargs))
    return volume, loaded, session


def reopen_saved_review(scene, session, scene_file: Path):
    """Save the scene of a running review to `scene_file`, close the review and clear the scene, then load
    the file into a fresh scene and resume there, as the desktop does after a restart.

    Returns (resumed session, the fresh scene, the saved scene file)."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import resume_review_from_scene
    from IWUOSegmentationLib.mrml.scene_io import load_scene, save_scene

    saved = save_scene(scene, str(scene_file))
    session.close()
    scene.Clear(1)
    reopened = create_headless_scene()
    load_scene(reopened, str(saved))
    resumed, _ = resume_review_from_scene(reopened)
    return resumed, reopened, saved


def correct_slice(session, slice_index: int) -> int:
    """The scripted reviewer's stroke: the box on `slice_index` into the first segment; returns voxels added."""
    import slicer.util

    segment_id = next(iter(session.label_values))
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(session.segmentation, segment_id, session.volume) > 0
    added = np.zeros_like(mask)
    added[(slice_index, *BOX)] = ~mask[(slice_index, *BOX)]
    slicer.util.updateSegmentBinaryLabelmapFromArray((mask | added).astype(np.uint8), session.segmentation,
                                                     segment_id, session.volume)
    return int(added.sum())


def review_script(session, n_corrections: int, report: bool = True) -> None:
    """Next, stroke, flush, for the first `n_corrections` ranks not yet corrected; then mark, close, report."""
    from IWUOSegmentationLib.review.report import write_review_report

    done = {int(e["slice"]) for e in session.log.read() if e["kind"] == "slice_corrected"}
    for rank, slice_index in enumerate(session.ranking[:n_corrections]):
        if slice_index in done:
            continue
        session.go_to(rank)
        correct_slice(session, slice_index)
        session.flush_edits()
    session.close()
    if report:
        write_review_report(session.log.path)


def read_log_events(folder: Path) -> list[dict]:
    from IWUOSegmentationLib.review.budget_log import BudgetLog

    return BudgetLog(Path(folder) / "review.budget.jsonl").read()
