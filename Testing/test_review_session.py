"""Review session on real MRML: navigation lands on the ranked slice, edits are logged per slice,
the session survives saving and reopening the scene, and a missing log is a clear error."""

from __future__ import annotations

import math

import numpy as np
import pytest

SHAPE = (12, 24, 32)  # k, j, i
SAVED: list = []  # what the sessions' saver was given (the corrected segmentation a real saver writes)


def _volume(scene, geometry: str):
    import slicer.util
    import vtk

    node = slicer.util.addVolumeFromArray(np.zeros(SHAPE, np.float32), name=f"vol_{geometry}")
    spacing = np.array([0.8, 0.9, 2.5])
    if geometry == "ras":
        rot = np.eye(3)
    elif geometry == "lps":
        rot = np.diag([-1.0, -1.0, 1.0])
    else:  # oblique: rotated about S then about R
        c, s = math.cos(0.35), math.sin(0.35)
        rot = np.array([[-c, -s, 0], [s, -c, 0], [0, 0, 1]]) @ np.array(
            [[1, 0, 0], [0, math.cos(0.25), -math.sin(0.25)], [0, math.sin(0.25), math.cos(0.25)]])
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        for c_ in range(3):
            m.SetElement(r, c_, rot[r, c_] * spacing[c_])
        m.SetElement(r, 3, [12.0, -30.0, 4.0][r])
    node.SetIJKToRASMatrix(m)
    return node


def _slice_views(scene):
    views = []
    for name, orient in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        node.SetName(name)
        node.SetLayoutName(name)
        getattr(node, f"SetOrientationTo{orient}")()
        node.SetDimensions(256, 256, 1)
        views.append(node)
    return views


def _session(scene, tmp_path, geometry="ras", reference=None):
    from IWUOSegmentationLib.mrml.analysis_nodes import add_segmentation
    from IWUOSegmentationLib.mrml.review_session import ReviewSession, SessionOptions

    volume = _volume(scene, geometry)
    labels = np.zeros(SHAPE, np.uint8)
    labels[3:9, 5:15, 6:20] = 2
    labels[5:7, 8:12, 10:15] = 4
    seg = add_segmentation(scene, labels, volume, {"background": 0, "edema": 2, "enhancing": 4}, "pred")
    ranking = [{"slice": s, "iwuo": 1.0 / (i + 1), "impact": 0.1, "uncertainty": 0.2} for i, s in enumerate([6, 2, 9, 4])]
    session = ReviewSession(scene, volume, seg, str(tmp_path / "review.budget.jsonl"), ranking=ranking, axis=0,
                            label_values={"edema": 2, "enhancing": 4}, save_corrections=SAVED.append,
                            options=SessionOptions(budget_slices=3), reference_segmentation=reference)
    return session, volume, seg, labels


@pytest.mark.parametrize("geometry", ["ras", "lps", "oblique"])
def test_navigation_lands_on_the_ranked_slice(mrml_scene, tmp_path, geometry):
    from IWUOSegmentationLib.mrml.slice_view import slice_index_of_view

    red = _slice_views(mrml_scene)[0]
    session, volume, _, _ = _session(mrml_scene, tmp_path, geometry)
    for expected in (6, 2, 9):
        assert session.next() == expected
        assert slice_index_of_view(red, volume, 0) == expected
    assert session.previous() == 2 and slice_index_of_view(red, volume, 0) == 2
    session.close()


def test_brush_like_edit_is_logged_against_its_slice(mrml_scene, tmp_path):
    import slicer.util

    _slice_views(mrml_scene)
    reference = np.zeros(SHAPE, np.uint8)
    reference[3:9, 5:15, 6:22] = 2
    session, volume, seg, labels = _session(mrml_scene, tmp_path, reference=reference)
    session.next()  # slice 6 shown
    edema = slicer.util.arrayFromSegmentBinaryLabelmap(seg, "edema", volume) > 0
    edema[6, 5:15, 20:22] = True  # paint 10x2 voxels on slice 6
    edema[6, 5:7, 6:8] = False  # erase 2x2 voxels
    slicer.util.updateSegmentBinaryLabelmapFromArray(edema.astype(np.uint8), seg, "edema", volume)
    assert session.dirty, "the segmentation observer saw the edit"
    assert session.flush_edits() == 1
    events = session.log.read()
    corrected = [e for e in events if e["kind"] == "slice_corrected"]
    assert len(corrected) == 1 and corrected[0]["slice"] == 6 and corrected[0]["rank"] == 1
    assert corrected[0]["voxels_added"] == {"2": 20} and corrected[0]["voxels_removed"] == {"2": 4}
    assert corrected[0]["measured_foreground_dice"] is not None
    # a second edit on the same slice does not use more budget
    edema[6, 14, 6] = False
    slicer.util.updateSegmentBinaryLabelmapFromArray(edema.astype(np.uint8), seg, "edema", volume)
    assert session.flush_edits() == 1
    summary = session.log.summary()
    assert summary.slices_corrected == 1 and summary.slices_remaining == 2
    status = session.table.GetTable().GetColumnByName("status")
    assert status.GetValue(0) == "corrected" and status.GetValue(1) == "pending"
    assert session.log_table.GetNumberOfRows() == len(session.log.read())
    assert corrected[0]["estimated_dice_gain"] == pytest.approx(0.1)
    curve = mrml_scene.GetFirstNodeByName("IWUO Dice curve").GetTable()
    assert curve.GetNumberOfRows() == 2  # before, and the one slice corrected (twice: one point)
    assert curve.GetColumnByName("slices_corrected").GetValue(1) == 1.0  # same slice counts once
    chart = mrml_scene.GetFirstNodeByName("IWUO Dice vs slices corrected")
    assert chart.GetNumberOfPlotSeriesNodes() == 1
    session.close()


def test_session_survives_saving_and_reopening_the_scene(mrml_scene, tmp_path):
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_session import ReviewSession
    from IWUOSegmentationLib.mrml.scene_io import load_scene, save_scene

    _slice_views(mrml_scene)
    session, volume, seg, _ = _session(mrml_scene, tmp_path)
    session.next()
    session.mark_corrected()
    session.next()
    session.skip()
    session.close()
    scene_file = save_scene(mrml_scene, str(tmp_path / "scene.mrml"))
    reopened = create_headless_scene()
    load_scene(reopened, str(scene_file))
    restored = ReviewSession.restore(reopened, SAVED.append)
    assert restored.ranking == [6, 2, 9, 4]
    assert restored.volume.GetImageData().GetDimensions() == SHAPE[::-1]
    assert restored.edits.label_arrays()["enhancing"].sum() == 2 * 4 * 5  # the segmentation's voxels came back
    status = restored.table.GetTable().GetColumnByName("status")
    assert [status.GetValue(i) for i in range(4)] == ["corrected", "skipped", "shown", "pending"]
    assert restored.log.summary().corrected_slices == [6]
    assert restored.current_rank == 1


def test_reopened_scene_without_its_log_is_a_clear_error(mrml_scene, tmp_path):
    from IWUOSegmentationLib.errors import MissingBudgetLogError
    from IWUOSegmentationLib.mrml.review_session import ReviewSession

    session, *_ = _session(mrml_scene, tmp_path)
    session.close()
    (tmp_path / "review.budget.jsonl").unlink()
    with pytest.raises(MissingBudgetLogError, match="budget log of this session .* is missing"):
        ReviewSession.restore(mrml_scene)


def test_a_slice_corrected_again_moves_its_point_of_the_one_curve(mrml_scene, tmp_path):
    """The MRML chart's table is the review report's curve (review/correction_curve.py): one row per corrected
    slice, a slice corrected again updates the last point instead of adding one."""
    import slicer.util

    from IWUOSegmentationLib.review.report import correction_curve

    _slice_views(mrml_scene)
    reference = np.zeros(SHAPE, np.uint8)
    reference[3:9, 5:15, 6:22] = 2
    session, volume, seg, _ = _session(mrml_scene, tmp_path, reference=reference)
    edema = slicer.util.arrayFromSegmentBinaryLabelmap(seg, "edema", volume) > 0
    for slice_index, columns in ((6, slice(20, 22)), (2, slice(6, 10)), (6, slice(6, 8))):
        session.go_to(session.ranking.index(slice_index))
        edema[slice_index, 5:15, columns] = ~edema[slice_index, 5:15, columns]
        slicer.util.updateSegmentBinaryLabelmapFromArray(edema.astype(np.uint8), seg, "edema", volume)
        assert session.flush_edits() == 1
    events = session.log.read()
    assert [e["slice"] for e in events if e["kind"] == "slice_corrected"] == [6, 2, 6]
    table = mrml_scene.GetFirstNodeByName("IWUO Dice curve").GetTable()
    chart = {name: [table.GetColumnByName(name).GetValue(r) for r in range(table.GetNumberOfRows())]
             for name in ("slices_corrected", "estimated_dice_gain", "measured_dice")}
    points = correction_curve(events)
    assert chart["slices_corrected"] == [p["slices"] for p in points] == [0, 1, 2], "one row per corrected slice"
    assert chart["estimated_dice_gain"] == pytest.approx([p["estimated_gain"] for p in points])
    assert chart["measured_dice"] == pytest.approx([p["measured_dice"] for p in points])
    assert chart["measured_dice"][-1] == pytest.approx(session.measured_foreground_dice()), "the re-correction moved the point"
    session.close()


def test_a_writable_session_saves_each_correction_before_it_logs_it(mrml_scene, tmp_path):
    """By construction: a writable session cannot be built without its saver, and a flush calls the saver with the
    edited masks while the log does not hold the correction yet."""
    import slicer.util

    from IWUOSegmentationLib.mrml.review_session import ReviewSession, SessionOptions

    _slice_views(mrml_scene)
    session, volume, seg, _ = _session(mrml_scene, tmp_path)
    with pytest.raises(TypeError, match="save_corrections"):
        ReviewSession(mrml_scene, volume, seg, str(tmp_path / "other" / "review.budget.jsonl"), ranking=[{"slice": 1}])
    browsing = ReviewSession(mrml_scene, volume, seg, str(tmp_path / "review.budget.jsonl"),
                             options=SessionOptions(read_only=True))  # read-only: nothing to save
    browsing.close()
    seen = []
    session.edits.save = lambda masks: seen.append(([e["kind"] for e in session.log.read()], masks["edema"].copy()))
    session.next()
    edema = slicer.util.arrayFromSegmentBinaryLabelmap(seg, "edema", volume) > 0
    edema[6, 5:7, 20:22] = True
    slicer.util.updateSegmentBinaryLabelmapFromArray(edema.astype(np.uint8), seg, "edema", volume)
    assert session.flush_edits() == 1
    assert len(seen) == 1 and "slice_corrected" not in seen[0][0], "the correction was logged before it was saved"
    assert np.array_equal(seen[0][1], edema) and session.log.read()[-1]["kind"] == "slice_corrected"
    session.close()
