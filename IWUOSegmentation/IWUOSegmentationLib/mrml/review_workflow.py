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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..data.analysis_files import UNCERTAINTY_MAPS, LoadedAnalysis, read_analysis
from ..data.analysis_identity import analysis_identity, check_identity, image_identity, model_identity, read_summary
from ..errors import BadInputError
from ..review.folder import ReviewFolder
from ..storage.atomic_files import atomic_write_image, check_complete
from .analysis_nodes import ATTR_LABELS, add_heatmap_volume, add_segmentation, place_in_study
from .log_views import ATTR_SUMMARY, LOG_TABLE
from .ranking_navigation import RANKING_TABLE
from .review_session import ReviewSession, SavedReview, SessionOptions, hold_review_folder

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


def open_review(scene, loaded: AnalysisInScene, volume, log_path: str | os.PathLike,
                options: Optional[SessionOptions] = None) -> ReviewSession:
    """The default ranking (strategies.DEFAULT_RANKING, entropy) of the review target as a review session of
    `loaded` (the analysis, its segmentation and written labels, in the scene on `volume`'s grid); an existing log
    resumes its progress, and saved corrections it lacks (a crash between saving and logging) are logged. A
    writable session is built with the saver of the review folder's corrected label map: every flush saves
    before it logs.

    `options.target` is a structure of the model (a label, a region, or "all foreground"); None resumes the
    log's target, or takes the default (all foreground: the slices are ranked for every structure at once, as a
    visit corrects them all; WT, TC and ET of a BraTS model). The log records it.
    The session locks the review folder (one writer): if another session has it, FolderLockedError (exit
    code 2) names that session; `options.read_only` opens it to browse, writing nothing; `options.lock` is the
    folder's lock when the caller took it earlier (`iwuo review` does, before analysing into the folder)."""
    from ..data.structures import evaluation_regions
    from ..ranking.strategies import rank_case

    options = options or SessionOptions()
    analysis, labels = loaded.analysis, loaded.labels
    structures = analysis_structures(analysis)
    structure = structures.get(review_target(analysis.summary, log_path, options.target))
    if structure.name == structures.get().name:  # the default target: every structure a visit corrects
        ranked = {name: region.structure for name, region in evaluation_regions(structures).items()}
    else:
        ranked = {structure.name: structure}
    axis, _, rows = rank_case(analysis, structures=ranked)
    for table in (RANKING_TABLE, LOG_TABLE):
        node = scene.GetFirstNodeByName(table)
        if node is not None:
            scene.RemoveNode(node)
    saver = None if options.read_only else corrections_saver(labels, volume, analysis.geometry,
                                                             ReviewFolder(Path(log_path).parent).corrected)
    session = ReviewSession(scene, volume, loaded.segmentation, str(log_path), ranking=rows, axis=axis,
                            label_values=labels, save_corrections=saver, options=replace(options, target=structure.name))
    if not options.read_only:
        session.log_unlogged_corrections(masks_from_label_map(analysis.label_map, labels))
    return session


def review_target(summary: dict, log_path: str | os.PathLike, target: Optional[str] = None) -> str:
    """The structure to rank (analysis summary.json given): `target`, else the one the review's log was last
    ranked on, else the default."""
    from ..data.structures import structures_from_summary
    from ..review.budget_log import BudgetLog, logged_target

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

    saved = SavedReview.from_scene(scene)  # a clear error without the ranking table, its nodes or the log
    labels = json.loads(saved.segmentation.GetAttribute(ATTR_LABELS) or "{}")
    folder = ReviewFolder(saved.log_path.parent)
    lock = None if read_only else hold_review_folder(folder.root, front_end)  # refused while another session has it
    try:
        summary = read_summary(folder.analysis)  # the analysis beside the log must be of the scene's image
        check_identity(summary, folder.analysis, [volume_identity(saved.volume)], first_inputs_only=True)
        analysis = read_analysis(folder.analysis, summary)  # its geometry is the saved corrections'
        corrected = read_corrected_segmentation(folder.corrected, slicer.util.arrayFromVolume(saved.volume).shape)
        saver = None if read_only else corrections_saver(labels, saved.volume, analysis.geometry, folder.corrected)
        session = ReviewSession.restore(scene, saver, options=SessionOptions(front_end=front_end, read_only=read_only,
                                                                              lock=lock), label_values=labels)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if corrected is not None:
        session.adopt_saved_corrections(masks_from_label_map(corrected, labels))
    if not read_only:
        session.log_unlogged_corrections(masks_from_label_map(analysis.label_map, labels))
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


def corrections_saver(labels: dict[str, int], volume, geometry, path: str | os.PathLike) -> Callable[[dict], Path]:
    """What a writable session saves its corrections with: the segment masks (segment id -> mask, as the flush has
    just accounted for them; no second extraction) as one label map of written `labels`, with the analysed
    image's `geometry`, written atomically to `path` (the review folder's corrected segmentation)."""
    import slicer.util

    shape = slicer.util.arrayFromVolume(volume).shape
    return lambda masks: save_corrected_segmentation(label_map_from_masks(masks, labels, shape), geometry, path)


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
