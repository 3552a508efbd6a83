"""Put an analysis into the MRML scene: segmentation, uncertainty/impact heatmaps, foreground layer.

Arrays are (z, y, x) = KJI, as slicer.util and SimpleITK use them. Every node takes the
geometry (IJK-to-RAS) of the input volume it belongs to.
"""

from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from .colormaps import COLORMAPS, PALETTE

HEATMAP_COLORMAPS = {"uncertainty": "inferno", "impact": "magma"}
#: Node attributes: a heatmap's kind (an uncertainty map or "impact"), the segmentation's role, and the
#: segmentation's written label values (JSON, name -> value) that a resumed review needs.
ATTR_KIND = "IWUO.kind"
ATTR_ROLE = "IWUO.role"
ATTR_LABELS = "IWUO.labels"
#: BraTS-like segment colours (RGB 0-1) by label name; other labels get a tab10 palette colour.
SEGMENT_COLORS = {
    "necrosis": (0.85, 0.25, 0.2), "edema": (0.35, 0.8, 0.35), "non_enhancing": (0.3, 0.45, 0.9),
    "enhancing": (1.0, 0.85, 0.2), "whole_tumor": (0.35, 0.8, 0.35), "tumor_core": (0.85, 0.25, 0.2),
    "enhancing_tumor": (1.0, 0.85, 0.2),
    # BraTS 2017-2024 label names (NCR, ED, ET) and nnU-Net's BraTS region names
    "NCR": (0.85, 0.25, 0.2), "NET": (0.3, 0.45, 0.9), "ED": (0.35, 0.8, 0.35), "ET": (1.0, 0.85, 0.2),
    "whole tumor": (0.35, 0.8, 0.35), "tumor core": (0.85, 0.25, 0.2), "enhancing tumor": (1.0, 0.85, 0.2),
}


def named_node(scene, node_class: str, name: str):
    """The scene's node called `name`, added (of `node_class`) when there is none: the review's tables and chart
    are found by name, so a reopened scene's nodes are reused instead of doubled."""
    node = scene.GetFirstNodeByName(name)
    return node if node is not None else scene.AddNewNodeByClass(node_class, name)


def heatmap_color_node(scene, colormap: str = "inferno"):
    """A 256-entry colour table of a perceptually uniform map (colormaps.py; created once per scene)."""
    import slicer

    name = f"IWUO {colormap}"
    existing = scene.GetFirstNodeByName(name)
    if existing is not None:
        return existing
    node = slicer.vtkMRMLColorTableNode()
    node.SetName(name)
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    for i, (r, g, b) in enumerate(COLORMAPS[colormap]):
        node.SetColor(i, f"{i}", r, g, b, 1.0)
    node.SetAttribute("Category", "IWUOSegmentation")
    node.SetHideFromEditors(False)
    scene.AddNode(node)
    return node


def copy_geometry(source_volume, target_volume) -> None:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    source_volume.GetIJKToRASMatrix(matrix)
    target_volume.SetIJKToRASMatrix(matrix)


def add_heatmap_volume(scene, array_kji: np.ndarray, input_volume, name: str, kind: str = "uncertainty",
                       transparent_below: float | None = None):
    """Float volume with a heatmap colour table, window fitted to its range, near-zero voxels transparent."""
    import slicer.util

    array = np.ascontiguousarray(array_kji, dtype=np.float32)
    node = slicer.util.addVolumeFromArray(array, name=name, nodeClassName="vtkMRMLScalarVolumeNode")
    copy_geometry(input_volume, node)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(heatmap_color_node(scene, HEATMAP_COLORMAPS.get(kind, "inferno")).GetID())
    positive = array[array > 0]
    hi = float(np.percentile(positive, 99.5)) if positive.size else 1.0
    hi = hi if hi > 0 else 1.0
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, hi)
    threshold = transparent_below if transparent_below is not None else 0.02 * hi
    display.SetApplyThreshold(1)
    display.SetLowerThreshold(threshold)
    display.SetUpperThreshold(float(array.max()) + 1.0)
    node.SetAttribute(ATTR_KIND, kind)
    return node


def add_segmentation(scene, label_map_kji: np.ndarray, input_volume, labels: dict[str, int], name: str):
    """Segmentation node with one segment per non-background label (names from dataset.json)."""
    import slicer.util

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(input_volume)
    segmentation = node.GetSegmentation()
    for i, (label_name, value) in enumerate(sorted(labels.items(), key=lambda kv: kv[1])):
        if value == 0:
            continue
        color = SEGMENT_COLORS.get(label_name, PALETTE[i % len(PALETTE)])
        segment_id = segmentation.AddEmptySegment(label_name, label_name, list(color))
        slicer.util.updateSegmentBinaryLabelmapFromArray(
            (label_map_kji == value).astype(np.uint8), node, segment_id, input_volume)
    node.SetAttribute(ATTR_ROLE, "prediction")
    return node


def place_in_study(scene, node, input_volume) -> None:
    """Put `node` under the input volume's parent (its study) in subject hierarchy."""
    import slicer

    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if shn is None:
        return
    input_item = shn.GetItemByDataNode(input_volume)
    if not input_item:
        return
    parent = shn.GetItemParent(input_item)
    item = shn.GetItemByDataNode(node)
    if item and parent:
        shn.SetItemParent(item, parent)


def show_as_foreground(scene, background_volume, foreground_volume, opacity: float = 0.5) -> int:
    """Show `foreground_volume` over `background_volume` in every slice view; returns views changed."""
    n = 0
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        composite.SetBackgroundVolumeID(background_volume.GetID())
        composite.SetForegroundVolumeID(foreground_volume.GetID() if foreground_volume else None)
        composite.SetForegroundOpacity(float(opacity))
        n += 1
    return n


class EmptyReferenceError(BadInputError, ValueError):
    """A reference segmentation without segments (a ValueError too, for callers that catch one)."""


def reference_mask_on_volume(reference_segmentation, volume) -> np.ndarray:
    """Union of a reference segmentation's segments on `volume`'s grid (resampled if its grid differs)."""
    import slicer.util

    shape = slicer.util.arrayFromVolume(volume).shape
    mask = np.zeros(shape, bool)
    segmentation = reference_segmentation.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise EmptyReferenceError(f"The reference segmentation '{reference_segmentation.GetName()}' has no segments.")
    for i in range(segmentation.GetNumberOfSegments()):
        segment = slicer.util.arrayFromSegmentBinaryLabelmap(reference_segmentation, segmentation.GetNthSegmentID(i),
                                                             volume)
        mask |= segment > 0
    return mask
