"""Guided review in the scene: ranked-slice table, slice navigation, edit accounting, budget log.

The BudgetLog file is the source of truth: the table nodes mirror it, and a session reopened
from a saved scene (or after a crash) is rebuilt from the ranking stored on the table node and
the log on disk. Slice indices are along `axis` of the (k, j, i) array of the input volume.
The log file is read once, when the session starts: each event after that extends the BudgetLog's
events in memory, and the front ends refresh on `on_logged` instead of reading the file.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..review.budget_log import BudgetLog
from ..review.correction_curve import correction_curve
from ..storage.folder_lock import FolderLock, claim_lock, lock_folder

RANKING_TABLE = "IWUO ranking"
LOG_TABLE = "IWUO budget log"
CURVE_TABLE = "IWUO Dice curve"
CHART = "IWUO Dice vs slices corrected"
ATTR_LOG = "IWUO.budgetLogPath"
ATTR_AXIS = "IWUO.sliceAxis"
#: Node reference roles on the ranking table: references, unlike attributes holding node IDs, are
#: remapped when a saved scene is imported into a scene whose IDs are taken.
ROLE_VOLUME = "iwuoVolume"
ROLE_SEGMENTATION = "iwuoSegmentation"
ATTR_TARGET = "IWUO.target"
ATTR_SUMMARY = "IWUO.summary"  # JSON: the log table's budget summary, the segmentation's ensemble members
RED_VIEW = "Red"  # the layout name of the view the reviewer corrects in (Slicer's)
#: Columns of the ranking table (the front ends read them too).
COLUMN_RANK, COLUMN_SLICE, COLUMN_STATUS = "rank", "slice", "status"
SCORE_COLUMNS = ("iwuo", "impact", "uncertainty")  # the ranking rows' scores, under their own names


def logged_target(events: list[dict]) -> Optional[str]:
    """The review target a budget log was last ranked on (session start or a later change), if it says."""
    targets = [e.get("target") for e in events if e["kind"] in ("session_started", "target_changed") and e.get("target")]
    return targets[-1] if targets else None


def slice_centre_ras(volume, axis: int, index: int) -> tuple[float, float, float]:
    """RAS of the centre of slice `index` along array axis `axis` (0 = K, 1 = J, 2 = I)."""
    import vtk

    dims = volume.GetImageData().GetDimensions()  # (I, J, K)
    ijk = [(dims[0] - 1) / 2.0, (dims[1] - 1) / 2.0, (dims[2] - 1) / 2.0]
    ijk[2 - axis] = float(index)
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    ras = m.MultiplyPoint([*ijk, 1.0])
    return ras[0], ras[1], ras[2]


def slice_index_of_view(slice_node, volume, axis: int) -> int:
    """The slice index (along `axis`) that a slice view's plane centre lies on."""
    import vtk

    slice_to_ras = slice_node.GetSliceToRAS()
    centre = [slice_to_ras.GetElement(r, 3) for r in range(3)]
    m = vtk.vtkMatrix4x4()
    volume.GetRASToIJKMatrix(m)
    ijk = m.MultiplyPoint([*centre, 1.0])
    return int(round(ijk[2 - axis]))


def _merge_changes(into: dict[int, dict], changed: dict[int, dict]) -> None:
    """Add per-slice voxel counts of `changed` into `into` (same shape as _slice_changes' result)."""
    for s, entry in changed.items():
        target = into.setdefault(s, {"voxels_added": {}, "voxels_removed": {}})
        for key in ("voxels_added", "voxels_removed"):
            for label, n in entry.get(key, {}).items():
                target[key][label] = target[key].get(label, 0) + n


class ReviewSession:
    """One reviewer's pass over the ranked slices of a segmentation.

    The session holds the review folder's lock (storage/folder_lock.py) from its start to `close`: one writer per
    folder. A second session on the folder is refused with the holder's name, or, with `read_only`,
    browses it: the log is read, nothing is written, and edits are undone as they are made.
    """

    def __init__(self, scene, volume, segmentation, log_path: str, ranking: Optional[list[dict]] = None,
                 axis: int = 0, label_values: Optional[dict[str, int]] = None, budget_slices: Optional[int] = None,
                 reference_segmentation=None, target: Optional[str] = None, front_end: str = "Slicer", read_only: bool = False,
                 lock: Optional[FolderLock] = None):
        self.read_only = read_only
        self.lock: Optional[FolderLock] = None
        if not read_only:
            folder = Path(log_path).parent
            claimed = claim_lock(folder)  # taken for this session earlier in this process (iwuo review)
            held = lock is not None and lock.held and lock.folder.resolve() == folder.resolve()
            self.lock = lock if held else (claimed or lock_folder(folder, front_end))
        self._observer = None
        #: Called with each event once its line is in the log (the front ends' budget text); a list the
        #: ReviewController shares with each session it takes.
        self.on_logged: list[Callable[[dict], None]] = []
        try:
            self._start(scene, volume, segmentation, log_path, ranking, axis, label_values, budget_slices, reference_segmentation,
                        target)
        except BaseException:
            if self._observer is not None:
                self.segmentation.GetSegmentation().RemoveObserver(self._observer)
            if self.lock is not None:
                self.lock.release()
            raise

    def _start(self, scene, volume, segmentation, log_path, ranking, axis, label_values, budget_slices, reference_segmentation,
               target):
        self.scene, self.volume, self.segmentation = scene, volume, segmentation
        self.axis = axis
        self.target = target  # the structure the ranking is for (recorded in the log)
        self.log = BudgetLog(log_path)
        self.label_values = label_values or {}
        self.reference_segmentation = reference_segmentation
        self.table = self._ranking_table(ranking)
        self.ranking = self._read_ranking()
        self.log_table = self._get_or_add("vtkMRMLTableNode", LOG_TABLE)
        self.current_rank = -1
        self._shown_at = None
        self._snapshot = self._label_arrays()
        self.dirty = False
        self._unlogged: dict[int, dict] = {}  # saved corrections whose log line failed (disk full), to retry
        self.on_dirty = None  # GUI hook: schedule flush_edits() after the current event
        #: Persists the segmentation as accounted (segment id -> mask); flush_edits calls it before it logs.
        self.on_accounted: Optional[Callable[[dict[str, np.ndarray]], None]] = None
        self._observe()
        events = self.log.read()
        if any(e["kind"] == "session_started" for e in events):
            if target is not None and ranking is not None and logged_target(events) != target:
                self._append("target_changed", target=target, n_ranked=len(self.ranking))
        else:
            self._append("session_started", budget_slices=budget_slices, n_ranked=len(self.ranking), axis=axis,
                         initial_dice=self.measured_dice(), target=target)
        self._restore_progress(events)
        self._mirror_log()

    # -- nodes ------------------------------------------------------------------------------------
    def _get_or_add(self, cls: str, name: str):
        node = self.scene.GetFirstNodeByName(name)
        return node if node is not None else self.scene.AddNewNodeByClass(cls, name)

    def _ranking_table(self, ranking: Optional[list[dict]]):
        table = self._get_or_add("vtkMRMLTableNode", RANKING_TABLE)
        if ranking is not None:
            import vtk

            table.RemoveAllColumns()
            columns = {}
            for name, cls in ((COLUMN_RANK, vtk.vtkIntArray), (COLUMN_SLICE, vtk.vtkIntArray),
                              *((score, vtk.vtkDoubleArray) for score in SCORE_COLUMNS), (COLUMN_STATUS, vtk.vtkStringArray)):
                array = cls()
                array.SetName(name)
                columns[name] = array
            for r, row in enumerate(ranking, 1):
                columns[COLUMN_RANK].InsertNextValue(r)
                columns[COLUMN_SLICE].InsertNextValue(int(row["slice"]))
                for key in SCORE_COLUMNS:
                    columns[key].InsertNextValue(float(row.get(key, 0.0)))
                columns[COLUMN_STATUS].InsertNextValue("pending")
            for array in columns.values():
                table.AddColumn(array)
        table.SetAttribute(ATTR_LOG, str(self.log.path))
        table.SetAttribute(ATTR_AXIS, str(self.axis))
        table.SetNodeReferenceID(ROLE_VOLUME, self.volume.GetID())
        table.SetNodeReferenceID(ROLE_SEGMENTATION, self.segmentation.GetID())
        if self.target is not None:
            table.SetAttribute(ATTR_TARGET, self.target)
        return table

    def _read_ranking(self) -> list[int]:
        column = self.table.GetTable().GetColumnByName(COLUMN_SLICE)
        if column is None:
            raise ValueError("The scene has no IWUO ranking table; analyse the case first.")
        return [int(column.GetValue(i)) for i in range(column.GetNumberOfTuples())]

    def _set_status(self, rank_index: int, status: str) -> None:
        if not 0 <= rank_index < len(self.ranking):  # VTK 9.6 raises, older VTK writes out of bounds
            raise IndexError(f"No slice at rank {rank_index + 1} of the ranking (1-{len(self.ranking)}).")
        self.table.GetTable().GetColumnByName(COLUMN_STATUS).SetValue(rank_index, status)
        self.table.GetTable().Modified()

    # -- navigation -------------------------------------------------------------------------------
    def go_to(self, rank_index: int) -> int:
        """Centre every slice view on the slice at `rank_index` (0-based); return its slice index."""
        if not 0 <= rank_index < len(self.ranking):
            raise IndexError(f"Rank {rank_index + 1} is outside the ranking (1-{len(self.ranking)}).")
        self.flush_edits()
        self._close_visit("slice_shown")
        self.current_rank = rank_index
        index = self.ranking[rank_index]
        r, a, s = slice_centre_ras(self.volume, self.axis, index)
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            node = self.scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
            if node.GetName() == RED_VIEW or node.GetLayoutName() == RED_VIEW:
                node.RotateToVolumePlane(self.volume)
            node.JumpSliceByCentering(r, a, s)
        self._shown_at = time.time()
        if self.table.GetTable().GetColumnByName(COLUMN_STATUS).GetValue(rank_index) == "pending":
            self._set_status(rank_index, "shown")
        return index

    def next(self) -> int:
        return self.go_to(min(self.current_rank + 1, len(self.ranking) - 1))

    def previous(self) -> int:
        return self.go_to(max(self.current_rank - 1, 0))

    def skip(self) -> int:
        if self.current_rank < 0:  # nothing shown yet (a fresh or just-resumed session): show the first slice
            return self.next()
        self._close_visit("slice_skipped")
        self._set_status(self.current_rank, "skipped")
        return self.next()

    def mark_corrected(self) -> None:
        """The reviewer says this slice is done (even if it needed no edit); nothing when no slice is shown."""
        if self.current_rank < 0:
            return
        self.flush_edits()
        self._close_visit("slice_corrected", voxels_added={}, voxels_removed={})
        self._set_status(self.current_rank, "corrected")
        self._mirror_log()

    def _close_visit(self, kind: str, **data) -> None:
        if self.current_rank < 0 or self._shown_at is None:
            return
        seconds = time.time() - self._shown_at
        self._shown_at = time.time()
        self._append(kind, slice=self.ranking[self.current_rank], rank=self.current_rank + 1,
                        seconds=round(seconds, 3), **data)

    # -- edit accounting --------------------------------------------------------------------------
    def _segment_ids(self) -> list[str]:
        seg = self.segmentation.GetSegmentation()
        return [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())]

    def _label_arrays(self) -> dict[str, np.ndarray]:
        import slicer.util

        return {sid: slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentation, sid, self.volume) > 0
                for sid in self._segment_ids()}

    def _observe(self) -> None:
        import slicer

        self._observer = self.segmentation.GetSegmentation().AddObserver(
            slicer.vtkSegmentation.SourceRepresentationModified, self._on_modified)

    def _append(self, kind: str, **data) -> dict:
        """A budget-log line, then `on_logged`; a read-only session writes none."""
        if self.read_only:
            return {"kind": kind, **data}
        event = self.log.append(kind, **data)
        for callback in list(self.on_logged):
            try:
                callback(event)
            except Exception:  # a display that failed to refresh must not break the accounting
                logging.getLogger(__name__).exception("An on_logged callback failed")
        return event

    def close(self) -> None:
        """Flush pending edits, stop observing, and give the review folder's lock back."""
        try:
            self.flush_edits()
        finally:
            if self._observer is not None:
                self.segmentation.GetSegmentation().RemoveObserver(self._observer)
                self._observer = None
            if self.lock is not None:
                self.lock.release()

    def _on_modified(self, *_) -> None:
        """Segmentation changed: note it; the diff is taken when the edit is complete (flush_edits).

        One user stroke or one programmatic update fires several events (a labelmap update
        clears and refills the segment), so accounting per event would log intermediate states.
        The GUI calls flush_edits from a zero-delay timer; navigation flushes first too.
        """
        self.dirty = True
        if self.on_dirty is not None:
            self.on_dirty()

    def accounted_masks(self) -> dict[str, np.ndarray]:
        """Segment id -> mask as of the last flush: the state the budget log accounts for."""
        return self._snapshot

    def flush_edits(self) -> int:
        """Attribute the voxel changes since the last flush to their slices; return slices changed.

        A failed save (disk full) leaves the edit pending; a failed log line leaves the saved correction
        waiting to be logged. Both are retried by the next flush, so the session goes on once space is back.
        """
        if not self.dirty and not self._unlogged:
            return 0
        if self.read_only:  # browse only: the edit is undone, nothing is saved or logged
            self.dirty = False
            self.adopt_saved_corrections(self._snapshot)
            return 0
        changed: dict[int, dict] = {}
        if self.dirty:
            self.dirty = False
            current = self._label_arrays()
            changed = self._slice_changes(self._snapshot, current)
            if changed and self.on_accounted is not None:
                # Saved before logged: a correction the log counts is on disk, whichever path flushed
                # (a stroke, Next, closing).
                try:
                    self.on_accounted(current)
                except BaseException:
                    self.dirty = True
                    raise
            self._snapshot = current
            _merge_changes(self._unlogged, changed)
        if self._unlogged:
            self._log_corrections(self._unlogged, written=True)
        return len(changed)

    def _slice_changes(self, before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> dict[int, dict]:
        """Slice index -> voxels added/removed per written label, from segment masks before and after."""
        changed: dict[int, dict[str, dict[str, int]]] = {}
        other = tuple(a for a in range(3) if a != self.axis)
        for sid, mask in after.items():
            previous = before.get(sid, np.zeros_like(mask))
            added = (mask & ~previous).sum(axis=other)
            removed = (~mask & previous).sum(axis=other)
            label = str(self.label_values.get(sid, sid))
            for s in np.flatnonzero(added + removed):
                entry = changed.setdefault(int(s), {"voxels_added": {}, "voxels_removed": {}})
                if added[s]:
                    entry["voxels_added"][label] = int(added[s])
                if removed[s]:
                    entry["voxels_removed"][label] = int(removed[s])
        return changed

    def _log_corrections(self, changed: dict[int, dict[str, dict[str, int]]], written: bool = False,
                         **extra) -> None:
        """One log line per changed slice; with `written`, each slice leaves `changed` once its line is on disk."""
        measured = self.measured_dice()
        for s, entry in sorted(changed.items()):
            seconds = time.time() - self._shown_at if self._shown_at else 0.0
            rank = self.ranking.index(s) + 1 if s in self.ranking else None
            self._append("slice_corrected", slice=s, rank=rank, seconds=round(seconds, 3),
                         measured_dice=measured, estimated_dice_gain=self._impact(rank), **entry, **extra)
            if written:
                del changed[s]
            if rank is not None:
                self._set_status(rank - 1, "corrected")
        self._shown_at = time.time()
        self._mirror_log()

    def adopt_saved_corrections(self, masks: dict[str, np.ndarray]) -> bool:
        """Put saved corrections (segment id -> mask) into the segmentation as already accounted: they were
        logged when they were made (see log_unlogged_corrections for those that were not). Returns whether
        the segmentation changed."""
        import slicer.util

        current = self._label_arrays()
        if all(np.array_equal(current.get(sid), mask) for sid, mask in masks.items()):
            return False
        for sid, mask in masks.items():
            if sid in current:
                slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), self.segmentation, sid,
                                                                 self.volume)
        self._snapshot = self._label_arrays()
        self.dirty = False
        return True

    def log_unlogged_corrections(self, prediction: dict[str, np.ndarray]) -> list[int]:
        """Slices where the segmentation differs from `prediction` (segment id -> mask) but the log has no
        correction: saved corrections whose log line a crash cut off (corrections are saved before they are
        logged). Logged now, marked recovered, so the budget counts them; returns their slice indices."""
        if self.read_only:
            return []
        logged = {int(e["slice"]) for e in self.log.read() if e["kind"] == "slice_corrected"}
        changed = {s: entry for s, entry in self._slice_changes(prediction, self._snapshot).items() if s not in logged}
        if changed:
            shown_at = self._shown_at
            self._log_corrections(changed, recovered=True)
            self._shown_at = shown_at  # no visit is timed by the recovery
        return sorted(changed)

    def _impact(self, rank: Optional[int]) -> float:
        column = self.table.GetTable().GetColumnByName("impact")
        return float(column.GetValue(rank - 1)) if rank is not None and column is not None else 0.0

    def measured_dice(self) -> Optional[float]:
        """Whole-tumour Dice against the reference label map (k, j, i), when one is set."""
        if self.reference_segmentation is None:
            return None
        pred = np.zeros(self.reference_segmentation.shape, bool)
        for mask in self._snapshot.values():
            pred |= mask
        truth = self.reference_segmentation > 0
        denom = pred.sum() + truth.sum()
        return float(2 * (pred & truth).sum() / denom) if denom else 1.0

    # -- log mirror and restore -------------------------------------------------------------------
    def _mirror_log(self) -> None:
        import vtk

        events = self.log.read()
        self.log_table.RemoveAllColumns()
        names = ("kind", "slice", "rank", "seconds", "voxels_changed", "measured_dice")
        arrays = {n: vtk.vtkStringArray() for n in names}
        for n, a in arrays.items():
            a.SetName(n)
        for e in events:
            voxels = sum(e.get("voxels_added", {}).values()) + sum(e.get("voxels_removed", {}).values())
            values = (e["kind"], e.get("slice", ""), e.get("rank", ""), e.get("seconds", ""),
                      voxels if e["kind"] == "slice_corrected" else "", e.get("measured_dice", ""))
            for n, v in zip(names, values):
                arrays[n].InsertNextValue("" if v is None else str(v))
        for a in arrays.values():
            self.log_table.AddColumn(a)
        self.log_table.SetAttribute(ATTR_SUMMARY, json.dumps(self.log.summary().__dict__))
        self._update_chart(events)

    def _update_chart(self, events: list[dict]) -> None:
        """Plot chart: measured Dice (or the estimated Dice gain so far) against slices corrected, one point
        per corrected slice (review/correction_curve.py, the curve of the review report too)."""
        import vtk

        points = correction_curve(events)
        x = [float(p["slices"]) for p in points]
        estimated = [p["estimated_gain"] for p in points]
        measured = [p["measured_dice"] for p in points]
        table = self._get_or_add("vtkMRMLTableNode", CURVE_TABLE)
        table.RemoveAllColumns()
        columns = {"slices_corrected": x, "estimated_dice_gain": estimated}
        if self.reference_segmentation is not None:
            columns["measured_dice"] = measured
        for name, values in columns.items():
            array = vtk.vtkDoubleArray()
            array.SetName(name)
            for v in values:  # NaN: no measured Dice before a reference was chosen (set after the session began)
                array.InsertNextValue(float("nan") if v is None else v)
            table.AddColumn(array)
        chart = self._get_or_add("vtkMRMLPlotChartNode", CHART)
        chart.SetXAxisTitle("slices corrected")
        chart.SetYAxisTitle("Dice" if "measured_dice" in columns else "estimated Dice gain")
        y_name = "measured_dice" if "measured_dice" in columns else "estimated_dice_gain"
        series = self._get_or_add("vtkMRMLPlotSeriesNode", f"IWUO {y_name}")
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("slices_corrected")
        series.SetYColumnName(y_name)
        series.SetPlotType(series.PlotTypeScatter)
        if not chart.HasPlotSeriesNodeID(series.GetID()):
            chart.AddAndObservePlotSeriesNodeID(series.GetID())

    def _restore_progress(self, events: list[dict]) -> None:
        done = {int(e["slice"]) for e in events if e["kind"] == "slice_corrected"}
        skipped = {int(e["slice"]) for e in events if e["kind"] == "slice_skipped"}
        shown = {int(e["slice"]) for e in events if e["kind"] == "slice_shown"}
        for i, s in enumerate(self.ranking):
            if s in done:
                self._set_status(i, "corrected")
            elif s in skipped:
                self._set_status(i, "skipped")
            elif s in shown:
                self._set_status(i, "shown")
        visited = [i for i, s in enumerate(self.ranking) if s in done | skipped]
        self.current_rank = max(visited) if visited else -1

    @classmethod
    def restore(cls, scene, log_path: Optional[str] = None, **kwargs) -> ReviewSession:
        """Rebuild a session from a reopened scene; the log on disk decides the progress."""
        table = scene.GetFirstNodeByName(RANKING_TABLE)
        if table is None:
            raise ValueError("This scene has no IWUO review session (no ranking table).")
        path = log_path or table.GetAttribute(ATTR_LOG)
        if not path or not Path(path).exists():
            raise FileNotFoundError(f"The budget log of this session ({path}) is missing: the session cannot be "
                                    "resumed from it. Choose the log file, or start a new session.")
        volume, segmentation = table.GetNodeReference(ROLE_VOLUME), table.GetNodeReference(ROLE_SEGMENTATION)
        if volume is None or segmentation is None:
            raise ValueError("The scene's IWUO ranking table does not reference its volume and segmentation: the "
                             "session cannot be resumed from this scene; analyse the case again.")
        kwargs.setdefault("target", table.GetAttribute(ATTR_TARGET))
        return cls(scene, volume, segmentation, path, ranking=None, axis=int(table.GetAttribute(ATTR_AXIS)), **kwargs)
