"""Atomic file writes: a crash or cancel never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .fault_injection import after_write, before_write


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            before_write("atomic.tmp", path)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        after_write("atomic.tmp", tmp)
        os.replace(tmp, path)
        after_write("atomic.replaced")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
