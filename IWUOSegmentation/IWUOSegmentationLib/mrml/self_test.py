"""Body of the module's self-test, runnable in Slicer and on the slicer-core wheel (pytest).

Generates a phantom, analyses it with the bundled demo model, puts segmentation and heatmaps
into the scene, builds the review session from the IWUO ranking, and replays a perfect and a
noisy simulated expert through the same MRML edit path a brush takes (slice corrections written
into the segmentation node, seen by the session's observer and logged in the BudgetLog).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

#: Region models write WT-only as 2, core as 1, enhancing as 4; reference label 3 joins the core.
REFERENCE_TO_WRITTEN = {0: 0, 1: 1, 2: 2, 3: 1, 4: 4}


def replay_expert(session, segmentation, volume, corrected_written: np.ndarray, label_values: dict[str, int],
                  n_slices: int) -> list[float]:
    """Correct the next `n_slices` ranked slices by writing them into the segmentation node."""
    import slicer.util

    dice = [session.measured_dice()]
    for _ in range(n_slices):
        k = session.next()
        for segment_id, value in label_values.items():
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, volume) > 0
            target = corrected_written[k] == value
            if np.array_equal(mask[k], target):
                continue
            mask[k] = target
            slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), segmentation, segment_id, volume)
        session.flush_edits()
        dice.append(session.measured_dice())
    return dice


def run_self_test(scene, work_dir: str, seed: int = 7, n_review: int = 5) -> dict:
    """Return measured facts; raise AssertionError when the pipeline is broken."""
    import SimpleITK as sitk
    import slicer.util

    from ..demo_model import FIRST_TRAINING_SEED, demo_model_folder
    from ..experts import NoisyExpert
    from ..inference import CaseImages, MemberPredictor
    from ..model_folder import open_model
    from ..phantom import write_phantoms
    from ..replay import aubc, dice_curve, slice_counts
    from ..slice_scores import iwuo_ranking, region_mask
    from ..strategies import RankingContext, make_strategy
    from .analysis_nodes import add_heatmap_volume, add_segmentation
    from .review_session import ReviewSession
    from .review_workflow import ijk_to_ras_matrix

    assert seed < FIRST_TRAINING_SEED, "self-test phantoms must not be training phantoms"
    start = time.time()
    work = Path(work_dir)
    write_phantoms(work, 1, seed=seed, layout="cases")
    case_dir = work / f"phantom_{seed:04d}"
    model = open_model(demo_model_folder())
    case = CaseImages.from_files([str(case_dir / f"{c}.nii.gz") for c in model.channel_names])
    result = MemberPredictor(model, device="cpu", members=("flips", "folds")).analyze(case)
    flair = slicer.util.addVolumeFromArray(case.arrays[0], name="PhantomFLAIR")
    flair.SetIJKToRASMatrix(ijk_to_ras_matrix(case.to_image(case.arrays[0])))
    written = {k: v for k, v in model.written_labels.items() if v}
    segmentation = add_segmentation(scene, result.label_map, flair, model.written_labels, "IWUO segmentation")
    heat = add_heatmap_volume(scene, result.uncertainty["entropy"], flair, "IWUO entropy")
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "label.nii.gz"))).astype(np.int64)

    scene_labels = np.zeros(reference.shape, np.uint8)
    for segment_id, value in written.items():
        scene_labels[slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, flair) > 0] = value
    assert np.array_equal(scene_labels, result.label_map), "segmentation in the scene differs from the analysis"

    axis, scores, ranking = iwuo_ranking(result.label_map, result.probabilities, result.output_names,
                                         result.region_based, result.uncertainty["entropy"], case.spacing)
    order = np.array([row["slice"] for row in ranking])
    pred, truth = region_mask(result.label_map, "WT"), region_mask(reference, "WT")
    reference_written = np.vectorize(REFERENCE_TO_WRITTEN.get)(reference).astype(np.uint8)

    session = ReviewSession(scene, flair, segmentation, str(work / "perfect.budget.jsonl"), ranking=ranking,
                            axis=axis, label_values=written, reference=reference)
    perfect = replay_expert(session, segmentation, flair, reference_written, written, n_review)
    changed = sum(1 for a, b in zip(perfect, perfect[1:]) if b != a)
    summary = session.log.summary()
    session.close()
    assert summary.slices_corrected == changed, (summary.slices_corrected, changed)
    assert all(b >= a - 1e-12 for a, b in zip(perfect, perfect[1:])), f"perfect corrections lowered Dice: {perfect}"
    assert perfect[-1] > perfect[0], "perfect corrections of the top-ranked slices did not raise Dice"

    noisy_seg = add_segmentation(scene, result.label_map, flair, model.written_labels, "IWUO segmentation (noisy)")
    noisy_truth = NoisyExpert().correct(reference > 0, axis, seed=seed)
    noisy_written = np.where(noisy_truth, np.where(reference_written > 0, reference_written, 2), 0).astype(np.uint8)
    for table in ("IWUO ranking", "IWUO budget log"):
        scene.RemoveNode(scene.GetFirstNodeByName(table))
    noisy_session = ReviewSession(scene, flair, noisy_seg, str(work / "noisy.budget.jsonl"), ranking=ranking,
                                  axis=axis, label_values=written, reference=reference)
    noisy = replay_expert(noisy_session, noisy_seg, flair, noisy_written, written, n_review)
    noisy_session.close()

    counts = slice_counts(pred, truth, truth, axis)
    iwuo_aubc = aubc(dice_curve(counts, order))
    random_aubc = float(np.mean([aubc(dice_curve(counts, make_strategy("random").order(RankingContext(scores, seed=s))))
                                 for s in range(20)]))
    return {"dice_wt": perfect[0], "perfect_dice": [round(d, 4) for d in perfect],
            "noisy_dice": [round(d, 4) for d in noisy], "slices_logged": summary.slices_corrected,
            "iwuo_aubc": round(iwuo_aubc, 4), "random_aubc": round(random_aubc, 4),
            "segments": list(written), "heatmap": heat.GetName(), "members": result.members["n_members"],
            "seconds": round(time.time() - start, 1)}
