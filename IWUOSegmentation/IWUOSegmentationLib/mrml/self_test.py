"""Body of the module's self-test, runnable in Slicer and on the slicer-core wheel (pytest).

Generates a phantom, analyses it with the bundled demo model, puts segmentation and heatmaps
into the scene, and checks them against the phantom's reference.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def run_self_test(scene, work_dir: str, seed: int = 7) -> dict:
    """Return measured facts; raise AssertionError when the pipeline is broken."""
    import SimpleITK as sitk
    import slicer.util

    from ..demo_model import FIRST_TRAINING_SEED, demo_model_folder
    from ..inference import CaseImages, MemberPredictor
    from ..model_folder import open_model
    from ..phantom import write_phantoms
    from ..replay import dice
    from ..slice_scores import region_mask
    from .analysis_nodes import add_heatmap_volume, add_segmentation

    assert seed < FIRST_TRAINING_SEED, "self-test phantoms must not be training phantoms"
    start = time.time()
    work = Path(work_dir)
    write_phantoms(work, 1, seed=seed, layout="cases")
    case_dir = work / f"phantom_{seed:04d}"
    model = open_model(demo_model_folder())
    case = CaseImages.from_files([str(case_dir / f"{c}.nii.gz") for c in model.channel_names])
    result = MemberPredictor(model, device="cpu", members=("flips", "folds")).analyze(case)
    flair = slicer.util.addVolumeFromArray(case.arrays[0], name="PhantomFLAIR")
    ijk_to_ras = _ijk_to_ras(case)
    flair.SetIJKToRASMatrix(ijk_to_ras)
    segmentation = add_segmentation(scene, result.label_map, flair, model.written_labels, "IWUO segmentation")
    heat = add_heatmap_volume(scene, result.uncertainty["entropy"], flair, "IWUO entropy")
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "label.nii.gz")))
    ids = [segmentation.GetSegmentation().GetNthSegmentID(i)
           for i in range(segmentation.GetSegmentation().GetNumberOfSegments())]
    scene_labels = np.zeros(reference.shape, np.uint8)
    for segment_id in ids:
        value = model.written_labels[segment_id]
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, flair)
        scene_labels[mask > 0] = value
    assert np.array_equal(scene_labels, result.label_map), "segmentation in the scene differs from the analysis"
    pred, truth = region_mask(result.label_map, "WT"), region_mask(reference, "WT")
    tp, fp, fn = (pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()
    return {"dice_wt": float(dice(tp, fp, fn)), "segments": ids, "heatmap": heat.GetName(),
            "members": result.members["n_members"], "seconds": round(time.time() - start, 1)}


def _ijk_to_ras(case):
    """IJK-to-RAS matrix of a SimpleITK-geometry case (LPS physical space -> RAS)."""
    import vtk

    direction = np.array(case.direction, float).reshape(3, 3)
    lps = direction * np.array(case.spacing, float)[None, :]
    flip = np.diag([-1.0, -1.0, 1.0])
    ras = flip @ lps
    origin = flip @ np.array(case.origin, float)
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, ras[r, c])
        m.SetElement(r, 3, origin[r])
    return m
