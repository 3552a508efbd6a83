"""Where a ranked slice lies in the world, and the review view turned to show exactly that slice.

The ranked axis is the array axis of coarsest spacing (ranking/slice_scores.slice_axis), whatever the
acquisition plane: K for an axial scan, I for a sagittal one, J for a coronal one. The review view is turned
so that its normal is that IJK axis in world coordinates and its plane passes through the ranked slice's
centre; a Paint stroke in it then stays on the one ranked slice. (Slicer's RotateToVolumePlane keeps the volume
axes closest to the view's current orientation, so an axial Red view stays axial on a sagittal scan.)

World coordinates are the volume's IJK-to-RAS followed by its parent transforms. A non-linear parent transform
has no plane to turn to: it is left out, with a warning, as Slicer's RotateToVolumePlane does. Slice indices
are along `axis` of the (k, j, i) voxel array: array axis 0 is K, 1 is J, 2 is I.
"""

from __future__ import annotations

import logging


def ijk_axis(axis: int) -> int:
    """The IJK index (0 = I, 1 = J, 2 = K) of array axis `axis` of the (k, j, i) voxel array."""
    return 2 - axis


def ijk_to_world(volume):
    """vtkMatrix4x4 from the volume's IJK to world RAS, its linear parent transforms included."""
    import slicer
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    parent = volume.GetParentTransformNode()
    if parent is not None:
        to_world = vtk.vtkMatrix4x4()
        if slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(parent, None, to_world):
            vtk.vtkMatrix4x4.Multiply4x4(to_world, matrix, matrix)
        else:
            logging.getLogger(__name__).warning(
                "%s is under a non-linear transform: the review view follows its untransformed voxel grid.",
                volume.GetName())
    return matrix


def slice_centre_world(volume, axis: int, index: int) -> tuple[float, float, float]:
    """World RAS of the centre of slice `index` along array axis `axis`."""
    dims = volume.GetImageData().GetDimensions()  # (I, J, K)
    ijk = [(dims[0] - 1) / 2.0, (dims[1] - 1) / 2.0, (dims[2] - 1) / 2.0]
    ijk[ijk_axis(axis)] = float(index)
    ras = ijk_to_world(volume).MultiplyPoint([*ijk, 1.0])
    return ras[0], ras[1], ras[2]


def slice_index_of_view(slice_node, volume, axis: int) -> int:
    """The slice index (along `axis`) that a slice view's plane centre lies on."""
    slice_to_ras = slice_node.GetSliceToRAS()
    centre = [slice_to_ras.GetElement(r, 3) for r in range(3)]
    world_to_ijk = ijk_to_world(volume)
    world_to_ijk.Invert()
    ijk = world_to_ijk.MultiplyPoint([*centre, 1.0])
    return int(round(ijk[ijk_axis(axis)]))


def turn_view_to_slice(slice_node, volume, axis: int, index: int) -> None:
    """Turn the view so its normal is the ranked IJK axis (in the world) and its plane holds slice `index`.

    The view's in-plane axes become the two other volume axes, the ones closest to its current in-plane
    directions (vtkMRMLSliceNode::RotateToAxes), so the picture keeps its left/right and up/down sense."""
    slice_node.RotateToAxes(ijk_to_world(volume), ijk_axis(axis))
    slice_node.JumpSliceByCentering(*slice_centre_world(volume, axis, index))
