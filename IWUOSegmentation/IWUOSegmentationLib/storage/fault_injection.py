"""Fault hooks at the write points, for the crash and I/O-error tests (Testing/test_fault_injection.py).

`IWUO_FAULT=<point>:<n>[:<action>]` arms one write point:
  kill    (default) at the n-th completed write of that point, cut the file just written (the half
          of a temporary file, the second half of a log line) and SIGKILL this process: a crash
          mid-write, with nothing of Python's clean-up run;
  enospc  from the n-th write of that point on, the write fails with "No space left on device";
  erofs   the same with "Read-only file system".
Unset (the normal case), each hook is one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path
from typing import Optional

ENV = "IWUO_FAULT"
#: Every write point, in the order a review / analysis / evaluation reaches them.
WRITE_POINTS = (
    "log.line",          # BudgetLog.append: one JSON line (cut: half of it)
    "corrected.tmp",     # the corrected label map written to its temporary file (cut: half of it)
    "corrected.saved",   # the corrected label map renamed into place, before its log line
    "atomic.tmp",        # atomic_write_text's temporary file: summary.json, evaluation.json, reports
    "atomic.replaced",   # ... renamed into place
    "analysis.image",    # one image of an analysis folder under construction (cut: half of it)
    "analysis.swap",     # the finished analysis folder about to replace the old one
    "figure.tmp",        # a report figure's temporary file
)
ERRORS = {"enospc": errno.ENOSPC, "erofs": errno.EROFS}
_hits: dict[tuple[str, str], int] = {}


def _armed(point: str, stage: str) -> Optional[tuple[int, str]]:
    spec = os.environ.get(ENV)
    if not spec:
        return None
    name, _, rest = spec.partition(":")
    if name != point:
        return None
    number, _, action = rest.partition(":")
    key = (point, stage)
    _hits[key] = _hits.get(key, 0) + 1
    return _hits[key] - int(number or 1), action or "kill"


def before_write(point: str, path: str | os.PathLike | None = None) -> None:
    """Raise the injected I/O error (disk full, read-only file system) if `point` is armed for one."""
    armed = _armed(point, "before")
    if armed is None:
        return
    offset, action = armed
    if action in ERRORS and offset >= 0:
        code = ERRORS[action]
        raise OSError(code, f"{os.strerror(code)} (injected at {point})", str(path) if path else None)


def after_write(point: str, path: str | os.PathLike | None = None, cut_bytes: Optional[int] = None) -> None:
    """SIGKILL this process if `point` is armed to die here; first cut `path` short by `cut_bytes`
    (default: half of it), so what a crash mid-write leaves is what the next start finds."""
    armed = _armed(point, "after")
    if armed is None:
        return
    offset, action = armed
    if action != "kill" or offset != 0:
        return
    if path is not None and Path(path).is_file():
        size = Path(path).stat().st_size
        keep = size - cut_bytes if cut_bytes is not None else size // 2
        os.truncate(path, max(keep, 0))
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def reset_counts() -> None:
    """Forget the hits counted so far (a forked test child starts from zero)."""
    _hits.clear()
