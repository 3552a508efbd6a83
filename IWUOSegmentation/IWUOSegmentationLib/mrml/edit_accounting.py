"""Edit accounting: the reviewed segmentation's voxel edits, attributed to the slices they changed, saved, then logged.

One user stroke, or one programmatic update, fires several segmentation events (a labelmap update clears and
refills the segment), so an edit is only noted when it happens (`dirty`, and `on_edit`: the front end's "after
this event" scheduler), and diffed when it is complete (`flush`, also called by navigation and on close).

Saved before logged, by construction: a writable accounting is built with its saver, and `flush` writes the
segmentation through it before it hands the changed slices to the log, so a correction the log counts is on
disk whichever path flushed it (a stroke, Next, closing). An accounting without a saver is read-only: its
edits are undone and nothing is saved or logged.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

#: Slice index -> {"voxels_added": {label: n}, "voxels_removed": {label: n}}.
SliceChanges = dict[int, dict[str, dict[str, int]]]
Masks = dict[str, np.ndarray]  # segment id -> boolean mask (k, j, i)


def merge_changes(into: SliceChanges, changed: SliceChanges) -> None:
    """Add the per-slice voxel counts of `changed` into `into`."""
    for s, entry in changed.items():
        target = into.setdefault(s, {"voxels_added": {}, "voxels_removed": {}})
        for key in ("voxels_added", "voxels_removed"):
            for label, n in entry.get(key, {}).items():
                target[key][label] = target[key].get(label, 0) + n


def _same_grid(image, volume) -> bool:
    """A segmentation's internal labelmap is on the volume's voxel grid (same IJK-to-RAS, no transform between)."""
    import vtk

    on_image, on_volume = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(on_image)
    volume.GetIJKToRASMatrix(on_volume)
    return all(abs(on_image.GetElement(r, c) - on_volume.GetElement(r, c)) < 1e-6 for r in range(4) for c in range(4))


def _mask_from_layer(segmentation, segment_id: str, volume, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """The segment's mask read from its labelmap layer in place, when that layer is on the volume's grid (as the
    review's segmentation is); None otherwise."""
    from vtk.util.numpy_support import vtk_to_numpy

    image = segmentation.GetBinaryLabelmapInternalRepresentation(segment_id)
    if (image is None or image.GetPointData().GetScalars() is None or segmentation.GetParentTransformNode()
            is not volume.GetParentTransformNode() or not _same_grid(image, volume)):
        return None
    i0, i1, j0, j1, k0, k1 = image.GetExtent()
    mask = np.zeros(shape, bool)
    if i1 < i0 or j1 < j0 or k1 < k0:
        return mask
    layer = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(k1 - k0 + 1, j1 - j0 + 1, i1 - i0 + 1)
    lo = (max(k0, 0), max(j0, 0), max(i0, 0))
    hi = (min(k1 + 1, shape[0]), min(j1 + 1, shape[1]), min(i1 + 1, shape[2]))
    if any(b <= a for a, b in zip(lo, hi)):
        return mask
    inside = tuple(slice(a, b) for a, b in zip(lo, hi))
    value = segmentation.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    mask[inside] = layer[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, (k0, j0, i0)))] == value
    return mask


def segment_masks(segmentation, volume) -> Masks:
    """Segment id -> mask of each segment on `volume`'s grid (k, j, i): read from the segment's labelmap layer in
    place when it lies on that grid (no export: the slow part of a stroke's accounting on a full-size case), else
    exported and resampled onto the grid by slicer.util."""
    import slicer.util

    seg = segmentation.GetSegmentation()
    shape = slicer.util.arrayFromVolume(volume).shape
    masks = {}
    for sid in (seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())):
        mask = _mask_from_layer(segmentation, sid, volume, shape)
        masks[sid] = mask if mask is not None else slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, sid,
                                                                                              volume) > 0
    return masks


class EditAccounting:
    """Edits of `segmentation` (on `volume`'s grid) per slice along array axis `axis`.

    `save(masks)` writes the corrected segmentation (None: read-only); `log_changes(changes)` writes one log line
    per changed slice and removes each slice from `changes` once its line is on disk, so a failed line is
    retried by the next flush. `label_values` names the written label of each segment in the logged counts."""

    def __init__(self, segmentation, volume, axis: int, label_values: dict[str, int],
                 save: Optional[Callable[[Masks], object]], log_changes: Callable[[SliceChanges], None],
                 on_edit: Callable[[], None]):
        import slicer

        self.segmentation, self.volume, self.axis, self.label_values = segmentation, volume, axis, label_values
        self.save, self._log_changes, self._on_edit = save, log_changes, on_edit
        self._snapshot = self.label_arrays()
        self.dirty = False
        self._unlogged: SliceChanges = {}  # saved corrections whose log line failed (disk full), to retry
        self._observer = segmentation.GetSegmentation().AddObserver(
            slicer.vtkSegmentation.SourceRepresentationModified, self._on_modified)

    @property
    def read_only(self) -> bool:
        return self.save is None

    def label_arrays(self) -> Masks:
        """The segmentation as it is now: segment id -> mask on the volume's grid."""
        return segment_masks(self.segmentation, self.volume)

    def accounted_masks(self) -> Masks:
        """Segment id -> mask as of the last flush: the state the budget log accounts for."""
        return self._snapshot

    def _on_modified(self, *_) -> None:
        self.dirty = True
        self._on_edit()

    def stop(self) -> None:
        """Stop observing the segmentation (pending edits stay unaccounted: flush first)."""
        if self._observer is not None:
            self.segmentation.GetSegmentation().RemoveObserver(self._observer)
            self._observer = None

    def flush(self) -> int:
        """Attribute the voxel changes since the last flush to their slices: saved, then logged; returns the number
        of slices changed. A failed save (disk full) leaves the edit pending; a failed log line leaves the saved
        correction waiting to be logged. Both are retried by the next flush."""
        if not self.dirty and not self._unlogged:
            return 0
        if self.read_only:  # browse only: the edit is undone, nothing is saved or logged
            self.dirty = False
            self.adopt(self._snapshot)
            return 0
        changed: SliceChanges = {}
        if self.dirty:
            self.dirty = False
            current = self.label_arrays()
            changed = self.slice_changes(self._snapshot, current)
            if changed:
                try:
                    self.save(current)
                except BaseException:
                    self.dirty = True
                    raise
            self._snapshot = current
            merge_changes(self._unlogged, changed)
        if self._unlogged:
            self._log_changes(self._unlogged)
        return len(changed)

    def slice_changes(self, before: Masks, after: Masks) -> SliceChanges:
        """Slice index -> voxels added/removed per written label, from segment masks before and after."""
        changed: SliceChanges = {}
        for sid, mask in after.items():
            previous = before.get(sid)
            differ = np.flatnonzero(mask != previous if previous is not None else mask)  # a stroke: a few voxels
            if not differ.size:
                continue
            slices = np.unravel_index(differ, mask.shape)[self.axis]
            now_in = mask.ravel()[differ]
            added = np.bincount(slices[now_in], minlength=mask.shape[self.axis])
            removed = np.bincount(slices[~now_in], minlength=mask.shape[self.axis])
            label = str(self.label_values.get(sid, sid))
            for s in np.flatnonzero(added + removed):
                entry = changed.setdefault(int(s), {"voxels_added": {}, "voxels_removed": {}})
                if added[s]:
                    entry["voxels_added"][label] = int(added[s])
                if removed[s]:
                    entry["voxels_removed"][label] = int(removed[s])
        return changed

    def adopt(self, masks: Masks) -> bool:
        """Put `masks` into the segmentation as already accounted for; returns whether the segmentation changed."""
        import slicer.util

        current = self.label_arrays()
        if all(np.array_equal(current.get(sid), mask) for sid, mask in masks.items()):
            return False
        for sid, mask in masks.items():
            if sid in current:
                slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), self.segmentation, sid,
                                                                 self.volume)
        self._snapshot = self.label_arrays()
        self.dirty = False
        return True
