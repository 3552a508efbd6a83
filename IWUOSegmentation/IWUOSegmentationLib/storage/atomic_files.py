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


def check_complete(path: str | os.PathLike) -> None:
    """Raise ValueError if a gzip-compressed file (.nii.gz, .gz) is cut short or corrupt.

    ITK reads a truncated .nii.gz without complaint, filling the missing voxels with zeros; the gzip
    stream's end marker and CRC say whether the file is whole (about 10 ms per MB).
    """
    import gzip
    import zlib

    path = Path(path)
    if not path.name.endswith(".gz"):
        return
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{path.name} is incomplete or corrupt ({exc})") from exc
