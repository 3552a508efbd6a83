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

EVENT_KINDS = ("session_started", "slice_shown", "slice_corrected", "slice_skipped", "reference_dice", "note",
               "target_changed")


@dataclass
class BudgetSummary:
    slices_corrected: int
    slices_shown: int
    seconds_used: float
    voxels_changed: int
    estimated_dice_gain: float
    measured_dice: Optional[float]
    budget_slices: Optional[int]
    budget_seconds: Optional[float]
    corrected_slices: list[int] = field(default_factory=list)

    @property
    def slices_remaining(self) -> Optional[int]:
        return None if self.budget_slices is None else max(self.budget_slices - self.slices_corrected, 0)

    @property
    def seconds_remaining(self) -> Optional[float]:
        return None if self.budget_seconds is None else max(self.budget_seconds - self.seconds_used, 0.0)


class BudgetLog:
    """Append-only JSON Lines log at `path`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.warnings: list[str] = []

    def append(self, kind: str, **data) -> dict:
        if kind not in EVENT_KINDS:
            raise ValueError(f"Unknown budget-log event {kind!r}; use one of {', '.join(EVENT_KINDS)}.")
        event = {"kind": kind, "time": time.time(), **data}
        line = json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()
        before_write("log.line", self.path)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if needs_newline else "") + line)
            handle.flush()
            os.fsync(handle.fileno())
        after_write("log.line", self.path, cut_bytes=len(line) // 2)
        return event

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def read(self) -> list[dict]:
        """All readable events; unreadable lines are skipped and described in `self.warnings`."""
        self.warnings = []
        if not self.path.exists():
            return []
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            raise CorruptLogError(f"Cannot read the budget log {self.path}: {exc}") from exc
        events = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict) or "kind" not in event:
                    raise ValueError("not an event object")
            except ValueError:
                where = "last line" if number == len(lines) else f"line {number}"
                self.warnings.append(f"{self.path.name}: {where} is incomplete or corrupt and was skipped "
                                     f"({line[:60]!r}); all other events were kept.")
                continue
            events.append(event)
        return events

    def summary(self, budget_slices: Optional[int] = None, budget_seconds: Optional[float] = None) -> BudgetSummary:
        """Budget used so far; a slice corrected several times counts once."""
        events = self.read()
        started = [e for e in events if e["kind"] == "session_started"]
        if started:
            budget_slices = budget_slices if budget_slices is not None else started[-1].get("budget_slices")
            budget_seconds = budget_seconds if budget_seconds is not None else started[-1].get("budget_seconds")
        corrected: dict[int, float] = {}
        voxels = 0
        for e in events:
            if e["kind"] == "slice_corrected":
                corrected[int(e["slice"])] = float(e.get("estimated_dice_gain", 0.0))
                voxels += sum(e.get("voxels_added", {}).values()) + sum(e.get("voxels_removed", {}).values())
        measured = [e["measured_dice"] for e in events if e.get("measured_dice") is not None]
        return BudgetSummary(
            slices_corrected=len(corrected), slices_shown=len({e["slice"] for e in events if e["kind"] == "slice_shown"}),
            seconds_used=float(sum(e.get("seconds", 0.0) for e in events if e["kind"] in ("slice_corrected", "slice_skipped",
                                                                                          "slice_shown"))),
            voxels_changed=int(voxels), estimated_dice_gain=float(sum(corrected.values())),
            measured_dice=float(measured[-1]) if measured else None, budget_slices=budget_slices,
            budget_seconds=budget_seconds, corrected_slices=sorted(corrected))
