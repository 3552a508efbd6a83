"""Body of the module's self-test, runnable in stock Slicer and on the slicer-core wheel (pytest).

`run_self_test` needs only what Slicer ships (numpy, scipy, SimpleITK, MRML): it loads the phantom
case that ships with the module (self_test_case.py) and its precomputed analysis through the same
calls the module makes (identity check, segmentation and heatmaps into the scene, review session
from the IWUO ranking), checks that the analysis is refused for other inputs, and replays a
perfect and a noisy simulated expert through the MRML edit path a brush takes (slice corrections
written into the segmentation node, seen by the session's observer and logged in the BudgetLog).

`run_inference_check` is the extra test for a Slicer with torch and nnU-Net: it analyses the
shipped images again with the bundled demo model and compares with the shipped analysis.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

#: Region models write WT-only as 2, core as 1, enhancing as 4; reference label 3 joins the core.
REFERENCE_TO_WRITTEN = {0: 0, 1: 1, 2: 2, 3: 1, 4: 4}


def replay_expert(session, segmentation, volume, corrected_written: np.ndarray, label_values: dict[str, int],
                  n_slices: int) -> list[float]:
    """Correct the next `n_slices` ranked slices by writing them into the segmentation node."""
    import slicer.util

    dice = [session.measured_foreground_dice()]
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
        dice.append(session.measured_foreground_dice())
    return dice


def _load_channels(scene):
    """The shipped case's channel volumes (model channel order) and its reference label map."""
    import SimpleITK as sitk

    from ..data.self_test_case import CASE_FOLDER, CHANNEL_FILES, REFERENCE_FILE
    from .review_workflow import add_volume_from_image

    volumes = [add_volume_from_image(sitk.ReadImage(str(CASE_FOLDER / file)), f"Phantom{channel}")
               for channel, file in CHANNEL_FILES.items()]
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(CASE_FOLDER / REFERENCE_FILE))).astype(np.int64)
    return volumes, reference


def run_self_test(scene, work_dir: str, n_review: int = 5) -> dict:
    """Return measured facts; raise AssertionError when the review pipeline is broken."""
    import slicer.util

    from ..data.analysis_identity import AnalysisMismatchError
    from ..data.self_test_case import analysis_folder
    from ..nnunet.model_folder import open_model
    from ..ranking.slice_counts import slice_counts
    from ..ranking.slice_scores import region_mask
    from ..ranking.strategies import RankingContext, make_strategy
    from ..simulation.budget_curves import aubc, dice_curve
    from ..simulation.experts import NoisyExpert
    from .analysis_nodes import add_segmentation
    from .review_workflow import identity_of_volumes, load_analysis_into_scene, open_review

    start = time.time()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model = open_model(None)
    volumes, reference = _load_channels(scene)
    flair = volumes[0]
    swapped = identity_of_volumes(volumes[::-1], model)
    try:
        load_analysis_into_scene(scene, analysis_folder(), flair, model.written_labels, expected_identity=swapped)
        raise AssertionError("the analysis was opened for other images (channels swapped)")
    except AnalysisMismatchError:
        pass
    loaded = load_analysis_into_scene(scene, analysis_folder(), flair, model.written_labels,
                                      expected_identity=identity_of_volumes(volumes, model))
    analysis, segmentation, written = loaded.analysis, loaded.segmentation, loaded.labels

    scene_labels = np.zeros(reference.shape, np.uint8)
    for segment_id, value in written.items():
        scene_labels[slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, flair) > 0] = value
    assert np.array_equal(scene_labels, analysis.label_map), "segmentation in the scene differs from the analysis"

    session = open_review(scene, loaded, flair, work / "perfect.budget.jsonl")
    session.reference_segmentation = reference
    axis, ranking = session.axis, session.ranking
    perfect = replay_expert(session, segmentation, flair,
                            np.vectorize(REFERENCE_TO_WRITTEN.get)(reference).astype(np.uint8), written, n_review)
    changed = sum(1 for a, b in zip(perfect, perfect[1:]) if b != a)
    summary = session.log.summary()
    session.close()
    assert summary.slices_corrected == changed, (summary.slices_corrected, changed)
    assert all(b >= a - 1e-12 for a, b in zip(perfect, perfect[1:])), f"perfect corrections lowered Dice: {perfect}"
    assert perfect[-1] > perfect[0], "perfect corrections of the top-ranked slices did not raise Dice"
    assert (work / "corrected_segmentation.nii.gz").is_file(), "the corrections were not saved beside the budget log"

    noisy_seg = add_segmentation(scene, analysis.label_map, flair, model.written_labels, "IWUO segmentation (noisy)")
    reference_written = np.vectorize(REFERENCE_TO_WRITTEN.get)(reference).astype(np.uint8)
    noisy_truth = NoisyExpert().correct(reference > 0, axis, seed=7)
    noisy_written = np.where(noisy_truth, np.where(reference_written > 0, reference_written, 2), 0).astype(np.uint8)
    noisy_session = open_review(scene, replace(loaded, segmentation=noisy_seg), flair, work / "noisy" / "review.budget.jsonl")
    noisy_session.reference_segmentation = reference
    noisy = replay_expert(noisy_session, noisy_seg, flair, noisy_written, written, n_review)
    noisy_session.close()

    pred, truth = region_mask(analysis.label_map, "WT"), region_mask(reference, "WT")
    counts = slice_counts(pred, truth, truth, axis)
    order = np.array(ranking)
    scores = _scores_for_random(analysis)
    iwuo_aubc = aubc(dice_curve(counts, order))
    random_aubc = float(np.mean([aubc(dice_curve(counts, make_strategy("random").order(RankingContext(scores, seed=s))))
                                 for s in range(20)]))
    return {"dice_wt": perfect[0], "perfect_dice": [round(d, 4) for d in perfect],
            "noisy_dice": [round(d, 4) for d in noisy], "slices_logged": summary.slices_corrected,
            "iwuo_aubc": round(iwuo_aubc, 4), "random_aubc": round(random_aubc, 4),
            "segments": list(written), "heatmaps": sorted(loaded.overlays),
            "members": analysis.summary["members"]["n_members"], "seconds": round(time.time() - start, 1)}


def _scores_for_random(analysis):
    from ..ranking.slice_scores import iwuo_ranking

    _, scores, _ = iwuo_ranking(analysis.label_map, analysis.probabilities, analysis.summary["outputs"],
                                analysis.summary["region_based"], analysis.uncertainty["entropy"],
                                analysis.geometry.GetSpacing())
    return scores


def run_inference_check(work_dir: str) -> dict:
    """Analyse the shipped images with the bundled demo model (needs torch and nnU-Net) and compare."""
    from ..data.analysis_files import read_analysis
    from ..data.analysis_identity import check_analysis_folder
    from ..data.case_images import CaseImages
    from ..data.self_test_case import analysis_folder, channel_paths
    from ..nnunet.analysis import CaseAnalyzer  # torch and nnU-Net: imported only here
    from ..nnunet.analysis_settings import AnalysisSettings
    from ..ranking.slice_scores import region_mask

    case = CaseImages.from_files([str(p) for p in channel_paths()])
    fresh = Path(work_dir) / "analysis"
    # on the CPU, as the shipped analysis was made (scripts/make_self_test_case.py)
    result = CaseAnalyzer.open(None, AnalysisSettings(device="cpu")).analyze_into(case, fresh)
    recorded = read_analysis(fresh).summary["identity"]
    check_analysis_folder(analysis_folder(), recorded["inputs"], recorded["model"])  # same inputs, same model
    shipped = read_analysis(analysis_folder())
    fresh_wt, shipped_wt = region_mask(result.label_map, "WT"), region_mask(shipped.label_map, "WT")
    agreement = 2.0 * np.count_nonzero(fresh_wt & shipped_wt) / max(1, fresh_wt.sum() + shipped_wt.sum())
    assert agreement > 0.99, f"the demo model no longer reproduces the shipped analysis (WT Dice {agreement:.4f})"
    return {"wt_agreement": round(float(agreement), 4), "seconds": round(result.seconds, 1),
            "members": result.members["n_members"]}
