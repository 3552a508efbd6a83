"""Non-axial acquisitions on real MRML (slicer-core): the review view is turned to the ranked axis.

The ranked axis is the coarsest-spacing one (ranking/slice_scores.slice_axis): I for a sagittal scan, J for a
coronal one. After `go_to`, the review (Red) view's plane passes through the ranked slice's centre and its
normal is the ranked IJK axis, both in world coordinates (parent transforms applied), and a brush-like stroke
made in that plane logs exactly that one slice. The expected geometry is computed here with numpy from the
volume's matrices, not with the code under test. The Red view is made both as the tests' views are and as
trame-slicer makes its views (vtkMRMLSliceLogic.AddSliceNode), so the browser app gets the same turn.
"""

from __future__ import annotations

import math

import numpy as np
import pytest


def _rotation(about: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[about]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


#: name -> (direction columns I, J, K in RAS, spacing of I, J, K, array shape (k, j, i), ranked array axis)
ACQUISITIONS = {
    # sagittal: 5 mm slices along I, which points right; J points down, K anterior
    "sagittal": (np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]), (5.0, 1.0, 1.1), (20, 22, 9), 2),
    # coronal: 4 mm slices along J, which points anterior; I points up, K left
    "coronal": (np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]), (1.0, 4.0, 1.2), (18, 8, 21), 1),
}


def _volume(scene, acquisition: str, transformed: bool):
    import slicer.util
    import vtk

    direction, spacing, shape, _ = ACQUISITIONS[acquisition]
    node = slicer.util.addVolumeFromArray(np.zeros(shape, np.float32), name=f"{acquisition} FLAIR")
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, direction[r, c] * spacing[c])
        m.SetElement(r, 3, [-20.0, 15.0, 30.0][r])
    node.SetIJKToRASMatrix(m)
    parent = np.eye(4)
    if transformed:  # a registration: rotation about two axes and a translation
        parent[:3, :3] = _rotation("z", 0.5) @ _rotation("x", 0.3)
        parent[:3, 3] = (12.0, -40.0, 7.5)
        transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
        matrix = vtk.vtkMatrix4x4()
        for r in range(4):
            for c in range(4):
                matrix.SetElement(r, c, parent[r, c])
        transform.SetMatrixTransformToParent(matrix)
        node.SetAndObserveTransformNodeID(transform.GetID())
    ijk_to_world = parent @ np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    return node, ijk_to_world


def _red_view(scene, made_by: str):
    if made_by == "trame-slicer":  # what trame_slicer.views.SliceView does for its "Red" view
        import slicer

        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLScene(scene)
        red = logic.AddSliceNode("Red")
    else:
        red = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        red.SetName("Red")
        red.SetLayoutName("Red")
    red.SetOrientationToAxial()
    red.SetDimensions(256, 256, 1)
    for name, orientation in (("Yellow", "Sagittal"), ("Green", "Coronal")):
        node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        node.SetName(name)
        node.SetLayoutName(name)
        getattr(node, f"SetOrientationTo{orientation}")()
    return red, logic if made_by == "trame-slicer" else None


def _session(scene, tmp_path, volume, axis: int):
    from IWUOSegmentationLib.mrml.analysis_nodes import add_segmentation
    from IWUOSegmentationLib.mrml.review_session import ReviewSession

    shape = volume.GetImageData().GetDimensions()[::-1]
    labels = np.zeros(shape, np.uint8)
    labels[4:-4, 3:-3, 2:-2] = 2
    seg = add_segmentation(scene, labels, volume, {"background": 0, "edema": 2}, "pred")
    if volume.GetParentTransformNode() is not None:
        seg.SetAndObserveTransformNodeID(volume.GetParentTransformNode().GetID())
    n = shape[axis]
    ranking = [{"slice": s, "iwuo": 1.0 / (r + 1), "impact": 0.1} for r, s in enumerate([n // 2, 1, n - 2])]
    return ReviewSession(scene, volume, seg, str(tmp_path / "review.budget.jsonl"), ranking=ranking, axis=axis,
                         label_values={"edema": 2}, save_corrections=lambda masks: None), seg


def _stroke_in_view(red, ijk_to_world: np.ndarray, shape) -> np.ndarray:
    """The voxels (k, j, i) a brush stroke in the view's plane touches: points along a wavy path in the plane,
    20 mm long, mapped to the voxel grid."""
    slice_to_ras = np.array([[red.GetSliceToRAS().GetElement(r, c) for c in range(4)] for r in range(4)])
    world_to_ijk = np.linalg.inv(ijk_to_world)
    touched = np.zeros(shape, bool)
    for t in np.linspace(-10.0, 10.0, 81):
        for offset in (-1.0, 0.0, 1.0):  # a brush some voxels wide
            ijk = world_to_ijk @ slice_to_ras @ np.array([t, 3.0 * math.sin(t / 3.0) + offset, 0.0, 1.0])
            i, j, k = np.round(ijk[:3]).astype(int)
            if 0 <= k < shape[0] and 0 <= j < shape[1] and 0 <= i < shape[2]:
                touched[k, j, i] = True
    return touched


@pytest.mark.parametrize("acquisition,transformed,made_by", [
    ("sagittal", False, "Slicer"), ("coronal", False, "Slicer"), ("sagittal", True, "Slicer"),
    ("coronal", True, "trame-slicer")])
def test_review_view_turns_to_the_ranked_axis_and_a_stroke_logs_one_slice(mrml_scene, tmp_path, acquisition, transformed,
                                                                           made_by):
    import slicer.util

    from IWUOSegmentationLib.mrml.slice_view import slice_index_of_view
    from IWUOSegmentationLib.ranking.slice_scores import slice_axis

    volume, ijk_to_world = _volume(mrml_scene, acquisition, transformed)
    axis = slice_axis(volume.GetSpacing())
    assert axis == ACQUISITIONS[acquisition][3], "the ranked axis is the coarsest-spacing one"
    red, _logic = _red_view(mrml_scene, made_by)
    session, seg = _session(mrml_scene, tmp_path, volume, axis)
    shape = volume.GetImageData().GetDimensions()[::-1]
    ranked_ijk = 2 - axis
    normal_expected = ijk_to_world[:3, ranked_ijk] / np.linalg.norm(ijk_to_world[:3, ranked_ijk])
    for rank in (0, 1, 2):
        index = session.go_to(rank)
        centre_ijk = [(d - 1) / 2.0 for d in volume.GetImageData().GetDimensions()]
        centre_ijk[ranked_ijk] = index
        centre = (ijk_to_world @ np.array([*centre_ijk, 1.0]))[:3]
        slice_to_ras = np.array([[red.GetSliceToRAS().GetElement(r, c) for c in range(4)] for r in range(4)])
        normal = slice_to_ras[:3, 2]
        assert abs(abs(normal @ normal_expected) - 1.0) < 1e-9, f"view normal {normal} is not the ranked axis"
        assert abs((centre - slice_to_ras[:3, 3]) @ normal) < 1e-6, "the view's plane misses the ranked slice centre"
        assert np.allclose(slice_to_ras[:3, :3].T @ slice_to_ras[:3, :3], np.eye(3), atol=1e-9)
        assert slice_index_of_view(red, volume, axis) == index

    index = session.go_to(0)
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(seg, "edema", volume) > 0
    stroke = _stroke_in_view(red, ijk_to_world, shape)
    assert stroke.sum() > 20 and set(np.argwhere(stroke)[:, axis].tolist()) == {index}, "the stroke left the slice"
    slicer.util.updateSegmentBinaryLabelmapFromArray((mask ^ stroke).astype(np.uint8), seg, "edema", volume)
    assert session.flush_edits() == 1
    corrected = [e for e in session.log.read() if e["kind"] == "slice_corrected"]
    assert [e["slice"] for e in corrected] == [index] and corrected[0]["rank"] == 1
    voxels = sum(corrected[0]["voxels_added"].values()) + sum(corrected[0]["voxels_removed"].values())
    assert voxels == int(stroke.sum())
    session.close()
