"""The review workflow both front ends share: analysis into the scene, session, saved corrections.

The desktop module (IWUOSegmentation.py) and the browser app (web/review_app.py) call these
functions, so a session started in one can be finished in the other: same nodes, same IWUO
ranking, same BudgetLog file and the same saved label map of the corrected segmentation, laid
out as `review/folder.py` (ReviewFolder) says.

An analysis is put into a scene only for the images and the model it was made from
(analysis_identity.py): callers pass the identity of what they have, from the channel volumes in
the scene (`identity_of_volumes`) or from the case's files. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.analysis_files import UNCERTAINTY_MAPS, LoadedAnalysis, read_analysis
from ..data.analysis_identity import analysis_identity, check_identity, image_identity, model_identity, read_summary
from ..errors import BadInputError
from ..review.folder import ReviewFolder
from ..storage.atomic_files import atomic_write_image, check_complete
from ..storage.folder_lock import FolderLock
from .analysis_nodes import ATTR_LABELS, add_heatmap_volume, add_segmentation, place_in_study
from .review_session import ATTR_SUMMARY, LOG_TABLE, RANKING_TABLE, ReviewSession

#: Heatmaps offered as overlays, the default first: the uncertainty maps and the per-voxel impact proxy.
OVERLAY_KINDS = ("entropy", *(m for m in UNCERTAINTY_MAPS if m != "entropy"), "impact")


@dataclass
class AnalysisInScene:
    segmentation: object
    overlays: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)  # segment id -> written label value
    analysis: Optional[LoadedAnalysis] = None


def ijk_to_ras_matrix(image):
    """vtkMatrix4x4 IJK-to-RAS of a SimpleITK image (LPS physical space -> RAS)."""
    import vtk

    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    flip = np.diag([-1.0, -1.0, 1.0])
    ras = flip @ (direction * np.array(image.GetSpacing(), float)[None, :])
    origin = flip @ np.array(image.GetOrigin(), float)
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, ras[r, c])
        m.SetElement(r, 3, origin[r])
    return m


def volume_identity(volume, name: str = "") -> dict:
    """Identity of a scalar volume node's voxels and grid, as `analysis_identity.image_identity` (LPS geometry)."""
    import slicer.util

    directions = [[0.0] * 3 for _ in range(3)]
    volume.GetIJKToRASDirections(directions)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    return image_identity(slicer.util.arrayFromVolume(volume).astype(np.float32), volume.GetSpacing(),
                          ras_to_lps @ np.array(volume.GetOrigin(), float),
                          (ras_to_lps @ np.array(directions, float)).ravel(), name)


def identity_of_volumes(volumes: list, model) -> dict:
    """The identity an analysis of these channel volumes (in the model's channel order) with `model` has."""
    names = list(model.channel_names) if hasattr(model, "channel_names") else []
    inputs = [volume_identity(v, names[i] if i < len(names) else v.GetName()) for i, v in enumerate(volumes)]
    return analysis_identity(inputs, model_identity(model))


def add_volume_from_image(image, name: str):
    """Scalar volume node with the voxels and geometry of a SimpleITK image."""
    import SimpleITK as sitk
    import slicer.util

    array = np.ascontiguousarray(sitk.GetArrayFromImage(image).astype(np.float32))
    node = slicer.util.addVolumeFromArray(array, name=name, nodeClassName="vtkMRMLScalarVolumeNode")
    node.SetIJKToRASMatrix(ijk_to_ras_matrix(image))
    node.CreateDefaultDisplayNodes()
    return node


def analysis_structures(analysis: LoadedAnalysis):
    """The model's structures (labels, regions, all foreground) as the analysis records them."""
    from ..data.structures import structures_from_summary

    return structures_from_summary(analysis.summary)


def impact_map(analysis: LoadedAnalysis, target: Optional[str] = None) -> np.ndarray:
    """Per-voxel expected Dice error mass of the review target (default: all foreground): P(target) where not
    predicted, 1-P where predicted."""
    structure = analysis_structures(analysis).get(target)
    prob = structure.probability(analysis.probabilities)
    pred = structure.mask(analysis.label_map)
    return np.where(pred, 1.0 - prob, prob).astype(np.float32)


def show_target_impact(overlay_node, analysis: LoadedAnalysis, target: Optional[str]) -> None:
    """Refill the impact overlay for another review target (same node, so the views keep showing it)."""
    import slicer.util

    slicer.util.updateVolumeFromArray(overlay_node, impact_map(analysis, target))


def load_analysis_into_scene(scene, analysis_folder: str | os.PathLike, volume, written_labels: dict[str, int],
                             corrected_label_map: Optional[np.ndarray] = None, *,
                             expected_identity: dict, target: Optional[str] = None) -> AnalysisInScene:
    """Segmentation (the saved corrections if given, else the prediction) and heatmap overlays (the impact
    overlay of the review `target`, default all foreground).

    `expected_identity` is the identity of the case and model in hand (`identity_of_volumes`, or
    `analysis_identity` of the case's files); an analysis of anything else is refused before it is read."""
    summary = read_summary(analysis_folder)
    check_identity(summary, analysis_folder, expected_identity["inputs"], expected_identity["model"])
    analysis = read_analysis(analysis_folder, summary)
    import slicer.util

    shape = slicer.util.arrayFromVolume(volume).shape
    if analysis.label_map.shape != shape:
        raise BadInputError(f"The analysis in {analysis_folder} has grid {analysis.label_map.shape[::-1]} but the "
                            f"image has {shape[::-1]}: it belongs to another case.")
    label_map = analysis.label_map if corrected_label_map is None else corrected_label_map
    segmentation = add_segmentation(scene, label_map, volume, written_labels, f"{volume.GetName()} IWUO segmentation")
    labels = {k: v for k, v in written_labels.items() if v}
    segmentation.SetAttribute(ATTR_LABELS, json.dumps(labels))
    segmentation.SetAttribute(ATTR_SUMMARY, json.dumps(analysis.summary.get("members", {})))
    place_in_study(scene, segmentation, volume)
    overlays = {}
    maps = {**analysis.uncertainty, "impact": impact_map(analysis, target)}
    for name in OVERLAY_KINDS:
        node = add_heatmap_volume(scene, maps[name], volume, f"{volume.GetName()} {name}",
                                  kind="impact" if name == "impact" else "uncertainty")
        place_in_study(scene, node, volume)
        overlays[name] = node
    return AnalysisInScene(segmentation=segmentation, overlays=overlays, labels=labels, analysis=analysis)


def open_review(scene, analysis: LoadedAnalysis, volume, segmentation, labels: dict[str, int],
                log_path: str | os.PathLike, budget_slices: Optional[int] = None,
                target: Optional[str] = None, front_end: str = "Slicer", read_only: bool = False,
                lock: Optional[FolderLock] = None) -> ReviewSession:
    """The default ranking (strategies.DEFAULT_RANKING, entropy) of the review target as a review session; an
    existing log resumes its progress, and saved corrections it lacks (a crash between saving and logging) are
    logged. Every flush saves the corrected label map before logging.

    `target` is a structure of the model (a label, a region, or "all foreground"); None resumes the log's
    target, or takes the default (all foreground: the slices are ranked for every structure at once, as a
    visit corrects them all; WT, TC and ET of a BraTS model). The log records it.
    The session locks the review folder (one writer): if another session has it, FolderLockedError (exit
    code 2) names that session; `read_only=True` opens it to browse, writing nothing. `lock`: the folder's
    lock when the caller took it earlier (`iwuo review` does, before analysing into the folder)."""
    from ..data.structures import evaluation_regions
    from ..ranking.strategies import rank_case

    structures = analysis_structures(analysis)
    structure = structures.get(review_target(analysis.summary, log_path, target))
    if structure.name == structures.get().name:  # the default target: every structure a visit corrects
        ranked = {name: region.structure for name, region in evaluation_regions(structures).items()}
    else:
        ranked = {structure.name: structure}
    axis, _, rows = rank_case(analysis.label_map, analysis.probabilities, analysis.summary["outputs"],
                              analysis.summary["region_based"], analysis.uncertainty["entropy"],
                              analysis.geometry.GetSpacing(), structures=ranked,
                              member_variance=analysis.member_variance)
    for table in (RANKING_TABLE, LOG_TABLE):
        node = scene.GetFirstNodeByName(table)
        if node is not None:
            scene.RemoveNode(node)
    session = ReviewSession(scene, volume, segmentation, str(log_path), ranking=rows, axis=axis,
                            label_values=labels, budget_slices=budget_slices, target=structure.name,
                            front_end=front_end, read_only=read_only, lock=lock)
    if not read_only:
        session.log_unlogged_corrections(masks_from_label_map(analysis.label_map, labels))
        save_corrections_before_logging(session, analysis.geometry)
    return session


def review_target(summary: dict, log_path: str | os.PathLike, target: Optional[str] = None) -> str:
    """The structure to rank (analysis summary.json given): `target`, else the one the review's log was last
    ranked on, else the default."""
    from ..data.structures import structures_from_summary
    from ..review.budget_log import BudgetLog
    from .review_session import logged_target

    if target is None and Path(log_path).is_file():
        target = logged_target(BudgetLog(log_path).read())
    return structures_from_summary(summary).get(target).name


def review_targets(analysis: LoadedAnalysis) -> list[str]:
    """Structures a reviewer can rank on, the default first (for the target selectors of both front ends)."""
    return analysis_structures(analysis).target_choices()


def resume_review_from_scene(scene, front_end: str = "Slicer",
                             read_only: bool = False) -> tuple[ReviewSession, LoadedAnalysis]:
    """The review session of a reopened scene, brought up to date with its review folder.

    The corrected label map is saved on every flush, the scene only when the user saves it, so the
    saved corrections replace the scene's segmentation: edits made after the scene was saved are
    neither lost nor overwritten by the next flush. Then as `open_review`: the folder is locked (or
    browsed read-only), unlogged saved corrections are logged, and every flush saves before it logs.
    """
    import slicer.util

    # a clear error without the ranking table or the log, or while another session holds the folder
    session = ReviewSession.restore(scene, front_end=front_end, read_only=read_only)
    labels = json.loads(session.segmentation.GetAttribute(ATTR_LABELS) or "{}")
    session.label_values = labels
    folder = ReviewFolder(session.log.path.parent)
    try:
        summary = read_summary(folder.analysis)  # the analysis beside the log must be of the scene's image
        check_identity(summary, folder.analysis, [volume_identity(session.volume)], first_inputs_only=True)
        analysis = read_analysis(folder.analysis, summary)
        corrected = read_corrected_segmentation(folder.corrected, slicer.util.arrayFromVolume(session.volume).shape)
    except BadInputError:  # no analysis beside the log (its geometry is needed to save), or foreign corrections
        session.close()
        raise
    if corrected is not None:
        session.adopt_saved_corrections(masks_from_label_map(corrected, labels))
    if not read_only:
        session.log_unlogged_corrections(masks_from_label_map(analysis.label_map, labels))
        save_corrections_before_logging(session, analysis.geometry)
    return session, analysis


def label_map_from_masks(masks: dict[str, np.ndarray], labels: dict[str, int], shape: tuple[int, ...]) -> np.ndarray:
    """Segment masks (in segment order) as one label map of written label values; later segments win."""
    out = np.zeros(shape, np.uint8)
    for segment_id, mask in masks.items():
        if segment_id in labels:
            out[mask] = labels[segment_id]
    return out


def masks_from_label_map(label_map: np.ndarray, labels: dict[str, int]) -> dict[str, np.ndarray]:
    """Segment id -> mask of its written label value: the inverse of label_map_from_masks."""
    return {segment_id: label_map == value for segment_id, value in labels.items()}


def segmentation_label_map(segmentation, volume, labels: dict[str, int]) -> np.ndarray:
    """The segmentation as one label map on `volume`'s grid (written label values; later segments win)."""
    import slicer.util

    seg = segmentation.GetSegmentation()
    ids = [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())]
    masks = {sid: slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, sid, volume) > 0 for sid in ids}
    return label_map_from_masks(masks, labels, slicer.util.arrayFromVolume(volume).shape)


def save_corrected_segmentation(label_map: np.ndarray, geometry, path: str | os.PathLike) -> Path:
    """Write the corrected label map atomically (temp file, fsync, rename) with the input image's geometry."""
    from ..data.case_images import image_from_array

    return atomic_write_image(path, image_from_array(label_map, like=geometry), tmp_point="corrected.tmp",
                              done_point="corrected.saved")


def save_session_corrections(session: ReviewSession, geometry, masks: dict[str, np.ndarray]) -> Path:
    """Segment masks of the session (as its flush has just accounted for them; no second extraction), written
    as the corrected label map of the review folder the log is in."""
    import slicer.util

    label_map = label_map_from_masks(masks, session.label_values, slicer.util.arrayFromVolume(session.volume).shape)
    return save_corrected_segmentation(label_map, geometry, ReviewFolder(session.log.path.parent).corrected)


def save_corrections_before_logging(session: ReviewSession, geometry) -> None:
    """Make every flush of the session write the corrected label map before its log lines, so whatever path
    flushes (a stroke, Next, closing) a correction the log counts is saved; a crash in between leaves a saved
    but unlogged correction, which `open_review` logs on resume."""
    session.on_accounted = lambda masks: save_session_corrections(session, geometry, masks)


def read_corrected_segmentation(path: str | os.PathLike, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """The saved corrections, or None when there are none yet; a file for another grid is refused."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        return None
    try:
        check_complete(path)
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except (ValueError, RuntimeError) as exc:  # never half-read: a cut file would read as lost corrections
        raise BadInputError(f"{path} cannot be read ({str(exc).strip().splitlines()[-1][:200]}); the budget log "
                            "still lists the corrections. Move the file away to start from the prediction.") from exc
    if array.shape != tuple(shape):
        raise BadInputError(f"{path} has grid {array.shape[::-1]}, not the case's {tuple(shape)[::-1]}; move it "
                            "away to start from the prediction.")
    return array
