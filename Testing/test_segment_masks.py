"""The stroke accounting's masks, read from the labelmap layers in place, are slicer.util's exported masks exactly.

On the real slicer-core wheel: overlapping segments (three layers, as a region-based BraTS model gives them),
a segment whose layer extent is cropped to its voxels after an edit, an empty segment, and a segmentation on
another grid (read through slicer.util's export and resampling instead).
"""

from __future__ import annotations

import numpy as np


def _volume(shape=(12, 20, 16), spacing=(1.0, 1.0, 2.0)):
    import slicer.util

    volume = slicer.util.addVolumeFromArray(np.zeros(shape, np.float32), name="FLAIR")
    volume.SetSpacing(*spacing)
    volume.SetOrigin(-5.0, 3.0, 1.0)
    return volume


def _exported(segmentation, volume) -> dict:
    import slicer.util

    seg = segmentation.GetSegmentation()
    return {seg.GetNthSegmentID(i): slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, seg.GetNthSegmentID(i),
                                                                               volume) > 0
            for i in range(seg.GetNumberOfSegments())}


def _assert_same(fast: dict, slow: dict) -> None:
    assert fast.keys() == slow.keys()
    for sid in fast:
        assert fast[sid].shape == slow[sid].shape and np.array_equal(fast[sid], slow[sid]), sid


def test_masks_read_in_place_equal_the_exported_ones(mrml_scene):
    import slicer.util

    from IWUOSegmentationLib.mrml.analysis_nodes import add_segmentation
    from IWUOSegmentationLib.mrml.edit_accounting import _mask_from_layer, segment_masks

    volume = _volume()
    label_map = np.zeros((12, 20, 16), np.uint8)
    label_map[3:9, 4:15, 2:12] = 1
    label_map[4:8, 6:12, 4:9] = 2
    label_map[5:7, 8:10, 5:7] = 3
    # nested regions, as a region-based model writes them: each segment overlaps the next, so they sit on 3 layers
    segmentation = add_segmentation(mrml_scene, label_map, volume, {"background": 0, "a": 1, "b": 2, "c": 3}, "seg")
    seg = segmentation.GetSegmentation()
    for value, sid in enumerate([seg.GetNthSegmentID(i) for i in range(3)], 1):
        slicer.util.updateSegmentBinaryLabelmapFromArray((label_map >= value).astype(np.uint8), segmentation, sid,
                                                         volume)
    assert seg.GetNumberOfLayers() == 3
    _assert_same(segment_masks(segmentation, volume), _exported(segmentation, volume))
    first = seg.GetNthSegmentID(0)
    assert _mask_from_layer(segmentation, first, volume, label_map.shape) is not None, "the in-place path was not taken"

    # an edit at the volume's edge, and a segment emptied: the layers' extents change
    edited = segment_masks(segmentation, volume)[first]
    edited[0, 0, 0:3] = True
    edited[11, 19, 15] = True
    slicer.util.updateSegmentBinaryLabelmapFromArray(edited.astype(np.uint8), segmentation, first, volume)
    slicer.util.updateSegmentBinaryLabelmapFromArray(np.zeros_like(label_map), segmentation, seg.GetNthSegmentID(2),
                                                     volume)
    masks = segment_masks(segmentation, volume)
    _assert_same(masks, _exported(segmentation, volume))
    assert masks[first][11, 19, 15] and masks[first][0, 0, 2] and not masks[seg.GetNthSegmentID(2)].any()


def test_a_segmentation_on_another_grid_is_resampled_as_slicer_util_does(mrml_scene):
    from IWUOSegmentationLib.mrml.analysis_nodes import add_segmentation
    from IWUOSegmentationLib.mrml.edit_accounting import _mask_from_layer, segment_masks

    other = _volume(shape=(6, 10, 8), spacing=(2.0, 2.0, 4.0))
    label_map = np.zeros((6, 10, 8), np.uint8)
    label_map[2:4, 3:7, 2:6] = 1
    segmentation = add_segmentation(mrml_scene, label_map, other, {"a": 1}, "coarse")
    volume = _volume()
    sid = segmentation.GetSegmentation().GetNthSegmentID(0)
    assert _mask_from_layer(segmentation, sid, volume, (12, 20, 16)) is None
    masks = segment_masks(segmentation, volume)
    _assert_same(masks, _exported(segmentation, volume))
    assert masks[sid].shape == (12, 20, 16) and masks[sid].any()


def test_a_layer_cropped_to_part_of_the_volume_lands_where_it_lies(mrml_scene):
    """A layer whose extent is a corner of the volume (as an effect may leave it): its voxels are placed at their
    own indices, not at the volume's origin."""
    import slicer
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    from IWUOSegmentationLib.mrml.edit_accounting import segment_masks

    volume = _volume()
    segmentation = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    sid = segmentation.GetSegmentation().AddEmptySegment("a")
    image = slicer.vtkOrientedImageData()
    image.SetExtent(3, 6, 4, 9, 2, 5)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    voxels = vtk_to_numpy(image.GetPointData().GetScalars())
    voxels[:] = 0
    voxels[::3] = 1
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    logic.SetBinaryLabelmapToSegment(image, segmentation, sid, logic.MODE_REPLACE, image.GetExtent())
    assert segmentation.GetBinaryLabelmapInternalRepresentation(sid).GetExtent() == (3, 6, 4, 9, 2, 5)
    masks = segment_masks(segmentation, volume)
    _assert_same(masks, _exported(segmentation, volume))
    assert masks[sid].sum() == 32 and not masks[sid][:2].any()
