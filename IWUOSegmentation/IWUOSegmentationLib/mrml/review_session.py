"""A reviewer's pass over the ranked slices of a segmentation: the parts, composed, and the folder lock.

The session holds the review folder's lock and composes one part per job:
  - navigation over the ranking (ranking_navigation.py: the ranked-slice table, the rank shown, the views),
  - edit accounting (edit_accounting.py: edits per slice, saved through the session's saver, then logged),
  - the budget log (review/budget_log.py: the review's source of truth, read once, then kept in memory),
  - the log views (log_views.py: the log table and the chart, redrawn from each logged event).
What the session adds is what a visit and a correction log, and when.

A session reopened from a saved scene (or after a crash) is rebuilt from the ranking the table node keeps and
the log on disk (`SavedReview`). Slice indices are along `axis` of the (k, j, i) array of the input volume.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import MissingBudgetLogError, ReviewNotResumableError
from ..review.budget_log import FOREGROUND_DICE_KEY, BudgetLog, corrected_slices, logged_target
from ..storage.folder_lock import FolderLock, claim_lock, lock_folder
from .edit_accounting import EditAccounting, Masks, SliceChanges
from .log_views import LogViews
from .ranking_navigation import RANKING_TABLE, RankingNavigation

ATTR_LOG = "IWUO.budgetLogPath"
ATTR_AXIS = "IWUO.sliceAxis"
ATTR_TARGET = "IWUO.target"
#: Node reference roles on the ranking table: references, unlike attributes holding node IDs, are
#: remapped when a saved scene is imported into a scene whose IDs are taken.
ROLE_VOLUME = "iwuoVolume"
ROLE_SEGMENTATION = "iwuoSegmentation"


@dataclass(frozen=True)
class SessionOptions:
    """How a session is opened: its slice budget (logged when the review starts), the structure ranked, the front
    end named to a second opener of the folder, browse-only, and the folder's lock when the caller took it."""

    budget_slices: Optional[int] = None
    target: Optional[str] = None
    front_end: str = "Slicer"
    read_only: bool = False
    lock: Optional[FolderLock] = None


@dataclass(frozen=True)
class SavedReview:
    """What a scene's ranking table records of its session, so a reopened scene can resume it."""

    volume: object
    segmentation: object
    log_path: Path
    axis: int
    target: Optional[str] = None

    def record_on(self, table) -> None:
        table.SetAttribute(ATTR_LOG, str(self.log_path))
        table.SetAttribute(ATTR_AXIS, str(self.axis))
        table.SetNodeReferenceID(ROLE_VOLUME, self.volume.GetID())
        table.SetNodeReferenceID(ROLE_SEGMENTATION, self.segmentation.GetID())
        if self.target is not None:
            table.SetAttribute(ATTR_TARGET, self.target)

    @classmethod
    def from_scene(cls, scene, log_path: Optional[str] = None) -> SavedReview:
        """The session a reopened scene holds; the log (`log_path`, else the recorded one) must exist."""
        table = scene.GetFirstNodeByName(RANKING_TABLE)
        if table is None:
            raise ReviewNotResumableError("This scene has no IWUO review session (no ranking table).")
        path = log_path or table.GetAttribute(ATTR_LOG)
        if not path or not Path(path).exists():
            raise MissingBudgetLogError(f"The budget log of this session ({path}) is missing: the session cannot be "
                                        "resumed from it. Choose the log file, or start a new session.")
        volume, segmentation = table.GetNodeReference(ROLE_VOLUME), table.GetNodeReference(ROLE_SEGMENTATION)
        if volume is None or segmentation is None:
            raise ReviewNotResumableError("The scene's IWUO ranking table does not reference its volume and "
                                          "segmentation: the session cannot be resumed from this scene; analyse the "
                                          "case again.")
        return cls(volume, segmentation, Path(path), int(table.GetAttribute(ATTR_AXIS)), table.GetAttribute(ATTR_TARGET))


def hold_review_folder(folder: str | Path, front_end: str, lock: Optional[FolderLock] = None) -> FolderLock:
    """The review folder's lock for one session: `lock` when it is held on that folder, else the one this process
    took for a session earlier (`iwuo review`), else a new one (FolderLockedError when another session has it)."""
    folder = Path(folder)
    claimed = claim_lock(folder)
    if lock is not None and lock.held and lock.folder.resolve() == folder.resolve():
        return lock
    return claimed or lock_folder(folder, front_end)


def foreground_dice(masks: Masks, reference: Optional[np.ndarray]) -> Optional[float]:
    """Dice of all segments together against the reference label map's foreground (k, j, i); None without one."""
    if reference is None:
        return None
    pred = np.zeros(reference.shape, bool)
    for mask in masks.values():
        pred |= mask
    truth = reference > 0
    denom = pred.sum() + truth.sum()
    return float(2 * (pred & truth).sum() / denom) if denom else 1.0


class ReviewSession:
    """One reviewer's pass over the ranked slices of a segmentation.

    The session holds the review folder's lock (storage/folder_lock.py) from its start to `close`: one writer per
    folder. A second session on the folder is refused with the holder's name, or, with `read_only`, browses it:
    the log is read, nothing is written, and edits are undone as they are made. A writable session needs
    `save_corrections(masks)`, which writes the corrected segmentation: every flush calls it before it logs.
    """

    def __init__(self, scene, volume, segmentation, log_path: str | Path, *, ranking: Optional[list[dict]] = None,
                 axis: int = 0, label_values: Optional[dict[str, int]] = None,
                 save_corrections: Optional[Callable[[Masks], object]] = None, options: Optional[SessionOptions] = None,
                 reference_segmentation: Optional[np.ndarray] = None):
        options = options or SessionOptions()
        if not options.read_only and save_corrections is None:
            raise TypeError("A writable review session needs save_corrections: corrections are saved before logged.")
        self.read_only = options.read_only
        self.lock = None if self.read_only else hold_review_folder(Path(log_path).parent, options.front_end,
                                                                   options.lock)
        #: Called with each event once its line is in the log (the front ends' budget text); a list the
        #: ReviewController shares with each session it takes.
        self.on_logged: list[Callable[[dict], None]] = []
        self.on_dirty: Optional[Callable[[], None]] = None  # the front end's "account after this event"
        self.edits: Optional[EditAccounting] = None
        try:
            self.scene, self.volume, self.segmentation, self.axis = scene, volume, segmentation, axis
            self.target = options.target  # the structure the ranking is for (recorded in the log)
            self.label_values = label_values or {}
            self.reference_segmentation = reference_segmentation
            self.log = BudgetLog(log_path)
            self.navigation = RankingNavigation(scene, volume, axis, ranking)
            self.table, self.ranking = self.navigation.table, self.navigation.ranking
            SavedReview(volume, segmentation, self.log.path, axis, self.target).record_on(self.table)
            self.views = LogViews(scene)
            self.log_table = self.views.log_table
            self._shown_at: Optional[float] = None
            self.edits = EditAccounting(segmentation, volume, axis, self.label_values, save_corrections,
                                        self._log_corrections, lambda: self.on_dirty and self.on_dirty())
            events = self.log.read()
            if not any(e["kind"] == "session_started" for e in events):
                self._append("session_started", budget_slices=options.budget_slices, n_ranked=len(self.ranking),
                             axis=axis, initial_dice=self.measured_foreground_dice(), target=self.target)
            elif self.target is not None and ranking is not None and logged_target(events) != self.target:
                self._append("target_changed", target=self.target, n_ranked=len(self.ranking))
            self.navigation.restore(events)
            self._show_log()
        except BaseException:
            if self.edits is not None:
                self.edits.stop()
            if self.lock is not None:
                self.lock.release()
            raise

    @classmethod
    def restore(cls, scene, save_corrections: Optional[Callable[[Masks], object]] = None,
                log_path: Optional[str] = None, options: Optional[SessionOptions] = None,
                label_values: Optional[dict[str, int]] = None) -> ReviewSession:
        """Rebuild a session from a reopened scene; the log on disk decides the progress."""
        saved = SavedReview.from_scene(scene, log_path)
        options = options or SessionOptions()
        options = replace(options, target=options.target or saved.target)
        return cls(scene, saved.volume, saved.segmentation, saved.log_path, axis=saved.axis, label_values=label_values,
                   save_corrections=save_corrections, options=options)

    @property
    def current_rank(self) -> int:
        """The 0-based rank shown (-1: none yet)."""
        return self.navigation.current_rank

    @property
    def dirty(self) -> bool:
        """An edit was made that is not accounted for yet."""
        return self.edits.dirty

    # -- navigation -------------------------------------------------------------------------------
    def go_to(self, rank_index: int) -> int:
        """Show the slice at `rank_index` (0-based) in every slice view, the review view turned to it; return its
        slice index. Pending edits are accounted for first, and leaving the slice shown before is logged."""
        if not 0 <= rank_index < len(self.ranking):
            raise IndexError(f"Rank {rank_index + 1} is outside the ranking (1-{len(self.ranking)}).")
        self.flush_edits()
        self._close_visit("slice_shown")
        index = self.navigation.show(rank_index)
        self._shown_at = time.time()
        return index

    def next(self) -> int:
        return self.go_to(min(self.current_rank + 1, len(self.ranking) - 1))

    def previous(self) -> int:
        return self.go_to(max(self.current_rank - 1, 0))

    def skip(self) -> int:
        if self.current_rank < 0:  # nothing shown yet (a fresh or just-resumed session): show the first slice
            return self.next()
        self._close_visit("slice_skipped")
        self.navigation.set_status(self.current_rank, "skipped")
        return self.next()

    def mark_corrected(self) -> None:
        """The reviewer says this slice is done (even if it needed no edit); nothing when no slice is shown."""
        if self.current_rank < 0:
            return
        self.flush_edits()
        self._close_visit("slice_marked_corrected")
        self.navigation.set_status(self.current_rank, "corrected")

    def _close_visit(self, kind: str) -> None:
        if self.current_rank < 0 or self._shown_at is None:
            return
        seconds = time.time() - self._shown_at
        self._shown_at = time.time()
        self._append(kind, slice=self.ranking[self.current_rank], rank=self.current_rank + 1, seconds=round(seconds, 3))

    # -- edits ------------------------------------------------------------------------------------
    def flush_edits(self) -> int:
        """Account for the edits since the last flush (saved, then logged); return the number of slices changed."""
        return self.edits.flush()

    def accounted_masks(self) -> Masks:
        """Segment id -> mask as of the last flush: the state the budget log accounts for."""
        return self.edits.accounted_masks()

    def _log_corrections(self, changed: SliceChanges, **extra) -> None:
        """One log line per changed slice; each slice leaves `changed` once its line is on disk."""
        dice = self.measured_foreground_dice()
        for s, entry in sorted(changed.items()):
            seconds = time.time() - self._shown_at if self._shown_at else 0.0
            rank = self.navigation.rank_of(s)
            self._append("slice_corrected", slice=s, rank=rank, seconds=round(seconds, 3), **{FOREGROUND_DICE_KEY: dice},
                         estimated_dice_gain=self.navigation.impact(rank), **entry, **extra)
            del changed[s]
            if rank is not None:
                self.navigation.set_status(rank - 1, "corrected")
        self._shown_at = time.time()

    def adopt_saved_corrections(self, masks: Masks) -> bool:
        """Put saved corrections (segment id -> mask) into the segmentation as already accounted: they were
        logged when they were made (see log_unlogged_corrections for those that were not). Returns whether
        the segmentation changed."""
        return self.edits.adopt(masks)

    def log_unlogged_corrections(self, prediction: Masks) -> list[int]:
        """Slices where the segmentation differs from `prediction` (segment id -> mask) but the log has no
        correction: saved corrections whose log line a crash cut off (corrections are saved before they are
        logged). Logged now, marked recovered, so the budget counts them; returns their slice indices."""
        if self.read_only:
            return []
        logged = corrected_slices(self.log.read())
        changed = {s: entry for s, entry in self.edits.slice_changes(prediction, self.accounted_masks()).items()
                   if s not in logged}
        recovered = sorted(changed)
        if changed:
            shown_at = self._shown_at
            self._log_corrections(changed, recovered=True)
            self._shown_at = shown_at  # no visit is timed by the recovery
        return recovered

    def measured_foreground_dice(self) -> Optional[float]:
        """Dice of all segments together against the reference label map (k, j, i), when one is set."""
        return foreground_dice(self.accounted_masks(), self.reference_segmentation)

    # -- log --------------------------------------------------------------------------------------
    def _append(self, kind: str, **data) -> dict:
        """A budget-log line, then the log views and `on_logged`; a read-only session writes none."""
        if self.read_only:
            return {"kind": kind, **data}
        event = self.log.append(kind, **data)
        self._show_log()
        for callback in list(self.on_logged):
            try:
                callback(event)
            except Exception:  # a display that failed to refresh must not break the accounting
                logging.getLogger(__name__).exception("An on_logged callback failed")
        return event

    def _show_log(self) -> None:
        self.views.show(self.log.read(), self.log.summary(), with_reference=self.reference_segmentation is not None)

    def close(self) -> None:
        """Flush pending edits, stop observing, and give the review folder's lock back."""
        try:
            self.flush_edits()
        finally:
            self.edits.stop()
            if self.lock is not None:
                self.lock.release()

