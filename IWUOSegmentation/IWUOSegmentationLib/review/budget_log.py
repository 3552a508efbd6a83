"""BudgetLog: the append-only record of a correction session (JSON Lines), its source of truth.

Every visit and correction is one line, written with a single write + fsync, so a crash can at
worst leave a truncated last line; reading reports and skips such lines instead of failing, and
the next append starts on a fresh line. A session is resumed by reading the log back.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import CorruptLogError
from ..storage.fault_injection import after_write, before_write

EVENT_KINDS = ("session_started", "slice_shown", "slice_corrected", "slice_marked_corrected", "slice_skipped",
               "reference_dice", "note", "target_changed")
#: Events that count their slice as corrected: an edit of the segmentation (`slice_corrected`, with the voxels it
#: changed) and the reviewer's "this slice is done" (`slice_marked_corrected`, Mark corrected, no voxels). Logs
#: written before the second kind existed record the mark as a `slice_corrected` of zero voxels.
CORRECTION_KINDS = ("slice_corrected", "slice_marked_corrected")
#: Events that end a visit of a slice and carry its seconds.
VISIT_KINDS = ("slice_shown", "slice_skipped", *CORRECTION_KINDS)
#: The log key of the Dice of all foreground segments together against the reference, when one is set
#: (`measured_dice` in older logs, which are read the same).
FOREGROUND_DICE_KEY = "measured_foreground_dice"
#: Slices of the correction budget when a front end sets none (`iwuo review --budget-slices`, the Slicer module).
DEFAULT_BUDGET_SLICES = 20


def logged_foreground_dice(event: dict) -> Optional[float]:
    """The all-foreground Dice an event recorded, under its current key or the older `measured_dice`."""
    value = event.get(FOREGROUND_DICE_KEY)
    return event.get("measured_dice") if value is None else value


def slice_gain(gains: dict[int, float], event: dict) -> None:
    """Record a correction event's estimated Dice gain for its slice. A mark without an estimate (Mark corrected,
    or an older log's correction of no voxels) keeps the gain of the slice's earlier edits instead of zeroing it."""
    s = int(event["slice"])
    if event.get("estimated_dice_gain") is not None or s not in gains:
        gains[s] = float(event.get("estimated_dice_gain") or 0.0)


def corrected_slices(events: list[dict]) -> set[int]:
    """Slices the log counts as corrected (edited, or marked done by the reviewer)."""
    return {int(e["slice"]) for e in events if e["kind"] in CORRECTION_KINDS}


def logged_target(events: list[dict]) -> Optional[str]:
    """The review target a budget log was last ranked on (session start or a later change), if it says."""
    targets = [e.get("target") for e in events if e["kind"] in ("session_started", "target_changed") and e.get("target")]
    return targets[-1] if targets else None


@dataclass
class BudgetSummary:
    slices_corrected: int
    slices_shown: int
    seconds_used: float
    voxels_changed: int
    estimated_dice_gain: float
    measured_foreground_dice: Optional[float]  # the last logged Dice of all foreground segments vs the reference
    budget_slices: Optional[int]
    budget_seconds: Optional[float]
    corrected_slices: list[int] = field(default_factory=list)

    @property
    def slices_remaining(self) -> Optional[int]:
        return None if self.budget_slices is None else max(self.budget_slices - self.slices_corrected, 0)

    @property
    def seconds_remaining(self) -> Optional[float]:
        return None if self.budget_seconds is None else max(self.budget_seconds - self.seconds_used, 0.0)


class _Tally:
    """The summary's running totals, extended one event at a time (BudgetLog.summary reads no file)."""

    def __init__(self):
        self.budget_slices: Optional[int] = None
        self.budget_seconds: Optional[float] = None
        self.started = False
        self.corrected: dict[int, float] = {}
        self.shown: set = set()
        self.seconds = 0.0
        self.voxels = 0
        self.measured: Optional[float] = None

    def add(self, e: dict) -> None:
        kind = e["kind"]
        if kind == "session_started":
            self.started = True
            self.budget_slices, self.budget_seconds = e.get("budget_slices"), e.get("budget_seconds")
        elif kind in CORRECTION_KINDS:
            slice_gain(self.corrected, e)
            self.voxels += sum(e.get("voxels_added", {}).values()) + sum(e.get("voxels_removed", {}).values())
        elif kind == "slice_shown":
            self.shown.add(e["slice"])
        if kind in VISIT_KINDS:
            self.seconds += e.get("seconds", 0.0)
        if logged_foreground_dice(e) is not None:
            self.measured = logged_foreground_dice(e)


class BudgetLog:
    """Append-only JSON Lines log at `path`.

    The file is read once, on the first `read` or `summary` (a session's start or resume); from then on
    the events are kept in memory and each append extends them, and the summary, only after its line is
    on disk. A failed write forgets the memory, so the next read takes the file as it is.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.warnings: list[str] = []
        self._events: Optional[list[dict]] = None  # None: not read yet (or a write failed)
        self._tally = _Tally()
        self._n_lines = 0  # lines in the file, as str.splitlines counts them
        self._bad: list[tuple[int, str]] = []  # (line number, its start) of each unreadable line
        self._ends_with_line_break = True

    def append(self, kind: str, **data) -> dict:
        if kind not in EVENT_KINDS:
            raise ValueError(f"Unknown budget-log event {kind!r}; use one of {', '.join(EVENT_KINDS)}.")
        event = {"kind": kind, "time": time.time(), **data}
        line = json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._events is not None:
            needs_newline = not self._ends_with_line_break
        else:
            needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()
        try:
            before_write("log.line", self.path)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(("\n" if needs_newline else "") + line)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            self._events = None  # what reached the file is unknown: the next read takes it from disk
            raise
        after_write("log.line", self.path, cut_bytes=len(line) // 2)
        if self._events is not None:  # on disk: now in memory too
            self._events.append(json.loads(line))
            self._tally.add(self._events[-1])
            self._n_lines += 1
            self._ends_with_line_break = True
        return event

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def _load(self) -> None:
        """Read the file into memory: the one place the log is read."""
        self._events, self._tally, self._n_lines, self._bad = [], _Tally(), 0, []
        self._ends_with_line_break = True
        if not self.path.exists():
            return
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            self._events = None
            raise CorruptLogError(f"Cannot read the budget log {self.path}: {exc}") from exc
        self._ends_with_line_break = not raw or raw.endswith(b"\n")
        lines = raw.decode("utf-8", errors="replace").splitlines()
        self._n_lines = len(lines)
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict) or "kind" not in event:
                    raise ValueError("not an event object")
            except ValueError:
                self._bad.append((number, line[:60]))
                continue
            self._events.append(event)
            self._tally.add(event)

    def read(self) -> list[dict]:
        """All readable events; unreadable lines are skipped and described in `self.warnings`."""
        if self._events is None:
            self._load()
        self.warnings = [f"{self.path.name}: {'last line' if number == self._n_lines else f'line {number}'} is "
                         f"incomplete or corrupt and was skipped ({start!r}); all other events were kept."
                         for number, start in self._bad]
        return list(self._events)

    def summary(self, budget_slices: Optional[int] = None, budget_seconds: Optional[float] = None) -> BudgetSummary:
        """Budget used so far; a slice corrected several times counts once."""
        if self._events is None:
            self.read()
        tally = self._tally
        if tally.started:
            budget_slices = budget_slices if budget_slices is not None else tally.budget_slices
            budget_seconds = budget_seconds if budget_seconds is not None else tally.budget_seconds
        return BudgetSummary(
            slices_corrected=len(tally.corrected), slices_shown=len(tally.shown), seconds_used=float(tally.seconds),
            voxels_changed=int(tally.voxels), estimated_dice_gain=float(sum(tally.corrected.values())),
            measured_foreground_dice=float(tally.measured) if tally.measured is not None else None,
            budget_slices=budget_slices,
            budget_seconds=budget_seconds, corrected_slices=sorted(tally.corrected))
